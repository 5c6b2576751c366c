"""Model tensors <-> one flat real vector, and back (the shape secure aggregation needs).

Secure aggregation sums one real vector per client. A model is many tensors of
different shapes and dtypes, so this module flattens the *floating-point* tensors of a
torch ``state_dict`` (or of a list of numpy arrays, Flower's ``NDArrays``) into one
float64 vector, in their order, and rebuilds them from such a vector with the same
names, shapes, dtypes and devices.

Integer and bool tensors (BatchNorm's ``num_batches_tracked``, masks, index buffers)
are **not aggregated**: an average of counters or masks means nothing and the masking
is real-valued. They are left out of the vector and *carried through*: rebuilding takes
them from a template (the model being updated, or the global parameters the server
sent), unchanged. ``FlatSpec.carried`` names them so a caller can see what was skipped.

float16, bfloat16, float32 and float64 all widen to float64 exactly, so a round trip
is bit-exact. Complex tensors are refused (``TypeError``).

Devices: for torch the vector is a float64 tensor on the tensors' device, so CUDA
parameters stay on the GPU; :func:`to_array` / :func:`from_array` move such a vector
to and from cupy through DLPack (no host copy) when cupy is installed, and fall back to
numpy on the host otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "TensorSpec",
    "FlatSpec",
    "state_dict_to_vector",
    "vector_to_state_dict",
    "model_to_vector",
    "vector_to_model",
    "ndarrays_to_vector",
    "vector_to_ndarrays",
    "to_array",
    "from_array",
    "cupy_available",
]


@dataclass(frozen=True)
class TensorSpec:
    """Where one floating-point tensor lives in the flat vector."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # torch or numpy dtype name, e.g. "float32", "bfloat16"
    offset: int
    numel: int


@dataclass(frozen=True)
class FlatSpec:
    """The layout of a flat vector: the aggregated tensors in order, the carried ones
    (integer / bool, not aggregated) by name, and the order of every name."""

    entries: tuple[TensorSpec, ...]
    carried: tuple[str, ...]
    order: tuple[str, ...]

    @property
    def length(self) -> int:
        """Number of coordinates of the vector (the round's ``dim``)."""
        return sum(e.numel for e in self.entries)

    def check(self, length: int) -> None:
        """Raise ``ValueError`` unless a vector of ``length`` coordinates fits."""
        if length != self.length:
            raise ValueError(f"vector: {length} coordinates, the layout needs {self.length}")


# ---------------------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------------------


def _torch():
    import torch  # noqa: PLC0415 - torch is an optional dependency (the 'fl' extra)

    return torch


def _is_torch_float(t: Any) -> bool:
    torch = _torch()
    if t.is_complex():
        raise TypeError(f"tensor of dtype {t.dtype}: complex tensors cannot be aggregated")
    return t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _torch_dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def state_dict_to_vector(state_dict: Mapping[str, Any]) -> tuple[Any, FlatSpec]:
    """Flatten the floating-point tensors of a ``state_dict`` into one float64 tensor.

    Parameters
    ----------
    state_dict : Mapping[str, torch.Tensor]
        Name -> tensor, e.g. ``model.state_dict()``. All floating-point tensors must be
        on one device.

    Returns
    -------
    (torch.Tensor, FlatSpec)
        The detached float64 vector on the tensors' device (CPU for an empty model) and
        its layout. Integer / bool tensors are named in ``FlatSpec.carried``, not in the
        vector.
    """
    torch = _torch()
    entries: list[TensorSpec] = []
    carried: list[str] = []
    parts = []
    device = None
    offset = 0
    for name, t in state_dict.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if not _is_torch_float(t):
            carried.append(name)
            continue
        if device is None:
            device = t.device
        elif t.device != device:
            raise ValueError(f"{name}: on {t.device}, the other tensors are on {device}")
        n = t.numel()
        entries.append(TensorSpec(name, tuple(t.shape), _torch_dtype_name(t.dtype), offset, n))
        parts.append(t.detach().reshape(-1).to(torch.float64))
        offset += n
    if parts:
        vec = torch.cat(parts)
    else:
        vec = torch.zeros(0, dtype=torch.float64)
    spec = FlatSpec(tuple(entries), tuple(carried), tuple(state_dict.keys()))
    return vec, spec


def vector_to_state_dict(
    vector: Any, spec: FlatSpec, template: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Rebuild a ``state_dict`` from a flat vector and its layout.

    Parameters
    ----------
    vector : torch.Tensor | numpy.ndarray | cupy.ndarray
        ``spec.length`` real coordinates.
    spec : FlatSpec
        The layout returned by :func:`state_dict_to_vector`.
    template : Mapping[str, torch.Tensor], optional
        Where the carried (integer / bool) tensors come from, unchanged (cloned). Needed
        iff ``spec.carried`` is not empty.

    Returns
    -------
    dict[str, torch.Tensor]
        Every name of ``spec.order``, in that order; each floating-point tensor with its
        original shape and dtype, on the vector's device (a numpy vector gives CPU
        tensors, a cupy vector gives CUDA tensors through DLPack).
    """
    torch = _torch()
    vec = _as_torch(vector)
    if vec.ndim != 1:
        raise ValueError(f"vector: expected 1-D, got shape {tuple(vec.shape)}")
    spec.check(int(vec.shape[0]))
    if spec.carried and template is None:
        raise ValueError(f"template: needed for the carried tensors {list(spec.carried)}")
    floats = {}
    for e in spec.entries:
        dtype = getattr(torch, e.dtype)
        floats[e.name] = vec[e.offset : e.offset + e.numel].reshape(e.shape).to(dtype).clone()
    out: dict[str, Any] = {}
    for name in spec.order:
        if name in floats:
            out[name] = floats[name]
        else:
            assert template is not None
            if name not in template:
                raise KeyError(f"template: no tensor {name!r} to carry through")
            out[name] = template[name].detach().clone()
    return out


def model_to_vector(model: Any) -> tuple[Any, FlatSpec]:
    """``state_dict_to_vector(model.state_dict())`` (parameters and float buffers)."""
    return state_dict_to_vector(model.state_dict())


def vector_to_model(vector: Any, spec: FlatSpec, model: Any) -> None:
    """Load a flat vector into ``model`` in place; its integer / bool buffers are kept."""
    current = model.state_dict()
    model.load_state_dict(vector_to_state_dict(vector, spec, current))


def _as_torch(vector: Any) -> Any:
    torch = _torch()
    if isinstance(vector, torch.Tensor):
        return vector.detach()
    cp = _cupy()
    if cp is not None and isinstance(vector, cp.ndarray):
        return torch.from_dlpack(vector)
    return torch.from_numpy(np.ascontiguousarray(np.asarray(vector, dtype=np.float64)))


# ---------------------------------------------------------------------------------------
# numpy (Flower NDArrays)
# ---------------------------------------------------------------------------------------


def _is_np_float(a: np.ndarray, name: str) -> bool:
    if a.dtype.kind == "c":
        raise TypeError(f"{name}: complex arrays ({a.dtype}) cannot be aggregated")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name}: arrays of dtype {a.dtype} cannot be aggregated")
    return a.dtype.kind == "f"


def ndarrays_to_vector(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, FlatSpec]:
    """Flatten the floating-point arrays of a list (Flower ``NDArrays``) into one
    float64 vector; integer / bool arrays are carried (named by their index)."""
    entries: list[TensorSpec] = []
    carried: list[str] = []
    parts = []
    offset = 0
    for i, raw in enumerate(arrays):
        a = np.asarray(raw)
        name = str(i)
        if not _is_np_float(a, f"array {i}"):
            carried.append(name)
            continue
        entries.append(TensorSpec(name, tuple(a.shape), a.dtype.name, offset, a.size))
        parts.append(a)
        offset += a.size
    vec = np.empty(offset, dtype=np.float64)  # one pass per array: cast into place
    for e, a in zip(entries, parts, strict=True):
        vec[e.offset : e.offset + e.numel] = a.reshape(-1)
    return vec, FlatSpec(tuple(entries), tuple(carried), tuple(str(i) for i in range(len(arrays))))


def vector_to_ndarrays(
    vector: Any, spec: FlatSpec, template: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Rebuild the list of arrays from a flat vector; carried (integer / bool) arrays
    are copied from ``template`` unchanged."""
    vec = np.asarray(to_host(vector), dtype=np.float64)
    if vec.ndim != 1:
        raise ValueError(f"vector: expected 1-D, got shape {vec.shape}")
    spec.check(vec.shape[0])
    if spec.carried and template is None:
        raise ValueError(f"template: needed for the carried arrays {list(spec.carried)}")
    floats = {
        e.name: vec[e.offset : e.offset + e.numel].reshape(e.shape).astype(e.dtype)
        for e in spec.entries
    }
    out = []
    for name in spec.order:
        if name in floats:
            out.append(floats[name])
        else:
            assert template is not None
            out.append(np.array(template[int(name)], copy=True))
    return out


# ---------------------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------------------


def _cupy():
    try:
        import cupy  # noqa: PLC0415
    except ImportError:
        return None
    return cupy


def cupy_available() -> bool:
    """True when cupy imports and sees a CUDA device."""
    cp = _cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any CUDA runtime error means "no device"
        return False


def to_array(vector: Any) -> Any:
    """A torch vector as an array the masking code takes: a CUDA tensor becomes a cupy
    array on the same device through DLPack (zero copy) when cupy is present; anything
    else becomes a numpy array on the host (CPU tensors share memory)."""
    torch = _torch()
    if isinstance(vector, torch.Tensor):
        t = vector.detach()
        if t.is_cuda and _cupy() is not None:
            return _cupy().from_dlpack(t.contiguous())
        return t.cpu().numpy()
    return vector


def from_array(array: Any, like: Any = None) -> Any:
    """An array back to a torch tensor: cupy -> CUDA tensor through DLPack (zero copy),
    numpy -> CPU tensor, then moved to ``like``'s device if given."""
    torch = _torch()
    t = _as_torch(array)
    if like is not None and t.device != like.device:
        t = t.to(like.device)
    return t if isinstance(t, torch.Tensor) else torch.as_tensor(t)


def to_host(vector: Any) -> np.ndarray:
    """Any vector (numpy, cupy, torch on any device) as a host numpy array."""
    cp = _cupy()
    if cp is not None and isinstance(vector, cp.ndarray):
        return vector.get()
    mod = type(vector).__module__
    if mod.startswith("torch"):
        return vector.detach().cpu().numpy()
    return np.asarray(vector)
