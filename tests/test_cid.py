"""Blob CIDs (SPEC.md §6.6.1): exact against CIDs IPFS implementations published,
round directories named by CID, tampering still caught, and the kubo RPC store."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.parse
import urllib.request
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cid as pycid
import multihash
import pytest

from secagg.blobs import BlobStore, IpfsBlobStore, blob_cids, blob_digest
from secagg.cli import main
from secagg.errors import ProtocolError
from secagg.unixfs import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    blob_cid,
    blob_id,
    cid_text,
    parse_cid,
    root_from_leaves,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "unixfs_kubo.json").read_text())


# -- known vectors ---------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["known"], ids=lambda c: repr(c["text"]))
def test_raw_cid_of_known_strings(case: dict) -> None:
    """The empty string's and "hello world"'s raw CIDv1, as IPFS publishes them."""
    assert blob_cid(case["text"].encode()) == case["cid"]
    assert parse_cid(case["cid"]) == (CODEC_RAW, hashlib.sha256(case["text"].encode()).digest())


@pytest.mark.parametrize("case", VECTORS["small"], ids=lambda c: c["name"])
def test_small_files_match_kubo(case: dict) -> None:
    assert blob_cid(bytes.fromhex(case["hex"])) == case["cid"]


@pytest.mark.parametrize("case", VECTORS["files"], ids=lambda c: c["name"])
def test_chunked_files_match_kubo(case: dict) -> None:
    """174 leaves: one node; 175 and 176: a depth-2 tree whose last child is a node
    over one or two leaves — the balanced layout's boundary, against kubo's CIDs."""
    table = [(bytes.fromhex(h), s) for h, s in case["leaf_table"]]
    leaves = [table[i] for i in case["leaves"]]
    assert sum(s for _, s in leaves) == case["size"]
    assert all(s == CHUNK_SIZE for _, s in leaves[:-1])
    assert cid_text(*root_from_leaves(leaves)) == case["cid"]
    assert parse_cid(case["cid"])[0] == CODEC_DAG_PB


def test_chunking_boundary() -> None:
    """Up to 256 KiB a blob is its own raw block; one byte more is a two-leaf file."""
    data = bytes(range(256)) * (CHUNK_SIZE // 256) + b"x"
    assert blob_id(data[:CHUNK_SIZE]) == (CODEC_RAW, hashlib.sha256(data[:CHUNK_SIZE]).digest())
    leaves = [
        (hashlib.sha256(data[:CHUNK_SIZE]).digest(), CHUNK_SIZE),
        (hashlib.sha256(b"x").digest(), 1),
    ]
    assert blob_id(data) == root_from_leaves(leaves)
    assert blob_id(data)[0] == CODEC_DAG_PB
    assert blob_digest(data) != hashlib.sha256(data).digest()


def test_parse_cid_refuses_what_cannot_name_a_blob() -> None:
    hello = VECTORS["known"][1]["cid"]
    digest = hashlib.sha256(b"hello world").digest()
    mh = multihash.encode(digest, "sha2-256")
    others = {
        "CIDv0": pycid.make_cid(0, "dag-pb", mh).encode().decode(),
        "base58 form": pycid.make_cid(1, "raw", mh).encode("base58btc").decode(),
        "upper case": hello.upper(),
        "dag-cbor": pycid.make_cid(1, "dag-cbor", mh).encode("base32").decode(),
        "sha2-512": pycid.make_cid(
            1, "raw", multihash.encode(hashlib.sha512(b"x").digest(), "sha2-512")
        )
        .encode("base32")
        .decode(),
        "garbage": "bafk!",
    }
    for what, text in others.items():
        with pytest.raises(ProtocolError):
            parse_cid(text)
        assert what  # each case above is refused
    assert parse_cid(hello) == (CODEC_RAW, digest)


# -- the filesystem store ----------------------------------------------------------


def test_store_names_blobs_by_cid_and_refuses_tampering(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    small, large = b"hello world", os.urandom(CHUNK_SIZE * 2 + 5)
    for data in (small, large):
        digest, new = store.put_new(data)
        assert new and store.put_new(data) == (digest, False)
        assert store.path(digest).name == blob_cid(data) and store.get(digest) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([blob_cid(small), blob_cid(large)])
    path = store.path(blob_digest(large))
    path.write_bytes(large[:-1] + bytes([large[-1] ^ 1]))
    with pytest.raises(ProtocolError, match="does not match its name"):
        store.get(blob_digest(large))


def test_a_held_blob_is_served_from_memory_within_the_cap(tmp_path: Path) -> None:
    """``hold_bytes`` (SPEC.md §6.6): what ``put`` hashed stays in memory up to the cap
    and ``get`` returns those bytes; past the cap, or after ``discard``, blobs come
    from disk and are re-hashed (a tampered file is caught)."""
    a, b = os.urandom(3000), os.urandom(3000)
    store = BlobStore(tmp_path, hold_bytes=4000)
    da, db = store.put(a), store.put(b)
    assert store.held_bytes == 3000  # b did not fit
    store.path(da).write_bytes(b"x" * 3000)  # the disk copy of a changes: not read
    assert store.get(da) is a
    store.path(db).write_bytes(b[:-1] + bytes([b[-1] ^ 1]))
    with pytest.raises(ProtocolError, match="does not match its name"):
        store.get(db)  # not held: from disk, re-hashed
    store.discard(da)
    assert store.held_bytes == 0 and da not in store
    with pytest.raises(ProtocolError, match="missing"):
        store.get(da)
    store.put(bytearray(a))  # a mutable buffer is never held
    assert store.held_bytes == 0
    with pytest.raises(ValueError, match="hold_bytes"):
        BlobStore(tmp_path, hold_bytes=-1)


def test_staged_blobs_commit_under_their_name_or_leave_nothing(tmp_path: Path) -> None:
    """``stage`` writes and fsyncs a temp file (off the board's thread), ``commit`` puts
    it under its CID, ``abort`` removes it: no temp file is left either way."""
    store = BlobStore(tmp_path, hold_bytes=1 << 30)
    data, other = os.urandom(CHUNK_SIZE * 5 + 7), os.urandom(100)
    staged = store.stage(data)
    assert staged.cid == blob_id(data) and staged.tmp.read_bytes() == data
    assert blob_digest(data) not in store  # nothing under its name yet
    assert store.commit(staged) == (blob_digest(data), True)
    assert store.get(blob_digest(data)) is data
    again = store.stage(data)
    assert store.commit(again) == (blob_digest(data), False)  # already stored
    dropped = store.stage(other)
    store.abort(dropped)
    assert sorted(p.name for p in tmp_path.iterdir()) == [blob_cid(data)]


@pytest.mark.parametrize("direct", [True, False])
def test_durable_writes_round_trip_at_every_alignment(tmp_path: Path, monkeypatch, direct) -> None:
    """Large blobs go to disk with O_DIRECT where available (SPEC.md §6.14), through an
    aligned buffer and a final truncate; every size around the block and chunk
    boundaries reads back exactly, and without O_DIRECT the buffered path does too."""
    import secagg.blobs as blobs  # noqa: PLC0415

    if not direct:
        monkeypatch.delattr(os, "O_DIRECT", raising=False)
    monkeypatch.setattr(blobs, "DIRECT_IO_MIN_BYTES", 4096)
    chunk = blobs._DIRECT_CHUNK  # noqa: SLF001
    for size in (0, 1, 4095, 4096, 4097, chunk - 1, chunk, chunk + 1, 2 * chunk + 4096 + 3):
        data = os.urandom(size)
        blobs.durable_write(tmp_path / "f", data)
        assert (tmp_path / "f").read_bytes() == data, size
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
    fd = os.open(tmp_path / "g", os.O_WRONLY | os.O_CREAT, 0o644)
    try:  # which path ran: O_DIRECT where the platform has it (unless the file system
        # refuses it, as some tmpfs do), never without it
        used = blobs._write_direct(fd, os.urandom(8192))  # noqa: SLF001
    finally:
        os.close(fd)
    if not direct:
        assert not used  # no O_DIRECT flag: always the buffered path
    if not used:
        assert os.path.getsize(tmp_path / "g") == 0  # refused: the file is left empty


def test_many_durable_writes_land_whole_and_report_a_failure(tmp_path: Path) -> None:
    """``durable_write_many`` (the Flower server's per-upload resume files, SPEC.md
    §8.4): every file in place with its bytes and no temp file left; a write that fails
    (its directory is missing) is raised after the others landed."""
    from secagg.blobs import durable_write_many  # noqa: PLC0415

    items = [(tmp_path / f"fit-{i}.msgpack", os.urandom(i * 37)) for i in range(12)]
    durable_write_many(items)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p, _ in items)
    assert all(path.read_bytes() == data for path, data in items)
    durable_write_many([])  # nothing to do
    with pytest.raises(FileNotFoundError):
        durable_write_many([(tmp_path / "a", b"1"), (tmp_path / "missing" / "b", b"2")])
    assert (tmp_path / "a").read_bytes() == b"1"


def test_store_refuses_a_large_blob_under_a_raw_name(tmp_path: Path) -> None:
    """A name is canonical: a > 256 KiB blob saved as one raw block (its sha256) is
    not what the board's digest names, and is not read as such."""
    data = os.urandom(CHUNK_SIZE + 1)
    digest = hashlib.sha256(data).digest()
    (tmp_path / cid_text(CODEC_RAW, digest)).write_bytes(data)
    with pytest.raises(ProtocolError, match="does not match its name"):
        BlobStore(tmp_path, create=False).get(digest)


def test_store_says_so_for_a_legacy_sha256_named_blob(tmp_path: Path) -> None:
    data = b"a blob from before CIDs"
    digest = hashlib.sha256(data).digest()
    (tmp_path / digest.hex()).write_bytes(data)
    store = BlobStore(tmp_path, create=False)
    assert digest not in store
    with pytest.raises(ProtocolError, match="layout before CIDs"):
        store.get(digest)


# -- a round directory named by CIDs -------------------------------------------------


def _round(tmp_path: Path) -> Path:
    """A round whose masked vectors (34000 x 62 bits = 263,508 bytes) are over one
    chunk: CID-named dag-pb files."""
    out = tmp_path / "round"
    args = ["simulate", "--clients", "4", "--dim", "34000", "--bits", "62", "--out", str(out)]
    assert main(args) == 0
    return out


def test_verify_with_cid_named_blobs_and_tampering(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from secagg.boards.memory import MemoryBoard
    from secagg.verifier import load_round

    out = _round(tmp_path)
    transcript, _ = load_round(out)
    st = MemoryBoard.replay(transcript).state()
    names = sorted(p.name for p in (out / "blobs").iterdir())
    posted = {d for d, _ in st.masked.values()} | {st.result.digest}
    assert names == sorted(cid_text(*parse_cid(n)) for n in names)  # all canonical CIDs
    assert {parse_cid(n)[1] for n in names} == posted
    assert all(parse_cid(n)[0] == CODEC_DAG_PB for n in names)  # every blob > 256 KiB
    capsys.readouterr()
    assert main(["verify", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    # --blobs DIR elsewhere: the same directory, moved
    moved = tmp_path / "elsewhere"
    (out / "blobs").rename(moved)
    assert main(["verify", str(out), "--blobs", str(moved)]) == 0
    capsys.readouterr()
    # a tampered masked vector: the blob store's finding, exit 1
    digest = st.masked[st.included[0]][0]
    victim = next(p for p in moved.iterdir() if parse_cid(p.name)[1] == digest)
    raw = bytearray(victim.read_bytes())
    raw[CHUNK_SIZE + 3] ^= 1  # in the second leaf
    victim.write_bytes(bytes(raw))
    assert main(["verify", str(out), "--blobs", str(moved), "--json"]) == 1
    faults = json.loads(capsys.readouterr().out)["faults"]
    assert faults[0]["party"] == "blob store" and "does not match its name" in faults[0]["detail"]
    # the same blob under its old sha256-hex name: refused, saying why
    victim.unlink()
    (moved / digest.hex()).write_bytes(b"anything")
    assert main(["verify", str(out), "--blobs", str(moved), "--json"]) == 1
    faults = json.loads(capsys.readouterr().out)["faults"]
    assert "layout before CIDs" in faults[0]["detail"]


# -- the kubo RPC store ---------------------------------------------------------------


class _FakeKubo(BaseHTTPRequestHandler):
    """A FAKE kubo RPC endpoint on loopback (add, cat, block/stat, pin/rm): it tests
    the HTTP transport and the store's checks, not kubo. It names a blob by its raw
    CID computed here from py-cid and hashlib, independently of secagg.unixfs, and so
    only takes blobs of at most one chunk (what a raw-leaves add makes one block)."""

    blocks: dict[str, bytes] = {}
    serve_wrong: bool = False  # cat answers other bytes (a lying node)
    name_wrong: bool = False  # add answers another CID (a node importing otherwise)

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        args = dict(urllib.parse.parse_qsl(url.query))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        command = url.path.removeprefix("/api/v0/")
        if command == "add":
            assert args["cid-version"] == "1" and args["raw-leaves"] == "true"
            assert args["chunker"] == "size-262144"
            msg = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
            )
            data = next(msg.iter_parts()).get_content()
            if len(data) > CHUNK_SIZE:
                return self._reply(500, b'{"Message": "the fake takes one chunk at most"}')
            name = (
                pycid.make_cid(
                    1, "raw", multihash.encode(hashlib.sha256(data).digest(), "sha2-256")
                )
                .encode("base32")
                .decode()
            )
            self.blocks[name] = data
            if self.name_wrong:  # as if wrapped in a dag-pb leaf (raw-leaves off)
                name = "bafybeibml5uieyxa5tufngvg7fgwbkwvlsuntwbxgtskoqynbt7wlchmfm"
            return self._reply(200, json.dumps({"Hash": name}).encode() + b"\n")
        name = args.get("arg", "")
        if command in ("cat", "block/stat") and args.get("offline") != "true":
            return self._reply(500, b'{"Message": "online lookups are not faked"}')
        if name not in self.blocks:
            return self._reply(500, b'{"Message": "block was not found locally (offline)"}')
        if command == "cat":
            data = self.blocks[name]
            return self._reply(200, data + b"!" if self.serve_wrong else data)
        if command == "block/stat":
            return self._reply(200, json.dumps({"Key": name}).encode())
        if command == "pin/rm":
            return self._reply(200, b"{}")
        return self._reply(404, b"404 page not found")


@pytest.fixture
def fake_kubo():  # noqa: ANN201
    _FakeKubo.blocks = {}
    _FakeKubo.serve_wrong = _FakeKubo.name_wrong = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKubo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_ipfs_store_against_a_fake_node(fake_kubo: str) -> None:
    """Transport only (the fake is not kubo): put / get / contains round-trip, and a
    node that serves other bytes is caught by the recomputed CID."""
    store = IpfsBlobStore(fake_kubo, timeout=10)
    data = b"masked vector bytes" * 100
    digest, new = store.put_new(data)
    assert new and digest == blob_digest(data) and digest in store
    assert store.put_new(data) == (digest, False)
    assert store.get(digest) == data
    missing = hashlib.sha256(b"never stored").digest()
    assert missing not in store
    with pytest.raises(ProtocolError, match="missing"):
        store.get(missing)
    _FakeKubo.serve_wrong = True
    with pytest.raises(ProtocolError, match="does not match its name"):
        store.get(digest)


def test_ipfs_store_refuses_a_node_that_names_blobs_otherwise(fake_kubo: str, capsys) -> None:  # noqa: ANN001
    """A node whose CID for a blob is not ours is refused (it imports with other
    settings); a node's own error is passed on; a URL that is no http(s) endpoint is
    refused, by ``verify --blobs`` with exit 2."""
    store = IpfsBlobStore(fake_kubo, timeout=10)
    _FakeKubo.name_wrong = True
    with pytest.raises(ProtocolError, match="does not import with the settings"):
        store.put(b"hello world")
    _FakeKubo.name_wrong = False
    with pytest.raises(ProtocolError, match="one chunk at most"):
        store.put(os.urandom(CHUNK_SIZE + 1))
    with pytest.raises(ProtocolError, match="must be http"):
        IpfsBlobStore("127.0.0.1:5001")
    assert main(["verify", "--rpc", "x", "--contract", "y", "--blobs", "ipfs:5001"]) == 2
    assert "must be http" in capsys.readouterr().err


def test_verify_reads_blobs_from_ipfs(tmp_path: Path, fake_kubo: str, capsys) -> None:  # noqa: ANN001
    """``verify DIR --blobs ipfs:URL`` on a small round (blobs of one chunk, which the
    fake can name), and a node serving altered bytes fails the verification."""
    out = tmp_path / "round"
    assert main(["simulate", "--clients", "4", "--dim", "64", "--out", str(out)]) == 0
    store = IpfsBlobStore(fake_kubo, timeout=10)
    for p in (out / "blobs").iterdir():
        assert store.put(p.read_bytes()) == parse_cid(p.name)[1]
    capsys.readouterr()
    assert main(["verify", str(out), "--blobs", f"ipfs:{fake_kubo}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    _FakeKubo.serve_wrong = True
    assert main(["verify", str(out), "--blobs", f"ipfs:{fake_kubo}", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["faults"][0]["party"] == "blob store"


def _kubo_url() -> str | None:
    url = os.environ.get("PVSS_IPFS_API", "http://127.0.0.1:5001")
    if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None  # loopback only
    try:
        req = urllib.request.Request(f"{url}/api/v0/version", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=2) as response:
            return url if b"Version" in response.read() else None
    except OSError:
        return None


def test_real_kubo_node_names_blobs_as_we_do() -> None:
    """Against a real kubo node on loopback (PVSS_IPFS_API, default 127.0.0.1:5001):
    a one-chunk and a three-chunk blob get the CIDs computed here, and read back."""
    url = _kubo_url()
    if url is None:
        pytest.skip("no kubo RPC API reachable on loopback (PVSS_IPFS_API or 127.0.0.1:5001)")
    store = IpfsBlobStore(url)
    for data in (os.urandom(1000), os.urandom(2 * CHUNK_SIZE + 7)):
        digest = store.put(data)  # refuses a CID other than ours
        assert digest in store and store.get(digest) == data
        assert blob_cid(data) in blob_cids(digest)
