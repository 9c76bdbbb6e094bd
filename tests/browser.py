"""Headless Chromium for page tests: Debian's ``chromium`` driven by Playwright through
``executable_path`` (``playwright install`` downloads browsers, which this project never
does). tests/conftest.py imports the fixtures for every module: one Playwright per process.

Skips only when no Chromium binary is installed (a developer machine without it still runs
the rest of the suite); in CI (``CI`` set) a missing browser is a failure, since
``.ci/run`` installs it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["VIEWPORT", "browser", "browser_page", "find_chromium"]

VIEWPORT = {"width": 1280, "height": 900}
_NAMES = ("chromium", "chromium-browser")  # Debian's package, Ubuntu's name


def find_chromium() -> Path | None:
    """``$CHROMIUM`` if set, else the first system Chromium on PATH."""
    if env := os.environ.get("CHROMIUM"):
        return Path(env)
    for name in _NAMES:
        if found := shutil.which(name):
            return Path(found)
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    exe = find_chromium()
    if exe is None:
        reason = ("no system Chromium on PATH (apt-get install chromium, or set CHROMIUM); "
                  ".ci/run installs it")
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright  # the 'dev' extra: a missing one fails

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(exe), headless=True)
        yield b
        b.close()


@pytest.fixture
def browser_page(browser) -> Iterator[object]:
    """A fresh page at 1280×900 that fails the test on any JavaScript error."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
