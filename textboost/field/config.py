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

from pydantic import Field, field_validator, model_validator

from textboost.field.transport_config import TransportSection
from textboost.field.udp import parse_host_port
from textboost.protocol.config import LinkConfig
from textboost.settings.budget import DEFAULT_BUDGET, Budget
from textboost.settings.link import LinkSettings
from textboost.settings.load import ConfigError, StrictModel, read_yaml, validate
from textboost.settings.queue import EdgeQueue

__all__ = [
    "CodecSection",
    "ConfigError",
    "DownlinkSection",
    "FieldConfig",
    "UplinkSection",
    "load_field_config",
]

def _address(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_host_port(value)
        except ValueError:
            raise ValueError(f"expected host:port with a port 1..65535, got {value!r}") from None
    return value


def _bind(value: str) -> str:
    """A local address: port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not (sep and host and port.isdigit() and int(port) < 65536):
        raise ValueError(
            f"expected host:port with a port 0..65535 (0: any free port), got {value!r}"
        )
    return value


class CodecSection(StrictModel):
    """Where a service's codec runs (as the CLIs' ``--model/--backend/--onnx-dir/--device``);
    loaded on the first image that needs it, never for `.tbx` files."""

    model: Path | None = None  # None: the shipped model
    backend: Literal["torch", "onnxruntime", "tensorrt"] = "torch"
    onnx_dir: Path | None = None
    device: str = "cpu"

    def loader(self, where: str, *, fusion: bool | None = None):
        """The :class:`~textboost.pipeline.loader.PipelineLoader`, checked (model file, runtime,
        exported graphs) but nothing loaded yet.

        Raises: ConfigError naming ``where`` (e.g. ``field.yaml: uplink.codec``)."""
        from textboost.pipeline.loader import PipelineLoader

        loader = PipelineLoader(
            self.model, backend=self.backend, device=self.device, onnx_dir=self.onnx_dir,
            fusion=fusion,
        )  # fmt: skip
        try:
            loader.check()
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
        return loader


class UplinkSection(EdgeQueue):
    """The edge service: where images come in, where its state lives, how it sends; its
    queue's limits (``storage_bytes``, ``drop_policy``, ``max_in_flight``) are the edge-queue
    model's, a scenario's ``sender`` too."""

    drop_dir: Path  # a camera writes here (*.tmp then rename; see docs/field.md)
    intake: str | None = None  # loopback HTTP intake host:port (POST /images/NAME), None: off
    state_db: Path
    event_log: Path
    bind: str = "0.0.0.0:0"
    peer: str | None = None  # the ground's downlink.listen, as seen from here (not MAVLink)
    rate_bps: float | None = Field(None, gt=0)  # None: as fast as the network takes it
    duty_cycle: float = Field(1.0, gt=0, le=1)  # share of each period the radio may send
    duty_period_s: float = Field(60.0, gt=0)
    budget: Budget = DEFAULT_BUDGET  # {max_bytes: N}, {bpp: B} or {rate: R}
    text: bool = True  # spot words and send them first
    # which words the ground's word block may draw: all, or closer (each only as far as it
    # brings the word closer to the photo; the sender loads the block: docs/text.md)
    restore: Literal["all", "closer"] = "all"
    send_name: bool = True  # carry each file's name (<= 32 bytes, in the header's record)
    poll_s: float = Field(0.5, gt=0)  # drop folder polling interval
    keep_sources: bool = False  # True: move taken files to drop_dir/taken/, False: delete
    # load the codec and spotter when the service starts, not at the first photo (whose
    # encode would otherwise wait for the load, and every photo behind it too)
    warm_start: bool = True
    codec: CodecSection = CodecSection()

    _addr = field_validator("intake", "peer")(_address)
    _bind = field_validator("bind")(_bind)

    @field_validator("budget")
    @classmethod
    def _fixed(cls, budget: Budget) -> Budget:
        if budget.policy == "adaptive":  # it is sized from a link model: link_sim's alone
            raise ValueError("policy 'adaptive': expected max_bytes, bpp or rate (adaptive "
                             "budgets are the simulator's)")
        return budget


class DownlinkSection(StrictModel):
    """The ground service: where it listens, what it writes, where its state lives."""

    listen: str | None = None  # UDP host:port (udp and ccsds transports; MAVLink: its endpoint)
    out_dir: Path
    state_db: Path
    event_log: Path
    max_pixels: int = Field(24_000_000, gt=0)  # decode limit (width x height of a header)
    decode: bool = True  # False: store the .tbx and the words, decode nothing
    progressive: bool = True  # decode a preview PNG as each y group lands
    web: str | None = None  # the live page's host:port (downlink.web), None: no page
    tiles: Path | None = None  # the page's basemap: an MBTiles file or a Z/X/Y.png folder
    cot: str | None = None  # udp://, tcp:// or tls://HOST:PORT?cert=&key=&ca=: CoT to TAK
    codec: CodecSection = CodecSection()

    _addr = field_validator("listen", "web")(_address)


class FieldConfig(StrictModel):
    link: LinkSettings = LinkSettings()
    transport: TransportSection = TransportSection()
    uplink: UplinkSection | None = None
    downlink: DownlinkSection | None = None

    @model_validator(mode="after")
    def _addresses(self) -> FieldConfig:
        if self.transport.kind != "mavlink":  # UDP datagrams: the addresses are needed
            if self.uplink is not None and self.uplink.peer is None:
                raise ValueError(
                    f"expected uplink.peer (host:port) with transport {self.transport.kind}"
                )
            if self.downlink is not None and self.downlink.listen is None:
                raise ValueError(
                    f"expected downlink.listen (host:port) with transport {self.transport.kind}"
                )
        return self

    def link_config(self, source: str = "field.yaml") -> LinkConfig:
        """The protocol config, the key read from ``link.key_file``.

        Raises: ConfigError naming the key file or the link field."""
        s = self.link
        changes = {}
        limit = self.transport.mtu_bytes  # the protocol's MTU follows from the transport
        if limit is not None and s.mtu_bytes > limit:
            if "mtu_bytes" in s.model_fields_set:
                raise ConfigError(
                    f"{source}: link.mtu_bytes: {s.mtu_bytes} is more than one "
                    f"{self.transport.kind} message carries ({limit}); set {limit} or less"
                )
            changes["mtu_bytes"] = limit
        return s.link_config(f"{source}: link", **changes)


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
    doc = read_yaml(path, "link/uplink/downlink sections")
    cfg = validate(FieldConfig, _resolve(doc, path.resolve().parent), source)
    if need is not None and getattr(cfg, need) is None:
        raise ConfigError(f"{source}: {need}: missing; add the {need} section")
    cfg.link_config(source)  # the key file and the protocol's own checks, now
    return cfg
