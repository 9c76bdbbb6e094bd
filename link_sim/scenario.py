"""Scenario files: a pydantic v2 schema (unknown keys refused) read by the project's one
YAML loader (:mod:`textboost.settings`), whose errors fit on one line: file, key, what was
expected and the value found. The ``protocol`` section is the one link model
(:class:`~textboost.settings.link.LinkSettings`) and ``rate`` the one budget model
(:class:`~textboost.settings.budget.Budget`) that the field file and the CLIs use too.
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from textboost.protocol import LinkConfig
from textboost.settings.budget import Budget
from textboost.settings.link import LinkSettings
from textboost.settings.load import ConfigError, StrictModel, parse_yaml, read_yaml, validate
from textboost.settings.queue import EdgeQueue

__all__ = [
    "SHIPPED_SETS_DIR",
    "Scenario",
    "ScenarioError",
    "Targets",
    "apply_overrides",
    "load_scenario",
    "parse_scenario",
]

SHIPPED_SETS_DIR = Path(__file__).parent / "data"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

Prob = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]


class ScenarioError(ConfigError):
    """An unreadable or invalid scenario; the message is one line naming file and field."""


# --- images and the sender ------------------------------------------------------------------


class CaptureSchedule(StrictModel):
    start_s: NonNegFloat = 0.0
    interval_s: PosFloat
    count: Annotated[int, Field(ge=1, le=65535)]


class ImageSource(StrictModel):
    set: str | None = Field(None, description="a set shipped in link_sim/data/")
    folder: str | None = Field(None, description="a folder of PNG/JPEG images")
    files: list[str] | None = Field(None, description="a subset of the set or folder")
    capture: CaptureSchedule

    @model_validator(mode="after")
    def _one_source(self) -> ImageSource:
        if (self.set is None) == (self.folder is None):
            raise ValueError("set/folder: expected exactly one of 'set' (shipped) or 'folder'")
        return self


class SenderProfile(EdgeQueue):
    """The modelled device: its encode times, and the edge-queue model (as ``field.yaml``'s
    ``uplink``) with ``storage_bytes`` stated."""

    device: str
    backend: str
    encode_latency_s: dict[str, dict[str, NonNegFloat]] = Field(
        description="backend -> stage -> seconds per image"
    )
    storage_bytes: Annotated[int, Field(gt=0)]

    @model_validator(mode="after")
    def _backend_known(self) -> SenderProfile:
        if self.backend not in self.encode_latency_s:
            raise ValueError(
                f"backend {self.backend!r}: expected one of the encode_latency_s backends "
                f"{sorted(self.encode_latency_s)}"
            )
        return self

    @property
    def encode_s(self) -> float:
        return sum(self.encode_latency_s[self.backend].values())


class ReceiverProfile(StrictModel):
    backend: str
    decode_latency_s: NonNegFloat


# --- the link -------------------------------------------------------------------------------


class BurstLoss(StrictModel):
    """Gilbert–Elliott as netem ``gemodel p r 1-h 1-k``."""

    p: Prob
    r: Annotated[float, Field(gt=0.0, le=1.0)]
    loss_good: Prob = 0.0
    loss_bad: Prob = 1.0


class Station(StrictModel):
    lat_deg: Annotated[float, Field(ge=-90.0, le=90.0)]
    lon_deg: Annotated[float, Field(ge=-180.0, le=180.0)]
    alt_m: float = 0.0


class ContactsSpec(StrictModel):
    kind: Literal["always", "windows", "tle", "same_as_forward"]
    windows: list[tuple[NonNegFloat, NonNegFloat]] | None = None
    tle: Annotated[list[str], Field(min_length=2, max_length=2)] | None = None
    station: Station | None = None
    mask_deg: Annotated[float, Field(ge=0.0, lt=90.0)] = 10.0
    start_utc: datetime | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> ContactsSpec:
        if self.kind == "windows":
            if not self.windows:
                raise ValueError("kind 'windows': expected a list 'windows' of [start_s, end_s]")
            prev = -1.0
            for start, end in self.windows:
                if not end > start >= prev:
                    raise ValueError(
                        f"window [{start}, {end}]: expected end > start, sorted, no overlap"
                    )
                prev = end
        if self.kind == "tle":
            missing = [n for n in ("tle", "station", "start_utc") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"kind 'tle': expected {', '.join(missing)} as well")
            if self.start_utc is not None and self.start_utc.tzinfo is None:
                raise ValueError(
                    f"start_utc {self.start_utc}: expected a time zone, e.g. 2026-11-25T00:00:00Z"
                )
        return self


class DutyCycleSpec(StrictModel):
    fraction: Annotated[float, Field(gt=0.0, le=1.0)]
    mode: Literal["sliding", "off_time"] = "sliding"
    window_s: PosFloat = 3600.0


class LoraSpec(StrictModel):
    spreading_factor: Annotated[int, Field(ge=7, le=12)] = 12
    bandwidth_hz: Literal[125_000, 250_000, 500_000] = 125_000
    coding_rate: Annotated[int, Field(ge=1, le=4)] = 1
    preamble_symbols: Annotated[int, Field(ge=6, le=65535)] = 8
    explicit_header: bool = True
    crc: bool = True


class SessionSpec(StrictModel):
    setup_s: NonNegFloat
    gap_s: NonNegFloat = 0.0


class Direction(StrictModel):
    rate_bps: PosFloat | None = None
    lora: LoraSpec | None = None
    frame_overhead_s: NonNegFloat = 0.0
    delay_s: NonNegFloat
    mtu_bytes: Annotated[int, Field(ge=16, le=65535)]
    ber: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    burst: BurstLoss | None = None
    contacts: ContactsSpec | None = None
    duty_cycle: DutyCycleSpec | None = None
    sessions: SessionSpec | None = None

    @model_validator(mode="after")
    def _one_phy(self) -> Direction:
        if (self.rate_bps is None) == (self.lora is None):
            raise ValueError("rate_bps/lora: expected exactly one of 'rate_bps' or 'lora'")
        return self


class LinkSpec(StrictModel):
    forward: Direction
    reverse: Direction | None = Field(None, description="none: one-way link, ARQ off")
    half_duplex: bool = Field(
        False, description="both directions share one radio channel: never at once"
    )

    @model_validator(mode="after")
    def _contacts(self) -> LinkSpec:
        if self.half_duplex and self.reverse is None:
            raise ValueError("half_duplex: expected a reverse link to share the channel with")
        if self.forward.contacts is not None and self.forward.contacts.kind == "same_as_forward":
            raise ValueError(
                "forward.contacts.kind 'same_as_forward': expected on the reverse link only"
            )
        return self


_LINK = LinkConfig()


class ProtocolSpec(LinkSettings):
    """The link model, but ``mtu_bytes`` is stated (it is checked against the modelled radio's),
    ``arq`` defaults to what the scenario's link allows (:attr:`Scenario.arq`) and ``policy``
    to what its images carry (:attr:`Scenario.policy`)."""

    mtu_bytes: Annotated[int, Field(ge=16, le=65535)]
    arq: Literal["immediate", "deferred", "none"] | None = Field(
        None, description=f"default: {_LINK.arq} with a reverse link, none without"
    )
    policy: Literal["fifo", "priority_interleave", "words_first"] | None = Field(
        None, description=f"default: {_LINK.policy} with text_path, fifo without (no words to "
        "put first)"
    )

    def _config(self, key: bytes | None, **changes) -> LinkConfig:
        fixed = {"arq": self.arq or _LINK.arq, "policy": self.policy or _LINK.policy}
        return super()._config(key, **{**fixed, **changes})


class Targets(StrictModel):
    """What the mission needs; the report judges each figure against it (pass/fail) and
    says "no target" for what is left out."""

    deadline_s: PosFloat | None = Field(
        None, description="each photo decoded at the ground within this long after capture "
        "(judged on the p95 latency of every run)"
    )
    first_word_deadline_s: PosFloat | None = Field(
        None, description="the first (most valuable) word readable at the ground within this "
        "long after capture (p95, every run; missed without text_path)"
    )
    text_deadline_s: PosFloat | None = Field(
        None, description="all the words at the ground within this long after capture (p95, "
        "every run; missed without text_path)"
    )
    min_delivered_share: Prob | None = Field(
        None, description="share of captured photos delivered (within deadline_s if set), "
        "in every run"
    )
    min_words_f1: Prob | None = Field(
        None, description="E2E F1 of the words the text section carried, against the ground "
        "truth, in every run (missed without text_path or ground truth)"
    )

    @model_validator(mode="after")
    def _something_set(self) -> Targets:
        if all(getattr(self, n) is None for n in type(self).model_fields):
            raise ValueError(
                f"empty: expected at least one of {', '.join(type(self).model_fields)}"
            )
        return self


class Scenario(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    seed: Annotated[int, Field(ge=0)]
    duration_s: PosFloat
    runs: Annotated[int, Field(ge=1)] = 1
    images: ImageSource
    sender: SenderProfile
    rate: Budget
    text_path: bool = Field(
        False,
        description="spot words on the edge and send them in the text section, ahead of the "
        "image (false: the codec alone, no text section)",
    )
    send_name: bool = Field(
        True,
        description="carry each image file's name in the header's capture record, as the "
        "field's uplink.send_name (false: leave it out; the first word comes up to 32 bytes "
        "sooner)",
    )
    link: LinkSpec
    protocol: ProtocolSpec
    receiver: ReceiverProfile
    decode_every: Annotated[int, Field(ge=1)] = Field(
        1, description="decode (and measure PSNR of) every n-th delivered image only"
    )
    targets: Targets | None = Field(
        None, description="the mission's deadline and quality targets the report judges"
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        if self.protocol.mtu_bytes > self.link.forward.mtu_bytes:
            raise ValueError(
                f"protocol.mtu_bytes {self.protocol.mtu_bytes}: expected at most "
                f"link.forward.mtu_bytes {self.link.forward.mtu_bytes}"
            )
        if self.link.reverse is None and self.protocol.arq not in (None, "none"):
            raise ValueError(
                f"protocol.arq {self.protocol.arq!r}: expected 'none' without a link.reverse "
                "(ARQ needs link.reverse: add one)"
            )
        return self

    @property
    def arq(self) -> str:
        if self.protocol.arq is not None:
            return self.protocol.arq
        return "none" if self.link.reverse is None else _LINK.arq

    @property
    def policy(self) -> str:
        """The words overtake pictures wherever the text path is on (the link's default);
        without it there is nothing to put first, and ``fifo`` keeps a photo in one segment."""
        if self.protocol.policy is not None:
            return self.protocol.policy
        return _LINK.policy if self.text_path else "fifo"


# --- loading --------------------------------------------------------------------------------


def parse_scenario(raw: Any, source: str) -> Scenario:
    """Validate an already-parsed YAML document; ``source`` names it in errors."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: expected a mapping of scenario fields at the top "
                            f"level, got {raw!r:.40}")  # fmt: skip
    scenario = validate(Scenario, raw, source, ScenarioError)
    _check_images(scenario, source)
    return scenario


def load_scenario(path: str | Path, overrides: dict[str, str] | None = None) -> Scenario:
    """Read, override (``{"link.forward.rate_bps": "2400"}``) and validate a scenario.
    Relative paths (``images.folder``, ``protocol.key_file``) are from the file's folder."""
    path = Path(path)
    raw = read_yaml(path, "scenario fields", ScenarioError)
    if overrides:
        raw = apply_overrides(raw, overrides, str(path))
    scenario = parse_scenario(raw, str(path))
    images, protocol = scenario.images, scenario.protocol
    if images.folder is not None and not Path(images.folder).is_absolute():
        images = images.model_copy(update={"folder": str((path.parent / images.folder).resolve())})
    if protocol.key_file is not None and not protocol.key_file.is_absolute():
        protocol = protocol.model_copy(update={"key_file": path.parent / protocol.key_file})
    scenario = scenario.model_copy(update={"images": images, "protocol": protocol})
    _check_images(scenario, str(path))
    link_config(scenario, str(path))  # the key file, now
    return scenario


def link_config(scenario: Scenario, source: str = "scenario") -> LinkConfig:
    """The protocol config of the scenario's ``protocol`` section (``arq`` as
    :attr:`Scenario.arq`), its key read from ``protocol.key_file``.

    Raises: ScenarioError naming ``source`` and the key file."""
    try:
        return scenario.protocol.link_config(
            f"{source}: protocol", arq=scenario.arq, policy=scenario.policy
        )
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None


def apply_overrides(raw: Any, overrides: dict[str, str], source: str) -> dict:
    """Set dotted paths in a raw scenario; each value is parsed as YAML (``2400``, ``none``)."""
    out = copy.deepcopy(raw)
    for dotted, text in overrides.items():
        node = out
        keys = dotted.split(".")
        for i, key in enumerate(keys[:-1]):
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                where = ".".join(keys[: i + 1])
                raise ScenarioError(
                    f"{source}: {where}: --param {dotted}: expected an existing section"
                )
            node = child
        node[keys[-1]] = parse_yaml(text, f"{source}: --param {dotted}", "", ScenarioError)
    return out


def image_paths(scenario: Scenario) -> list[Path]:
    """The image files of the scenario's source, sorted by name."""
    src = scenario.images
    folder = SHIPPED_SETS_DIR / src.set if src.set is not None else Path(src.folder or "")
    if src.files:
        return [folder / f for f in src.files]
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _check_images(scenario: Scenario, source: str) -> None:
    src = scenario.images
    if src.set is not None:
        folder = SHIPPED_SETS_DIR / src.set  # a name, or the set's path (a copied scenario)
        shipped = sorted(p.name for p in SHIPPED_SETS_DIR.iterdir() if p.is_dir())
        if not (folder.is_dir() and folder.resolve().parent == SHIPPED_SETS_DIR.resolve()):
            raise ScenarioError(
                f"{source}: images.set: expected a shipped set, one of {shipped}, got {src.set!r}"
            )
    else:
        folder = Path(src.folder or "")
        if not folder.is_absolute():
            return  # resolved against the scenario file by load_scenario
        if not folder.is_dir():
            raise ScenarioError(
                f"{source}: images.folder: expected an existing folder, got {src.folder!r}"
            )
    for i, name in enumerate(src.files or ()):
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts or path.suffix.lower() not in \
                IMAGE_SUFFIXES or not path.resolve().is_relative_to(folder.resolve()):
            raise ScenarioError(
                f"{source}: images.files.{i}: expected a PNG or JPEG file name inside the image "
                f"set, got {name!r}"
            )
        if not path.is_file():
            raise ScenarioError(
                f"{source}: images.files.{i}: expected a file in {folder}, got {name!r}"
            )
    if not image_paths(scenario):
        raise ScenarioError(f"{source}: images: no PNG or JPEG files in {folder}")
