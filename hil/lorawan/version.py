"""LoRaWAN L2 versions and the rules that differ between them."""

from __future__ import annotations

from enum import Enum


class LoRaWANVersion(str, Enum):
    """A LoRaWAN L2 specification version the framework speaks."""

    V1_0_2 = "1.0.2"
    V1_0_3 = "1.0.3"
    V1_0_4 = "1.0.4"
    V1_1 = "1.1"

    @classmethod
    def parse(cls, text: str) -> "LoRaWANVersion":
        """Accept "1.0.2", "1.0.3", "1.0.4", "1.1" and "1.1.0"; raise ValueError naming the valid ones."""
        text = str(text).strip()
        if text == "1.1.0":
            text = "1.1"
        try:
            return cls(text)
        except ValueError:
            valid = ", ".join(v.value for v in cls)
            raise ValueError(f"unknown LoRaWAN version {text!r}; expected one of {valid}") from None

    @property
    def is_1_1(self) -> bool:
        """True for LoRaWAN 1.1 (split network keys, FOpts encryption, three frame counters)."""
        return self is LoRaWANVersion.V1_1

    @property
    def dev_nonce_is_counter(self) -> bool:
        """1.0.4 and 1.1: DevNonce is a persisted counter from 0; 1.0.2/1.0.3: a random value never reused."""
        return self in (LoRaWANVersion.V1_0_4, LoRaWANVersion.V1_1)

    @property
    def uses_max_fcnt_gap(self) -> bool:
        """MAX_FCNT_GAP applies up to 1.0.3 and was removed in 1.0.4 (RP002-1.0.5)."""
        return self in (LoRaWANVersion.V1_0_2, LoRaWANVersion.V1_0_3)

    @property
    def abp_counters_persist(self) -> bool:
        """1.0.4 and 1.1 forbid resetting ABP frame counters; 1.0.2/1.0.3 allow it on reset."""
        return self in (LoRaWANVersion.V1_0_4, LoRaWANVersion.V1_1)
