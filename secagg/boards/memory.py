"""``MemoryBoard``: every board rule in Python over a hash-chained event log (each event
commits to the previous one, so altering any byte of the transcript is detected) —
tests, simulation, the FL server's board, and the replay every verifier runs."""

from __future__ import annotations

from typing import Any

from pvss.errors import InvalidEncoding, InvalidProof
from pvss.group import G1Point
from pvss.keys import ProofOfPossession, verify_possession
from pvss.scrape import (
    Dealing,
    DealingClaim,
    DecryptedShare,
    ShareClaim,
    invalid_shares,
    is_valid_dealing_batch,
    verify_dealing,
)
from pvss.transcript import PURPOSE_PAIR
from secagg import codec
from secagg.boards.base import (
    ZERO_HASH,
    Board,
    Fault,
    Phase,
    RoundState,
    RuleViolation,
    allowed_share_keys,
    compute_included,
    event_hash,
    pop_party,
)
from secagg.config import RoundConfig
from secagg.errors import ProtocolError
from secagg.graph import (
    DealingKey,
    compute_mask_graph,
    compute_round_seed,
    dealing_context,
    pair_key,
    self_key,
)
from secagg.messages import (
    ROLE_AGGREGATOR,
    ROLE_CLIENT,
    ROLE_MEMBER,
    DealingsPost,
    Event,
    MaskedInputPost,
    Registration,
    ResultPost,
    SharesPost,
    TranscriptFile,
)
from secagg.packing import packed_size


class MemoryBoard(Board):
    """In-memory board with a hash-chained event log (tests, simulation, replay)."""

    def __init__(self, config: RoundConfig) -> None:
        self.config = config
        self._height = 0
        self._events: list[Event] = []
        self._state = RoundState(config)
        self.faults: list[Fault] = []
        # replay only: dealing claims whose proofs are checked in one batch at the end
        self._deferred: list[DealingClaim] | None = None
        # replay only: False when the proofs were checked by a full-mode round contract
        # (the auditor read the events from that chain), see ``replay(proofs=...)``
        self._check_proofs = True
        self._append(ROLE_AGGREGATOR, 0, codec.encode(config))

    # -- Board interface ---------------------------------------------------------
    def height(self) -> int:
        return self._height

    def advance(self, blocks: int) -> None:
        if blocks < 0:
            raise ValueError("advance: blocks must be >= 0")
        self._height += blocks
        self._on_height()

    def state(self) -> RoundState:
        return self._state

    def events(self) -> list[Event]:
        return list(self._events)

    @property
    def head(self) -> bytes:
        return event_hash(self._events[-1])

    def submit(self, role: int, sender: int, msg: Any) -> Event:
        try:
            apply = self._check(role, sender, msg)
        except RuleViolation as exc:
            self.faults.append(exc.fault)
            raise
        body = codec.encode(msg)
        apply()
        return self._append(role, sender, body)

    # -- transcript --------------------------------------------------------------
    def transcript(self) -> TranscriptFile:
        return TranscriptFile(tuple(self._events))

    @classmethod
    def replay(
        cls,
        transcript: TranscriptFile,
        expected_head: bytes | None = None,
        *,
        proofs: bool = True,
    ) -> MemoryBoard:
        """Rebuild a board from its events, re-checking the hash chain and every rule.

        The whole chain is checked first (a broken link is the board's fault, never the
        sender's), then every event is re-submitted under the rules: the first one an
        honest board would have refused raises ``RuleViolation`` naming its sender.
        Dealing proofs of all posts are checked in one batch at the end (faster); if
        that batch fails, the replay is redone post by post to name the dealer.
        ``expected_head``, the head hash from a trusted source (the chain, a published
        digest), also protects the last event; without it, the last event is only as
        trustworthy as the file.

        ``proofs=False`` (SPEC.md §6.8, "chain" verification) skips the cryptographic
        checks a full-mode round contract executed on-chain — proofs of possession,
        dealing proofs, decrypted-share proofs — and keeps every other rule. It needs
        ``expected_head`` read from that chain: without it, a forged file could carry
        proofs no chain ever checked."""
        if not proofs and expected_head is None:
            raise ProtocolError(
                "transcript: skipping the proof checks needs the expected head from the "
                "chain that checked them"
            )
        events = transcript.events
        if not events:
            raise ProtocolError("transcript: empty")
        for pos, ev in enumerate(events):
            if ev.seq != pos:
                raise ProtocolError(f"transcript: event {pos} carries sequence number {ev.seq}")
            want = ZERO_HASH if pos == 0 else event_hash(events[pos - 1])
            if ev.prev != want:
                raise ProtocolError(f"transcript: event {pos} does not chain to event {pos - 1}")
            if pos and ev.height < events[pos - 1].height:
                raise ProtocolError(f"transcript: event {pos} goes back in time")
        if expected_head is not None and event_hash(events[-1]) != expected_head:
            raise ProtocolError("transcript: head does not match the expected head")
        first = events[0]
        if first.role != ROLE_AGGREGATOR:
            raise ProtocolError("transcript: event 0 must be the round config")
        try:
            config = codec.decode(first.body, RoundConfig)
        except InvalidEncoding as exc:
            raise ProtocolError(f"transcript: event 0 is not a round config: {exc}") from None
        board = cls._replay_events(config, first, events, defer=True, proofs=proofs)
        if proofs and board._deferred and not is_valid_dealing_batch(board._deferred):
            # some dealing is invalid: replay again checking post by post to name it
            cls._replay_events(config, first, events, defer=False)
            raise ProtocolError("transcript: batch and per-post dealing checks disagree")
        board._deferred = None
        return board

    @classmethod
    def _replay_events(
        cls,
        config: RoundConfig,
        first: Event,
        events: tuple[Event, ...],
        *,
        defer: bool,
        proofs: bool = True,
    ) -> MemoryBoard:
        board = cls(config)
        board._check_proofs = proofs
        if board._events[0] != first:
            raise ProtocolError("transcript: event 0 does not match its config")
        if defer or not proofs:  # without proofs the collected claims are never checked
            board._deferred = []
        for ev in events[1:]:
            board.advance(ev.height - board._height)
            try:
                msg: Any = codec.decode(ev.body)
            except InvalidEncoding as exc:
                raise RuleViolation(Fault(ev.role, ev.sender, "encoding", str(exc))) from None
            board.submit(ev.role, ev.sender, msg)
        return board

    # -- internals ---------------------------------------------------------------
    def _append(self, role: int, sender: int, body: bytes) -> Event:
        prev = self.head if self._events else ZERO_HASH
        ev = Event(len(self._events), self._height, role, sender, body, prev)
        self._events.append(ev)
        return ev

    def _on_height(self) -> None:
        st = self._state
        phase = self.phase()
        if phase >= Phase.DEAL and st.registration_head is None:
            st.registration_head = self.head
            st.graph = compute_mask_graph(self.config, compute_round_seed(st.registration_head))
        if phase >= Phase.UNMASK and st.included is None:
            st.included = compute_included(st)

    def _fail(self, role: int, sender: int, rule: str, detail: str) -> RuleViolation:
        return RuleViolation(Fault(role, sender, rule, detail))

    def _need_phase(self, role: int, sender: int, want: Phase) -> None:
        now = self.phase()
        if now != want:
            raise self._fail(role, sender, "stage", f"{want.name} message in phase {now.name}")

    def _check(self, role: int, sender: int, msg: Any):  # noqa: ANN202 - returns a thunk
        if isinstance(msg, Registration):
            return self._check_registration(role, sender, msg)
        if isinstance(msg, DealingsPost):
            return self._check_dealings(role, sender, msg)
        if isinstance(msg, MaskedInputPost):
            return self._check_masked(role, sender, msg)
        if isinstance(msg, SharesPost):
            return self._check_shares(role, sender, msg)
        if isinstance(msg, ResultPost):
            return self._check_result(role, sender, msg)
        raise self._fail(role, sender, "message", f"{type(msg).__name__} cannot be posted")

    def _check_registration(self, role: int, sender: int, msg: Registration):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.REGISTER)
        if msg.role != role or msg.party != sender:
            raise self._fail(role, sender, "sender", "registration for another party")
        table, limit = (
            (st.clients, cfg.n_clients) if role == ROLE_CLIENT else (st.members, cfg.committee_size)
        )
        if role not in (ROLE_CLIENT, ROLE_MEMBER) or not 1 <= sender <= limit:
            raise self._fail(role, sender, "registration", f"id outside 1..{limit}")
        if sender in table:
            raise self._fail(role, sender, "registration", "already registered")
        try:
            pk = G1Point.from_bytes(msg.pk, field="registration.pk")
            pop = ProofOfPossession.from_bytes(msg.pop)
            if self._check_proofs:
                verify_possession(pk, pop, cfg.chain_id, cfg.board, pop_party(role, sender))
        except (InvalidEncoding, InvalidProof) as exc:
            raise self._fail(role, sender, "proof-of-possession", str(exc)) from None

        def apply() -> None:
            table[sender] = pk

        return apply

    def _check_dealings(self, role: int, sender: int, msg: DealingsPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.DEAL)
        if role != ROLE_CLIENT or msg.dealer != sender:
            raise self._fail(role, sender, "sender", "dealings for another client")
        if sender not in st.clients:
            raise self._fail(role, sender, "dealings", "dealer is not registered")
        if sender in st.dealers:
            raise self._fail(role, sender, "dealings", "already posted its dealings")
        if len(st.members) != cfg.committee_size:
            raise self._fail(role, sender, "dealings", "committee incomplete: round cannot proceed")
        assert st.graph is not None
        want = {self_key(sender)} | {
            pair_key(sender, j) for j in st.graph[sender] if j > sender and j in st.clients
        }
        got = [(sender, it.purpose, it.partner) for it in msg.items]
        if len(set(got)) != len(got) or set(got) != want:
            raise self._fail(
                role,
                sender,
                "dealings",
                "expected exactly self + pair dealings for "
                f"{sorted(k[2] for k in want if k[1] == PURPOSE_PAIR)}",
            )
        pks = tuple(self.member_keys())
        claims = []
        for it, key in zip(msg.items, got, strict=True):
            try:
                dealing = Dealing.from_bytes(it.dealing)
            except InvalidEncoding as exc:
                raise self._fail(role, sender, "dealing-encoding", f"{key}: {exc}") from None
            if dealing.threshold != cfg.threshold:
                raise self._fail(
                    role,
                    sender,
                    "dealing",
                    f"{key}: threshold {dealing.threshold} != {cfg.threshold}",
                )
            rpk = st.clients[key[2]] if key[1] == PURPOSE_PAIR else None
            claims.append(DealingClaim(dealing, pks, dealing_context(cfg, key), rpk))
        if self._deferred is not None:  # replay: one batch at the end (none if proofs=False)
            self._deferred.extend(claims)
        elif not is_valid_dealing_batch(claims):
            for claim, key in zip(claims, got, strict=True):
                try:
                    verify_dealing(
                        claim.dealing, claim.committee_pks, claim.context, claim.recipient_pk
                    )
                except InvalidProof as exc:
                    raise self._fail(role, sender, "dealing-proof", f"{key}: {exc}") from None
            raise self._fail(
                role, sender, "dealing-proof", "batch check failed"
            )  # pragma: no cover

        def apply() -> None:
            st.dealers.add(sender)
            for claim, key in zip(claims, got, strict=True):
                st.dealings[key] = claim.dealing

        return apply

    def _check_masked(self, role: int, sender: int, msg: MaskedInputPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.UPLOAD)
        if role != ROLE_CLIENT or msg.client != sender:
            raise self._fail(role, sender, "sender", "masked input for another client")
        if sender not in st.dealers:
            raise self._fail(role, sender, "upload", "client has no accepted dealings")
        if sender in st.masked:
            raise self._fail(
                role, sender, "upload", "masked input already posted (clients upload once)"
            )
        size = packed_size(cfg.vector_length, cfg.bits)
        if msg.size != size:
            raise self._fail(role, sender, "upload", f"size {msg.size} != {size} bytes")

        def apply() -> None:
            st.masked[sender] = (msg.digest, msg.size)

        return apply

    def _check_shares(self, role: int, sender: int, msg: SharesPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.UNMASK)
        if role != ROLE_MEMBER or msg.member != sender or sender not in st.members:
            raise self._fail(
                role, sender, "sender", "shares from a non-member or for another member"
            )
        allowed = set(allowed_share_keys(st))
        pk = st.members[sender]
        parsed: list[tuple[DealingKey, DecryptedShare]] = []
        seen: set[DealingKey] = set()
        for it in msg.items:
            key = (it.dealer, it.purpose, it.partner)
            if key not in allowed:
                raise self._fail(
                    role, sender, "share-not-allowed", f"{key} is not revealed by the included set"
                )
            if key in seen or sender in st.shares.get(key, {}):
                raise self._fail(role, sender, "share", f"{key}: share already posted")
            seen.add(key)
            try:
                share = DecryptedShare.from_bytes(it.share)
            except InvalidEncoding as exc:
                raise self._fail(role, sender, "share-encoding", f"{key}: {exc}") from None
            if share.index != sender:
                raise self._fail(
                    role, sender, "share", f"{key}: share index {share.index} is not the sender"
                )
            parsed.append((key, share))
        if self._check_proofs:  # one batch for the post; share by share only to name one
            claims = [
                ShareClaim(share, st.dealings[key], pk, dealing_context(cfg, key))
                for key, share in parsed
            ]
            bad = invalid_shares(claims)
            if bad:
                pos, why = bad[0]
                raise self._fail(role, sender, "share-proof", f"{parsed[pos][0]}: {why}")

        def apply() -> None:
            for key, share in parsed:
                st.shares.setdefault(key, {})[sender] = share

        return apply

    def _check_result(self, role: int, sender: int, msg: ResultPost):  # noqa: ANN202
        cfg, st = self.config, self._state
        self._need_phase(role, sender, Phase.RESULT)
        if role != ROLE_AGGREGATOR:
            raise self._fail(role, sender, "sender", "only the aggregator posts the result")
        if st.result is not None:
            raise self._fail(role, sender, "result", "result already posted")
        if msg.included != st.included:
            raise self._fail(
                role,
                sender,
                "result",
                f"included set {list(msg.included)} != board's {list(st.included or ())}",
            )
        for key in allowed_share_keys(st):
            have = len(st.shares.get(key, {}))
            if have < cfg.threshold + 1:
                raise self._fail(
                    role, sender, "result", f"{key}: {have} shares < t+1 = {cfg.threshold + 1}"
                )

        def apply() -> None:
            st.result = msg

        return apply
