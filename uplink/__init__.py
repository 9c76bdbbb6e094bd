"""The edge sender node: image sources, encode pipeline (lazy codec), encode cache,
store-and-forward storage, and transports (the node itself for simulators, UDP for field
trials). Importing it never imports torch."""

from uplink.cache import EncodeCache
from uplink.encode import ByteBudget, EncodePipeline, FixedBpp, FixedRate
from uplink.node import ImageRecord, UplinkNode
from uplink.sources import Capture, FolderSource, PathListSource
from uplink.store import DropRecord, StoreAndForward

__all__ = [
    "ByteBudget",
    "Capture",
    "DropRecord",
    "EncodeCache",
    "EncodePipeline",
    "FixedBpp",
    "FixedRate",
    "FolderSource",
    "ImageRecord",
    "PathListSource",
    "StoreAndForward",
    "UplinkNode",
]
