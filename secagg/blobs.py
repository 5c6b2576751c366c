"""Content-addressed blob store (SPEC.md §6.6): a directory of files named by the
blob's IPFS CID (§6.6.1, secagg/unixfs.py). What the board holds is the CID's
sha2-256 digest; the bytes live here."""

from __future__ import annotations

import json
import mmap
import os
import re
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from secagg.errors import ProtocolError
from secagg.unixfs import CHUNK_SIZE, CODECS, blob_id, cid_text

_LEGACY_NAME = re.compile(r"[0-9a-f]{64}")


def blob_digest(data: bytes) -> bytes:
    """The 32-byte sha2-256 digest of the blob's CID (SPEC.md §6.6.1): what a
    ``MaskedInputPost`` or ``ResultPost`` carries. For a blob of at most 256 KiB it is
    the sha256 of the bytes; for a larger one, that of its UnixFS root node."""
    return blob_id(data)[1]


def blob_cids(digest: bytes) -> tuple[str, ...]:
    """The CID strings a board digest can stand for (raw, then dag-pb): which one
    follows from the blob's size, which a ``ResultPost`` does not carry."""
    return tuple(cid_text(codec, digest) for codec in CODECS)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory, so that a file created or renamed in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# from this size on a file's bytes go to disk with O_DIRECT where the platform and the
# file system allow it (Linux): no copy into the page cache, which costs several times
# the disk write itself on the virtual machines measured (SPEC.md §6.14)
DIRECT_IO_MIN_BYTES = 1 << 20
_DIRECT_ALIGN = 4096  # buffer address, offset and length alignment O_DIRECT needs
_DIRECT_CHUNK = 4 << 20
_direct_buffers = threading.local()


def _direct_buffer() -> mmap.mmap:
    buf = getattr(_direct_buffers, "buf", None)
    if buf is None:  # anonymous mmap: page-aligned, one per thread
        buf = _direct_buffers.buf = mmap.mmap(-1, _DIRECT_CHUNK)
    return buf


def _write_direct(fd: int, data: bytes) -> bool:
    """Write ``data`` from offset 0 of the empty file ``fd`` with O_DIRECT, through an
    aligned buffer (the last block zero-padded, then the file truncated to
    ``len(data)``). False, with the file left empty and its flags as they were, where
    O_DIRECT is unavailable or refused (the caller then writes it buffered)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or len(data) < DIRECT_IO_MIN_BYTES:
        return False
    try:
        import fcntl  # noqa: PLC0415 - POSIX only

        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag)
    except (OSError, ImportError):
        return False
    try:
        buf = _direct_buffer()
        view = memoryview(data)
        out = memoryview(buf)
        try:
            for at in range(0, len(view), _DIRECT_CHUNK):
                part = view[at : at + _DIRECT_CHUNK]
                size = -(-len(part) // _DIRECT_ALIGN) * _DIRECT_ALIGN
                out[: len(part)] = part
                if size > len(part):
                    out[len(part) : size] = bytes(size - len(part))
                done = 0
                while done < size:
                    done += os.pwrite(fd, out[done:size], at + done)
        finally:
            out.release()
        os.ftruncate(fd, len(data))
        return True
    except OSError:
        os.ftruncate(fd, 0)
        return False
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def write_synced(fd: int, data: bytes) -> None:
    """Write ``data`` into the new, empty file ``fd`` and fsync it (O_DIRECT for a
    large blob where possible, else buffered); the caller closes ``fd``."""
    if not _write_direct(fd, data):
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
    os.fsync(fd)


def _write_temp(directory: Path, data: bytes, mode: int = 0o644) -> Path:
    """A new temp file in ``directory`` (created with ``mode``) holding ``data``,
    fsync'ed; nothing is left behind if writing fails."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        try:
            os.fchmod(fd, mode)
            write_synced(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _replace_synced(target: Path, data: bytes, mode: int = 0o644) -> None:
    """``data`` fsync'ed in a temp file beside ``target``, then renamed over it (the
    directory is not fsync'ed: the caller does, once for all it renamed)."""
    tmp = _write_temp(target.parent, data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def durable_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write ``path`` atomically and durably (SPEC.md §6.14): the bytes go to a temp
    file in the same directory (created with ``mode``), are fsync'ed, renamed over
    ``path``, and the directory is fsync'ed. After a crash ``path`` holds either the
    old content or all of ``data``, never a mix."""
    target = Path(path)
    _replace_synced(target, data, mode)
    fsync_dir(target.parent)


class StagedBlob(NamedTuple):
    """A blob written and fsync'ed to a temp file of its store, not yet under its name
    (``BlobStore.stage``): ``commit`` renames it, ``abort`` removes it."""

    data: bytes
    cid: tuple[str, bytes]
    tmp: Path


def durable_write_many(
    items: Sequence[tuple[str | os.PathLike[str], bytes]], *, workers: int = 4
) -> None:
    """``durable_write`` of many files at once: each written to a temp file, fsync'ed and
    renamed on one of ``workers`` threads, then each directory involved fsync'ed once.
    When it returns every file is on disk under its name; if any write fails, the error
    is raised after the others finished (those files may or may not be in place)."""
    items = [(Path(path), data) for path, data in items]
    if not items:
        return
    with ThreadPoolExecutor(max(1, min(workers, len(items)))) as pool:
        jobs = [pool.submit(_replace_synced, path, data) for path, data in items]
        errors = [job.exception() for job in jobs]
    written = {path.parent for (path, _), exc in zip(items, errors, strict=True) if exc is None}
    for parent in sorted(written):
        fsync_dir(parent)
    for exc in errors:
        if exc is not None:
            raise exc


def _check(name: str, data: bytes, source: str) -> bytes:
    """The blob's bytes if their CID is ``name``; a blob whose content does not
    match its name is refused."""
    if cid_text(*blob_id(data)) != name:
        raise ProtocolError(f"blob {name} from {source} does not match its name (corrupted)")
    return data


class BlobStore:
    """Directory of blobs, each file named by its CID string. ``put`` is atomic and
    durable (write a temp file, fsync, rename, fsync the directory), so a crash never
    leaves a half-written blob under a valid name, and a blob ``put`` returned for is
    on disk (SPEC.md §6.14). A directory of the layout before CIDs (files named by
    the hex sha256) is not read: ``get`` says so (SPEC.md §6.6)."""

    def __init__(
        self, root: str | os.PathLike[str], *, create: bool = True, hold_bytes: int = 0
    ) -> None:
        """``create=False`` opens a store read-only in spirit: nothing is created (a
        verifier writes nothing into the directory it verifies).

        ``hold_bytes``: keep up to that many bytes of the blobs ``put`` here in memory
        (a server: the aggregator and its own re-verification read each blob right
        after accepting it). A held blob is the very ``bytes`` object whose CID ``put``
        computed or was given from it, so ``get`` returns it without reading the file
        or hashing it again; past the cap, blobs are read back from disk (and
        re-hashed) as usual. 0 (the default) holds nothing."""
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        if hold_bytes < 0:
            raise ValueError(f"blob store: hold_bytes must be >= 0, got {hold_bytes}")
        self.hold_bytes = hold_bytes
        self._held: dict[bytes, bytes] = {}
        self._held_size = 0

    def _hold(self, digest: bytes, data: bytes) -> None:
        if (
            type(data) is bytes  # immutable: what was hashed is what get() returns
            and digest not in self._held
            and self._held_size + len(data) <= self.hold_bytes
        ):
            self._held[digest] = data
            self._held_size += len(data)

    @property
    def held_bytes(self) -> int:
        """How many bytes of blobs are held in memory now."""
        return self._held_size

    def _find(self, digest: bytes) -> Path | None:
        for name in blob_cids(digest):
            if (self.root / name).exists():
                return self.root / name
        return None

    def path(self, digest: bytes) -> Path:
        """The file of the blob with this digest (ProtocolError when none is here)."""
        found = self._find(digest)
        if found is None:
            raise self._missing(digest)
        return found

    def _missing(self, digest: bytes) -> ProtocolError:
        if (self.root / digest.hex()).exists():
            return ProtocolError(
                f"blob {digest.hex()} is named by its hex sha256 (the round-directory "
                "layout before CIDs, SPEC.md §6.6), which this version does not read"
            )
        return ProtocolError(f"blob {blob_cids(digest)[0]} ({digest.hex()}) is missing")

    def put(self, data: bytes) -> bytes:
        digest, _ = self.put_new(data)
        return digest

    def put_new(self, data: bytes, cid: tuple[int, bytes] | None = None) -> tuple[bytes, bool]:
        """``put``, also telling whether the blob was new (False: already stored).
        ``cid``: the blob's ``blob_id(data)`` when the caller has just computed it from
        these very bytes (a server checking an upload against its post), so the blob is
        not hashed twice."""
        codec, digest = blob_id(data) if cid is None else cid
        target = self.root / cid_text(codec, digest)
        new = not target.exists()
        if new:
            durable_write(target, data)
        if self.hold_bytes:
            self._hold(digest, data)
        return digest, new

    def stage(self, data: bytes, cid: tuple[str, bytes] | None = None) -> StagedBlob:
        """The first half of ``put``, safe to run on a worker thread while the caller
        checks the post the blob belongs to: its CID computed (or ``cid``, if the
        caller computed it from these very bytes) and the bytes written and fsync'ed
        to a temp file in the store. Nothing is under a blob's name until ``commit``."""
        cid = blob_id(data) if cid is None else cid
        return StagedBlob(data, cid, _write_temp(self.root, data))

    def commit(self, staged: StagedBlob) -> tuple[bytes, bool]:
        """The second half of ``put``: the staged file renamed to the blob's name and the
        directory fsync'ed (on disk under its name when this returns; SPEC.md §6.14);
        ``(digest, new)`` as ``put_new``."""
        codec, digest = staged.cid
        target = self.root / cid_text(codec, digest)
        new = not target.exists()
        if new:
            os.replace(staged.tmp, target)
            fsync_dir(self.root)
        else:
            staged.tmp.unlink(missing_ok=True)
        if self.hold_bytes:
            self._hold(digest, staged.data)
        return digest, new

    def abort(self, staged: StagedBlob) -> None:
        """Drop a staged blob (its post was refused): the temp file is removed."""
        staged.tmp.unlink(missing_ok=True)

    def discard(self, digest: bytes) -> None:
        """Remove a blob (one stored for a post the board then refused)."""
        held = self._held.pop(digest, None)
        if held is not None:
            self._held_size -= len(held)
        for name in blob_cids(digest):
            (self.root / name).unlink(missing_ok=True)

    def get(self, digest: bytes) -> bytes:
        """The blob's bytes, their CID recomputed: a blob whose content does not match
        its name is refused. A held blob (``hold_bytes``) comes from memory: its CID
        was computed from these bytes when it was put."""
        held = self._held.get(digest)
        if held is not None:
            return held
        path = self.path(digest)
        return _check(path.name, path.read_bytes(), str(self.root))

    def __contains__(self, digest: bytes) -> bool:
        return self._find(digest) is not None


class IpfsBlobStore(BlobStore):
    """Blobs on an IPFS node, through kubo's HTTP RPC API (``--blobs ipfs:URL``, URL
    e.g. ``http://127.0.0.1:5001``; SPEC.md §6.6.2). ``put`` adds the bytes with
    ``cid-version=1, raw-leaves, chunker=size-262144`` and pins them, and refuses a
    node that names them by another CID; ``get`` reads them back offline (only what
    the node holds) and recomputes their CID, so a node serving other bytes is
    caught."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:  # noqa: D107
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProtocolError(f"--blobs ipfs:{url}: the RPC endpoint must be http(s)://HOST:PORT")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.hold_bytes, self._held, self._held_size = 0, {}, 0  # holds nothing

    def _rpc(self, command: str, args: dict[str, str], body: bytes | None = None) -> bytes:
        """POST ``/api/v0/<command>`` (kubo takes only POST); ProtocolError on any
        failure, with the node's message."""
        url = f"{self.url}/api/v0/{command}?{urllib.parse.urlencode(args)}"
        headers = {}
        if body is not None:
            boundary = uuid.uuid4().hex
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n'
                ).encode()
                + body
                + f"\r\n--{boundary}--\r\n".encode()
            )
        request = urllib.request.Request(url, data=body or b"", headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("Message", detail)
            except (ValueError, AttributeError):
                pass
            raise ProtocolError(f"ipfs node {self.url}: {command}: {detail}") from exc
        except (OSError, ValueError) as exc:
            raise ProtocolError(f"ipfs node {self.url}: {command}: {exc}") from exc

    def put_new(self, data: bytes, cid: tuple[int, bytes] | None = None) -> tuple[bytes, bool]:
        codec, digest = blob_id(data) if cid is None else cid
        name = cid_text(codec, digest)
        new = digest not in self
        args = {
            "cid-version": "1",
            "raw-leaves": "true",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "trickle": "false",
            "pin": "true",
            "quieter": "true",
        }
        reply = self._rpc("add", args, bytes(data))
        try:
            got = json.loads(reply.decode().strip().splitlines()[-1])["Hash"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProtocolError(f"ipfs node {self.url}: add: unreadable reply") from exc
        if got != name:
            raise ProtocolError(
                f"ipfs node {self.url}: add named a blob {got}, its CID is {name} (the node "
                "does not import with the settings of SPEC.md §6.6.1)"
            )
        return digest, new

    def discard(self, digest: bytes) -> None:
        """Unpin the blob (the node's garbage collector may then drop it)."""
        for name in blob_cids(digest):
            try:
                self._rpc("pin/rm", {"arg": name})
            except ProtocolError:
                pass  # not pinned under this name

    def _find_cid(self, digest: bytes) -> str | None:
        for name in blob_cids(digest):
            try:
                self._rpc("block/stat", {"arg": name, "offline": "true"})
            except ProtocolError:
                continue
            return name
        return None

    def path(self, digest: bytes) -> Path:
        raise ProtocolError(f"ipfs node {self.url}: blobs there have no local path")

    def get(self, digest: bytes) -> bytes:
        name = self._find_cid(digest)
        if name is None:
            raise ProtocolError(f"blob {blob_cids(digest)[0]} is missing on ipfs node {self.url}")
        return _check(name, self._rpc("cat", {"arg": name, "offline": "true"}), self.url)

    def __contains__(self, digest: bytes) -> bool:
        return self._find_cid(digest) is not None


def open_blob_store(spec: str, *, create: bool = False) -> BlobStore:
    """``ipfs:URL``: an :class:`IpfsBlobStore`; anything else: a directory."""
    if spec.startswith("ipfs:"):
        return IpfsBlobStore(spec.removeprefix("ipfs:"))
    return BlobStore(Path(spec), create=create)
