"""The embedded chain's ecAdd / ecMul on pvss.group agree with py-evm's own (py_ecc)
implementation on the go-ethereum vectors and on invalid inputs."""

from __future__ import annotations

import importlib
import importlib.util
import json
import random

import pytest
from eth_utils import ValidationError

from pvss.group import FIELD_MODULUS, G
from secagg.boards.evm import fast_ecadd, fast_ecmul

from .conftest import EVM_VECTORS


# py-evm's own (py_ecc) implementations, read from fresh copies of the modules
# (an earlier test in this process may have patched the loaded ones)
def _original(path: str, name: str):  # noqa: ANN202
    spec = importlib.util.find_spec(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


ORIGINAL_ADD = _original("eth.precompiles.ecadd", "_ecadd")
ORIGINAL_MUL = _original("eth.precompiles.ecmul", "_ecmull")


def _vectors(name: str) -> list[dict]:
    return json.loads((EVM_VECTORS / f"{name}.json").read_text())


def _out(pair) -> str:
    return b"".join(int(c.n).to_bytes(32, "big") for c in pair).hex()


@pytest.mark.parametrize("vec", _vectors("bn256Add"), ids=lambda v: v["Name"])
def test_ecadd_vectors(vec: dict) -> None:
    data = bytes.fromhex(vec["Input"])
    assert _out(fast_ecadd(data)) == vec["Expected"] == _out(ORIGINAL_ADD(data))


@pytest.mark.parametrize("vec", _vectors("bn256ScalarMul"), ids=lambda v: v["Name"])
def test_ecmul_vectors(vec: dict) -> None:
    data = bytes.fromhex(vec["Input"])
    assert _out(fast_ecmul(data)) == vec["Expected"] == _out(ORIGINAL_MUL(data))


def test_random_inputs_and_invalid_points_agree() -> None:
    rng = random.Random(5)
    p = int(FIELD_MODULUS)
    for _ in range(10):
        a, b = G * rng.randrange(1, 2**64), G * rng.randrange(1, 2**64)
        k = rng.randrange(2**256)
        add_in = a.to_bytes() + b.to_bytes()
        mul_in = a.to_bytes() + k.to_bytes(32, "big")
        assert _out(fast_ecadd(add_in)) == _out(ORIGINAL_ADD(add_in))
        assert _out(fast_ecmul(mul_in)) == _out(ORIGINAL_MUL(mul_in))
        assert _out(fast_ecadd(add_in[:64])) == _out(ORIGINAL_ADD(add_in[:64]))  # short input
    bad = [
        (1).to_bytes(32, "big") + (3).to_bytes(32, "big"),  # off the curve
        p.to_bytes(32, "big") + (2).to_bytes(32, "big"),  # x >= p
        (1).to_bytes(32, "big") + (2 + p).to_bytes(32, "big"),  # y >= p
    ]
    for point in bad:
        for fn_fast, fn_orig, tail in (
            (fast_ecadd, ORIGINAL_ADD, G.to_bytes()),
            (fast_ecmul, ORIGINAL_MUL, (5).to_bytes(32, "big")),
        ):
            with pytest.raises(ValidationError):
                fn_orig(point + tail)
            with pytest.raises(ValidationError):
                fn_fast(point + tail)
