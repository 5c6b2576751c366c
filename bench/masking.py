"""Masking engine benchmark: ChaCha20 mask expansion, fused client op, fused unmasking,
against Flower's SecAgg+ primitives, all measured in the same run.

Records (one JSON line each, also appended to bench/results/masking.jsonl):

* ``mask_expansion``: one mask of d elements. Baseline: flwr's ``pseudo_rand_gen(seed,
  2**32, [(d,)])`` exactly as SecAgg+ calls it (one mask, modulus 2^32); ours:
  ``secagg.prg.mask(seed, d, 32, backend)`` for the numba and reference backends. Extra:
  keystream GB/s, ``mask(..., out=preallocated)`` (no page faults of fresh memory), and
  a memcpy of the same 4d bytes (the memory floor).
* ``client_op``: quantize + self mask + 10 pair masks + pack of a d-coordinate float32
  update with the fused secagg.masking.quantize_mask_and_pack (extra: the same as
  quantize() then mask_and_pack(), and each of those alone). Baseline: 11x our
  single expansion of a (d+1)-element mask at the same bit width (target: speedup >= 1).
  Extra: Flower's SecAgg+ client pipeline (multiply, quantize, factor_combine, 11x
  pseudo_rand_gen, add/sub, mod, ndarray_to_bytes), the bits per coordinate against the
  target ceil(q + log2(n W)), memcpy of the packed bytes.
* ``server_unmask``: sum of 11 masked vectors minus 11 self masks (unmask_sum). Baseline:
  the same with Flower's primitives (11x pseudo_rand_gen, parameters_addition /
  subtraction, parameters_mod).

    .venv/bin/python bench/masking.py [--quick] [--repeats N] [--threads T] [--sizes 1e7]

--quick: d in {1e5, 1e6} and 3 repeats; otherwise d in {1e5, 1e6, 1e7} and 5 repeats.
Times are medians; each ours/baseline pair is timed alternately (same machine noise).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit, median_time, paired_medians  # noqa: E402

from secagg import masking, packing, prg  # noqa: E402
from secagg.quantize import MaskingConfig, quantize  # noqa: E402

N_PAIRS = 10  # pair masks per client: 11 masks with the self mask
FLOWER = "flwr.common.secure_aggregation.secaggplus_utils.pseudo_rand_gen"


def _flower():
    from flwr.common import ndarray_to_bytes
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_combine,
        parameters_addition,
        parameters_mod,
        parameters_multiply,
        parameters_subtraction,
    )
    from flwr.common.secure_aggregation.quantization import quantize as flwr_quantize
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    return {
        "ndarray_to_bytes": ndarray_to_bytes,
        "factor_combine": factor_combine,
        "add": parameters_addition,
        "sub": parameters_subtraction,
        "mod": parameters_mod,
        "multiply": parameters_multiply,
        "quantize": flwr_quantize,
        "prg": pseudo_rand_gen,
    }


def flower_client(fl, x, weight, max_weight, clip, target_range, mod_range, self_seed, pairs):
    """Flower SecAgg+ client stage 2 (secaggplus_mod._fit) on one float array."""
    q_ratio = round(weight / max_weight * target_range)
    params = fl["multiply"]([x], q_ratio / target_range)
    qp = fl["quantize"](params, clip, target_range)
    qp = fl["factor_combine"](q_ratio, qp)
    dims = [a.shape for a in qp]
    qp = fl["add"](qp, fl["prg"](self_seed, mod_range, dims))
    for seed, sign in pairs:
        pm = fl["prg"](seed, mod_range, dims)
        qp = fl["add"](qp, pm) if sign > 0 else fl["sub"](qp, pm)
    qp = fl["mod"](qp, mod_range)
    return [fl["ndarray_to_bytes"](a) for a in qp]


def flower_unmask(fl, masked, seeds, mod_range, dims):
    """Flower SecAgg+ server: sum the masked vectors, subtract the private masks, mod."""
    total = masked[0]
    for m in masked[1:]:
        total = fl["add"](total, m)
    for seed in seeds:
        total = fl["sub"](total, fl["prg"](seed, mod_range, dims))
    return fl["mod"](total, mod_range)


def run_size(d: int, ctx: dict) -> None:
    """All records for one vector length d."""
    fl, reps, threads = ctx["fl"], ctx["reps"], ctx["threads"]
    cfg, rng, weight = ctx["cfg"], ctx["rng"], ctx["weight"]
    n_clients, max_weight, q_bits, clip = (
        ctx["n_clients"],
        ctx["max_weight"],
        ctx["q_bits"],
        ctx["clip"],
    )
    target_bits, self_seeds, pair_seeds = ctx["target_bits"], ctx["self_seeds"], ctx["pair_seeds"]
    seed = self_seeds[0]
    common = {"d": d, "threads": threads}

    # ---- single mask expansion (bits = 32, Flower's default modulus 2^32)
    out32 = np.empty(d, dtype=np.uint32)
    src = np.arange(d, dtype=np.uint32)
    memcpy_s = median_time(lambda: np.copyto(out32, src), reps)
    pre_s, pre_flwr_s = paired_medians(
        lambda: prg.mask(seed, d, 32, backend="numba", out=out32),
        lambda: fl["prg"](seed, 2**32, [(d,)]),
        reps,
    )
    for backend in ("numba", "reference"):
        # ours and Flower's timed alternately: both see the same machine noise
        ours, flwr_s = paired_medians(
            lambda b=backend: prg.mask(seed, d, 32, backend=b),
            lambda: fl["prg"](seed, 2**32, [(d,)]),
            reps,
        )
        rec = {
            "bench": "mask_expansion",
            "params": {**common, "bits": 32, "backend": backend},
            "ours_s": ours,
            "baseline": FLOWER,
            "baseline_s": flwr_s,
            "speedup": flwr_s / ours,
            "keystream_GBps": 4 * d / ours / 1e9,
            "baseline_GBps": 4 * d / flwr_s / 1e9,
            "memcpy_s": memcpy_s,
            "memcpy_GBps": 4 * d / memcpy_s / 1e9,
            "ratio_to_memcpy": ours / memcpy_s,
        }
        if backend == "numba":
            rec["ours_prealloc_s"] = pre_s  # mask(..., out=preallocated array)
            rec["prealloc_baseline_s"] = pre_flwr_s
            rec["prealloc_speedup"] = pre_flwr_s / pre_s
            rec["prealloc_GBps"] = 4 * d / pre_s / 1e9
            if d == 10**7:
                rec["target_speedup"] = 6.0
                rec["target_met"] = flwr_s / ours >= 6.0
        emit(rec)

    # ---- client op: quantize + self mask + 10 pair masks + pack
    x = rng.normal(scale=0.3, size=d).astype(np.float32)
    length = d + 1

    def client():
        return masking.quantize_mask_and_pack(
            x, cfg, weight, np.random.default_rng(7), self_seeds[0], pair_seeds
        )

    def client_unfused():
        q = quantize(x, cfg, weight, np.random.default_rng(7))
        return masking.mask_and_pack(q, self_seeds[0], pair_seeds, cfg.bits)

    client_s, single_s = paired_medians(
        client, lambda: prg.mask(seed, length, cfg.bits, backend="numba"), reps
    )
    unfused_s = median_time(client_unfused, reps)
    qvec = quantize(x, cfg, weight, np.random.default_rng(7))
    quant_s = median_time(lambda: quantize(x, cfg, weight, np.random.default_rng(7)), reps)
    map_s = median_time(
        lambda: masking.mask_and_pack(qvec, self_seeds[0], pair_seeds, cfg.bits), reps
    )
    packed = client()
    assert packed == client_unfused()
    pbuf = np.frombuffer(packed, dtype=np.uint8)
    pdst = np.empty_like(pbuf)
    pmemcpy_s = median_time(lambda: np.copyto(pdst, pbuf), reps)
    rec = {
        "bench": "client_op",
        "params": {
            **common,
            "bits": cfg.bits,
            "quant_bits": q_bits,
            "n_clients": n_clients,
            "max_weight": max_weight,
            "masks": 1 + N_PAIRS,
            "backend": "numba",
        },
        "ours_s": client_s,
        "baseline": f"{1 + N_PAIRS}x our single numba expansion mask(seed, d+1, {cfg.bits})",
        "baseline_s": (1 + N_PAIRS) * single_s,
        "speedup": (1 + N_PAIRS) * single_s / client_s,
        "single_expansion_s": single_s,
        "unfused_s": unfused_s,
        "quantize_s": quant_s,
        "mask_and_pack_s": map_s,
        "mask_GBps": (1 + N_PAIRS) * 4 * length / client_s / 1e9,
        "packed_bytes": len(packed),
        "bits_per_coord": 8 * len(packed) / length,
        "target_bits_per_coord": target_bits,
        "memcpy_packed_s": pmemcpy_s,
        "target_met": (client_s <= (1 + N_PAIRS) * single_s) and cfg.bits <= target_bits,
    }
    if not ctx["skip_flower_client"]:
        pairs = pair_seeds

        def fclient():
            return flower_client(
                fl, x, weight, max_weight, clip, 2**q_bits, 2**32, self_seeds[0], pairs
            )

        fbytes = fclient()
        rec["flower_client_s"] = median_time(fclient, reps)
        rec["speedup_vs_flower_client"] = rec["flower_client_s"] / client_s
        rec["flower_bytes"] = sum(len(b) for b in fbytes)
        rec["flower_bits_per_coord"] = 8 * rec["flower_bytes"] / length
    emit(rec)

    # ---- server: sum 11 masked vectors, remove 11 self masks
    ys = [packed]
    for i in range(1, n_clients):
        qi = quantize(x, cfg, weight, np.random.default_rng(i))
        ys.append(masking.mask_and_pack(qi, self_seeds[i], [], cfg.bits))
    remove = [(s, 1) for s in self_seeds]
    fmasked = [[rng.integers(0, 2**32, size=length, dtype=np.int64)] for _ in range(n_clients)]
    ours, base = paired_medians(
        lambda: masking.unmask_sum(ys, length, cfg.bits, remove),
        lambda: flower_unmask(fl, fmasked, self_seeds, 2**32, [(length,)]),
        reps,
    )
    emit(
        {
            "bench": "server_unmask",
            "params": {**common, "bits": cfg.bits, "inputs": n_clients, "seeds": n_clients},
            "ours_s": ours,
            "baseline": "flwr pseudo_rand_gen + parameters_addition/subtraction/mod",
            "baseline_s": base,
            "speedup": base / ours,
            "mask_GBps": n_clients * 4 * length / ours / 1e9,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d in {1e5, 1e6}, 3 repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (median)")
    ap.add_argument("--threads", type=int, default=None, help="numba threads")
    ap.add_argument("--skip-flower-client", action="store_true")
    ap.add_argument("--sizes", default=None, help="comma-separated d values, e.g. 1e7")
    args = ap.parse_args()
    reps = max(3, args.repeats or (3 if args.quick else 5))
    sizes = [10**5, 10**6] if args.quick else [10**5, 10**6, 10**7]
    if args.sizes:
        sizes = [int(float(v)) for v in args.sizes.split(",")]
    if args.threads:
        numba.set_num_threads(args.threads)
    threads = numba.get_num_threads()
    fl = _flower()
    prg.warmup(["numba"])
    packing.warmup()
    masking.warmup()
    quantize(np.zeros(10, np.float32), MaskingConfig(32, 8, 1.0, 1, 1), 1, np.random.default_rng())

    rng = np.random.default_rng(2024)
    n_clients, max_weight, q_bits, clip = N_PAIRS + 1, 1024, 16, 1.0
    cfg = MaskingConfig.minimal(q_bits, clip, max_weight, n_clients)
    target_bits = math.ceil(q_bits + math.log2(n_clients * max_weight))
    self_seeds = [rng.bytes(32) for _ in range(n_clients)]
    pair_seeds = [(rng.bytes(32), 1 if k % 2 else -1) for k in range(N_PAIRS)]
    weight = 700

    ctx = dict(
        fl=fl,
        reps=reps,
        threads=threads,
        cfg=cfg,
        rng=rng,
        weight=weight,
        n_clients=n_clients,
        max_weight=max_weight,
        q_bits=q_bits,
        clip=clip,
        target_bits=target_bits,
        self_seeds=self_seeds,
        pair_seeds=pair_seeds,
        skip_flower_client=args.skip_flower_client,
    )
    for d in sizes:
        run_size(d, ctx)


if __name__ == "__main__":
    main()
