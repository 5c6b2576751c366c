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


class BlobStore:
    """Directory of blobs. ``put`` is atomic (write to a temp file, then rename), so a
    crash never leaves a half-written blob under a valid name."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        """``create=False`` opens a store read-only in spirit: nothing is created (a
        verifier writes nothing into the directory it verifies)."""
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        return self.root / digest.hex()

    def put(self, data: bytes) -> bytes:
        digest = blob_digest(data)
        target = self.path(digest)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return digest

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
