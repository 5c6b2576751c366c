"""fl.tensors: model tensors <-> one flat vector, exact round trips, integer / bool
tensors carried through (never aggregated), device handling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fl.tensors import (  # noqa: E402
    cupy_available,
    from_array,
    model_to_vector,
    ndarrays_to_vector,
    state_dict_to_vector,
    to_array,
    vector_to_model,
    vector_to_ndarrays,
    vector_to_state_dict,
)

TORCH_DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
]
NUMPY_DTYPES = [np.float16, np.float32, np.float64, np.int64, np.int8, np.uint16, np.bool_]

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


def _torch_tensor(dtype, shape, seed: int):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g, dtype=torch.float64) * 10).to(dtype)
    return torch.randint(0, 100, shape, generator=g).to(dtype)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(TORCH_DTYPES), shapes), min_size=0, max_size=6),
    st.integers(0, 2**31),
)
def test_state_dict_round_trip_is_exact(entries, seed) -> None:
    sd = {f"t{i}": _torch_tensor(dt, shape, seed + i) for i, (dt, shape) in enumerate(entries)}
    vec, spec = state_dict_to_vector(sd)
    assert vec.dtype == torch.float64 and vec.ndim == 1
    floats = [k for k, t in sd.items() if t.is_floating_point()]
    assert vec.shape[0] == spec.length == sum(sd[k].numel() for k in floats)
    assert [e.name for e in spec.entries] == floats
    assert set(spec.carried) == set(sd) - set(floats)
    back = vector_to_state_dict(vec, spec, template=sd)
    assert list(back) == list(sd)  # order preserved
    for k, t in sd.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape
        assert torch.equal(back[k], t)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(NUMPY_DTYPES), shapes), min_size=0, max_size=6),
    st.integers(0, 2**31),
)
def test_ndarrays_round_trip_is_exact(entries, seed) -> None:
    rng = np.random.default_rng(seed)
    arrays = [
        (rng.normal(size=shape) * 10).astype(dt)
        if np.dtype(dt).kind == "f"
        else rng.integers(0, 2, size=shape).astype(dt)
        for dt, shape in entries
    ]
    vec, spec = ndarrays_to_vector(arrays)
    assert vec.dtype == np.float64 and vec.shape == (spec.length,)
    back = vector_to_ndarrays(vec, spec, template=arrays)
    assert len(back) == len(arrays)
    for a, b in zip(arrays, back, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_integer_buffers_are_carried_not_aggregated() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    vec, spec = model_to_vector(model)
    assert spec.carried == ("1.num_batches_tracked",)
    # running_mean / running_var are float buffers: aggregated like parameters
    assert {e.name for e in spec.entries} >= {"1.running_mean", "1.running_var"}
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    target[1].num_batches_tracked.fill_(41)
    vector_to_model(vec * 2, spec, target)
    assert int(target[1].num_batches_tracked) == 41  # the template's, untouched
    assert torch.equal(target[0].weight, model[0].weight * 2)


def test_a_vector_of_the_wrong_length_or_missing_template_is_refused() -> None:
    sd = {"w": torch.ones(2, 2), "n": torch.tensor(3)}
    vec, spec = state_dict_to_vector(sd)
    with pytest.raises(ValueError, match="coordinates"):
        vector_to_state_dict(vec[:-1], spec, template=sd)
    with pytest.raises(ValueError, match="template"):
        vector_to_state_dict(vec, spec)
    with pytest.raises(ValueError, match="coordinates"):
        vector_to_ndarrays(np.zeros(3), ndarrays_to_vector([np.ones(2)])[1])


def test_complex_tensors_are_refused() -> None:
    with pytest.raises(TypeError, match="complex"):
        state_dict_to_vector({"z": torch.zeros(2, dtype=torch.complex64)})
    with pytest.raises(TypeError, match="complex"):
        ndarrays_to_vector([np.zeros(2, dtype=np.complex128)])


def test_numpy_vector_rebuilds_a_state_dict_and_host_arrays_round_trip() -> None:
    sd = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    vec, spec = state_dict_to_vector(sd)
    arr = to_array(vec)
    assert isinstance(arr, np.ndarray)
    back = vector_to_state_dict(arr, spec)
    assert torch.equal(back["a"], sd["a"])
    assert torch.equal(from_array(arr), vec)


@pytest.mark.gpu
@pytest.mark.skipif(
    not (torch.cuda.is_available() and cupy_available()),
    reason="needs a CUDA device and cupy: CUDA vectors go to cupy through DLPack",
)
def test_cuda_vectors_stay_on_the_device() -> None:  # pragma: no cover - no GPU in CI
    import cupy as cp

    sd = {"w": torch.randn(3, 5, device="cuda"), "n": torch.tensor(2, device="cuda")}
    vec, spec = state_dict_to_vector(sd)
    assert vec.is_cuda
    arr = to_array(vec)
    assert isinstance(arr, cp.ndarray)
    assert arr.data.ptr == vec.data_ptr()  # zero copy
    back = vector_to_state_dict(arr, spec, template=sd)
    assert back["w"].is_cuda and torch.equal(back["w"], sd["w"])
