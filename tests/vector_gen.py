"""Deterministic test vectors shared by the Python and the contract tests
(tests/vectors/<op>/<case>.json, each ``{"input": {...}, "output": {...}}`` in hex).

Regenerate with ``python -m tests.vector_gen``; ``tests/test_vectors.py`` checks that
the committed files equal what this module produces and runs every case."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

from pvss.dleq import prove_dleq
from pvss.group import H_COUNTER, H_TAG, ORDER, G, G1Point, H
from pvss.keys import (
    H_SEED,
    KeyPair,
    pop_transcript,
    prove_possession,
    seed_reveal_transcript,
)
from pvss.scrape import (
    Dealing,
    compute_dealing_challenge,
    compute_rs_weights,
    deal,
    dealing_transcript,
    decrypt_share,
    decrypt_share_post,
)
from pvss.transcript import PURPOSE_PAIR, PURPOSE_SELF, Context

R = int(ORDER)
VECTOR_DIR = Path(__file__).resolve().parent / "vectors"


def ctx_json(ctx: Context) -> dict[str, Any]:
    return {
        "chain_id": ctx.chain_id,
        "board": "0x" + ctx.board.hex(),
        "round_id": ctx.round_id,
        "dealer": ctx.dealer,
        "purpose": ctx.purpose,
        "partner": ctx.partner,
        "bytes": ctx.to_bytes().hex(),
    }


def ctx_from_json(d: dict[str, Any]) -> Context:
    return Context(
        d["chain_id"],
        bytes.fromhex(d["board"][2:]),
        d["round_id"],
        d["dealer"],
        d["purpose"],
        d["partner"],
    )


def _pt(p: G1Point) -> str:
    return p.to_bytes().hex()


def forge_dealing(
    keys: list[G1Point],
    threshold: int,
    ctx: Context,
    has_recipient: bool,
    evals: list[int],
    nonces: list[int],
    s_hat_evals: list[int] | None = None,
) -> Dealing:
    """A dealing with honestly computed proofs for arbitrary values: v_k = evals[k]*G,
    s_hat_k = s_hat_evals[k]*pk_k (default: the same values). Lets a vector reach the
    RS check (values off any degree-t polynomial) or the key-side DLEQ (s_hat and v
    disagree) with every other check passing."""
    s_vals = s_hat_evals if s_hat_evals is not None else evals
    v = [G * x for x in evals]
    s_hat = [pk * x for pk, x in zip(keys, s_vals, strict=True)]
    a1 = [G * w for w in nonces]
    a2 = [pk * w for pk, w in zip(keys, nonces, strict=True)]
    e = dealing_transcript(ctx, threshold, keys, has_recipient, v, s_hat, a1, a2).challenge()
    z = tuple((w - e * x) % R for w, x in zip(nonces, evals, strict=True))
    return Dealing(threshold, has_recipient, tuple(v), tuple(s_hat), tuple(a1), tuple(a2), z)


def build() -> dict[str, dict[str, Any]]:
    """All vectors as {relative path: content}."""
    rng = random.Random(20261121)
    out: dict[str, dict[str, Any]] = {}
    out["hash_to_g1/h.json"] = {
        "input": {"tag": H_TAG.hex()},
        "output": {"point": _pt(H), "counter": H_COUNTER},
    }
    keys = [KeyPair.generate(rng.randrange(1, R)) for _ in range(4)]
    pks = [k.pk for k in keys]
    recipient = KeyPair.generate(rng.randrange(1, R))
    board = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
    for name, rkey, purpose in (
        ("self_m4_t1", None, PURPOSE_SELF),
        ("pair_m4_t1", recipient, PURPOSE_PAIR),
    ):
        ctx = Context(31337, board, 1, 2, purpose, 3 if rkey else 0)
        rpk = rkey.pk if rkey else None
        dealing, secret = deal(pks, 1, ctx, rpk, rng=rng)
        e = compute_dealing_challenge(dealing, pks, ctx, rpk)
        keys_all = ([rpk] if rpk else []) + pks
        tr = dealing_transcript(
            ctx,
            1,
            keys_all,
            dealing.has_recipient,
            dealing.v,
            dealing.s_hat,
            dealing.a1,
            dealing.a2,
        )
        base_input = {
            "context": ctx_json(ctx),
            "threshold": 1,
            "committee_pks": [_pt(p) for p in pks],
            "recipient_pk": _pt(rpk) if rpk else None,
        }
        out[f"transcript/dealing_{name}.json"] = {
            "input": {**base_input, "dealing": dealing.to_bytes().hex()},
            "output": {"transcript": tr.to_bytes().hex(), "challenge": hex(e)},
        }
        n = dealing.n_points
        mus = compute_rs_weights(e, n - 2)
        out[f"rs_weights/{name}.json"] = {
            "input": {"challenge": hex(e), "count": n - 2},
            "output": {"mu": [hex(m) for m in mus]},
        }
        out[f"dealing/valid_{name}.json"] = {
            "input": {**base_input, "dealing": dealing.to_bytes().hex()},
            "output": {"valid": True, "challenge": hex(e), "secret": _pt(secret)},
        }
        tampers = {
            "v1": dataclasses.replace(dealing, v=(dealing.v[0], dealing.v[1] + G) + dealing.v[2:]),
            "s_hat0": dataclasses.replace(
                dealing, s_hat=(dealing.s_hat[0] + G,) + dealing.s_hat[1:]
            ),
            "a1_2": dataclasses.replace(
                dealing, a1=dealing.a1[:2] + (dealing.a1[2] + G,) + dealing.a1[3:]
            ),
            "a2_3": dataclasses.replace(
                dealing, a2=dealing.a2[:3] + (dealing.a2[3] + G,) + dealing.a2[4:]
            ),
            "z0": dataclasses.replace(dealing, z=((dealing.z[0] + 1) % R,) + dealing.z[1:]),
            "threshold": dataclasses.replace(dealing, threshold=2),
        }
        for label, bad in tampers.items():
            out[f"dealing/invalid_{name}_{label}.json"] = {
                "input": {
                    **base_input,
                    "dealing": bad.to_bytes().hex(),
                    "threshold": bad.threshold,
                },
                "output": {"valid": False},
            }
        n_pts = dealing.n_points
        first = 0 if rpk else 1
        keys_list = ([rpk] if rpk else []) + pks
        frng = random.Random(f"forged-{name}")  # own stream: other vectors stay unchanged
        high = [frng.randrange(R) for _ in range(3)]  # degree 2 > t = 1
        evals = [sum(c * k**j for j, c in enumerate(high)) % R for k in range(first, first + n_pts)]
        nonces = [frng.randrange(1, R) for _ in range(n_pts)]
        forged = {
            "rs": forge_dealing(keys_list, 1, ctx, bool(rpk), evals, nonces),
            "key_side_dleq": forge_dealing(
                keys_list,
                1,
                ctx,
                bool(rpk),
                evals,
                nonces,
                s_hat_evals=[evals[0] + 1] + evals[1:],
            ),
        }
        for label, bad in forged.items():
            out[f"dealing/invalid_{name}_{label}.json"] = {
                "input": {**base_input, "dealing": bad.to_bytes().hex()},
                "output": {"valid": False},
            }
        other = dataclasses.replace(ctx, round_id=2)
        out[f"dealing/invalid_{name}_context.json"] = {
            "input": {
                **base_input,
                "context": ctx_json(other),
                "dealing": dealing.to_bytes().hex(),
            },
            "output": {"valid": False},
        }
        if name == "pair_m4_t1":
            share = decrypt_share(dealing, 2, keys[1], ctx, nonce=rng.randrange(1, R))
            sh_input = {
                "context": ctx_json(ctx),
                "dealing": dealing.to_bytes().hex(),
                "pk": _pt(pks[1]),
                "share": share.to_bytes().hex(),
            }
            out["decrypted_share/valid.json"] = {"input": sh_input, "output": {"valid": True}}
            raw = share.to_bytes()
            # layout: uint16 k || S_k [2:66] || A1 [66:130] || A2 [130:194] || z [194:226]
            variants = {
                "share": raw[:2] + (share.share + G).to_bytes() + raw[66:],
                "a1": raw[:66] + (share.proof.a1 + G).to_bytes() + raw[130:],
                "a2": raw[:130] + (share.proof.a2 + G).to_bytes() + raw[194:],
                "response": raw[:194] + ((share.proof.response + 1) % R).to_bytes(32, "big"),
                "index": (3).to_bytes(2, "big") + raw[2:],
            }
            for label, blob in variants.items():
                out[f"decrypted_share/invalid_{label}.json"] = {
                    "input": {**sh_input, "share": blob.hex()},
                    "output": {"valid": False},
                }
            out["decrypted_share/invalid_context.json"] = {
                "input": {**sh_input, "context": ctx_json(other)},
                "output": {"valid": False},
            }
    key = keys[0]
    pop = prove_possession(key, 31337, board, 5, 7, nonce=rng.randrange(1, R))
    pop_in = {
        "chain_id": 31337,
        "board": "0x" + board.hex(),
        "round_id": 5,
        "party": 7,
        "pk": _pt(key.pk),
    }
    out["pop/valid.json"] = {
        "input": {**pop_in, "proof": pop.to_bytes().hex()},
        "output": {
            "valid": True,
            "transcript_prefix": pop_transcript(31337, board, 5, 7, key.pk).to_bytes().hex(),
        },
    }
    for label, change in {
        "party": {"party": 8},
        "round_id": {"round_id": 6},
        "chain_id": {"chain_id": 1},
        "board": {"board": "0x" + "11" * 20},
        "pk": {"pk": _pt(key.pk + G)},
        "challenge": {
            "proof": (((pop.challenge + 1) % R).to_bytes(32, "big") + pop.to_bytes()[32:]).hex()
        },
        "response": {
            "proof": (pop.to_bytes()[:32] + ((pop.response + 1) % R).to_bytes(32, "big")).hex()
        },
    }.items():
        out[f"pop/invalid_{label}.json"] = {
            "input": {**pop_in, "proof": pop.to_bytes().hex(), **change},
            "output": {"valid": False},
        }
    # seed reveals (SPEC.md §6.10): Gamma = sk*H_SEED with a DLEQ proof against pk
    gamma = H_SEED * key.sk
    prefix = seed_reveal_transcript(31337, board, 5, 3, key.pk, gamma)
    proof = prove_dleq(key.sk, H, H_SEED, prefix, nonce=rng.randrange(1, R)).to_bytes()
    sr_in = {
        "chain_id": 31337,
        "board": "0x" + board.hex(),
        "round_id": 5,
        "member": 3,
        "pk": _pt(key.pk),
        "gamma": _pt(gamma),
        "proof": proof.hex(),
    }
    out["seed_reveal/valid.json"] = {
        "input": sr_in,
        "output": {
            "valid": True,
            "h_seed": _pt(H_SEED),
            "transcript_prefix": prefix.to_bytes().hex(),
        },
    }
    z = int.from_bytes(proof[128:], "big")
    for label, change in {
        "member": {"member": 4},
        "round_id": {"round_id": 6},
        "chain_id": {"chain_id": 1},
        "board": {"board": "0x" + "11" * 20},
        "gamma": {"gamma": _pt(gamma + H_SEED)},
        "pk": {"pk": _pt(keys[1].pk)},
        "response": {"proof": (proof[:128] + ((z + 1) % R).to_bytes(32, "big")).hex()},
    }.items():
        out[f"seed_reveal/invalid_{label}.json"] = {
            "input": {**sr_in, **change},
            "output": {"valid": False},
        }
    out.update(_share_post_vectors(keys, board))
    return out


def _share_post_vectors(keys: list[KeyPair], board: bytes) -> dict[str, dict[str, Any]]:
    """share_post/*.json (SPEC.md §4.5): member 2's post of its shares of three
    dealings (a self dealing and two pair dealings), valid and with each field tampered.
    Input: member index k, pk, per share the dealing, its context and s_hat_k (cut from
    the dealing), and the post bytes uint16 k || uint16 N || N x S_i || A1 || A2 || z."""
    rng = random.Random(20261202)  # its own stream: the older vectors stay as they are
    pks = [k.pk for k in keys]
    recipient = KeyPair.generate(rng.randrange(1, R))
    items = []
    for dealer, purpose, partner in (
        (5, PURPOSE_SELF, 0),
        (5, PURPOSE_PAIR, 6),
        (7, PURPOSE_PAIR, 9),
    ):
        ctx = Context(31337, board, 1, dealer, purpose, partner)
        rpk = recipient.pk if purpose == PURPOSE_PAIR else None
        items.append((deal(pks, 1, ctx, rpk, rng=rng)[0], ctx))
    k = 2
    post = decrypt_share_post(k, keys[k - 1], items, nonce=rng.randrange(1, R))
    base = {
        "index": k,
        "pk": _pt(pks[k - 1]),
        "dealings": [d.to_bytes().hex() for d, _ in items],
        "contexts": [ctx_json(c) for _, c in items],
        "s_hats": [_pt(d.s_hat[d.position(k)]) for d, _ in items],
        "post": post.to_bytes().hex(),
    }
    out = {"share_post/valid.json": {"input": base, "output": {"valid": True}}}
    raw = post.to_bytes()
    n = len(post.shares)
    off = 4 + 64 * n  # A1 || A2 || z after the shares
    variants: dict[str, dict[str, Any]] = {}
    for i in range(n):
        at = 4 + 64 * i
        bad = raw[:at] + (post.shares[i] + G).to_bytes() + raw[at + 64 :]
        variants[f"share{i}"] = {"post": bad.hex()}
    variants["a1"] = {"post": (raw[:off] + (post.proof.a1 + G).to_bytes() + raw[off + 64 :]).hex()}
    variants["a2"] = {
        "post": (raw[: off + 64] + (post.proof.a2 + G).to_bytes() + raw[off + 128 :]).hex()
    }
    z = (post.proof.response + 1) % R
    variants["response"] = {"post": (raw[: off + 128] + z.to_bytes(32, "big")).hex()}
    # member 2's shares and proof posted as member 3's (member 3's key and s_hat_3)
    variants["index"] = {
        "index": 3,
        "post": ((3).to_bytes(2, "big") + raw[2:]).hex(),
        "pk": _pt(pks[2]),
        "s_hats": [_pt(d.s_hat[d.position(3)]) for d, _ in items],
    }
    # the dealing reference: share 1 said to decrypt another round's dealing
    other = dataclasses.replace(items[1][1], round_id=2)
    variants["context"] = {
        "contexts": [ctx_json(c) for _, c in items[:1]]
        + [ctx_json(other)]
        + [ctx_json(c) for _, c in items[2:]]
    }
    # the dealing reference: shares 1 and 2 swapped against their dealings
    swap = [items[0], items[2], items[1]]
    variants["order"] = {
        "dealings": [d.to_bytes().hex() for d, _ in swap],
        "contexts": [ctx_json(c) for _, c in swap],
        "s_hats": [_pt(d.s_hat[d.position(k)]) for d, _ in swap],
    }
    for label, change in variants.items():
        out[f"share_post/invalid_{label}.json"] = {
            "input": {**base, **change},
            "output": {"valid": False},
        }
    return out


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=1, sort_keys=True) + "\n"


def write(root: Path = VECTOR_DIR) -> int:
    files = build()
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(content))
    return len(files)


def load_dealing_case(
    inp: dict[str, Any],
) -> tuple[Dealing, list[G1Point], Context, G1Point | None]:
    """Decode a dealing vector's input (shared by the vector tests)."""
    pks = [G1Point.from_bytes(bytes.fromhex(h)) for h in inp["committee_pks"]]
    rpk = G1Point.from_bytes(bytes.fromhex(inp["recipient_pk"])) if inp["recipient_pk"] else None
    return (
        Dealing.from_bytes(bytes.fromhex(inp["dealing"])),
        pks,
        ctx_from_json(inp["context"]),
        rpk,
    )


if __name__ == "__main__":
    print(f"wrote {write()} vector files under {VECTOR_DIR}")
