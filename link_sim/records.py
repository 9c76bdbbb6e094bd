"""What a mission leaves behind: one :class:`ImageTrace` per captured image and the
:class:`MissionResult` the reports read."""

from __future__ import annotations

from dataclasses import dataclass, field

from downlink.node import DownlinkNode
from link_sim.contacts import ContactPlan
from link_sim.link import LinkDirection
from link_sim.scenario import Scenario
from textboost.bitstream.container import SectionKind
from textboost.codec.rate import bpp_of
from uplink.node import UplinkNode

__all__ = ["ImageTrace", "MissionResult"]


@dataclass(slots=True)
class ImageTrace:
    """Everything that happened to one captured image (times in simulation seconds)."""

    index: int
    image: str
    width: int
    height: int
    capture_s: float
    encode_done_s: float | None = None
    bundle_bytes: int | None = None
    section_bytes: list[int] = field(default_factory=list)
    dropped: str | None = None
    first_byte_s: float | None = None
    first_pass_arrival_s: float | None = None
    section_delivered_s: list[float | None] = field(default_factory=list)
    delivered_s: float | None = None
    failed: str | None = None
    decoded_s: float | None = None
    decoded_sections: int = 0
    decode_note: str | None = None
    psnr_db: float | None = None
    decoded_image: str | None = None
    payload_bytes: int = 0
    header_bytes: int = 0
    fec_bytes: int = 0
    retransmission_bytes: int = 0
    # the text path: bytes of the text section sent, the strings the ground read from it
    # (None until it landed), and counts (tp, n_gt, n_det) against the ground truth of the
    # spotter on the decoded image and on the original, and of the words carried (None: no
    # ground truth, nothing decoded or carried, or synthetic payloads)
    text_bytes: int | None = None
    first_word_s: float | None = None  # the first whole word read, before the section's check
    text_strings: list[str] | None = None
    text_words: list[dict] | None = None  # {text, quad} in the original's pixels
    text_error: str | None = None
    text_det: tuple[int, int, int] | None = None
    text_e2e: tuple[int, int, int] | None = None
    text_e2e_original: tuple[int, int, int] | None = None
    text_e2e_words: tuple[int, int, int] | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def codec_bpp(self) -> float | None:
        if self.bundle_bytes is None:
            return None
        return bpp_of(self.bundle_bytes, self.width, self.height)

    @property
    def on_air_bytes(self) -> int:
        return self.payload_bytes + self.header_bytes + self.fec_bytes + self.retransmission_bytes

    @property
    def on_air_bpp(self) -> float:
        return bpp_of(self.on_air_bytes, self.width, self.height)

    def latency_split(self) -> dict[str, float] | None:
        """encode / queue / air / retransmission / decode seconds of a delivered image."""
        if self.delivered_s is None or self.decoded_s is None or self.first_byte_s is None:
            return None
        assert self.encode_done_s is not None
        first_pass = min(self.delivered_s, self.first_pass_arrival_s or self.delivered_s)
        return {
            "encode": self.encode_done_s - self.capture_s,
            "queue": self.first_byte_s - self.encode_done_s,
            "air": first_pass - self.first_byte_s,
            "retransmission": self.delivered_s - first_pass,
            "decode": self.decoded_s - self.delivered_s,
        }

    def _since_capture(self, t: float | None) -> float | None:
        return None if t is None else t - self.capture_s

    @property
    def text_delivered_s(self) -> float | None:
        """When the section holding the header and the words landed (None without words)."""
        sd = self.section_delivered_s
        return sd[SectionKind.TEXT] if self.text_bytes and sd else None

    @property
    def time_to_text_s(self) -> float | None:
        """Capture → all the words at the ground (the text section checked)."""
        return self._since_capture(self.text_delivered_s)

    @property
    def time_to_first_word_s(self) -> float | None:
        """Capture → the first (most valuable) word readable at the ground."""
        return self._since_capture(self.first_word_s)

    @property
    def time_to_first_image_s(self) -> float | None:
        """Capture → z landed: the first decodable (coarse) image."""
        sd = self.section_delivered_s
        return self._since_capture(sd[SectionKind.Z] if len(sd) > SectionKind.Z else None)

    @property
    def time_to_image_s(self) -> float | None:
        """Capture → every section landed (the complete image, before decoding)."""
        return self._since_capture(self.delivered_s)

    @property
    def latency_s(self) -> float | None:
        return None if self.decoded_s is None or self.delivered_s is None else (
            self.decoded_s - self.capture_s
        )


@dataclass(slots=True)
class MissionResult:
    scenario: Scenario
    run_index: int
    records: list[ImageTrace]
    contacts: ContactPlan
    forward: LinkDirection
    reverse: LinkDirection | None
    uplink: UplinkNode
    downlink: DownlinkNode
    capacity_Bps: float  # mean forward payload capacity, contacts and duty cycle included
    codec_name: str
    synthetic: bool = False  # synthetic payloads: nothing decoded, no quality or text scores
