"""The virtual relay node's non-volatile memory: an STM32L0-like data EEPROM with real write latency.

:class:`Nvm` is the raw 2 KiB region at 0x08080000. A write is queued and committed one 32-bit
word at a time, each word taking ``word_write_s`` (3.5 ms, the STM32L0 datasheet's word program
time) on the rig :class:`~hil.sim.scheduler.Scheduler`.

TORN-WRITE SEMANTICS. Each word is atomic. :meth:`Nvm.power_lost` (a power cut, a brown-out)
drops every word not yet committed: the words committed before the cut hold the new data, every
later word of the same write (and of every write queued behind it) keeps its old data. A
multi-word field can therefore come back half new, half old, exactly at a word boundary; a
batch's ``on_done`` runs only when its last word is committed, so code that acts "after the
write" never acts on a write that a cut tore.

ERASED STATE. STM32L0 data EEPROM erases to 0x00, so a factory-fresh device (no image file) and
an erased one read zeros everywhere. Reads (:meth:`Nvm.read`) see queued writes, like the CPU
reading its own pending writes; :meth:`Nvm.read_committed` shows only what a cut would keep.

PERSISTENCE. With a ``path``, the committed image is the raw 2 KiB file, loaded at construction
(missing file = factory-fresh) and rewritten atomically (temp file + ``os.replace``) after every
committed batch, at every power loss and after every :meth:`Nvm.poke`. A file of another size
is an :class:`NvmFileError` naming it; it is never overwritten.

The field layout is data (``nvm_layout.yaml``, :class:`NvmLayout`); :class:`NvmView` reads and
writes fields by name with their types (keys come back as :class:`~hil.lorawan.crypto.AESKey` or
:class:`Key256`, whose reprs hide them); :class:`NvmMacStorage` is the LoRaWAN MAC's
:class:`~hil.sim.dut.interfaces.MacStorage` on top of it.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, fields as dataclass_fields
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hil.lorawan.crypto import REDACTED, AESKey
from hil.lorawan.security import SessionKeys
from hil.lorawan.types import EUI64, DevAddr
from hil.sim.dut.interfaces import MacState
from hil.files import write_atomically
from hil.sim.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

BASE_ADDRESS = 0x08080000
SIZE = 2048
WORD = 4
ERASED_BYTE = 0x00
WORD_WRITE_S = 0.0035

Chunk = tuple[int, bytes]  # (offset in the region, bytes)


class NvmError(Exception):
    """Base of the NVM model's errors."""


class NvmFileError(NvmError):
    """The NVM image file cannot be used (wrong size, unreadable); it is left untouched."""


class NvmRangeError(NvmError, ValueError):
    """An access outside the NVM region."""


class NvmLayoutError(NvmError, ValueError):
    """A bad layout table, an unknown field, or a value that does not fit its field."""


# --- the raw region ---------------------------------------------------------------------------


@dataclass
class _Batch:
    words: list[tuple[int, bytes]]
    on_done: Callable[[], None] | None
    next: int = 0


class Nvm:
    """The data-EEPROM region: word-by-word timed commits, torn by :meth:`power_lost`. Thread-safe."""

    def __init__(
        self,
        scheduler: Scheduler,
        path: str | os.PathLike[str] | None = None,
        *,
        size: int = SIZE,
        word_write_s: float = WORD_WRITE_S,
        erased_byte: int = ERASED_BYTE,
        base_address: int = BASE_ADDRESS,
    ) -> None:
        if size <= 0 or size % WORD:
            raise NvmError(f"NVM size must be a positive multiple of {WORD} bytes, got {size}")
        self.scheduler = scheduler
        self.size = size
        self.word_write_s = word_write_s
        self.erased_byte = erased_byte
        self.base_address = base_address
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._committed = bytearray(self._load_file())
        self._shadow = bytearray(self._committed)  # committed + queued writes
        self._queue: deque[_Batch] = deque()
        self._timer: Timer | None = None
        self._epoch = 0  # bumped at power loss: a commit timer from before does nothing
        self._idle_waiters: list[Callable[[], None]] = []
        self.words_committed = 0
        self.words_dropped = 0

    # -- reading -------------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> bytes:
        """Bytes as the firmware reads them (queued writes included)."""
        self._check_range(offset, size)
        with self._lock:
            return bytes(self._shadow[offset : offset + size])

    def read_committed(self, offset: int = 0, size: int | None = None) -> bytes:
        """Bytes as committed to the cells (what a power cut now would keep)."""
        size = self.size - offset if size is None else size
        self._check_range(offset, size)
        with self._lock:
            return bytes(self._committed[offset : offset + size])

    def image(self) -> bytes:
        """The whole committed image."""
        return self.read_committed(0, self.size)

    @property
    def busy(self) -> bool:
        """True while words are waiting to be committed."""
        with self._lock:
            return bool(self._queue)

    @property
    def pending_words(self) -> int:
        with self._lock:
            return sum(len(b.words) - b.next for b in self._queue)

    # -- writing -------------------------------------------------------------------------------

    def write(self, offset: int, data: bytes, on_done: Callable[[], None] | None = None) -> None:
        """Queue ``data`` at ``offset``; ``on_done`` runs on the scheduler once its last word is committed."""
        self.write_batch([(offset, data)], on_done)

    def write_batch(self, chunks: Sequence[Chunk], on_done: Callable[[], None] | None = None) -> None:
        """Queue several writes as one batch, committed word by word in the order the words are
        first touched; ``on_done`` runs after the batch's last word. Partial words are merged with
        the bytes around them (read-modify-write of the word)."""
        for offset, data in chunks:
            self._check_range(offset, len(data))
        with self._lock:
            touched: dict[int, None] = {}
            for offset, data in chunks:
                self._shadow[offset : offset + len(data)] = data
                for word in range(offset - offset % WORD, offset + len(data), WORD):
                    touched[word] = None
            words = [(w, bytes(self._shadow[w : w + WORD])) for w in touched]
            if not words:
                if on_done is not None:
                    self.scheduler.call_soon(on_done, name="nvm-done")
                return
            self._queue.append(_Batch(words, on_done))
            if self._timer is None:
                self._schedule_locked()

    def erase_all(self, on_done: Callable[[], None] | None = None) -> None:
        """Queue erasing every word that is not erased yet (lowest address, the magic, first)."""
        erased = bytes([self.erased_byte]) * WORD
        with self._lock:
            chunks = [(w, erased) for w in range(0, self.size, WORD) if bytes(self._shadow[w : w + WORD]) != erased]
        self.write_batch(chunks, on_done)

    def poke(self, offset: int, data: bytes) -> None:
        """Change the cells at once (SWD, a test's setup): committed, visible and saved immediately.
        Words still queued are committed over it later."""
        self._check_range(offset, len(data))
        with self._lock:
            self._committed[offset : offset + len(data)] = data
            self._shadow[offset : offset + len(data)] = data
            image = bytes(self._committed)
        self._save(image)

    def when_idle(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the scheduler once nothing is queued (at once if idle); dropped by a power loss."""
        with self._lock:
            if self._queue:
                self._idle_waiters.append(fn)
                return
        self.scheduler.call_soon(fn, name="nvm-idle")

    def power_lost(self) -> int:
        """Power cut: drop every uncommitted word (torn writes) and their ``on_done``; returns how many."""
        with self._lock:
            dropped = sum(len(b.words) - b.next for b in self._queue)
            self._queue.clear()
            self._idle_waiters.clear()
            self._epoch += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._shadow = bytearray(self._committed)
            self.words_dropped += dropped
            image = bytes(self._committed)
        if dropped:
            log.info("NVM: power lost with %d word(s) uncommitted", dropped)
        self._save(image)
        return dropped

    def save(self) -> None:
        """Write the committed image to the file now (e.g. when the rig shuts down mid-write)."""
        self._save(self.image())

    # -- internals -----------------------------------------------------------------------------

    def _schedule_locked(self) -> None:
        self._timer = self.scheduler.call_later(self.word_write_s, self._commit, self._epoch, name="nvm-word")

    def _commit(self, epoch: int) -> None:
        done: Callable[[], None] | None = None
        image: bytes | None = None
        waiters: list[Callable[[], None]] = []
        with self._lock:
            if epoch != self._epoch or not self._queue:
                return
            batch = self._queue[0]
            offset, word = batch.words[batch.next]
            self._committed[offset : offset + WORD] = word
            batch.next += 1
            self.words_committed += 1
            if batch.next == len(batch.words):
                self._queue.popleft()
                done = batch.on_done
                image = bytes(self._committed)
            if self._queue:
                self._schedule_locked()
            else:
                self._timer = None
                waiters, self._idle_waiters = self._idle_waiters, []
        if image is not None:
            self._save(image)
        if done is not None:
            done()
        for fn in waiters:
            fn()

    def _check_range(self, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise NvmRangeError(
                f"NVM access at offset {offset:#x} size {size} is outside the {self.size}-byte region "
                f"(0x{self.base_address:08x}..0x{self.base_address + self.size - 1:08x})"
            )

    def _load_file(self) -> bytes:
        erased = bytes([self.erased_byte]) * self.size
        if self.path is None:
            return erased
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return erased  # factory-fresh device
        except OSError as exc:
            raise NvmFileError(f"cannot read NVM image {self.path}: {exc}") from exc
        if len(data) != self.size:
            raise NvmFileError(
                f"NVM image {self.path} is {len(data)} bytes; expected a {self.size}-byte data-EEPROM image "
                f"(the file was left untouched: fix or delete it, or point nvm_file elsewhere)"
            )
        return data

    def _save(self, image: bytes) -> None:
        if self.path is None:
            return
        write_atomically(self.path, image, mode=0o600)  # it holds the DUT's keys


# --- the layout -------------------------------------------------------------------------------

FieldType = Literal["u8", "u16le", "u32le", "bool", "eui64", "key128", "key256", "bytes"]
_TYPE_SIZES: dict[str, int | None] = {
    "u8": 1, "u16le": 2, "u32le": 4, "bool": 1, "eui64": 8, "key128": 16, "key256": 32, "bytes": None,
}
_INT_TYPES = {"u8": 1, "u16le": 2, "u32le": 4}


class _FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offset: int = Field(ge=0)
    size: int = Field(gt=0)
    type: FieldType
    count: int | None = Field(default=None, ge=1)
    enum: tuple[str, ...] | None = None
    doc: str = ""


class _LayoutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_address: int = Field(ge=0)
    size: int = Field(gt=0)
    word_size: int = Field(gt=0)
    erased_byte: int = Field(ge=0, le=255)
    layout_version: int = Field(ge=0, le=0xFFFF)
    magic: int = Field(ge=0, le=0xFFFFFFFF)
    fields: dict[str, _FieldSpec]


@dataclass(frozen=True, slots=True)
class NvmField:
    """One named field of the layout."""

    name: str
    offset: int
    size: int
    type: str
    count: int | None
    enum: tuple[str, ...] | None
    doc: str
    base_address: int

    @property
    def address(self) -> int:
        """Absolute address in the DUT's memory map."""
        return self.base_address + self.offset

    @property
    def element_size(self) -> int:
        return self.size // (self.count or 1)


class NvmLayout:
    """The field table of ``nvm_layout.yaml``, validated: in range, no overlaps, sizes match types."""

    def __init__(self, spec: _LayoutSpec, source: str = "nvm_layout.yaml") -> None:
        self.source = source
        self.base_address = spec.base_address
        self.size = spec.size
        self.word_size = spec.word_size
        self.erased_byte = spec.erased_byte
        self.layout_version = spec.layout_version
        self.magic = spec.magic
        self.fields: dict[str, NvmField] = {}
        for name, f in spec.fields.items():
            type_size = _TYPE_SIZES[f.type]
            if type_size is not None and f.size != type_size * (f.count or 1):
                raise NvmLayoutError(
                    f"{source}: field {name} is {f.type}" + (f" x{f.count}" if f.count else "")
                    + f" = {type_size * (f.count or 1)} bytes, but size says {f.size}"
                )
            if f.count and f.size % f.count:
                raise NvmLayoutError(f"{source}: field {name} size {f.size} is not a multiple of count {f.count}")
            if f.enum is not None and f.type != "u8":
                raise NvmLayoutError(f"{source}: field {name} has an enum but type {f.type} (enums are u8)")
            if f.offset + f.size > spec.size:
                raise NvmLayoutError(
                    f"{source}: field {name} (offset {f.offset:#x}, {f.size} bytes) ends beyond the {spec.size}-byte region"
                )
            self.fields[name] = NvmField(name, f.offset, f.size, f.type, f.count, f.enum, f.doc, spec.base_address)
        ordered = sorted(self.fields.values(), key=lambda x: x.offset)
        for a, b in zip(ordered, ordered[1:]):
            if a.offset + a.size > b.offset:
                raise NvmLayoutError(f"{source}: fields {a.name} and {b.name} overlap at offset {b.offset:#x}")

    @classmethod
    def from_yaml(cls, text: str, source: str = "nvm_layout.yaml") -> "NvmLayout":
        try:
            return cls(_LayoutSpec.model_validate(yaml.safe_load(text)), source)
        except (yaml.YAMLError, ValidationError) as exc:
            raise NvmLayoutError(f"{source}: invalid NVM layout: {exc}") from exc

    @classmethod
    def default(cls) -> "NvmLayout":
        """The shipped ``hil/sim/dut/nvm_layout.yaml`` (cached)."""
        return _default_layout()

    def field(self, name: str) -> NvmField:
        try:
            return self.fields[name]
        except KeyError:
            raise NvmLayoutError(f"no NVM field {name!r}; known fields: {', '.join(self.fields)}") from None

    # -- codecs --------------------------------------------------------------------------------

    def encode(self, name: str, value: Any) -> bytes:
        """The stored bytes of ``value`` for field ``name`` (arrays: a sequence of up to ``count``)."""
        f = self.field(name)
        if f.count:
            items = list(value)
            if len(items) > f.count:
                raise NvmLayoutError(f"NVM field {name} holds {f.count} entries, got {len(items)}")
            pad = bytes([self.erased_byte]) * (f.element_size * (f.count - len(items)))
            return b"".join(self._encode_one(f, v) for v in items) + pad
        return self._encode_one(f, value)

    def encode_element(self, name: str, index: int, value: Any) -> Chunk:
        """(offset, bytes) of one entry of an array field."""
        f = self.field(name)
        if not f.count or not 0 <= index < f.count:
            raise NvmLayoutError(f"NVM field {name} has no entry {index}")
        return f.offset + index * f.element_size, self._encode_one(f, value)

    def decode(self, name: str, raw: bytes) -> Any:
        f = self.field(name)
        if f.count:
            size = f.element_size
            return tuple(self._decode_one(f, raw[i : i + size]) for i in range(0, f.size, size))
        return self._decode_one(f, raw)

    def _encode_one(self, f: NvmField, value: Any) -> bytes:
        size = f.element_size
        t = f.type
        if t in _INT_TYPES:
            if f.enum is not None and isinstance(value, str):
                if value not in f.enum:
                    raise NvmLayoutError(f"NVM field {f.name} must be one of {', '.join(f.enum)}, got {value!r}")
                value = f.enum.index(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
                raise NvmLayoutError(f"NVM field {f.name} ({t}) needs an integer 0..{(1 << (8 * size)) - 1}, got {value!r}")
            return int(value).to_bytes(size, "little")
        if t == "bool":
            return b"\x01" if value else b"\x00"
        if t == "eui64":
            return EUI64(value).wire
        if t == "key128":
            if not isinstance(value, AESKey):
                raise NvmLayoutError(f"NVM field {f.name} needs an AESKey (value not shown)")
            return value.reveal()
        if t == "key256":
            raw = value.reveal() if isinstance(value, Key256) else value
            if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
                raise NvmLayoutError(f"NVM field {f.name} needs a 32-byte key (value not shown)")
            return bytes(raw)
        raw = bytes(value)
        if len(raw) != size:
            raise NvmLayoutError(f"NVM field {f.name} is {size} bytes, got {len(raw)}")
        return raw

    def _decode_one(self, f: NvmField, raw: bytes) -> Any:
        t = f.type
        if t in _INT_TYPES:
            n = int.from_bytes(raw, "little")
            if f.enum is not None:
                return f.enum[n] if n < len(f.enum) else None  # garbage (e.g. an SWD poke): no value
            return n
        if t == "bool":
            return raw != b"\x00"
        if t == "eui64":
            return EUI64.from_wire(raw)
        if t == "key128":
            return AESKey(raw, f.name)
        if t == "key256":
            return Key256(raw, f.name)
        return bytes(raw)

    # -- documentation -------------------------------------------------------------------------

    def table(self) -> str:
        """A Markdown table of every field with its absolute address."""
        rows = ["| address | offset | size | type | field | meaning |", "|---|---|---|---|---|---|"]
        for f in sorted(self.fields.values(), key=lambda x: x.offset):
            kind = f.type + (f" x{f.count}" if f.count else "") + (f" enum({'/'.join(f.enum)})" if f.enum else "")
            rows.append(f"| 0x{f.address:08X} | 0x{f.offset:03X} | {f.size} | {kind} | {f.name} | {f.doc} |")
        return "\n".join(rows)


@functools.cache
def _default_layout() -> NvmLayout:
    text = resources.files("hil.sim.dut").joinpath("nvm_layout.yaml").read_text(encoding="utf-8")
    return NvmLayout.from_yaml(text, "hil/sim/dut/nvm_layout.yaml")


class Key256:
    """A 256-bit key read from NVM (the relay's K). ``repr`` hides it; :meth:`reveal` is deliberate."""

    __slots__ = ("_key", "name")

    def __init__(self, key: bytes, name: str = "key256") -> None:
        if len(key) != 32:
            raise NvmLayoutError(f"{name} must be 32 bytes, got {len(key)} (value not shown)")
        self._key = bytes(key)
        self.name = name

    def reveal(self) -> bytes:
        return self._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key256):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(("Key256", hmac.new(b"hil", self._key, "sha256").digest()))

    def __repr__(self) -> str:
        return f"Key256({self.name}={REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("Key256 cannot be pickled")


# --- typed access ------------------------------------------------------------------------------


class NvmView:
    """Fields of an :class:`Nvm` by name, with their types."""

    def __init__(self, nvm: Nvm, layout: NvmLayout | None = None) -> None:
        self.nvm = nvm
        self.layout = layout or NvmLayout.default()
        if self.layout.size != nvm.size:
            raise NvmLayoutError(f"layout {self.layout.source} is for {self.layout.size} bytes, the NVM has {nvm.size}")

    def get(self, name: str) -> Any:
        """A field's value as the firmware reads it (queued writes included)."""
        f = self.layout.field(name)
        return self.layout.decode(name, self.nvm.read(f.offset, f.size))

    def get_committed(self, name: str) -> Any:
        """A field's value as committed (what a power cut now would keep)."""
        f = self.layout.field(name)
        return self.layout.decode(name, self.nvm.read_committed(f.offset, f.size))

    def chunk(self, name: str, value: Any) -> Chunk:
        f = self.layout.field(name)
        return f.offset, self.layout.encode(name, value)

    def set(self, on_done: Callable[[], None] | None = None, **values: Any) -> None:
        """Write fields (in the order given) as one NVM batch."""
        self.write_chunks([self.chunk(n, v) for n, v in values.items()], on_done)

    def write_chunks(self, chunks: Sequence[Chunk], on_done: Callable[[], None] | None = None) -> None:
        self.nvm.write_batch(chunks, on_done)

    def poke(self, **values: Any) -> None:
        """Set fields at once, without write latency (SWD, test setup)."""
        for name, value in values.items():
            self.nvm.poke(*self.chunk(name, value))

    def is_provisioned(self) -> bool:
        """The magic, layout version and provisioned flag are all in place."""
        return (
            self.get("magic") == self.layout.magic
            and self.get("layout_version") == self.layout.layout_version
            and bool(self.get("provisioned"))
        )


# --- the MAC's storage --------------------------------------------------------------------------

_MAC_FIELDS = tuple(f.name for f in dataclass_fields(MacState))
_SESSION_KEY_FIELDS = ("f_nwk_s_int_key", "s_nwk_s_int_key", "nwk_s_enc_key", "app_s_key")
Guard = Callable[[Callable[[], None]], Callable[[], None]]


class NvmMacStorage:
    """:class:`~hil.sim.dut.interfaces.MacStorage` on the NVM layout.

    :meth:`persist` writes only the words of the fields it is given, values before the validity
    flags that vouch for them. ``guard`` wraps ``on_done`` (the firmware uses it to drop callbacks
    of a dead boot and to defer them while the core is halted).
    """

    RING = "used_dev_nonces"

    def __init__(self, view: NvmView, guard: Guard | None = None) -> None:
        self.view = view
        self.guard = guard

    def load(self) -> MacState:
        v = self.view.get
        session_valid = bool(v("session_valid"))
        dev_addr = v("dev_addr")
        keys = None
        if v("session_keys_valid"):
            keys = SessionKeys(*(v(n) for n in _SESSION_KEY_FIELDS), lorawan_1_1=bool(v("session_lorawan_1_1")))
        count = min(v("extra_channel_count"), self.view.layout.field("extra_channels").count or 0)
        return MacState(
            dev_nonce=v("dev_nonce"),
            used_dev_nonces=tuple(self._ring()),
            join_nonce=v("join_nonce") if v("join_nonce_valid") else None,
            joined=session_valid,
            dev_addr=DevAddr(dev_addr) if (session_valid or dev_addr) else None,
            session_keys=keys,
            fcnt_up=v("fcnt_up"),
            n_fcnt_down=v("n_fcnt_down") if v("n_fcnt_down_valid") else None,
            a_fcnt_down=v("a_fcnt_down") if v("a_fcnt_down_valid") else None,
            rx1_dr_offset=v("rx1_dr_offset"),
            rx2_dr=v("rx2_dr") if v("rx2_dr_valid") else None,
            rx_delay_s=max(1, v("rx_delay_s")),  # RxDelay 0 means 1 s (and erased NVM reads 0)
            extra_channels=tuple(v("extra_channels")[:count]),
        )

    def persist(self, on_done: Callable[[], None] | None = None, **changes: object) -> None:
        unknown = [k for k in changes if k not in _MAC_FIELDS]
        if unknown:
            raise TypeError(f"MacState has no field(s) {', '.join(unknown)}; fields: {', '.join(_MAC_FIELDS)}")
        data: list[Chunk] = []
        late: list[Chunk] = []  # validity flags and counts: after the values they vouch for
        for name, value in changes.items():
            self._chunks(name, value, data, late)
        done = self.guard(on_done) if (on_done is not None and self.guard is not None) else on_done
        self.view.write_chunks(data + late, done)

    # -- mapping -------------------------------------------------------------------------------

    def _chunks(self, name: str, value: Any, data: list[Chunk], late: list[Chunk]) -> None:
        c = self.view.chunk
        if name in ("dev_nonce", "fcnt_up", "rx1_dr_offset"):
            data.append(c(name, int(value)))
        elif name == "rx_delay_s":
            data.append(c(name, int(value)))
        elif name in ("join_nonce", "n_fcnt_down", "a_fcnt_down", "rx2_dr"):
            if value is not None:
                data.append(c(name, int(value)))
            late.append(c(f"{name}_valid", value is not None))
        elif name == "joined":
            late.append(c("session_valid", bool(value)))
        elif name == "dev_addr":
            data.append(c("dev_addr", int(value) if value is not None else 0))
        elif name == "session_keys":
            if value is not None:
                keys: SessionKeys = value  # type: ignore[assignment]
                for key_name in _SESSION_KEY_FIELDS:
                    data.append(c(key_name, getattr(keys, key_name)))
                late.append(c("session_lorawan_1_1", keys.lorawan_1_1))
            late.append(c("session_keys_valid", value is not None))
        elif name == "extra_channels":
            channels = tuple(int(x) for x in value)  # type: ignore[union-attr]
            data.append(c("extra_channels", channels))
            late.append(c("extra_channel_count", len(channels)))
        elif name == "used_dev_nonces":
            self._ring_chunks(tuple(int(x) for x in value), data, late)  # type: ignore[union-attr]

    def _ring(self) -> list[int]:
        v = self.view.get
        slots = v(self.RING)
        size = len(slots)
        count = min(v("used_dev_nonces_count"), size)
        head = v("used_dev_nonces_head") % size
        return [slots[(head - count + i) % size] for i in range(count)]

    def _ring_chunks(self, nonces: tuple[int, ...], data: list[Chunk], late: list[Chunk]) -> None:
        """Write only the ring slots of newly appended nonces (or rewrite the ring if it changed otherwise)."""
        size = self.view.layout.field(self.RING).count or 1
        stored = self._ring()
        wanted = list(nonces[-size:])
        head = self.view.get("used_dev_nonces_head") % size
        count = min(self.view.get("used_dev_nonces_count"), size)
        appended: list[int] | None = None
        for k in range(0, min(len(nonces), size) + 1):
            tail = list(nonces[len(nonces) - k :]) if k else []
            if (stored + tail)[-size:] == wanted:
                appended = tail
                break
        encode = self.view.layout.encode_element
        if appended is None:  # not an append: rewrite the ring from slot 0
            for i, nonce in enumerate(wanted):
                data.append(encode(self.RING, i, nonce))
            head, count = len(wanted) % size, len(wanted)
        elif not appended:
            return
        else:
            for nonce in appended:
                data.append(encode(self.RING, head, nonce))
                head = (head + 1) % size
                count = min(count + 1, size)
        late.append(self.view.chunk("used_dev_nonces_head", head))
        late.append(self.view.chunk("used_dev_nonces_count", count))

