"""The ground receiver node: protocol Receiver, reassembly into `.tbx` containers, decoding
of whatever arrived (partial images too), PNG outputs and metrics; a UDP receiver for field
trials."""

from downlink.node import BundleResult, DownlinkNode, psnr_db

__all__ = ["BundleResult", "DownlinkNode", "psnr_db"]
