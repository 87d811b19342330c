"""LoRaWAN core: frame codec, crypto, regional parameters and frame-counter rules.

Nothing here touches a rig. Everything above (virtual DUT, reference network server, drivers)
builds on these modules.
"""

from hil.lorawan.crypto import AESKey
from hil.lorawan.errors import FrameError, LoRaWANError
from hil.lorawan.frames import (
    CFList,
    DataFrame,
    DLSettings,
    EncryptedJoinAccept,
    FCtrl,
    JoinAccept,
    JoinRequest,
    MType,
    Proprietary,
    RejoinRequest,
    decode,
)
from hil.lorawan.types import DevAddr, EUI64, NetID
from hil.lorawan.version import LoRaWANVersion

__all__ = [
    "AESKey",
    "CFList",
    "DataFrame",
    "DevAddr",
    "DLSettings",
    "EUI64",
    "EncryptedJoinAccept",
    "FCtrl",
    "FrameError",
    "JoinAccept",
    "JoinRequest",
    "LoRaWANError",
    "LoRaWANVersion",
    "MType",
    "NetID",
    "Proprietary",
    "RejoinRequest",
    "decode",
]
