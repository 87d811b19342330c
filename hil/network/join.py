"""The join server: admits join-requests and builds join-accepts and the new session.

Rules by version (lorawan-facts §4–§5): the MIC is checked with AppKey (1.0.x) or NwkKey
(1.1); DevNonce must be unused (1.0.2/1.0.3: the set of values seen) or strictly greater than
the last one (1.0.4/1.1); JoinNonce increases with every join-accept over the device's life.
The 1.0.x accept is MICed and encrypted with AppKey; the 1.1 accept (OptNeg=1) is MICed with
JSIntKey over JoinReqType 0xFF | JoinEUI | DevNonce | MHDR..CFList and encrypted with NwkKey.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from hil.lorawan import security
from hil.lorawan.frames import DLSettings, JoinAccept, JoinRequest
from hil.lorawan.region import Region
from hil.lorawan.types import NetID
from hil.network import events, radio
from hil.network.devaddr import DevAddrAllocator
from hil.network.registry import DeviceConfig, DeviceRegistry, DeviceState, Session

JoinPolicy = Callable[[DeviceConfig], bool]

JOIN_REQ_TYPE_JOIN = 0xFF
MAX_JOIN_NONCE = 0xFFFFFF


def flip_mic(mic: bytes) -> bytes:
    """The MIC with every bit inverted: certainly wrong."""
    return bytes(b ^ 0xFF for b in mic)


@dataclass(frozen=True, slots=True)
class Admission:
    """The join server's verdict on a join-request, before any accept is built.

    ``outcome`` is ``"admitted"``, ``"rejected"`` (unknown device, bad MIC, used DevNonce, ...)
    or ``"denied"`` (the join policy said no). ``reason`` says why in words.
    """

    outcome: str
    reason: str = ""
    state: DeviceState | None = None
    mic_valid: bool | None = None

    @property
    def admitted(self) -> bool:
        """True if an accept may be built."""
        return self.outcome == "admitted"


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A built join-accept: its clear form, its on-air bytes, and the session it starts."""

    join_accept: JoinAccept
    phy_payload: bytes
    session: Session
    mic_corrupted: bool


class JoinServer:
    """Join-request admission and join-accept construction for the devices of a registry."""

    def __init__(
        self,
        region: Region,
        registry: DeviceRegistry,
        net_id: NetID,
        allocate_dev_addr: DevAddrAllocator,
        join_policy: JoinPolicy | None = None,
    ) -> None:
        self.region = region
        self.registry = registry
        self.net_id = NetID(net_id)
        self.allocate_dev_addr = allocate_dev_addr
        self.join_policy = join_policy

    def admit(self, request: JoinRequest) -> Admission:
        """Check a join-request. A request with a valid MIC and a fresh DevNonce has its DevNonce
        recorded (the device has used it) even when the join policy then denies it."""
        state = self.registry.find(request.dev_eui)
        if state is None:
            return Admission(events.REJECTED, f"unknown DevEUI {request.dev_eui}")
        config = state.config
        if config.activation != "otaa":
            return Admission(events.REJECTED, f"{config} is ABP and cannot join", state)
        if request.join_eui != config.join_eui:
            return Admission(
                events.REJECTED, f"JoinEUI {request.join_eui} does not match the device's {config.join_eui}", state
            )
        key_name = "NwkKey" if config.version.is_1_1 else "AppKey"
        if not request.mic_valid(config.root_key):
            return Admission(events.REJECTED, f"MIC invalid (checked with the device's {key_name})", state, False)
        nonce = request.dev_nonce
        if config.version.dev_nonce_is_counter:
            if state.last_dev_nonce is not None and nonce <= state.last_dev_nonce:
                return Admission(
                    events.REJECTED, f"DevNonce {nonce} not greater than last {state.last_dev_nonce}", state, True
                )
            state.last_dev_nonce = nonce
        else:
            if nonce in state.used_dev_nonces:
                return Admission(events.REJECTED, f"DevNonce {nonce} already used", state, True)
            state.used_dev_nonces.add(nonce)
        if state.last_join_nonce >= MAX_JOIN_NONCE:
            return Admission(events.REJECTED, "JoinNonce exhausted (24-bit counter at its maximum)", state, True)
        if self.join_policy is not None and not self.join_policy(config):
            return Admission(events.DENIED, "join policy denied the device", state, True)
        return Admission("admitted", "", state, True)

    def accept(self, state: DeviceState, request: JoinRequest, *, now: float, corrupt_mic: bool = False) -> JoinResult:
        """Build the join-accept for an admitted request and the session it starts.

        Commits the new JoinNonce. ``corrupt_mic`` flips the MIC before encryption, so the
        device finds a bad MIC after decrypting.
        """
        config = state.config
        v11 = config.version.is_1_1
        join_nonce = state.last_join_nonce + 1
        dev_addr = config.dev_addr if config.dev_addr is not None else self.allocate_dev_addr(self.net_id, config.dev_eui)
        rx = radio.device_rx(config, self.region)
        listed = radio.cf_list(config, self.region)
        plain = JoinAccept(
            join_nonce=join_nonce,
            net_id=self.net_id,
            dev_addr=dev_addr,
            dl_settings=DLSettings(opt_neg=v11, rx1_dr_offset=rx.rx1_dr_offset, rx2_dr=rx.rx2_dr),
            rx_delay=int(rx.rx1_delay_s),
            cf_list=None if listed is None else listed.to_bytes(),
        )
        if v11:
            assert config.nwk_key is not None and config.app_key is not None
            js_int_key, _ = security.derive_js_keys(config.nwk_key, config.dev_eui.wire)
            signed = plain.signed(
                js_int_key, join_req_type=JOIN_REQ_TYPE_JOIN, join_eui=request.join_eui, dev_nonce=request.dev_nonce
            )
            encrypt_key = config.nwk_key
            keys = security.derive_session_keys_11(
                config.nwk_key, config.app_key, join_nonce, request.join_eui.wire, request.dev_nonce, opt_neg=True
            )
        else:
            assert config.app_key is not None
            signed = plain.signed(config.app_key)
            encrypt_key = config.app_key
            keys = security.derive_session_keys_10(config.app_key, join_nonce, self.net_id.wire, request.dev_nonce)
        if corrupt_mic:
            signed = replace(signed, mic=flip_mic(signed.mic))
        phy = signed.encrypt(encrypt_key)
        state.last_join_nonce = join_nonce
        state.joins += 1
        session = Session(
            dev_eui=config.dev_eui,
            dev_addr=dev_addr,
            keys=keys,
            rx1_dr_offset=rx.rx1_dr_offset,
            rx2_dr=rx.rx2_dr,
            rx2_frequency_hz=rx.rx2_frequency_hz,
            rx_delay_s=int(rx.rx1_delay_s),
            channels=radio.channels(config, self.region),
            created_at=now,
            otaa=True,
            fopts_variant=config.fopts_variant,
            dev_nonce=request.dev_nonce,
            join_nonce=join_nonce,
        )
        return JoinResult(signed, phy, session, corrupt_mic)
