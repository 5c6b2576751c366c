"""Errors of the protocol layer (SPEC.md §1.4). The math errors are re-exported so a
caller can catch everything from one module."""

from __future__ import annotations

from pvss.errors import InvalidEncoding, InvalidParameters, InvalidProof, PvssError

__all__ = [
    "PvssError",
    "InvalidEncoding",
    "InvalidProof",
    "InvalidParameters",
    "ConfigError",
    "ProtocolError",
]


class ConfigError(PvssError, ValueError):
    """A round or masking configuration that cannot work (overflow bounds, thresholds,
    bit widths). The message names the field and the numbers."""


class ProtocolError(PvssError):
    """A message at the wrong stage, for the wrong round, or from an unknown party."""
