"""SCRAPE PVSS, DDH variant, with an optional recipient at index 0 (SPEC.md §4).

Notation of the paper (Cascudo–David, "SCRAPE", ACNS 2017), kept inside this module:
p(X) the dealer's polynomial of degree t, s = p(0); for every evaluation point k
``v[k] = p(k)*G`` (SCRAPE's v_i), ``s_hat[k] = p(k)*pk_k`` (the encrypted share
ŝ_i), a DLEQ proof that both use the same p(k); the shared secret is S = s*H.

Evaluation points are consecutive integers: 1..m for the committee, plus 0 for a
recipient when the dealing has one. The recipient decrypts S directly from
s_hat[0]; committee members decrypt S_k = p(k)*H and t+1 of them reconstruct S.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gmpy2 import mpz

from pvss.dleq import DLEQ_PROOF_BYTES, DleqProof, prove_dleq, verify_dleq
from pvss.errors import InvalidEncoding, InvalidParameters, InvalidProof
from pvss.field import dual_codeword, eval_poly, inv_mod_r, lagrange_at_zero
from pvss.group import (
    DEALER_TABLE_WINDOW,
    ORDER,
    G,
    G1Point,
    H,
    g_table,
    h_table,
    msm,
    msm_signed,
    msm_signed_many,
    mul_each,
    random_scalar,
    scalar_from_bytes,
    scalar_to_bytes,
    table_for,
    tables_for,
)
from pvss.keys import H_SEED, KeyPair, seed_reveal_transcript, verify_seed_reveal
from pvss.transcript import (
    DST_DEALING,
    DST_DECRYPTED_SHARE,
    DST_RS_DUAL,
    DST_SHARE_POST,
    DST_SHARE_POST_PROOF,
    Context,
    Transcript,
    keccak256,
)

R = int(ORDER)
MAX_POINTS = 1024
SHARE_RECORD_BYTES = 4 * 64 + 32
DEALING_HEADER_BYTES = 5
DECRYPTED_SHARE_BYTES = 2 + 64 + DLEQ_PROOF_BYTES
#: bits of each random weight of the batch verifiers (soundness error 2^-128)
BATCH_WEIGHT_BITS = 128
#: bits of each Fiat–Shamir weight rho_i of an aggregated share post (SPEC.md §4.5)
SHARE_POST_WEIGHT_BITS = 128
#: uint16 k || uint16 N header of a share post's bytes, then N x S_i and one proof
SHARE_POST_HEADER_BYTES = 4
#: most shares one post may hold (uint16 N)
MAX_POST_SHARES = 0xFFFF


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dealing:
    """A SCRAPE dealing: for each evaluation point (0 first when there is a recipient,
    then 1..m) the commitment v, the encrypted share s_hat, the DLEQ commitments a1,
    a2 and the response z. The challenge e is recomputed, never sent."""

    threshold: int
    has_recipient: bool
    v: tuple[G1Point, ...]
    s_hat: tuple[G1Point, ...]
    a1: tuple[G1Point, ...]
    a2: tuple[G1Point, ...]
    z: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.v)
        for name in ("s_hat", "a1", "a2", "z"):
            if len(getattr(self, name)) != n:
                raise InvalidEncoding(
                    f"dealing.{name}: {len(getattr(self, name))} entries, v has {n}"
                )
        if not 1 <= n <= MAX_POINTS:
            raise InvalidEncoding(f"dealing: {n} evaluation points, allowed 1..{MAX_POINTS}")
        if not isinstance(self.threshold, int) or self.threshold < 1:
            raise InvalidEncoding(f"dealing.threshold: {self.threshold} < 1")
        if self.committee_size < self.threshold + 1:
            raise InvalidEncoding(
                f"dealing.threshold: t={self.threshold} needs at least t+1 committee "
                f"points, dealing has {self.committee_size}"
            )
        for i, z in enumerate(self.z):
            if not isinstance(z, int) or not 0 <= z < R:
                raise InvalidEncoding(f"dealing.z[{i}]: not a scalar in [0, r)")

    @property
    def n_points(self) -> int:
        return len(self.v)

    @property
    def committee_size(self) -> int:
        return len(self.v) - int(self.has_recipient)

    @property
    def indices(self) -> tuple[int, ...]:
        """Evaluation point of each entry: (0, 1, .., m) or (1, .., m)."""
        first = 0 if self.has_recipient else 1
        return tuple(range(first, first + len(self.v)))

    def position(self, index: int) -> int:
        """Position of evaluation point ``index`` in the tuples."""
        pos = index - (0 if self.has_recipient else 1)
        if not 0 <= pos < len(self.v):
            raise InvalidParameters(f"dealing: no evaluation point {index}")
        return pos

    def to_bytes(self) -> bytes:
        """uint16 t || uint8 has_recipient || uint16 N || N x (v || s_hat || a1 || a2 || z)."""
        out = [
            self.threshold.to_bytes(2, "big"),
            bytes([int(self.has_recipient)]),
            len(self.v).to_bytes(2, "big"),
        ]
        for i in range(len(self.v)):
            out += [
                self.v[i].to_bytes(),
                self.s_hat[i].to_bytes(),
                self.a1[i].to_bytes(),
                self.a2[i].to_bytes(),
                scalar_to_bytes(self.z[i]),
            ]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> Dealing:
        """Decode and validate every field; raises ``InvalidEncoding`` naming it."""
        data = bytes(data)
        if len(data) < DEALING_HEADER_BYTES:
            raise InvalidEncoding(f"dealing: {len(data)} bytes is shorter than the header")
        t = int.from_bytes(data[0:2], "big")
        if data[2] not in (0, 1):
            raise InvalidEncoding(f"dealing.has_recipient: byte {data[2]} is not 0 or 1")
        n = int.from_bytes(data[3:5], "big")
        expected = DEALING_HEADER_BYTES + n * SHARE_RECORD_BYTES
        if len(data) != expected:
            raise InvalidEncoding(f"dealing: expected {expected} bytes for N={n}, got {len(data)}")
        cols: dict[str, list] = {"v": [], "s_hat": [], "a1": [], "a2": [], "z": []}
        off = DEALING_HEADER_BYTES
        valid = G1Point._valid_coords
        wrap = G1Point._from_affine
        big = int.from_bytes
        for i in range(n):
            for name in ("v", "s_hat", "a1", "a2"):
                x = mpz(big(data[off : off + 32], "big"))
                y = mpz(big(data[off + 32 : off + 64], "big"))
                if not valid(x, y):  # let the full decoder name the field and the reason
                    G1Point.from_bytes(data[off : off + 64], field=f"dealing.{name}[{i}]")
                cols[name].append(wrap((x, y) if (x or y) else None))
                off += 64
            cols["z"].append(scalar_from_bytes(data[off : off + 32], field=f"dealing.z[{i}]"))
            off += 32
        return cls(
            threshold=t,
            has_recipient=bool(data[2]),
            v=tuple(cols["v"]),
            s_hat=tuple(cols["s_hat"]),
            a1=tuple(cols["a1"]),
            a2=tuple(cols["a2"]),
            z=tuple(cols["z"]),
        )


@dataclass(frozen=True)
class DecryptedShare:
    """Member ``index``'s decryption S_k = p(k)*H of its encrypted share, with a DLEQ
    proof that log_H pk_k = log_{S_k} s_hat_k."""

    index: int
    share: G1Point
    proof: DleqProof = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or not 1 <= self.index <= 0xFFFF:
            raise InvalidEncoding(f"decrypted_share.index: {self.index} outside 1..65535")

    def to_bytes(self) -> bytes:
        """uint16 index || S_k (64) || A1 (64) || A2 (64) || z (32): 226 bytes."""
        return self.index.to_bytes(2, "big") + self.share.to_bytes() + self.proof.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DecryptedShare:
        data = bytes(data)
        if len(data) != DECRYPTED_SHARE_BYTES:
            raise InvalidEncoding(
                f"decrypted_share: expected {DECRYPTED_SHARE_BYTES} bytes, got {len(data)}"
            )
        return cls(
            index=int.from_bytes(data[0:2], "big"),
            share=G1Point.from_bytes(data[2:66], field="decrypted_share.share"),
            proof=DleqProof.from_bytes(data[66:], field="decrypted_share.proof"),
        )


# ---------------------------------------------------------------------------
# Transcripts
# ---------------------------------------------------------------------------


def _point_keys(committee_pks: Sequence[G1Point], recipient_pk: G1Point | None) -> list[G1Point]:
    return ([recipient_pk] if recipient_pk is not None else []) + list(committee_pks)


def dealing_transcript(
    context: Context,
    threshold: int,
    keys: Sequence[G1Point],
    has_recipient: bool,
    v: Sequence[G1Point],
    s_hat: Sequence[G1Point],
    a1: Sequence[G1Point],
    a2: Sequence[G1Point],
) -> Transcript:
    """DST_DEALING || context || uint16 t || uint8 has_recipient || uint16 N ||
    N x (pk_k || v_k || s_hat_k || a1_k || a2_k)   (SPEC.md §4.2)."""
    tr = (
        Transcript(DST_DEALING)
        .context(context)
        .uint(threshold, 16, "dealing.threshold")
        .uint(int(has_recipient), 8, "dealing.has_recipient")
        .uint(len(v), 16, "dealing.n_points")
    )
    for i in range(len(v)):
        tr.point(keys[i]).point(v[i]).point(s_hat[i]).point(a1[i]).point(a2[i])
    return tr


def compute_dealing_challenge(
    dealing: Dealing,
    committee_pks: Sequence[G1Point],
    context: Context,
    recipient_pk: G1Point | None = None,
) -> int:
    """The Fiat–Shamir challenge e of a dealing (shared by all its DLEQ proofs)."""
    keys = _check_keys(dealing, committee_pks, recipient_pk)
    return dealing_transcript(
        context,
        dealing.threshold,
        keys,
        dealing.has_recipient,
        dealing.v,
        dealing.s_hat,
        dealing.a1,
        dealing.a2,
    ).challenge()


def compute_rs_weights(challenge: int, count: int) -> list[int]:
    """mu_j = keccak256(DST_RS_DUAL || uint256 e || uint16 j) mod r, j = 0..count-1:
    the Fiat–Shamir weights of the dual codeword (what the contract uses)."""
    return [
        Transcript(DST_RS_DUAL).scalar(challenge).uint(j, 16, "rs.j").challenge()
        for j in range(count)
    ]


def share_transcript(
    context: Context, index: int, pk: G1Point, s_hat: G1Point, share: G1Point
) -> Transcript:
    """DST_DECRYPTED_SHARE || context || uint16 k || pk_k || s_hat_k || S_k (then the
    DLEQ appends A1 || A2)."""
    return (
        Transcript(DST_DECRYPTED_SHARE)
        .context(context)
        .uint(index, 16, "decrypted_share.index")
        .point(pk)
        .point(s_hat)
        .point(share)
    )


def _check_keys(
    dealing: Dealing, committee_pks: Sequence[G1Point], recipient_pk: G1Point | None
) -> list[G1Point]:
    if dealing.has_recipient != (recipient_pk is not None):
        want = "a recipient key" if dealing.has_recipient else "no recipient key"
        raise InvalidProof(f"dealing: has_recipient={dealing.has_recipient} needs {want}")
    if dealing.committee_size != len(committee_pks):
        raise InvalidProof(
            f"dealing: {dealing.committee_size} committee points for {len(committee_pks)} members"
        )
    keys = _point_keys(committee_pks, recipient_pk)
    for k, pk in zip(dealing.indices, keys, strict=True):
        if pk.is_identity:
            raise InvalidProof(f"dealing: the public key of point {k} is the identity")
    return keys


# ---------------------------------------------------------------------------
# Dealer
# ---------------------------------------------------------------------------


def _draw(rng: random.Random | None) -> int:
    return rng.randrange(1, R) if rng is not None else random_scalar()


@dataclass(frozen=True)
class DealRequest:
    """One dealing to make: to whom, under which context."""

    committee_pks: tuple[G1Point, ...]
    threshold: int
    context: Context
    recipient_pk: G1Point | None = None


def deal(
    committee_pks: Sequence[G1Point],
    threshold: int,
    context: Context,
    recipient_pk: G1Point | None = None,
    *,
    rng: random.Random | None = None,
    table_cache: dict | None = None,
) -> tuple[Dealing, G1Point]:
    """Deal a fresh secret S = s*H to the committee (and to a recipient at index 0).

    Returns the dealing (to publish) and S (the dealer keeps it). ``rng`` makes the
    dealing deterministic, for test vectors only. Key tables (window
    DEALER_TABLE_WINDOW) come from ``table_cache`` when given (a dealer's own), else
    from the process-wide cache."""
    request = DealRequest(tuple(committee_pks), threshold, context, recipient_pk)
    return deal_many([request], rng=rng, table_cache=table_cache)[0]


def deal_many(
    requests: Sequence[DealRequest],
    *,
    rng: random.Random | None = None,
    table_cache: dict | None = None,
) -> list[tuple[Dealing, G1Point]]:
    """``deal`` for several dealings at once (a client's self and pair dealings): every
    multiplication of every dealing runs in one lock-step batch, so the field
    inversions and the per-window work are shared. Same output distribution as
    calling ``deal`` for each request."""
    prepared = []
    for req in requests:
        m = len(req.committee_pks)
        if req.threshold < 1 or m < req.threshold + 1:
            raise InvalidParameters(f"deal: threshold t={req.threshold} needs 1 <= t < m, m={m}")
        if m + (req.recipient_pk is not None) > MAX_POINTS:
            raise InvalidParameters(f"deal: at most {MAX_POINTS} evaluation points")
        keys = _point_keys(req.committee_pks, req.recipient_pk)
        for i, pk in enumerate(keys):
            if pk.is_identity:
                raise InvalidParameters(f"deal: public key of point {i} is the identity")
        first = 0 if req.recipient_pk is not None else 1
        indices = range(first, first + len(keys))
        coeffs = [_draw(rng) for _ in range(req.threshold + 1)]
        evals = [eval_poly(coeffs, k) for k in indices]
        nonces = [_draw(rng) for _ in indices]
        prepared.append((req, keys, coeffs, evals, nonces))
    scalars = [x for *_, evals, nonces in prepared for x in evals + nonces]
    # every table this batch needs, the missing ones built together (one kernel call)
    tables = tables_for(
        [pk for _, keys, *_ in prepared for pk in keys + keys], DEALER_TABLE_WINDOW, table_cache
    )
    g_side = g_table().mul_many(scalars)  # v_k and a1_k of every dealing
    key_side = mul_each(tables, scalars)  # s_hat_k and a2_k
    secrets_ = h_table().mul_many([coeffs[0] for _, _, coeffs, _, _ in prepared])
    out = []
    pos = 0
    for (req, keys, _coeffs, evals, nonces), secret in zip(prepared, secrets_, strict=True):
        n = len(keys)
        v, a1 = g_side[pos : pos + n], g_side[pos + n : pos + 2 * n]
        s_hat, a2 = key_side[pos : pos + n], key_side[pos + n : pos + 2 * n]
        pos += 2 * n
        has_recipient = req.recipient_pk is not None
        e = dealing_transcript(
            req.context, req.threshold, keys, has_recipient, v, s_hat, a1, a2
        ).challenge()
        while not e:  # a zero challenge is invalid by rule; redraw the nonces
            nonces = [_draw(rng) for _ in keys]
            a1 = g_table().mul_many(nonces)
            a2 = mul_each([table_for(pk, DEALER_TABLE_WINDOW, table_cache) for pk in keys], nonces)
            e = dealing_transcript(
                req.context, req.threshold, keys, has_recipient, v, s_hat, a1, a2
            ).challenge()
        z = tuple((w - e * p_k) % R for w, p_k in zip(nonces, evals, strict=True))
        dealing = Dealing(
            req.threshold, has_recipient, tuple(v), tuple(s_hat), tuple(a1), tuple(a2), z
        )
        out.append((dealing, secret))
    return out


# ---------------------------------------------------------------------------
# Verification: the readable reference
# ---------------------------------------------------------------------------


def verify_dealing(
    dealing: Dealing,
    committee_pks: Sequence[G1Point],
    context: Context,
    recipient_pk: G1Point | None = None,
) -> None:
    """Reference verifier (SPEC.md §4.3); raises ``InvalidProof`` naming the failing part.

    1. e = challenge(...) must be non-zero;
    2. for every point k: z_k*G + e*v_k = a1_k and z_k*pk_k + e*s_hat_k = a2_k;
    3. sum_k c_k*v_k = 0 for the dual codeword c = sum_j mu_j * Delta_j with
       Fiat–Shamir weights mu_j (v is a degree-t Reed–Solomon codeword)."""
    keys = _check_keys(dealing, committee_pks, recipient_pk)
    e = compute_dealing_challenge(dealing, committee_pks, context, recipient_pk)
    if e == 0:
        raise InvalidProof("dealing: challenge is zero")
    for i, k in enumerate(dealing.indices):
        if G * dealing.z[i] + dealing.v[i] * e != dealing.a1[i]:
            raise InvalidProof(f"dealing: DLEQ (G side) fails at point {k}")
        if keys[i] * dealing.z[i] + dealing.s_hat[i] * e != dealing.a2[i]:
            raise InvalidProof(f"dealing: DLEQ (key side) fails at point {k}")
    n, t = dealing.n_points, dealing.threshold
    if n >= t + 2:
        c = dual_codeword(n, t, compute_rs_weights(e, n - t - 1))
        if msm(list(dealing.v), c) != G1Point.identity():
            raise InvalidProof("dealing: commitments are not a degree-t polynomial (RS check)")


def is_valid_dealing(
    dealing: Dealing,
    committee_pks: Sequence[G1Point],
    context: Context,
    recipient_pk: G1Point | None = None,
) -> bool:
    """``verify_dealing`` as a bool."""
    try:
        verify_dealing(dealing, committee_pks, context, recipient_pk)
    except InvalidProof:
        return False
    return True


# ---------------------------------------------------------------------------
# Verification: the batch fast path
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DealingClaim:
    """One dealing with what it must verify against."""

    dealing: Dealing
    committee_pks: tuple[G1Point, ...]
    context: Context
    recipient_pk: G1Point | None = None


def _weight(rng: random.Random | None) -> int:
    if rng is not None:
        return rng.getrandbits(BATCH_WEIGHT_BITS) | 1
    return secrets.randbits(BATCH_WEIGHT_BITS) | 1


class _HDleqFold:
    """Commitment-form DLEQ proofs for bases (H, B), publics (pk, P), each with its
    challenge e, folded with random 128-bit weights rho, rho' into one check:

      (sum rho z) H + sum_pk (sum rho e) pk - sum rho A1
    + sum [rho' z B + rho' e P - rho' A2]  ==  0.

    Full-size coefficients sit on H (its table), on each distinct key and on B, P (one
    Pippenger); the commitments take the short weights."""

    def __init__(self, rng: random.Random | None) -> None:
        self.rng = rng
        self.h_coeff = 0
        self.key_coeff: dict[G1Point, int] = {}
        self.short_pts: list[G1Point] = []
        self.short_ks: list[int] = []
        self.full_pts: list[G1Point] = []
        self.full_ks: list[int] = []

    def add(self, pk: G1Point, base: G1Point, public: G1Point, proof: Any, e: int) -> None:
        z = proof.response
        rho, rho2 = _weight(self.rng), _weight(self.rng)
        self.h_coeff += rho * z
        self.key_coeff[pk] = self.key_coeff.get(pk, 0) + rho * e
        self.short_pts += [proof.a1, proof.a2]
        self.short_ks += [-rho, -rho2]
        self.full_pts += [base, public]
        self.full_ks += [rho2 * z % R, rho2 * e % R]

    def holds(self) -> bool:
        total = (
            msm_signed(self.short_pts, self.short_ks)
            + msm([*self.full_pts, *self.key_coeff], [*self.full_ks, *self.key_coeff.values()])
            + h_table().mul(self.h_coeff % R)
        )
        return total.is_identity


def is_valid_dealing_batch(
    claims: Sequence[DealingClaim], *, rng: random.Random | None = None
) -> bool:
    """All dealings valid? One randomized check for the whole batch (SPEC.md §4.4).

    For dealing d with challenge e_d (inverse eps_d), random 128-bit weights tau, tau'
    and a random short dual codeword c_d = sum_j mu_j Delta_j:

      sum_d sum_k [(tau_dk + c_dk) v_dk + tau'_dk s_hat_dk]
    + (sum_d eps_d sum_k tau_dk z_dk) G + sum_pk (sum eps_d tau'_dk z_dk) pk
    - sum_d eps_d (sum_k tau_dk a1_dk + tau'_dk a2_dk)  ==  0.

    The coefficients on v and s_hat are short (~128 bits); the full-size ones sit on G
    (its table), and on each distinct key and the commitments a1, a2 (-eps*tau), all in
    one Pippenger. A batch with an invalid dealing passes with probability
    < 2^-127."""
    small_pts: list[G1Point] = []
    small_ks: list[int] = []
    g_coeff = 0
    key_coeff: dict[G1Point, int] = {}
    e_pts: list[G1Point] = []
    e_ks: list[int] = []
    for claim in claims:
        dealing = claim.dealing
        try:
            keys = _check_keys(dealing, claim.committee_pks, claim.recipient_pk)
        except InvalidProof:
            return False
        e = dealing_transcript(
            claim.context,
            dealing.threshold,
            keys,
            dealing.has_recipient,
            dealing.v,
            dealing.s_hat,
            dealing.a1,
            dealing.a2,
        ).challenge()
        if e == 0:
            return False
        eps = inv_mod_r(e)
        n, t = dealing.n_points, dealing.threshold
        if n >= t + 2:
            c = dual_codeword(n, t, [_weight(rng) for _ in range(n - t - 1)], reduce=False)
        else:
            c = [0] * n
        neg_eps = R - eps
        tz = 0
        for i in range(n):
            tau = _weight(rng)
            tau2 = _weight(rng)
            small_pts += [dealing.v[i], dealing.s_hat[i]]
            small_ks += [tau + c[i], tau2]
            e_pts += [dealing.a1[i], dealing.a2[i]]
            e_ks += [neg_eps * tau % R, neg_eps * tau2 % R]
            tz += tau * dealing.z[i]
            key_coeff[keys[i]] = (key_coeff.get(keys[i], 0) + eps * tau2 * dealing.z[i]) % R
        g_coeff = (g_coeff + eps * tz) % R
    if not claims:
        return True
    # each distinct key carries one full-size coefficient: it joins the one Pippenger
    # (a fixed-base table costs ~20 multiplications to build and would be used once)
    e_pts += key_coeff.keys()
    e_ks += key_coeff.values()
    total = msm_signed(small_pts, small_ks)
    total = total + g_table().mul(g_coeff) + msm(e_pts, e_ks)
    return total.is_identity


# ``is_valid_dealing_batch_split``: a batch is split across threads only from this many
# dealings a part on (below, a part's fixed costs outweigh the overlap)
MIN_DEALINGS_PER_PART = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _batch_pool(workers: int) -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one process-wide pool, created on first use
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:  # noqa: SLF001
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="pvss-batch")
        return _pool


def is_valid_dealing_batch_split(claims: Sequence[DealingClaim], parts: int = 2) -> bool:
    """``is_valid_dealing_batch`` on ``parts`` contiguous parts of ``claims`` at once, one
    thread each (the Pippenger kernels release the GIL, so the parts' multi-scalar
    multiplications run on separate cores): True iff every part passes. Each part is
    its own randomized check with fresh weights, so a batch holding an invalid dealing
    passes with probability < parts * 2^-127 (SPEC.md §4.4). Below
    MIN_DEALINGS_PER_PART dealings a part, or with ``parts`` <= 1, one batch."""
    parts = max(1, min(int(parts), len(claims) // MIN_DEALINGS_PER_PART))
    if parts <= 1:
        return is_valid_dealing_batch(claims)
    size = -(-len(claims) // parts)
    chunks = [claims[i : i + size] for i in range(0, len(claims), size)]
    pool = _batch_pool(len(chunks) - 1)
    others = [pool.submit(is_valid_dealing_batch, chunk) for chunk in chunks[1:]]
    mine = is_valid_dealing_batch(chunks[0])
    return all([mine, *(job.result() for job in others)])


def verify_dealings(claims: Sequence[DealingClaim], *, rng: random.Random | None = None) -> None:
    """Batch-verify; on failure find and name every invalid dealing (by position in
    ``claims``) with the reference verifier's reason."""
    if is_valid_dealing_batch(claims, rng=rng):
        return
    reasons = _failures(
        claims,
        lambda c: verify_dealing(c.dealing, c.committee_pks, c.context, c.recipient_pk),
        "dealing",
    )
    detail = "; ".join(f"#{pos}: {why}" for pos, why in reasons)
    err = InvalidProof(f"batch: {len(reasons)} invalid dealing(s): {detail}")
    err.invalid = [pos for pos, _ in reasons]  # type: ignore[attr-defined]
    raise err


# ---------------------------------------------------------------------------
# Decryption, reconstruction, recipient
# ---------------------------------------------------------------------------


def decrypt_share(
    dealing: Dealing, index: int, key: KeyPair, context: Context, *, nonce: int | None = None
) -> DecryptedShare:
    """Member ``index`` decrypts S_k = sk^-1 * s_hat_k and proves it with DLEQ."""
    if index < 1:
        raise InvalidParameters(f"decrypt_share: committee indices start at 1, got {index}")
    s_hat = dealing.s_hat[dealing.position(index)]
    share = s_hat * inv_mod_r(key.sk)
    prefix = share_transcript(context, index, key.pk, s_hat, share)
    proof = prove_dleq(key.sk, H, share, prefix, nonce=nonce)
    return DecryptedShare(index, share, proof)


def verify_decrypted_share(
    share: DecryptedShare, dealing: Dealing, pk: G1Point, context: Context
) -> None:
    """Raise ``InvalidProof`` naming the member unless log_H pk = log_{S_k} s_hat_k."""
    try:
        s_hat = dealing.s_hat[dealing.position(share.index)]
    except InvalidParameters as exc:
        raise InvalidProof(f"member {share.index}: {exc}") from None
    if share.index < 1:
        raise InvalidProof(f"member {share.index}: index 0 is the recipient's")
    prefix = share_transcript(context, share.index, pk, s_hat, share.share)
    verify_dleq(
        share.proof,
        H,
        pk,
        share.share,
        s_hat,
        prefix,
        what=f"member {share.index}",
        tables1=(h_table(), table_for(pk)),
    )


@dataclass(frozen=True)
class ShareClaim:
    """One decrypted share with what it must verify against."""

    share: DecryptedShare
    dealing: Dealing
    pk: G1Point
    context: Context


def is_valid_share_batch(claims: Sequence[ShareClaim], *, rng: random.Random | None = None) -> bool:
    """All decrypted shares valid? One randomized check for the whole batch (SPEC.md §4.5).

    Share c proves z*H + e*pk = A1 and z*S + e*s_hat = A2 (e its own challenge). With
    random 128-bit weights rho, rho' per share:

      (sum rho z) H + sum_pk (sum rho e) pk - sum rho A1
    + sum [rho' z S + rho' e s_hat - rho' A2]  ==  0.

    Full-size coefficients sit on H, on each distinct key (tables) and on S, s_hat; the
    commitments take the short weights. A batch with an invalid share passes with
    probability < 2^-127 (``_HDleqFold``: B = S, P = s_hat)."""
    fold = _HDleqFold(rng)
    for claim in claims:
        sh = claim.share
        if sh.index < 1:
            return False
        try:
            s_hat = claim.dealing.s_hat[claim.dealing.position(sh.index)]
        except InvalidParameters:
            return False
        proof = sh.proof
        e = (
            share_transcript(claim.context, sh.index, claim.pk, s_hat, sh.share)
            .point(proof.a1)
            .point(proof.a2)
            .challenge()
        )
        fold.add(claim.pk, sh.share, s_hat, proof, e)
    return True if not claims else fold.holds()


def invalid_shares(claims: Sequence[ShareClaim]) -> list[tuple[int, str]]:
    """(position, reason) of every share that fails: one batch check, then — only if it
    fails — the reference verifier share by share."""
    if is_valid_share_batch(claims):
        return []
    return _failures(
        claims, lambda c: verify_decrypted_share(c.share, c.dealing, c.pk, c.context), "share"
    )


def _failures(claims: Sequence, check: Callable[[Any], None], what: str) -> list[tuple[int, str]]:
    """After a failed batch: (position, reason) of every claim the reference ``check``
    rejects. None at all means the two verifiers disagree — a bug, raised as such."""
    out = []
    for pos, claim in enumerate(claims):
        try:
            check(claim)
        except InvalidProof as exc:
            out.append((pos, str(exc)))
    if not out:
        raise InvalidProof(f"batch: verification failed but every {what} verifies alone")
    return out


# ---------------------------------------------------------------------------
# One aggregated DLEQ per shares post (SPEC.md §4.5)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SharePost:
    """Member ``index``'s decryptions S_i of N encrypted shares, proved all at once: one
    DLEQ that log_H pk = log_{S*} s_hat* for the Fiat–Shamir combinations
    S* = sum rho_i S_i and s_hat* = sum rho_i s_hat_i (``share_post_weights``)."""

    index: int
    shares: tuple[G1Point, ...]
    proof: DleqProof = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or not 1 <= self.index <= 0xFFFF:
            raise InvalidEncoding(f"share_post.index: {self.index} outside 1..65535")
        if not 1 <= len(self.shares) <= MAX_POST_SHARES:
            raise InvalidEncoding(
                f"share_post.count: {len(self.shares)} outside 1..{MAX_POST_SHARES}"
            )
        for i, pt in enumerate(self.shares):
            if not isinstance(pt, G1Point):
                raise InvalidEncoding(f"share_post.share[{i}]: not a point")

    def to_bytes(self) -> bytes:
        """uint16 k || uint16 N || N x S_i (64) || A1 || A2 || z: 164 + 64 N bytes."""
        return (
            self.index.to_bytes(2, "big")
            + len(self.shares).to_bytes(2, "big")
            + b"".join(pt.to_bytes() for pt in self.shares)
            + self.proof.to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SharePost:
        data = bytes(data)
        if len(data) < SHARE_POST_HEADER_BYTES:
            raise InvalidEncoding(f"share_post: {len(data)} bytes, shorter than its header")
        index = int.from_bytes(data[0:2], "big")
        count = int.from_bytes(data[2:4], "big")
        want = SHARE_POST_HEADER_BYTES + 64 * count + DLEQ_PROOF_BYTES
        if count == 0:
            raise InvalidEncoding("share_post.count: a post holds at least one share")
        if len(data) != want:
            raise InvalidEncoding(
                f"share_post: expected {want} bytes for {count} shares, got {len(data)}"
            )
        if index == 0:
            raise InvalidEncoding("share_post.index: 0 is the recipient's, who never posts")
        off = SHARE_POST_HEADER_BYTES
        shares = tuple(
            G1Point.from_bytes(
                data[off + 64 * i : off + 64 * i + 64], field=f"share_post.share[{i}]"
            )
            for i in range(count)
        )
        proof = DleqProof.from_bytes(data[off + 64 * count :], field="share_post.proof")
        return cls(index, shares, proof)


@dataclass(frozen=True)
class SharePostClaim:
    """A share post with what it must verify against: the member's key and, per share
    in post order, the context of the dealing it decrypts and that dealing's s_hat_k."""

    post: SharePost
    pk: G1Point
    contexts: tuple[Context, ...]
    s_hats: tuple[G1Point, ...]


def share_post_seed(
    index: int,
    pk: G1Point,
    contexts: Sequence[Context],
    s_hats: Sequence[G1Point],
    shares: Sequence[G1Point],
) -> bytes:
    """keccak256(DST_SHARE_POST || uint16 k || pk_k || uint16 N ||
    N x (context_i || s_hat_i || S_i)): the 32 bytes every weight is drawn from."""
    if not len(contexts) == len(s_hats) == len(shares):
        raise InvalidParameters(
            f"share_post: {len(contexts)} contexts, {len(s_hats)} s_hat, {len(shares)} shares"
        )
    tr = (
        Transcript(DST_SHARE_POST)
        .uint(index, 16, "share_post.index")
        .point(pk)
        .uint(len(shares), 16, "share_post.count")
    )
    for ctx, s_hat, sh in zip(contexts, s_hats, shares, strict=True):
        tr.context(ctx).point(s_hat).point(sh)
    return keccak256(tr.to_bytes())


def share_post_weights(seed: bytes, count: int) -> list[int]:
    """rho_0 .. rho_{count-1}, two per hash: h_j = keccak256(seed || uint32 j) gives
    rho_{2j} = h_j >> 128 and rho_{2j+1} = h_j mod 2^128 (SPEC.md §4.5)."""
    mask = (1 << SHARE_POST_WEIGHT_BITS) - 1
    out: list[int] = []
    for j in range((count + 1) // 2):
        h = int.from_bytes(keccak256(seed + j.to_bytes(4, "big")), "big")
        out += [h >> SHARE_POST_WEIGHT_BITS, h & mask]
    return out[:count]


def share_post_prefix(seed: bytes, s_star: G1Point, s_hat_star: G1Point) -> Transcript:
    """DST_SHARE_POST_PROOF || seed || S* || s_hat* (the DLEQ appends A1 || A2)."""
    return Transcript(DST_SHARE_POST_PROOF).raw(seed).point(s_star).point(s_hat_star)


def decrypt_share_post(
    index: int,
    key: KeyPair,
    items: Sequence[tuple[Dealing, Context]],
    *,
    nonce: int | None = None,
) -> SharePost:
    """Member ``index`` decrypts its share of every (dealing, context) and proves all
    of them with one DLEQ over the Fiat–Shamir combination (SPEC.md §4.5)."""
    if index < 1:
        raise InvalidParameters(f"decrypt_share_post: committee indices start at 1, got {index}")
    if not items:
        raise InvalidParameters("decrypt_share_post: a post holds at least one share")
    s_hats = [d.s_hat[d.position(index)] for d, _ in items]
    contexts = [c for _, c in items]
    inv = inv_mod_r(key.sk)
    shares = [pt * inv for pt in s_hats]
    seed = share_post_seed(index, key.pk, contexts, s_hats, shares)
    rho = share_post_weights(seed, len(shares))
    s_star, s_hat_star = msm_signed(shares, rho), msm_signed(s_hats, rho)
    proof = prove_dleq(key.sk, H, s_star, share_post_prefix(seed, s_star, s_hat_star), nonce=nonce)
    return SharePost(index, tuple(shares), proof)


def share_post_claim(
    post: SharePost, pk: G1Point, items: Sequence[tuple[Dealing, Context]]
) -> SharePostClaim:
    """The claim of ``post`` against (dealing, context) per share, s_hat_k cut from each
    dealing at the post's index; ``InvalidProof`` naming the member if the counts differ
    or a dealing has no point k."""
    who = f"member {post.index}"
    if len(items) != len(post.shares):
        raise InvalidProof(f"{who}: {len(post.shares)} shares for {len(items)} dealings")
    s_hats = []
    for i, (d, _) in enumerate(items):
        try:
            s_hats.append(d.s_hat[d.position(post.index)])
        except InvalidParameters as exc:
            raise InvalidProof(f"{who}: share[{i}]: {exc}") from None
    return SharePostClaim(post, pk, tuple(c for _, c in items), tuple(s_hats))


def _post_seed(claim: SharePostClaim) -> bytes:
    post = claim.post
    who = f"member {post.index}"
    if not len(claim.contexts) == len(claim.s_hats) == len(post.shares):
        raise InvalidProof(
            f"{who}: {len(post.shares)} shares for {len(claim.contexts)} contexts and "
            f"{len(claim.s_hats)} encrypted shares"
        )
    return share_post_seed(post.index, claim.pk, claim.contexts, claim.s_hats, post.shares)


def verify_share_post(claim: SharePostClaim) -> None:
    """Raise ``InvalidProof`` naming the member unless its aggregated DLEQ verifies:
    z*H + e*pk = A1 and z*S* + e*s_hat* = A2 (the reference; SPEC.md §4.5)."""
    post = claim.post
    seed = _post_seed(claim)
    rho = share_post_weights(seed, len(post.shares))
    s_star = msm_signed(list(post.shares), rho)
    s_hat_star = msm_signed(list(claim.s_hats), rho)
    verify_dleq(
        post.proof,
        H,
        claim.pk,
        s_star,
        s_hat_star,
        share_post_prefix(seed, s_star, s_hat_star),
        what=f"member {post.index}: share post",
        tables1=(h_table(), table_for(claim.pk)),
    )


def is_valid_share_post_batch(
    claims: Sequence[SharePostClaim], *, rng: random.Random | None = None
) -> bool:
    """All share posts valid? S*_p, s_hat*_p of every post as short-weight MSMs (two
    128-bit terms per share, all posts in one kernel call), then every post's two DLEQ
    equations folded with random 128-bit weights gamma, gamma':

      (sum gamma z) H + sum_pk (sum gamma e) pk - sum gamma A1
    + sum gamma' (z S* + e s_hat* - A2)  ==  0.

    A batch holding an invalid post passes with probability < 2^-127 over the verifier's
    coins (plus the 2^-128 of each post's own weights rho, SPEC.md §4.5)."""
    if not claims:
        return True
    seeds: list[bytes] = []
    jobs: list[tuple[list[G1Point], list[int]]] = []
    for claim in claims:
        try:
            seed = _post_seed(claim)
        except InvalidProof:
            return False
        rho = share_post_weights(seed, len(claim.post.shares))
        seeds.append(seed)
        jobs += [(list(claim.post.shares), rho), (list(claim.s_hats), rho)]
    stars = msm_signed_many(jobs)
    fold = _HDleqFold(rng)  # B = S*, P = s_hat*
    for p, claim in enumerate(claims):
        s_star, s_hat_star = stars[2 * p], stars[2 * p + 1]
        proof = claim.post.proof
        e = proof.challenge(share_post_prefix(seeds[p], s_star, s_hat_star))
        fold.add(claim.pk, s_star, s_hat_star, proof, e)
    return fold.holds()


@dataclass(frozen=True)
class SeedRevealClaim:
    """Member ``member``'s seed reveal Gamma = sk * H_SEED with its DLEQ proof, and what
    it verifies against (SPEC.md §6.10)."""

    pk: G1Point
    gamma: G1Point
    proof: DleqProof
    chain_id: int
    board: bytes
    round_id: int
    member: int

    def verify(self) -> None:
        verify_seed_reveal(
            self.pk, self.gamma, self.proof, self.chain_id, self.board, self.round_id, self.member
        )


def is_valid_seed_reveal_batch(
    claims: Sequence[SeedRevealClaim], *, rng: random.Random | None = None
) -> bool:
    """All seed reveals valid? Their DLEQ proofs (bases H, H_SEED; publics pk, Gamma)
    folded into one check with random 128-bit weights (``_HDleqFold``: B = H_SEED,
    P = Gamma), as the share batches are: a batch with an invalid reveal passes with
    probability < 2^-127. A node checks the m reveals once per round (SPEC.md §8.2)."""
    fold = _HDleqFold(rng)
    for c in claims:
        if c.pk.is_identity or c.gamma.is_identity:
            return False
        prefix = seed_reveal_transcript(c.chain_id, c.board, c.round_id, c.member, c.pk, c.gamma)
        fold.add(c.pk, H_SEED, c.gamma, c.proof, c.proof.challenge(prefix))
    return True if not claims else fold.holds()


def invalid_seed_reveals(claims: Sequence[SeedRevealClaim]) -> list[tuple[int, str]]:
    """(position, reason naming the member) of every reveal that fails: one batch, then
    — only if it fails — the reference verifier reveal by reveal."""
    if is_valid_seed_reveal_batch(claims):
        return []
    return _failures(claims, SeedRevealClaim.verify, "seed reveal")


def invalid_share_posts(claims: Sequence[SharePostClaim]) -> list[tuple[int, str]]:
    """(position, reason naming the member) of every post that fails: one batch check,
    then — only if it fails — the reference verifier post by post. A failing post is
    its member's fault as a whole: without per-share proofs no single share is named."""
    if is_valid_share_post_batch(claims):
        return []
    return _failures(claims, verify_share_post, "share post")


def reconstruct(
    shares: Sequence[DecryptedShare] | Mapping[int, G1Point], threshold: int
) -> G1Point:
    """S = sum_k l_k * S_k over the t+1 smallest indices (Lagrange at 0 in the exponent).

    ``shares``: decrypted shares, or S_k by member index k (from share posts). They
    must already be verified (``verify_decrypted_share`` / ``verify_share_post``)."""
    chosen: dict[int, G1Point] = {}
    if isinstance(shares, Mapping):
        chosen.update(shares)
    else:
        for sh in shares:
            chosen.setdefault(sh.index, sh.share)
    if len(chosen) < threshold + 1:
        raise InvalidParameters(
            f"reconstruct: {len(chosen)} distinct shares, need t+1 = {threshold + 1}"
        )
    idx = sorted(chosen)[: threshold + 1]
    return msm([chosen[k] for k in idx], lagrange_at_zero(idx))


def recover_as_recipient(dealing: Dealing, key: KeyPair) -> G1Point:
    """The recipient's S = sk_0^-1 * s_hat_0. Verify the dealing first: then S is the
    secret the committee would reconstruct."""
    if not dealing.has_recipient:
        raise InvalidParameters("recover_as_recipient: the dealing has no recipient")
    return dealing.s_hat[0] * inv_mod_r(key.sk)
