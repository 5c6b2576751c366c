"""Boards (SPEC.md §6.4, §7.4): the interface and its rules (``base``), the in-memory
board (``memory``) and the EVM round contract (``evm``, imported on demand: it needs
the ``evm`` extra)."""

from secagg.boards.base import (
    ZERO_HASH,
    Board,
    Fault,
    Phase,
    PostedShares,
    RoundState,
    RuleViolation,
    allowed_share_keys,
    compute_included,
    event_hash,
    phase_at,
    pop_party,
    seat_identity,
)
from secagg.boards.memory import JOURNAL_FILE, Journal, JournalCorrupt, MemoryBoard

__all__ = [
    "JOURNAL_FILE",
    "ZERO_HASH",
    "Board",
    "Fault",
    "Journal",
    "JournalCorrupt",
    "MemoryBoard",
    "Phase",
    "PostedShares",
    "RoundState",
    "RuleViolation",
    "allowed_share_keys",
    "compute_included",
    "event_hash",
    "phase_at",
    "pop_party",
    "seat_identity",
]
