"""Unmasking (SPEC.md §6.7): which masks to remove, with which sign, from which
revealed secrets — shared by the aggregator and the public verifier so both compute
the same thing the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pvss.errors import InvalidProof
from pvss.group import G1Point
from pvss.scrape import (
    SharePostClaim,
    invalid_share_posts,
    reconstruct,
    share_post_claim,
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
    on_invalid: Callable[[int, str], None] | None = None,
) -> list[tuple[bytes, int]]:
    """For every removal: reconstruct S from t+1 shares of posts that verify, and derive
    the mask seed. Shares come in share posts, each proved by one DLEQ (SPEC.md §4.5):
    the posts holding the first t+1 shares of every removal are checked in one batch
    (``invalid_share_posts``); a post that fails is dropped whole (its member is told to
    ``on_invalid(member, reason)``) and the next members' posts are checked, until every
    removal has t+1 shares from verified posts. Trusts nothing the board says about the
    posts' validity. With ``verify=False`` the caller vouches that every post was
    verified already (the public verifier has, while replaying the transcript)."""
    cfg = state.config
    t = cfg.threshold
    # every S_k is read from the post that carries it (the post its proof covers), never
    # from a separate table: origin[(key, k)] = (post position, S_k)
    origin: dict[tuple[DealingKey, int], tuple[int, G1Point]] = {}
    by_key: dict[DealingKey, set[int]] = {}
    for pos, posted in enumerate(state.share_posts):
        k = posted.post.index
        for key, pt in zip(posted.keys, posted.post.shares, strict=True):
            origin.setdefault((key, k), (pos, pt))
            by_key.setdefault(key, set()).add(k)
    bad: set[int] = set()

    def usable(key: DealingKey) -> list[int]:
        members = sorted(by_key.get(key, ()))
        return [m for m in members if origin[(key, m)][0] not in bad][: t + 1]

    if verify:
        checked: set[int] = set()
        while True:
            todo = sorted(
                {origin[(rem.key, m)][0] for rem in plan for m in usable(rem.key)} - checked
            )
            if not todo:
                break
            claims: list[SharePostClaim] = []
            where: list[int] = []
            for pos in todo:
                posted = state.share_posts[pos]
                member = posted.post.index
                items = [(state.dealings[k], dealing_context(cfg, k)) for k in posted.keys]
                try:
                    claims.append(share_post_claim(posted.post, state.members[member], items))
                    where.append(pos)
                except InvalidProof as exc:
                    bad.add(pos)
                    if on_invalid is not None:
                        on_invalid(member, str(exc))
            for at, why in invalid_share_posts(claims):
                bad.add(where[at])
                if on_invalid is not None:
                    on_invalid(state.share_posts[where[at]].post.index, why)
            checked.update(todo)
    out: list[tuple[bytes, int]] = []
    for rem in plan:
        ctx = dealing_context(cfg, rem.key)
        members = usable(rem.key)
        if len(members) < t + 1:
            raise ProtocolError(
                f"dealing {rem.key}: only {len(members)} valid shares, need t+1 = {t + 1}"
            )
        secret = reconstruct({m: origin[(rem.key, m)][1] for m in members}, t)
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
