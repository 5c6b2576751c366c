"""The one wire codec (SPEC.md §6.2): versioned, strict msgpack.

Every message is a msgpack array ``[CODEC_VERSION, tag, field_1, ..., field_n]`` with
the fields in declaration order. Decoding checks the version, the tag, the arity, the
type and range of every field (recursively), and finally that re-encoding gives the
same bytes — so there is exactly one encoding of every message (no alternative integer
widths, no maps, no trailing bytes). Anything else raises ``InvalidEncoding`` naming the
message and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgpack

from pvss.group import G1Point
from secagg.errors import InvalidEncoding

#: 2 since S_i travels compressed (SPEC.md §6.2); version 1 is refused by name
CODEC_VERSION = 2
MAX_MESSAGE_BYTES = 1 << 30

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Field kinds
# ---------------------------------------------------------------------------


class Kind:
    """A field type: ``check`` validates a decoded value and returns it normalised."""

    def check(self, value: Any, where: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value


@dataclasses.dataclass(frozen=True)
class UInt(Kind):
    """An unsigned integer below 2^bits. msgpack integers stop at 2^64 - 1, so a wider
    field (uint256: chain ids, wei amounts) carries values of 2^64 and more as exactly
    bits/8 big-endian bytes — and only those (one encoding per value)."""

    bits: int

    def dump(self, value: Any) -> Any:
        if self.bits > 64 and isinstance(value, int) and value >= 1 << 64:
            return value.to_bytes(self.bits // 8, "big")
        return value

    def check(self, value: Any, where: str) -> int:
        if self.bits > 64 and isinstance(value, bytes):
            if len(value) != self.bits // 8:
                raise InvalidEncoding(f"{where}: a wide uint{self.bits} is {self.bits // 8} bytes")
            wide = int.from_bytes(value, "big")
            if wide < 1 << 64:
                raise InvalidEncoding(f"{where}: {wide} fits 64 bits: not canonical")
            return wide
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidEncoding(
                f"{where}: expected an unsigned integer, got {type(value).__name__}"
            )
        if not 0 <= value < (1 << self.bits):
            raise InvalidEncoding(f"{where}: {value} outside uint{self.bits}")
        return value


@dataclasses.dataclass(frozen=True)
class Bool(Kind):
    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise InvalidEncoding(f"{where}: expected a bool, got {type(value).__name__}")
        return value


@dataclasses.dataclass(frozen=True)
class Float(Kind):
    def check(self, value: Any, where: str) -> float:
        if not isinstance(value, float):
            raise InvalidEncoding(f"{where}: expected a float, got {type(value).__name__}")
        return value


@dataclasses.dataclass(frozen=True)
class Str(Kind):
    max_len: int = 256

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise InvalidEncoding(f"{where}: expected a string, got {type(value).__name__}")
        if len(value) > self.max_len:
            raise InvalidEncoding(f"{where}: string longer than {self.max_len}")
        return value


@dataclasses.dataclass(frozen=True)
class Bytes(Kind):
    size: int | None = None  # exact size, or None for any (bounded by the message)

    def check(self, value: Any, where: str) -> bytes:
        if not isinstance(value, bytes):
            raise InvalidEncoding(f"{where}: expected bytes, got {type(value).__name__}")
        if self.size is not None and len(value) != self.size:
            raise InvalidEncoding(f"{where}: expected {self.size} bytes, got {len(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class CompressedPoint(Kind):
    """A G1 point, held in the message as its 64-byte EVM layout (what digests, the
    chain and the §4.5 bytes use) and written on the wire as its 32-byte compressed
    form (SPEC.md §2.1): decoding decompresses and so validates it; a value that is
    not a point cannot be encoded at all."""

    def check(self, value: Any, where: str) -> bytes:
        if not isinstance(value, bytes):
            raise InvalidEncoding(f"{where}: expected bytes, got {type(value).__name__}")
        return G1Point.from_compressed(value, field=where).to_bytes()

    def dump(self, value: Any) -> Any:
        return G1Point.from_bytes(value, field="compressed point (to encode)").to_compressed()


@dataclasses.dataclass(frozen=True)
class ListOf(Kind):
    item: Kind
    max_len: int = 1 << 20

    def check(self, value: Any, where: str) -> tuple:
        if not isinstance(value, list | tuple):
            raise InvalidEncoding(f"{where}: expected a list, got {type(value).__name__}")
        if len(value) > self.max_len:
            raise InvalidEncoding(f"{where}: more than {self.max_len} entries")
        return tuple(self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value))

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


@dataclasses.dataclass(frozen=True)
class Record(Kind):
    """A fixed-arity list of named fields, decoded into the frozen dataclass ``cls``."""

    cls: type
    fields: tuple[tuple[str, Kind], ...]

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, list | tuple):
            raise InvalidEncoding(f"{where}: expected a list, got {type(value).__name__}")
        if len(value) != len(self.fields):
            raise InvalidEncoding(f"{where}: expected {len(self.fields)} fields, got {len(value)}")
        kwargs = {
            name: kind.check(v, f"{where}.{name}")
            for (name, kind), v in zip(self.fields, value, strict=True)
        }
        try:
            return self.cls(**kwargs)
        except InvalidEncoding:
            raise
        except ValueError as exc:  # the dataclass's own validation
            raise InvalidEncoding(f"{where}: {exc}") from None

    def dump(self, value: Any) -> Any:
        return [kind.dump(getattr(value, name)) for name, kind in self.fields]


# ---------------------------------------------------------------------------
# Registry of top-level messages
# ---------------------------------------------------------------------------

_BY_TAG: dict[int, Record] = {}
_BY_CLASS: dict[type, tuple[int, Record]] = {}


def message(tag: int, *fields: tuple[str, Kind]) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a frozen dataclass as a top-level message."""

    def register(cls: type[T]) -> type[T]:
        if tag in _BY_TAG:
            raise RuntimeError(f"codec tag {tag} registered twice")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        if names != [name for name, _ in fields]:
            raise RuntimeError(f"{cls.__name__}: codec fields {fields} do not match {names}")
        rec = Record(cls, tuple(fields))
        _BY_TAG[tag] = rec
        _BY_CLASS[cls] = (tag, rec)
        return cls

    return register


def record(cls: type, *fields: tuple[str, Kind]) -> Record:
    """A nested record kind for dataclass ``cls``."""
    return Record(cls, tuple(fields))


def encode(msg: Any) -> bytes:
    """Canonical bytes of a registered message."""
    try:
        tag, rec = _BY_CLASS[type(msg)]
    except KeyError:
        raise InvalidEncoding(f"codec: {type(msg).__name__} is not a registered message") from None
    return msgpack.packb([CODEC_VERSION, tag, *rec.dump(msg)], use_bin_type=True)


def encode_list_parts(cls: type, parts: Sequence[bytes]) -> bytes:
    """``encode(cls(items))`` for a registered message ``cls`` whose one field is a
    list, from ``parts[i]`` = ``pack_item(cls, items[i])``: a msgpack array is its
    header followed by its elements, so a caller that sends many lists sharing
    elements (a server relaying transcript suffixes) packs each element once. The
    bytes are exactly ``encode``'s."""
    tag, rec = _BY_CLASS[cls]
    ((name, kind),) = rec.fields
    if not isinstance(kind, ListOf):
        raise InvalidEncoding(f"codec: {cls.__name__}.{name} is not a list")
    packer = msgpack.Packer(use_bin_type=True)
    head = packer.pack_array_header(3) + packer.pack(CODEC_VERSION) + packer.pack(tag)
    return b"".join((head, packer.pack_array_header(len(parts)), *parts))


def pack_item(cls: type, item: Any) -> bytes:
    """One element of ``cls``'s list field, packed (see ``encode_list_parts``)."""
    _, rec = _BY_CLASS[cls]
    ((_, kind),) = rec.fields
    return msgpack.packb(kind.item.dump(item), use_bin_type=True)


def unpack_value(data: bytes, where: str) -> Any:
    """The one msgpack value ``data`` holds, as every decoder here reads it (str keys,
    lists, no raw strings); ``InvalidEncoding`` naming ``where`` otherwise."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise InvalidEncoding(f"{where}: not a msgpack value ({type(exc).__name__})") from None


def decode(data: bytes, expect: type[T] | None = None) -> T:
    """Decode and validate; ``expect`` restricts the message type."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidEncoding(f"codec: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidEncoding("codec: message too large")
    obj = unpack_value(data, "codec")
    if not isinstance(obj, list) or len(obj) < 2:
        raise InvalidEncoding("codec: expected [version, tag, ...]")
    version, tag = obj[0], obj[1]
    if version == 1 and not isinstance(version, bool):
        raise InvalidEncoding(
            "codec: version 1 (S_i uncompressed, before SPEC.md §6.2 version 2) is not read "
            "by this version"
        )
    if version != CODEC_VERSION or isinstance(version, bool):
        raise InvalidEncoding(f"codec: unsupported version {version!r}")
    if isinstance(tag, bool) or not isinstance(tag, int) or tag not in _BY_TAG:
        raise InvalidEncoding(f"codec: unknown message tag {tag!r}")
    rec = _BY_TAG[tag]
    if expect is not None and rec.cls is not expect:
        raise InvalidEncoding(f"codec: expected {expect.__name__}, got {rec.cls.__name__}")
    msg = rec.check(obj[2:], rec.cls.__name__)
    if encode(msg) != data:
        raise InvalidEncoding(f"codec: {rec.cls.__name__} is not canonically encoded")
    return msg
