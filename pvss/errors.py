"""The one home of the errors raised by the math layer (SPEC.md §1.4).

Every message names the field (and index or party where there is one), so a caller
can tell *what* was wrong, not only *that* something was.
"""

from __future__ import annotations


class PvssError(Exception):
    """Base class of every error this project raises on purpose."""


class InvalidEncoding(PvssError, ValueError):
    """Bytes that do not decode to a valid value: wrong length, coordinate >= p,
    point off the curve, scalar >= r, or a non-canonical encoding."""


class InvalidProof(PvssError):
    """A proof (DLEQ, Schnorr PoP, SCRAPE dealing, decrypted share) that does not verify."""


class InvalidParameters(PvssError, ValueError):
    """Parameters outside what the scheme supports (threshold, committee size, indices)."""
