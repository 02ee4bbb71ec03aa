"""Turning numpy arrays and torch tensors into mh_tensor descriptors without copying.

A float32 array is passed as it is, whatever its strides (numpy's byte strides divided by the
item size); only an array of another floating dtype is converted to float32 (a copy), and an
array whose byte strides are not multiples of its item size (possible with views of structured
arrays) is copied to a contiguous one. torch is never imported here: a tensor is recognised by
the module of its type and viewed through ``.numpy()``, which shares its memory.
"""

from __future__ import annotations

import ctypes
from typing import Any, Tuple

import numpy as np

from ._errors import ShapeError
from ._lib import MH_DTYPE_BOOL, MH_DTYPE_F32, MH_ERR_SHAPE, MH_MAX_RANK

F32 = np.dtype(np.float32)
BOOL = np.dtype(np.bool_)
_ndarray = np.ndarray
_addressof = ctypes.addressof
_from_buffer = ctypes.c_char.from_buffer


def is_torch(x: Any) -> bool:
    """True for a torch.Tensor (or subclass such as Parameter), without importing torch."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _torch_numpy(t):
    """A CPU numpy view of a tensor (a copy only when it lives on another device)."""
    return t.detach().numpy(force=True) if t.requires_grad or t.device.type != "cpu" else t.numpy()


def as_float_array(x: Any, name: str) -> np.ndarray:
    """x as a float32 numpy array: itself when it already is one, else converted.

    - Raises: TypeError when x is not array-like or not floating point.
    """
    if type(x) is _ndarray and x.dtype is F32:
        return x
    if is_torch(x):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating point tensor, got {x.dtype}")
        if str(x.dtype) != "torch.float32":
            x = x.float()  # float64, float16, bfloat16: numpy cannot view bfloat16 anyway
        array = _torch_numpy(x)
    elif isinstance(x, _ndarray):
        array = x
    elif isinstance(x, (list, tuple)) or hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        array = np.asarray(x)
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    dtype = array.dtype
    if dtype == F32:
        return array
    if dtype.kind != "f":
        raise TypeError(f"{name} must be a floating point array (float32; other float types are "
                        f"converted), got dtype {dtype}")
    return array.astype(F32)


def as_mask_array(x: Any, name: str) -> Tuple[np.ndarray, int]:
    """A mask as (array, mh_dtype): bool stays bool (1 byte), floating becomes float32.

    - Raises: TypeError for other dtypes, as PyTorch does.
    """
    if is_torch(x):
        kind = str(x.dtype)
        if kind == "torch.bool":
            return _torch_numpy(x), MH_DTYPE_BOOL
        if not x.is_floating_point():
            raise TypeError(f"only bool and floating types of {name} are supported, got {x.dtype}")
        if kind != "torch.float32":
            x = x.float()
        return _torch_numpy(x), MH_DTYPE_F32
    if not isinstance(x, _ndarray):
        if isinstance(x, (list, tuple)) or hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    dtype = x.dtype
    if dtype == BOOL:
        return x, MH_DTYPE_BOOL
    if dtype.kind == "f":
        return (x if dtype == F32 else x.astype(F32)), MH_DTYPE_F32
    raise TypeError(f"only bool and floating types of {name} are supported, got {dtype}")


def element_strides(array: np.ndarray, name: str) -> Tuple[np.ndarray, tuple]:
    """(array, strides in elements); the array is copied only when a byte stride is not a
    multiple of the item size."""
    if array.ndim > MH_MAX_RANK:
        raise ShapeError(f"{name} has rank {array.ndim}, more than MH_MAX_RANK = {MH_MAX_RANK}; "
                         f"shape {tuple(array.shape)}", MH_ERR_SHAPE)
    item = array.itemsize
    strides = array.strides
    if array.flags.c_contiguous or all(s % item == 0 for s in strides):
        return array, tuple(s // item for s in strides)
    array = np.ascontiguousarray(array)
    return array, tuple(s // item for s in array.strides)


def data_pointer(array: np.ndarray) -> int:
    """The address of element (0, ..., 0)."""
    try:
        return _addressof(_from_buffer(array))  # ~4x faster than array.ctypes.data
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data  # read-only, non-contiguous or empty arrays


def fill(descriptor, shape: tuple, dtype: int, strides: tuple) -> None:
    """Writes a layout (not the data pointer) into an mh_tensor."""
    rank = len(shape)
    descriptor.dtype = dtype
    descriptor.rank = rank
    if rank:
        descriptor.shape[:rank] = shape
        descriptor.strides[:rank] = strides


def contiguous_strides(shape: tuple) -> tuple:
    """Element strides of a C-contiguous array of this shape."""
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))
