"""IPFS content identifiers for blobs (SPEC.md §6.6.1).

A blob's identifier is the CIDv1 that ``ipfs add --cid-version=1 --raw-leaves``
(kubo's defaults otherwise: fixed chunker ``size-262144``, balanced layout, at most
174 links per node, sha2-256) gives its bytes:

* a blob of at most ``CHUNK_SIZE`` bytes is one raw block: CIDv1, codec ``raw``
  (0x55), multihash sha2-256 of the bytes;
* a larger blob is a UnixFS file: its ``CHUNK_SIZE`` chunks are raw leaves under a
  balanced tree of dag-pb (0x70) nodes, and the CID is the root node's.

The board holds the CID's 32-byte sha2-256 digest; the codec follows from the blob.
The CID text form (base32 multibase, ``bafk…``/``bafy…``) and the multihash are made
and parsed with py-cid / py-multihash; the dag-pb and UnixFS protobuf encodings of
the tree nodes (a few fixed fields) are written here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cid as _cid
import multihash as _multihash

from secagg.errors import ProtocolError

CHUNK_SIZE = 262144  # kubo's default chunker, size-262144
MAX_LINKS = 174  # kubo's default links per UnixFS file node (balanced layout)
CODEC_RAW = "raw"  # multicodec 0x55
CODEC_DAG_PB = "dag-pb"  # multicodec 0x70
CODECS = (CODEC_RAW, CODEC_DAG_PB)
_UNIXFS_FILE = 2  # UnixFS Data.DataType.File


@dataclass(frozen=True)
class _Node:
    """A block in the file's DAG as its parent links it: binary CID, the link's
    Tsize (the block's bytes plus everything under it) and the file bytes under it."""

    cid: bytes
    tsize: int
    filesize: int


def _mh(digest: bytes) -> bytes:
    return bytes(_multihash.encode(digest, "sha2-256"))


def cid_text(codec: str, digest: bytes) -> str:
    """The CIDv1 string (base32, lower case) of a sha2-256 ``digest`` under ``codec``."""
    if codec not in CODECS or len(digest) != 32:
        raise ValueError(f"cid: codec {codec!r} / digest of {len(digest)} bytes")
    return _cid.make_cid(1, codec, _mh(digest)).encode("base32").decode("ascii")


def cid_bytes(codec: str, digest: bytes) -> bytes:
    """The binary CIDv1 (what a dag-pb link's Hash holds)."""
    return bytes(_cid.make_cid(1, codec, _mh(digest)).buffer)


def parse_cid(text: str) -> tuple[str, bytes]:
    """``(codec, digest)`` of a blob CID string. Only what a blob can be named by is
    accepted: CIDv1, codec raw or dag-pb, sha2-256 with a 32-byte digest, written in
    the canonical base32 form (so one blob has one name)."""
    try:
        parsed = _cid.from_string(text)
        mh = _multihash.decode(bytes(parsed.multihash))
    except Exception as exc:  # the library raises ValueError, KeyError, ...
        raise ProtocolError(f"cid {text!r}: not a CID ({exc})") from exc
    if parsed.version != 1 or parsed.codec not in CODECS:
        raise ProtocolError(f"cid {text!r}: version {parsed.version} codec {parsed.codec}")
    if mh.name != "sha2-256" or len(mh.digest) != 32:
        raise ProtocolError(f"cid {text!r}: multihash {mh.name} of {len(mh.digest)} bytes")
    digest = bytes(mh.digest)
    if cid_text(parsed.codec, digest) != text:
        raise ProtocolError(f"cid {text!r}: not in canonical base32 form")
    return parsed.codec, digest


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_bytes(field: int, value: bytes) -> bytes:  # protobuf wire type 2
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _pb_uint(field: int, value: int) -> bytes:  # protobuf wire type 0
    return _varint(field << 3) + _varint(value)


def file_node(children: list[_Node]) -> bytes:
    """The dag-pb block of a UnixFS file node over ``children`` (as kubo writes it):
    PBNode{Links (field 2) first, each PBLink{Hash, Name "", Tsize}; then Data
    (field 1) = UnixFS Data{Type File, filesize, one blocksizes per child}}."""
    links = b"".join(
        _pb_bytes(2, _pb_bytes(1, c.cid) + _pb_bytes(2, b"") + _pb_uint(3, c.tsize))
        for c in children
    )
    data = _pb_uint(1, _UNIXFS_FILE) + _pb_uint(3, sum(c.filesize for c in children))
    data += b"".join(_pb_uint(4, c.filesize) for c in children)
    return links + _pb_bytes(1, data)


def _leaf(digest: bytes, size: int) -> _Node:
    return _Node(cid_bytes(CODEC_RAW, digest), size, size)


def _subtree(leaves: list[_Node], depth: int) -> tuple[_Node, bytes]:
    """The balanced subtree of ``depth`` over ``leaves`` (at most MAX_LINKS**depth):
    children are full subtrees of ``depth - 1`` left to right, the last one partial;
    a node over a single child is still a node (kubo does not collapse it)."""
    span = MAX_LINKS ** (depth - 1)
    children = []
    for i in range(0, len(leaves), span):
        part = leaves[i : i + span]
        children.append(part[0] if depth == 1 else _subtree(part, depth - 1)[0])
    block = file_node(children)
    digest = hashlib.sha256(block).digest()
    node = _Node(
        cid_bytes(CODEC_DAG_PB, digest),
        len(block) + sum(c.tsize for c in children),
        sum(c.filesize for c in children),
    )
    return node, digest


def root_from_leaves(leaves: list[tuple[bytes, int]]) -> tuple[str, bytes]:
    """``(codec, digest)`` of the file whose raw leaves, in order, have these
    ``(sha256 digest, size)``: one leaf is the file itself (raw); more go under the
    shallowest balanced tree that holds them (depth d with MAX_LINKS**d >= count)."""
    if not leaves:
        raise ValueError("a file has at least one (possibly empty) leaf")
    if len(leaves) == 1:
        return CODEC_RAW, leaves[0][0]
    nodes = [_leaf(d, s) for d, s in leaves]
    depth = 1
    while MAX_LINKS**depth < len(nodes):
        depth += 1
    return CODEC_DAG_PB, _subtree(nodes, depth)[1]


def blob_id(data: bytes) -> tuple[str, bytes]:
    """``(codec, digest)`` of the blob's CID, as ``ipfs add --cid-version=1
    --raw-leaves`` computes it (the empty blob is the raw block of no bytes)."""
    view = memoryview(data)
    if len(view) <= CHUNK_SIZE:
        return CODEC_RAW, hashlib.sha256(view).digest()
    leaves = [
        (hashlib.sha256(view[i : i + CHUNK_SIZE]).digest(), len(view[i : i + CHUNK_SIZE]))
        for i in range(0, len(view), CHUNK_SIZE)
    ]
    return root_from_leaves(leaves)


def blob_cid(data: bytes) -> str:
    """The blob's CID string (what names its file in a round directory)."""
    return cid_text(*blob_id(data))


__all__ = [
    "CHUNK_SIZE",
    "CODECS",
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "MAX_LINKS",
    "blob_cid",
    "blob_id",
    "cid_bytes",
    "cid_text",
    "file_node",
    "parse_cid",
    "root_from_leaves",
]
