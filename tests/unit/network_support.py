"""Shared helpers for the reference network tests: a server on a loopback gateway, and an end
device played with the LoRaWAN codec only (JoinRequest.signed, EncryptedJoinAccept.decrypt,
security.derive_*, session.seal_frame / open_frame). No test lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.clock import ManualClock
from hil.lorawan import fcnt as lfcnt
from hil.lorawan import maccommands, security
from hil.lorawan import session as lsession
from hil.lorawan.crypto import AESKey
from hil.lorawan.frames import EncryptedJoinAccept, FCtrl, JoinAccept, JoinRequest, MType, decode
from hil.lorawan.region import Region, get_region
from hil.lorawan.security import SessionKeys
from hil.lorawan.session import OpenedFrame
from hil.lorawan.types import EUI64, DevAddr, NetID
from hil.lorawan.version import LoRaWANVersion
from hil.network import DeviceConfig, DownlinkFrame, LoopbackTransport, NetworkServer, UplinkFrame

EU868: Region = get_region("EU868")
NET_ID = NetID(0x000013)
MHZ = 1_000_000

# Distinctive keys, so that a leak is found by scanning strings for their hex.
APP_KEY_HEX = "2b7e151628aed2a6abf7158809cf4f3c"
NWK_KEY_HEX = "603deb1015ca71be2b73aef0857d7781"
NWK_S_KEY_HEX = "f19c3a9e2b8d74a0c5e61d0b93a7f244"
APP_S_KEY_HEX = "8a1d4e7f03b2c6958e0fa41c7d3b2e6a"
S_NWK_KEY_HEX = "d4c3b2a1f0e9d8c7b6a5948372615049"
ENC_NWK_KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ALL_KEY_HEX = (APP_KEY_HEX, NWK_KEY_HEX, NWK_S_KEY_HEX, APP_S_KEY_HEX, S_NWK_KEY_HEX, ENC_NWK_KEY_HEX)

JOIN_EUI = EUI64("70b3d57ed0000001")


def dev_eui(n: int) -> EUI64:
    return EUI64(0x0004A30B00000000 + n)


def otaa_config(n: int = 1, version: str = "1.0.4", **overrides: object) -> DeviceConfig:
    fields: dict[str, object] = {
        "dev_eui": dev_eui(n), "join_eui": JOIN_EUI, "version": version, "app_key": APP_KEY_HEX,
    }
    if LoRaWANVersion.parse(version).is_1_1:
        fields["nwk_key"] = NWK_KEY_HEX
    fields.update(overrides)
    return DeviceConfig(**fields)


def abp_config(n: int = 1, version: str = "1.0.4", dev_addr: str = "26000042", **overrides: object) -> DeviceConfig:
    fields: dict[str, object] = {
        "dev_eui": dev_eui(n), "version": version, "activation": "abp", "dev_addr": dev_addr,
        "app_s_key": APP_S_KEY_HEX,
    }
    if LoRaWANVersion.parse(version).is_1_1:
        fields.update(f_nwk_s_int_key=NWK_S_KEY_HEX, s_nwk_s_int_key=S_NWK_KEY_HEX, nwk_s_enc_key=ENC_NWK_KEY_HEX)
    else:
        fields["nwk_s_key"] = NWK_S_KEY_HEX
    fields.update(overrides)
    return DeviceConfig(**fields)


def make_server(**kwargs: object) -> tuple[NetworkServer, LoopbackTransport, ManualClock]:
    clock = ManualClock()
    loop = LoopbackTransport()
    server = NetworkServer(EU868, clock, net_id=NET_ID, transport=loop, **kwargs)  # type: ignore[arg-type]
    return server, loop, clock


def radio(phy: bytes, *, freq: int = 868_100_000, sf: int = 7, bw: int = 125_000, **kw: object) -> UplinkFrame:
    return UplinkFrame(phy, freq, sf, bw, context=b"\xc7\x0c\x74\x19", **kw)  # type: ignore[arg-type]


@dataclass
class Device:
    """An end device played with the codec, talking to ``server`` through ``loop``."""

    config: DeviceConfig
    loop: LoopbackTransport
    clock: ManualClock
    region: Region = EU868
    keys: SessionKeys | None = None
    dev_addr: DevAddr | None = None
    fcnt_up: int = 0  # next FCntUp
    last_n_down: int | None = None
    last_a_down: int | None = None
    last_confirmed_up: int | None = None
    last_confirmed_down: int | None = None
    accepts: list[JoinAccept] = field(default_factory=list)

    @classmethod
    def abp(cls, config: DeviceConfig, loop: LoopbackTransport, clock: ManualClock) -> Device:
        dev = cls(config, loop, clock)
        dev.keys = config.abp_session_keys()
        dev.dev_addr = config.dev_addr
        dev.fcnt_up = config.next_fcnt_up
        return dev

    @property
    def v11(self) -> bool:
        return self.config.version.is_1_1

    # -- join ---------------------------------------------------------------------------------

    def join_request(self, dev_nonce: int, *, key: AESKey | None = None) -> bytes:
        request = JoinRequest(self.config.join_eui, self.config.dev_eui, dev_nonce)
        return request.signed(key or self.config.root_key).to_bytes()

    def send(self, phy: bytes, **radio_kw: object) -> list[DownlinkFrame]:
        """Inject ``phy`` and return the downlinks the server sent in answer."""
        self.loop.take_sent()
        self.loop.inject_uplink(radio(phy, **radio_kw))
        return self.loop.take_sent()

    def join(self, dev_nonce: int, **radio_kw: object) -> list[DownlinkFrame]:
        return self.send(self.join_request(dev_nonce), **radio_kw)

    def decrypt_accept(self, phy: bytes) -> JoinAccept:
        frame = decode(phy)
        assert isinstance(frame, EncryptedJoinAccept)
        return frame.decrypt(self.config.root_key)

    def accept_mic_valid(self, accept: JoinAccept, dev_nonce: int) -> bool:
        if self.v11:
            assert self.config.nwk_key is not None
            js_int, _ = security.derive_js_keys(self.config.nwk_key, self.config.dev_eui.wire)
            return accept.mic_valid(js_int, join_eui=self.config.join_eui, dev_nonce=dev_nonce)
        return accept.mic_valid(self.config.root_key)

    def take_accept(self, phy: bytes, dev_nonce: int) -> JoinAccept:
        """Process a join-accept as a device would: decrypt, check the MIC, derive the session."""
        accept = self.decrypt_accept(phy)
        assert self.accept_mic_valid(accept, dev_nonce), "join-accept MIC invalid"
        if self.v11:
            assert self.config.nwk_key is not None and self.config.app_key is not None
            self.keys = security.derive_session_keys_11(
                self.config.nwk_key, self.config.app_key, accept.join_nonce, self.config.join_eui.wire, dev_nonce
            )
        else:
            self.keys = security.derive_session_keys_10(self.config.root_key, accept.join_nonce, accept.net_id.wire,
                                                        dev_nonce)
        self.dev_addr = accept.dev_addr
        self.fcnt_up = 0
        self.last_n_down = self.last_a_down = None
        self.accepts.append(accept)
        return accept

    def joined(self, dev_nonce: int = 0, **radio_kw: object) -> JoinAccept:
        frames = self.join(dev_nonce, **radio_kw)
        assert len(frames) == 1, f"expected one join-accept frame, got {frames}"
        return self.take_accept(frames[0].items[0].phy_payload, dev_nonce)

    # -- data ---------------------------------------------------------------------------------

    def data(
        self,
        fport: int | None = 1,
        payload: bytes = b"",
        *,
        fcnt: int | None = None,
        confirmed: bool = False,
        ack: bool = False,
        fopts: bytes = b"",
        adr_ack_req: bool = False,
        freq: int = 868_100_000,
        sf: int = 7,
        bw: int = 125_000,
        keys: SessionKeys | None = None,
        tx_ch: int | None = None,
    ) -> bytes:
        """An uplink's PHYPayload; ``fcnt`` None takes the next counter and advances it."""
        keys = keys or self.keys
        assert keys is not None and self.dev_addr is not None
        if fcnt is None:
            fcnt = self.fcnt_up
            self.fcnt_up += 1
        else:
            self.fcnt_up = max(self.fcnt_up, fcnt + 1)
        if confirmed:
            self.last_confirmed_up = fcnt
        mtype = MType.CONFIRMED_DATA_UP if confirmed else MType.UNCONFIRMED_DATA_UP
        ctx: dict[str, int] = {}
        if keys.lorawan_1_1:
            channel = tx_ch
            if channel is None:
                channel = [c.frequency_hz for c in self.region.default_channels].index(freq)
            ctx = {
                "tx_dr": self.region.dr_for(sf, bw),
                "tx_ch": channel,
                "conf_fcnt": (self.last_confirmed_down or 0) & 0xFFFF if ack else 0,
            }
        frame = lsession.seal_frame(
            mtype, self.dev_addr, keys, fcnt, fctrl=FCtrl(ack=ack, adr_ack_req=adr_ack_req), fopts=fopts,
            fport=fport, frm_payload=payload, fopts_variant=self.config.fopts_variant, **ctx,
        )
        return frame.to_bytes()

    def up(
        self, fport: int | None = 1, payload: bytes = b"", *, freq: int = 868_100_000, sf: int = 7, bw: int = 125_000,
        **kw: object,
    ) -> list[DownlinkFrame]:
        """Send a data uplink; returns the server's answers."""
        phy = self.data(fport, payload, freq=freq, sf=sf, bw=bw, **kw)  # type: ignore[arg-type]
        return self.send(phy, freq=freq, sf=sf, bw=bw)

    def open(self, phy: bytes, *, ack_of: int | None = None) -> OpenedFrame:
        """Open a downlink as the device: counter from the right 1.1 counter, ConfFCnt when ACKed."""
        frame = decode(phy)
        assert self.keys is not None
        assert not isinstance(frame, (EncryptedJoinAccept,)), "a join-accept, not a data downlink"
        a_counter = self.v11 and frame.fport is not None and frame.fport > 0  # type: ignore[union-attr]
        last = self.last_a_down if a_counter else self.last_n_down
        full = lfcnt.reconstruct(frame.fcnt, 0 if last is None else last + 1)  # type: ignore[union-attr]
        conf = 0
        if self.v11 and frame.fctrl.ack:  # type: ignore[union-attr]
            conf = (self.last_confirmed_up if ack_of is None else ack_of) or 0
        opened = lsession.open_frame(frame, self.keys, full, conf_fcnt=conf,  # type: ignore[arg-type]
                                     fopts_variant=self.config.fopts_variant)
        if opened.mic_valid:
            if a_counter:
                self.last_a_down = full
            else:
                self.last_n_down = full
            if frame.confirmed:  # type: ignore[union-attr]
                self.last_confirmed_down = full
        return opened

    def mac(self, opened: OpenedFrame) -> list[maccommands.MacCommand]:
        data = opened.frm_payload if opened.frame.fport == 0 else opened.fopts
        return maccommands.parse(data, uplink=False)
