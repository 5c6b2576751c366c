"""Identities (SPEC §6.9) and the deployment's roster: files, signatures, and the
checks every node makes of a round's config before acting."""

from __future__ import annotations

import dataclasses
import json
import os
import stat

import pytest

from fl.host import make_round_config
from secagg.errors import ConfigError, ProtocolError
from secagg.identity import (
    SECP256K1_N,
    Identity,
    InvalidSignature,
    parse_address,
    recover,
    verify,
)
from secagg.roster import Roster, make_deployment


def _config(roster: Roster, n: int, **over):  # noqa: ANN003, ANN202
    clients = roster.clients[:n] if roster.clients is not None else ()
    kw = dict(
        round_id=1,
        n_clients=n,
        committee_size=roster.committee_size,
        threshold=roster.threshold,
        dim=8,
        clip=1.0,
        quant_bits=8,
        max_weight=4,
        aggregator=Identity.generate().address,
        members=roster.committee,
        clients=clients,
    )
    kw.update(over)
    return make_round_config(**kw)


def test_identity_signs_recovers_and_refuses_malleated_signatures() -> None:
    ident, digest = Identity.generate(), b"\x07" * 32
    sig = ident.sign(digest)
    assert recover(digest, sig) == ident.address
    verify(digest, sig, ident.address)
    with pytest.raises(InvalidSignature, match="not signed by"):
        verify(b"\x08" * 32, sig, ident.address)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # the twin
    with pytest.raises(InvalidSignature, match="low"):
        recover(digest, high_s)
    with pytest.raises(InvalidSignature, match="v must be"):
        recover(digest, sig[:64] + b"\x01")
    with pytest.raises(InvalidSignature, match="65 bytes"):
        recover(digest, sig[:64])
    assert "private" not in repr(ident) and ident.address.hex() in repr(ident)


def test_recover_agrees_with_eth_keys_and_names_an_r_without_a_point() -> None:
    """``recover`` calls libsecp256k1 directly; eth-keys' own recovery is the reference
    (and ecrecover's rule: r must be the x-coordinate of a curve point)."""
    from eth_keys import keys

    from secagg.identity import personal_hash

    for j in range(20):
        ident, digest = Identity.generate(), bytes([j]) * 32
        sig = ident.sign(digest)
        ref = keys.Signature(
            vrs=(sig[64] - 27, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"))
        ).recover_public_key_from_msg_hash(personal_hash(digest))
        assert recover(digest, sig) == ref.to_canonical_address() == ident.address
        other = recover(b"\xee" * 32, sig)  # another digest: another (valid) signer
        assert other != ident.address and len(other) == 20
    # x = 5 is not the x-coordinate of a secp256k1 point: nothing recovers
    no_point = (5).to_bytes(32, "big") + sig[32:]
    with pytest.raises(InvalidSignature, match="does not recover"):
        recover(digest, no_point, "client 3 post")


def test_identity_and_roster_files(tmp_path) -> None:  # noqa: ANN001
    roster, paths = make_deployment(tmp_path, 5, 3, 1)
    assert stat.S_IMODE(os.stat(paths[0]).st_mode) == 0o600  # the node's own secret
    idents = [Identity.load(p) for p in paths]
    assert roster.committee == tuple(i.address for i in idents[:3])
    assert roster.clients == tuple(i.address for i in idents)
    assert Roster.load(tmp_path / "roster.json") == roster
    bad = tmp_path / "bad.json"
    for text, why in (
        ("{", "not JSON"),
        (json.dumps({"version": 9}), "version"),
        (json.dumps({**roster.to_json(), "committee": ["0x12"]}), "committee"),
    ):
        bad.write_text(text)
        with pytest.raises(ProtocolError, match=why):
            Roster.load(bad)
    with pytest.raises(ProtocolError, match="not found"):
        Roster.load(tmp_path / "missing.json")
    data = json.loads(paths[1].read_text())
    bad.write_text(json.dumps({**data, "address": "0x" + "00" * 20}))
    with pytest.raises(ProtocolError, match="does not match the key"):
        Identity.load(bad)
    with pytest.raises(ProtocolError, match="40 hex"):
        parse_address("0xabc")


def test_roster_check_refuses_what_the_deployment_did_not_agree_to(tmp_path) -> None:  # noqa: ANN001
    roster, _ = make_deployment(tmp_path, 8, 3, 1)
    roster.check(_config(roster, 6))  # the deployment's own round
    cases = [
        (_config(roster, 6, members=roster.committee[::-1]), "committee"),
        (
            _config(
                roster,
                6,
                members=(*roster.committee[:2], Identity.generate().address),
            ),
            "committee",
        ),
        (_config(roster, 6, clients=()), "open membership"),
        (
            _config(roster, 6, clients=(*roster.clients[:5], Identity.generate().address)),
            "not on the roster",
        ),
        (_config(roster, 6, min_included=2), "min_included"),
    ]
    for cfg, why in cases:
        with pytest.raises(ConfigError, match=why):
            roster.check(cfg)
    with pytest.raises(ConfigError, match="threshold"):
        dataclasses.replace(roster, threshold=2).check(_config(roster, 6))
    # the absolute floor: a server that seats few clients is refused
    strict = dataclasses.replace(roster, min_included=5)
    strict.check(_config(roster, 6, min_included=5))
    for n in (4, 6):
        with pytest.raises(ConfigError, match="floor"):
            strict.check(_config(roster, n, min_included=min(n, 4)))
    # a pinned server identity
    pinned = dataclasses.replace(roster, aggregator=b"\x02" * 20)
    with pytest.raises(ConfigError, match="aggregator"):
        pinned.check(_config(roster, 6))
    # a regular graph's degree floor
    with pytest.raises(ConfigError, match="min_neighbours"):
        roster.check(_config(roster, 6, graph="regular:4", min_neighbours=1))


def test_roster_validates_itself() -> None:
    a, b = Identity.generate().address, Identity.generate().address
    with pytest.raises(ConfigError, match="distinct"):
        Roster((a, a), 1)
    with pytest.raises(ConfigError, match="threshold"):
        Roster((a, b), 2)
    with pytest.raises(ConfigError, match="clients"):
        Roster((a, b), 1, (a, a))
    assert Roster((a, b), 1).admits_client(b"\x09" * 20)  # open membership
    assert not Roster((a, b), 1, (a,)).admits_client(b)
