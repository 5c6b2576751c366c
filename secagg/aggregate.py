"""Unmasking (SPEC.md §6.7): which masks to remove, with which sign, from which
revealed secrets — shared by the aggregator and the public verifier so both compute
the same thing the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pvss.errors import InvalidProof
from pvss.scrape import (
    DecryptedShare,
    ShareClaim,
    is_valid_share_batch,
    reconstruct,
    verify_decrypted_share,
)
from pvss.transcript import PURPOSE_SELF
from secagg.boards import RoundState, allowed_share_keys
from secagg.config import RoundConfig
from secagg.dp import check_included, postprocess, round_rotation_seed
from secagg.errors import ConfigError, ProtocolError
from secagg.graph import DealingKey, compute_mask_seed, dealing_context, pair_sign
from secagg.masking import unmask_sum
from secagg.packing import pack
from secagg.quantize import dequantize_sum


@dataclass(frozen=True)
class Removal:
    """Remove sign * PRG(seed of dealing ``key``) from the sum of the y_i."""

    key: DealingKey
    sign: int


def removal_plan(state: RoundState) -> list[Removal]:
    """Self masks of every i in U enter y_i with +1; a boundary pair dealing (one end c
    in U) entered y_c with pair_sign(c, other end)."""
    if state.included is None:
        raise ProtocolError("removal plan: the included set is not fixed yet")
    u = set(state.included)
    plan = []
    for key in allowed_share_keys(state):
        dealer, purpose, partner = key
        if purpose == PURPOSE_SELF:
            plan.append(Removal(key, 1))
        else:
            inside, outside = (dealer, partner) if dealer in u else (partner, dealer)
            plan.append(Removal(key, pair_sign(inside, outside)))
    return plan


def recover_seeds(
    state: RoundState,
    plan: list[Removal],
    *,
    verify: bool = True,
    on_invalid: Callable[[DealingKey, int, str], None] | None = None,
) -> list[tuple[bytes, int]]:
    """For every removal: verify posted shares until t+1 are valid, reconstruct S and
    derive the mask seed. The first t+1 shares of every removal are checked in one batch
    (SPEC.md §4.5); only if that fails are shares checked one by one, skipping the bad.
    Trusts nothing the board says about the shares' validity; ``on_invalid(key, member,
    reason)`` is told about any share that fails. With
    ``verify=False`` the caller vouches that every share was verified already (the
    public verifier has, while replaying the transcript)."""
    cfg = state.config
    t = cfg.threshold
    if verify:
        # the common case in one batch: the first t+1 posted shares of every removal
        claims = [
            ShareClaim(share, state.dealings[rem.key], state.members[member], ctx)
            for rem in plan
            for ctx in (dealing_context(cfg, rem.key),)
            for member, share in sorted(state.shares.get(rem.key, {}).items())[: t + 1]
        ]
        if len(claims) == len(plan) * (t + 1) and is_valid_share_batch(claims):
            verify = False  # every share used below was just verified
    out: list[tuple[bytes, int]] = []
    for rem in plan:
        ctx = dealing_context(cfg, rem.key)
        dealing = state.dealings[rem.key]
        good: list[DecryptedShare] = []
        for member, share in sorted(state.shares.get(rem.key, {}).items()):
            try:
                if verify:  # the batch failed (or some removal lacks t+1): one by one
                    verify_decrypted_share(share, dealing, state.members[member], ctx)
            except InvalidProof as exc:
                if on_invalid is not None:
                    on_invalid(rem.key, member, str(exc))
                continue
            good.append(share)
            if len(good) == t + 1:
                break
        if len(good) < t + 1:
            raise ProtocolError(
                f"dealing {rem.key}: only {len(good)} valid shares, need t+1 = {t + 1}"
            )
        secret = reconstruct(good, t)
        out.append((compute_mask_seed(ctx, secret), rem.sign))
    return out


def compute_sum(
    state: RoundState,
    masked_inputs: list[bytes],
    seeds: list[tuple[bytes, int]],
    backend: str | None = None,
) -> np.ndarray:
    """sum_{i in U} y_i - sum sign * PRG(seed), mod 2^b: the integer weighted sum."""
    cfg = state.config
    return unmask_sum(masked_inputs, cfg.vector_length, cfg.bits, seeds, backend=backend)


def result_blob(total: np.ndarray, bits: int) -> bytes:
    """The result blob: the integer sum packed at b bits per coordinate."""
    return pack(total, bits)


def dp_rotation_seed(state: RoundState) -> bytes:
    """The round's public DP rotation seed, derived from the round seed (SPEC.md §10.6)."""
    if state.round_seed is None:
        raise ProtocolError("dp: the round seed is not fixed yet (the rotation derives from it)")
    return round_rotation_seed(state.round_seed)


def check_dp_included(config: RoundConfig, n_included: int) -> None:
    """With DP, refuse (ProtocolError) a sum over fewer than dp.min_clients clients: it
    would carry too little noise for the promised epsilon."""
    if config.has_dp:
        try:
            check_included(config.dp, n_included)
        except ConfigError as exc:
            raise ProtocolError(f"dp: {exc}") from None


def result_mean(
    config: RoundConfig, total: np.ndarray, rotation_seed: bytes | None = None
) -> np.ndarray:
    """The round's mean from its sum: the dequantized weighted mean, or with DP the
    noisy unweighted mean of the clipped updates (``rotation_seed`` required)."""
    if config.has_dp:
        if rotation_seed is None:
            raise ProtocolError("dp: the mean needs the round's rotation seed")
        return postprocess(total[:-1], config.dp, rotation_seed, int(total[-1]), bits=config.bits)
    return dequantize_sum(total, config.clip, config.quant_bits)
