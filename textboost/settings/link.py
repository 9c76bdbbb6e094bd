"""The one link model: the protocol's :class:`LinkConfig` as a config section, with the
key as a file. The field file's ``link``, the scenario file's ``protocol`` and the CLIs' link
options (:func:`add_link_arguments`) are all built from :class:`LinkSettings`, so a setting
has one name, one limit and one default (:class:`LinkConfig`'s) everywhere.

Where a surface differs, it says why: a scenario must state ``mtu_bytes`` (it is checked
against the modelled radio's MTU) and its ``arq`` default depends on whether the scenario has
a reverse link; the CLIs spell the two FEC numbers as one option, ``--fec K M``, since they
are set together or not at all.
"""

from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from textboost.protocol.config import LinkConfig
from textboost.protocol.errors import LocalProtocolError
from textboost.settings.load import ConfigError, StrictModel, format_error

__all__ = ["LinkSettings", "add_link_arguments", "link_from_args"]

_D = LinkConfig()
_DUMMY_KEY = bytes(16)  # the framing checks need only to know that frames carry a tag


class LinkSettings(StrictModel):
    """:class:`LinkConfig`'s fields (its docstring says what each does), equal at both ends."""

    mtu_bytes: int = Field(_D.mtu_bytes, ge=16, le=65535, description="largest frame, bytes")
    arq: Literal["immediate", "deferred", "none"] = Field(
        _D.arq, description="NAK gaps at once, at the EOF, or never (one-way link)"
    )
    policy: Literal["fifo", "priority_interleave", "words_first"] = Field(
        _D.policy, description="bundles in order, every bundle's first sections first, or "
        "every bundle's words first and then the pictures in order"
    )
    crc_bits: Literal[16, 32] = Field(_D.crc_bits, description="frame CRC width")
    rto_s: float = Field(_D.rto_s, gt=0, description="sender EOF re-send timeout, s")
    nak_timeout_s: float = Field(_D.nak_timeout_s, gt=0, description="receiver re-NAK timeout, s")
    max_retries: int = Field(_D.max_retries, ge=0, description="EOF re-sends and NAK repeats")
    fec_k: int = Field(_D.fec_k, ge=0, le=254, description="FEC: data frames per group")
    fec_m: int = Field(_D.fec_m, ge=0, le=254, description="FEC: parity frames per group")
    key_file: Path | None = Field(
        None, description="pre-shared key for HMAC-SHA256 frame tags (its bytes)"
    )
    key_id: int = Field(_D.key_id, ge=0, le=255, description="id of the key (a new key, a new id)")
    tag_bytes: int = Field(_D.tag_bytes, ge=4, le=32, description="HMAC tag bytes per frame")
    replay_window: int = Field(
        _D.replay_window, ge=1, le=1 << 16, description="packet numbers that may arrive late"
    )
    max_bundle_bytes: int = Field(
        _D.max_bundle_bytes, ge=1, le=255 << 24,
        description="largest image stream either end accepts",
    )
    receiver_memory_bytes: int = Field(
        _D.receiver_memory_bytes, ge=1, description="most bytes held for bundles in reassembly"
    )

    @model_validator(mode="after")
    def _protocol_checks(self) -> LinkSettings:
        """What the protocol itself refuses (FEC half set, an MTU its framing fills), now."""
        try:
            self._config(_DUMMY_KEY if self.key_file is not None else None)
        except LocalProtocolError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _config(self, key: bytes | None, **changes) -> LinkConfig:
        fields = {**self.model_dump(exclude={"key_file"}), **changes}
        return LinkConfig(**fields, auth_key=key)

    def link_config(self, where: str, key_where: str | None = None, **changes) -> LinkConfig:
        """The protocol config, the key read from ``key_file``; ``changes`` replace fields
        (a scenario's ``arq`` default).

        Raises: ConfigError naming ``where`` (``field.yaml: link``), or ``key_where``
        (default ``WHERE.key_file``) for an unreadable key file."""
        key = None
        if self.key_file is not None:
            try:
                key = self.key_file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"{key_where or where + '.key_file'}: cannot read {self.key_file} "
                    f"({exc.strerror}); write at least 16 random bytes there"
                ) from None
        try:
            return self._config(key, **changes)
        except LocalProtocolError as exc:
            raise ConfigError(f"{where}: {exc}") from None


# the CLIs' spelling: --NAME-WITH-DASHES, but for these
_ALIASES = {"mtu_bytes": ("--mtu-bytes", "--mtu")}
_PAIRED = ("fec_k", "fec_m")  # --fec K M


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """The link options, one per :class:`LinkSettings` field, with its default."""
    g = parser.add_argument_group("link protocol (must match on both ends)")
    for name, f in LinkSettings.model_fields.items():
        if name in _PAIRED:
            continue
        flags = _ALIASES.get(name, ("--" + name.replace("_", "-"),))
        kind = typing.get_origin(f.annotation)
        shown = "" if f.default is None else f" ({f.default})"
        if kind is Literal:
            choices = typing.get_args(f.annotation)
            g.add_argument(*flags, dest=name, type=type(choices[0]), choices=choices,
                           default=f.default, help=f"{f.description}{shown}")  # fmt: skip
        else:
            kind = f.annotation if isinstance(f.annotation, type) else Path
            metavar = "FILE" if kind is Path else name.rsplit("_", 1)[-1].upper()
            g.add_argument(*flags, dest=name, type=kind, default=f.default, metavar=metavar,
                           help=f"{f.description}{shown}")  # fmt: skip
    g.add_argument(
        "--fec", type=int, nargs=2, metavar=("K", "M"), default=(_D.fec_k, _D.fec_m),
        help="Reed-Solomon erasure FEC: M parity frames per K data frames (fec_k, fec_m)",
    )  # fmt: skip
    g.add_argument("--epoch", type=int, default=None,
                   help="this end's session number, never repeated under one key (default: "
                        "the time in seconds; pass a persisted counter if the clock can go back "
                        "or the node may restart within a second)")  # fmt: skip


def link_from_args(args: argparse.Namespace) -> LinkConfig:
    """The :class:`LinkConfig` of :func:`add_link_arguments`' options.

    Raises: ValueError, one line naming the option, for a bad value or an unreadable key."""
    doc = {name: getattr(args, name) for name in LinkSettings.model_fields if name not in _PAIRED}
    doc["fec_k"], doc["fec_m"] = args.fec
    try:
        settings = LinkSettings.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"]
        option = _option(str(loc[0])) if loc else "link options"
        raise ValueError(format_error(option, {**err, "loc": ()})) from None
    try:
        return settings.link_config("link options", key_where="--key-file")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _option(name: str) -> str:
    if name in _PAIRED:
        return f"--fec ({name})"
    return f"{_ALIASES.get(name, ('--' + name.replace('_', '-'),))[0]} ({name})"
