"""Reference device: a simulated terminal speaking protocol v1 (see docs/device-protocol.md)."""

from .device import DeviceConfig, DoorOpening, SimulatedDevice, embedding_of
from .library import FaceLibrary, Match
from .passes import PassVerdict, PassVerifier

__all__ = [
    "DeviceConfig",
    "DoorOpening",
    "FaceLibrary",
    "Match",
    "PassVerdict",
    "PassVerifier",
    "SimulatedDevice",
    "embedding_of",
]
