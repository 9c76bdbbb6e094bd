"""``field.yaml``: the one config schema of both field services (``python -m uplink serve``
and ``python -m downlink serve``), so the two ends read the same ``link`` section.

Relative paths are taken from the config file's folder, so a trial folder can be moved as a
whole. Every error is one line naming the file, the key, what was expected and what was
found, e.g. ``field.yaml: uplink.rate_bps: expected a number > 0, got -5``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from textboost.field.transport_config import TransportSection
from textboost.field.udp import parse_host_port
from textboost.protocol.config import LinkConfig
from textboost.protocol.errors import LocalProtocolError

__all__ = [
    "BudgetSection",
    "CodecSection",
    "ConfigError",
    "DownlinkSection",
    "FieldConfig",
    "LinkSection",
    "UplinkSection",
    "load_field_config",
]


class ConfigError(ValueError):
    """A one-line error naming the config file, the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_host_port(value)
        except ValueError:
            raise ValueError("host:port with a port 1..65535") from None
    return value


def _bind(value: str) -> str:
    """A local address: port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not (sep and host and port.isdigit() and int(port) < 65536):
        raise ValueError("host:port with a port 0..65535 (0: any free port)")
    return value


class LinkSection(_Section):
    """The protocol's :class:`LinkConfig` (equal at both ends), the key as a file."""

    mtu_bytes: int = Field(256, gt=0)
    arq: Literal["immediate", "deferred", "none"] = "deferred"
    policy: Literal["fifo", "priority_interleave"] = "fifo"
    crc_bits: Literal[16, 32] = 32
    rto_s: float = Field(10.0, gt=0)
    nak_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(8, ge=0)
    fec_k: int = Field(0, ge=0)
    fec_m: int = Field(0, ge=0)
    key_file: Path | None = None  # its bytes are the pre-shared key (as --key-file)
    key_id: int = Field(0, ge=0, le=255)
    tag_bytes: int = Field(8, ge=4, le=32)
    replay_window: int = Field(1024, ge=1, le=1 << 16)
    max_bundle_bytes: int = Field(1 << 20, gt=0)
    receiver_memory_bytes: int = Field(16 << 20, gt=0)


class BudgetSection(_Section):
    """The encode rate policy: exactly one of a byte budget, a bpp budget or a codec rate."""

    max_bytes: int | None = Field(None, gt=0)
    bpp: float | None = Field(None, gt=0, le=24)
    rate: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> BudgetSection:
        given = [k for k in ("max_bytes", "bpp", "rate") if getattr(self, k) is not None]
        if len(given) != 1:  # the message gets ", got {...}" added
            raise ValueError("exactly one of max_bytes, bpp, rate")
        return self

    def policy(self):
        """The :mod:`textboost.codec.rate` policy."""
        from textboost.codec.rate import ByteBudget, FixedBpp, FixedRate

        if self.max_bytes is not None:
            return ByteBudget(self.max_bytes)
        if self.bpp is not None:
            return FixedBpp(self.bpp)
        return FixedRate(float(self.rate))  # type: ignore[arg-type]


class CodecSection(_Section):
    """Where a service's codec runs (as the CLIs' ``--model/--backend/--onnx-dir/--device``);
    loaded on the first image that needs it, never for `.tbx` files."""

    model: Path | None = None  # None: the shipped model
    backend: Literal["torch", "onnxruntime", "tensorrt"] = "torch"
    onnx_dir: Path | None = None
    device: str = "cpu"

    def loader(self, where: str, *, fusion: bool | None = None):
        """The :class:`~textboost.codec.loader.CodecLoader`, checked (model file, runtime,
        exported graphs) but nothing loaded yet.

        Raises: ConfigError naming ``where`` (e.g. ``field.yaml: uplink.codec``)."""
        from textboost.codec.loader import CodecLoader

        loader = CodecLoader(
            self.model, backend=self.backend, device=self.device, onnx_dir=self.onnx_dir,
            fusion=fusion,
        )  # fmt: skip
        try:
            loader.check()
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
        return loader


class UplinkSection(_Section):
    """The edge service: where images come in, where its state lives, how it sends."""

    drop_dir: Path  # a camera writes here (*.tmp then rename; see docs/field.md)
    intake: str | None = None  # loopback HTTP intake host:port (POST /images/NAME), None: off
    state_db: Path
    event_log: Path
    bind: str = "0.0.0.0:0"
    peer: str | None = None  # the ground's downlink.listen, as seen from here (not MAVLink)
    rate_bps: float | None = Field(None, gt=0)  # None: as fast as the network takes it
    duty_cycle: float = Field(1.0, gt=0, le=1)  # share of each period the radio may send
    duty_period_s: float = Field(60.0, gt=0)
    max_in_flight: int = Field(2, ge=1)
    budget: BudgetSection = BudgetSection(max_bytes=2000)
    text: bool = True  # spot words and send them first
    poll_s: float = Field(0.5, gt=0)  # drop folder polling interval
    keep_sources: bool = False  # True: move taken files to drop_dir/taken/, False: delete
    codec: CodecSection = CodecSection()

    _addr = field_validator("intake", "peer")(_address)
    _bind = field_validator("bind")(_bind)


class DownlinkSection(_Section):
    """The ground service: where it listens, what it writes, where its state lives."""

    listen: str | None = None  # UDP host:port (udp and ccsds transports; MAVLink: its endpoint)
    out_dir: Path
    state_db: Path
    event_log: Path
    max_pixels: int = Field(24_000_000, gt=0)  # decode limit (width x height of a header)
    decode: bool = True  # False: store the .tbx and the words, decode nothing
    progressive: bool = True  # decode a preview PNG as each y group lands
    web: str | None = None  # the live page's host:port (downlink.web), None: no page
    tiles: Path | None = None  # the operator's XYZ map tiles (Z/X/Y.png) under the page's map
    cot: str | None = None  # udp://HOST:PORT or tcp://HOST:PORT: CoT of each image to TAK
    codec: CodecSection = CodecSection()

    _addr = field_validator("listen", "web")(_address)


class FieldConfig(_Section):
    link: LinkSection = LinkSection()
    transport: TransportSection = TransportSection()
    uplink: UplinkSection | None = None
    downlink: DownlinkSection | None = None

    @model_validator(mode="after")
    def _addresses(self) -> FieldConfig:
        if self.transport.kind != "mavlink":  # UDP datagrams: the addresses are needed
            if self.uplink is not None and self.uplink.peer is None:
                raise ValueError(f"uplink.peer (host:port) with transport {self.transport.kind}")
            if self.downlink is not None and self.downlink.listen is None:
                raise ValueError(
                    f"downlink.listen (host:port) with transport {self.transport.kind}"
                )
        return self

    def link_config(self, source: str = "field.yaml") -> LinkConfig:
        """The protocol config, the key read from ``link.key_file``.

        Raises: ConfigError naming the key file or the link field."""
        s = self.link
        key = None
        if s.key_file is not None:
            try:
                key = s.key_file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"{source}: link.key_file: cannot read {s.key_file} ({exc.strerror}); "
                    "write at least 16 random bytes there"
                ) from None
        fields = s.model_dump(exclude={"key_file"})
        limit = self.transport.mtu_bytes  # the protocol's MTU follows from the transport
        if limit is not None and s.mtu_bytes > limit:
            if "mtu_bytes" in s.model_fields_set:
                raise ConfigError(
                    f"{source}: link.mtu_bytes: {s.mtu_bytes} is more than one "
                    f"{self.transport.kind} message carries ({limit}); set {limit} or less"
                )
            fields["mtu_bytes"] = limit
        try:
            return LinkConfig(**fields, auth_key=key)
        except LocalProtocolError as exc:
            raise ConfigError(f"{source}: link: {exc}") from None


def _format(source: str, err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind, msg, got = err["type"], err["msg"], err.get("input")
    if not err["loc"] and kind == "value_error":  # a rule across sections
        return f"{source}: expected {msg.removeprefix('Value error, ')}"
    if kind == "extra_forbidden":
        return f"{source}: {key}: unknown key; remove it or check its spelling"
    if kind == "missing":
        return f"{source}: {key}: missing; add it"
    msg = msg.removeprefix("Value error, ").removeprefix("Input should be ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        msg = "a number " + msg.replace("greater than or equal to", ">=").replace(
            "less than or equal to", "<="
        ).replace("greater than", ">").replace("less than", "<")
    return f"{source}: {key}: expected {msg}, got {got!r}"


def _resolve(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the document, from the config file's folder."""
    keys = {
        "link": ("key_file",),
        "codec": ("model", "onnx_dir"),
        "uplink": ("drop_dir", "state_db", "event_log"),
        "downlink": ("out_dir", "state_db", "event_log", "tiles"),
        "mavlink": ("signing_key_file",),
    }
    subs = [("link", doc.get("link")), ("uplink", doc.get("uplink")),
            ("downlink", doc.get("downlink"))]  # fmt: skip
    subs += [("codec", s.get("codec")) for _, s in subs[1:] if isinstance(s, dict)]
    transport = doc.get("transport")
    if isinstance(transport, dict):
        subs.append(("mavlink", transport.get("mavlink")))
    for section, sub in subs:
        if not isinstance(sub, dict):
            continue
        names = keys[section]
        for name in names:
            value = sub.get(name)
            if isinstance(value, str) and not Path(value).is_absolute():
                sub[name] = os.path.normpath(base / value)
    return doc


def load_field_config(
    path: str | Path, need: Literal["uplink", "downlink"] | None = None
) -> FieldConfig:
    """Read and check ``field.yaml``.

    Args:
        path: the YAML file.
        need: the section the calling service needs (missing: an error).
    Raises:
        ConfigError: one line naming the file, the key, what was expected and what was found.
    """
    path = Path(path)
    source = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping with link/uplink/downlink, got {doc!r}")
    try:
        cfg = FieldConfig.model_validate(_resolve(doc, path.resolve().parent))
    except ValidationError as exc:
        raise ConfigError(_format(source, exc.errors()[0])) from None
    if need is not None and getattr(cfg, need) is None:
        raise ConfigError(f"{source}: {need}: missing; add the {need} section")
    cfg.link_config(source)  # the key file and the protocol's own checks, now
    return cfg
