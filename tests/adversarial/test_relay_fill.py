"""A server that re-sends a member's pinned dealings posts at unmask (``StageRequest.fill``,
SPEC.md §8.2) can add the dealings it decrypts and nothing else: the malicious server
here rewrites the fill of the real host's request — another view, a re-signed-looking
dealing, an event the node never pinned, or no fill at all — and the honest member
refuses each, where the honest request goes through."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fl.relay import StageReply, StageRequest
from secagg import codec
from secagg.boards import RuleViolation
from secagg.errors import ProtocolError
from secagg.messages import TranscriptFile
from tests.test_fl_relay import Harness


def test_a_member_gets_in_full_only_the_dealings_it_decrypts(tmp_path: Path) -> None:
    """SPEC.md §8.2: a committee node is sent other clients' dealings as hashes until
    the unmask stage; then the request's ``fill`` re-sends the pinned dealings posts it
    decrypts (``allowed_shares``) with those dealings whole. A fill that changes any
    pinned field, or a dealing's bytes, or withholds one it decrypts, is refused."""
    from pvss.transcript import keccak256  # noqa: PLC0415
    from secagg.messages import ElidedDealingsPost  # noqa: PLC0415

    h = Harness(tmp_path, n=5, m=3, offline={104: "upload"})  # client 5 drops
    host = h.host
    for stage in ("register", "seed", "deal", "upload", "confirm"):
        for node, req in host.requests(stage).items():
            host.accept(stage, node, h.send(stage, {node: req}).get(node))
    req = host.requests("unmask")[101]  # member 2 (client 2)
    assert req.since > 0 and req.fill
    wanted = set(host.board.allowed_shares())
    filled = codec.decode(req.fill, TranscriptFile).events
    whole = set()
    for ev in filled:
        body = codec.decode(ev.body, ElidedDealingsPost)
        whole |= {(body.dealer, it.purpose, it.partner) for it in body.items if it.dealing}
    assert whole == wanted  # exactly the dealings it decrypts, nothing more
    # everything the member decrypts is smaller than every dealing of the round
    every = sum(len(it.dealing) for p in host._dealing_posts.values() for it in p.items)
    assert len(req.fill) < every

    def handled(r: StageRequest) -> StageReply:
        return h.agent(101).handle(r)

    # a fill event whose other fields differ from the pinned one (here: the view)
    bad_view = tuple(
        dataclasses.replace(ev, view=bytes(32)) if i == 0 else ev for i, ev in enumerate(filled)
    )
    with pytest.raises(ProtocolError, match="differs from the pinned one"):
        handled(dataclasses.replace(req, fill=codec.encode(TranscriptFile(bad_view))))
    # a dealing's bytes changed: the post digest no longer matches the pinned event's
    ev0 = filled[0]
    body0 = codec.decode(ev0.body, ElidedDealingsPost)
    items = list(body0.items)
    j = next(k for k, it in enumerate(items) if it.dealing)
    flipped = bytearray(items[j].dealing)
    flipped[-1] ^= 1
    items[j] = dataclasses.replace(  # a consistent item, but not the signed post's
        items[j], dealing=bytes(flipped), dealing_hash=keccak256(bytes(flipped))
    )
    forged = dataclasses.replace(
        ev0, body=codec.encode(ElidedDealingsPost(body0.dealer, tuple(items)))
    )
    # (the pinned event's signature is not recovered again — its pin fixes it — but
    # the forged body's post digest is not the pinned event's digest)
    with pytest.raises(RuleViolation, match="client 1: encoding: event digest is not its body"):
        handled(dataclasses.replace(req, fill=codec.encode(TranscriptFile((forged, *filled[1:])))))
    # a fill for an event the node never pinned
    beyond = dataclasses.replace(ev0, seq=req.since + 5)
    with pytest.raises(ProtocolError, match="not one this node pinned"):
        handled(dataclasses.replace(req, fill=codec.encode(TranscriptFile((beyond,)))))
    # no fill: the dealings it decrypts are hashes only, and it decrypts nothing
    with pytest.raises(ProtocolError, match="only the hash"):
        handled(dataclasses.replace(req, fill=b""))
    # the honest request goes through
    assert handled(req).posts
