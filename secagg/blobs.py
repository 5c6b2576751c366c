"""Content-addressed blob store (SPEC.md §6.6): a directory of files named by the
sha256 of their bytes. What the board holds is the hash; the bytes live here."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from secagg.errors import ProtocolError


def blob_digest(data: bytes) -> bytes:
    """sha256 of the bytes: the blob's name."""
    return hashlib.sha256(data).digest()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory, so that a file created or renamed in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write ``path`` atomically and durably (SPEC.md §6.14): the bytes go to a temp
    file in the same directory (created with ``mode``), are fsync'ed, renamed over
    ``path``, and the directory is fsync'ed. After a crash ``path`` holds either the
    old content or all of ``data``, never a mix."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


class BlobStore:
    """Directory of blobs. ``put`` is atomic and durable (write a temp file, fsync,
    rename, fsync the directory), so a crash never leaves a half-written blob under a
    valid name, and a blob ``put`` returned for is on disk (SPEC.md §6.14)."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        """``create=False`` opens a store read-only in spirit: nothing is created (a
        verifier writes nothing into the directory it verifies)."""
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        return self.root / digest.hex()

    def put(self, data: bytes) -> bytes:
        digest, _ = self.put_new(data)
        return digest

    def put_new(self, data: bytes) -> tuple[bytes, bool]:
        """``put``, also telling whether the blob was new (False: already stored)."""
        digest = blob_digest(data)
        target = self.path(digest)
        if target.exists():
            return digest, False
        durable_write(target, data)
        return digest, True

    def discard(self, digest: bytes) -> None:
        """Remove a blob (one stored for a post the board then refused)."""
        self.path(digest).unlink(missing_ok=True)

    def get(self, digest: bytes) -> bytes:
        """The blob's bytes, re-hashed: a blob whose content does not match its name is
        refused."""
        path = self.path(digest)
        if not path.exists():
            raise ProtocolError(f"blob {digest.hex()} is missing")
        data = path.read_bytes()
        if blob_digest(data) != digest:
            raise ProtocolError(f"blob {digest.hex()} does not match its name (corrupted)")
        return data

    def __contains__(self, digest: bytes) -> bool:
        return self.path(digest).exists()
