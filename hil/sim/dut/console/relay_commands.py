"""The relay application's console commands (seed 004), next to any AT dialect.

``help``, ``set key <passphrase>``, ``set datarate SF7..SF12``, ``get datarate``,
``set txpower <2..15>`` and ``get txpower``. The passphrase goes to the firmware and nowhere
else: no reply, error or log line carries it, and no error echoes what was typed (a mistyped
``set kye secret`` must not print the secret either). Wording lives in ``relay_commands.yaml``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from hil.sim.dut.console.dialect import CRLF, load_data, parse_int
from hil.sim.dut.interfaces import FirmwareApi

VERBS = frozenset({"help", "set", "get"})


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min: int
    max: int


class _Replies(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key_set: str
    key_missing: str
    key_rejected: str
    key_unreadable: str
    datarate: str
    datarate_set: str
    datarate_range: str
    txpower: str
    txpower_set: str
    txpower_range: str
    unknown_setting: str


class RelayCommandData(BaseModel):
    """``relay_commands.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    spreading_factor: _Range
    tx_power_dbm: _Range
    help: tuple[str, ...]
    replies: _Replies


class RelayCommands:
    """Answers the relay application's console lines against the firmware's relay settings."""

    def __init__(self, firmware: FirmwareApi) -> None:
        self.firmware = firmware
        self.data = load_data("relay_commands.yaml", RelayCommandData)

    @staticmethod
    def handles(line: str) -> bool:
        """True if the line's first word is one of the relay verbs."""
        words = line.split(None, 1)
        return bool(words) and words[0].lower() in VERBS

    def handle(self, line: str) -> str:
        """The reply to one relay command line (each reply line ends in CRLF)."""
        words = line.split(None, 2)
        verb = words[0].lower()
        if verb == "help":
            return "".join(text + CRLF for text in self.data.help)
        setting = words[1].lower() if len(words) > 1 else ""
        rest = words[2] if len(words) > 2 else ""
        if verb == "set":
            return self._set(setting, rest) + CRLF
        return self._get(setting) + CRLF

    # -- set / get -------------------------------------------------------------------------------

    def _set(self, setting: str, value: str) -> str:
        r = self.data.replies
        if setting == "key":
            passphrase = value.strip()
            if not passphrase:
                return r.key_missing
            try:
                self.firmware.set_relay_passphrase(passphrase)
            except ValueError:
                return r.key_rejected  # the firmware's message might quote it: not shown
            return r.key_set
        if setting == "datarate":
            sf_range = self.data.spreading_factor
            text = value.strip().upper()
            sf = parse_int(text[2:], sf_range.min, sf_range.max) if text.startswith("SF") else None
            if sf is None:
                return r.datarate_range.format(min=sf_range.min, max=sf_range.max)
            self.firmware.relay_spreading_factor = sf
            return r.datarate_set.format(sf=sf)
        if setting == "txpower":
            p_range = self.data.tx_power_dbm
            dbm = parse_int(value, p_range.min, p_range.max)
            if dbm is None:
                return r.txpower_range.format(min=p_range.min, max=p_range.max)
            self.firmware.relay_tx_power_dbm = dbm
            return r.txpower_set.format(dbm=dbm)
        return r.unknown_setting

    def _get(self, setting: str) -> str:
        r = self.data.replies
        if setting == "datarate":
            return r.datarate.format(sf=self.firmware.relay_spreading_factor)
        if setting == "txpower":
            return r.txpower.format(dbm=self.firmware.relay_tx_power_dbm)
        if setting == "key":
            return r.key_unreadable
        return r.unknown_setting
