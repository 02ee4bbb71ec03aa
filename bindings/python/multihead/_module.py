"""OwnedHandle and NativeModule: what every libmultihead handle shares in Python."""

from __future__ import annotations

import ctypes
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ._errors import Error, InvalidArgumentError, ShapeError
from ._lib import MH_DTYPE_F32, MH_ERR_INVALID_ARGUMENT, MH_ERR_SHAPE, MH_MAX_RANK, check, mh_tensor
from ._tensors import F32, as_float_array, contiguous_strides, data_pointer, element_strides, fill
from .engine import Engine

__all__ = ["NativeModule", "OwnedHandle"]


class OwnedHandle:
    """A libmultihead handle owned by a Python object: its lifetime (``close()``, ``with``, the
    finalizer) and the engine it keeps alive. Subclasses implement ``_destroy(handle)``."""

    _handle = None
    _engine = None

    def _destroy(self, handle) -> None:
        raise NotImplementedError

    def _own(self, handle: int, engine: Optional[Engine]) -> None:
        """Takes ownership of ``handle``, created on ``engine`` (None: the shared engine)."""
        self._handle = handle
        self._engine = None
        if engine is not None:
            engine._attach(self)
            self._engine = engine

    @property
    def engine(self) -> Optional[Engine]:
        """The engine given at construction (None: the library's shared default engine)."""
        return self._engine

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _closed_message(self) -> str:
        return f"{type(self).__name__} is closed"

    def _live(self):
        handle = self._handle
        if handle is None:
            raise Error(self._closed_message())
        return handle

    def close(self) -> None:
        """Frees the native object now. Idempotent; later calls raise multihead.Error."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._destroy(handle)
        engine, self._engine = self._engine, None
        if engine is not None:
            engine._detach(self)

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class NativeModule(OwnedHandle):
    """A libmultihead module handle: its lifetime (``OwnedHandle``) and its parameters by
    PyTorch state_dict name. Subclasses set ``_api``, the prefix of their C functions
    (``mh_mha``, ``mh_encoder``): ``<api>_destroy``, ``_parameter_count``, ``_parameter_info``,
    ``_get_parameter``, ``_set_parameter`` and ``_load_safetensors``.
    """

    _api = ""

    def _function(self, name: str):
        return getattr(self._lib, f"{self._api}_{name}")

    def _destroy(self, handle) -> None:
        self._function("destroy")(handle)

    def _closed_message(self) -> str:
        return f"{type(self).__name__} module is closed"

    def _adopt(self, handle: int, engine: Optional[Engine]) -> None:
        self._own(handle, engine)
        self._parameter_shapes = self._read_parameter_shapes()

    # parameters ----------------------------------------------------------------------------

    def _read_parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        handle = self._live()
        count = ctypes.c_int32()
        check(self._function("parameter_count")(handle, ctypes.byref(count)), "parameter_count")
        name, rank = ctypes.c_char_p(), ctypes.c_int32()
        shape = (ctypes.c_int64 * MH_MAX_RANK)()
        shapes = {}
        for index in range(count.value):
            check(self._function("parameter_info")(handle, index, ctypes.byref(name), ctypes.byref(rank), shape),
                  "parameter_info")
            shapes[name.value.decode("utf-8")] = tuple(shape[:rank.value])
        return shapes

    @property
    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Parameter names (PyTorch's state_dict names, in its order) and shapes."""
        return dict(self._parameter_shapes)

    def _check_name(self, name: str) -> Tuple[int, ...]:
        if not isinstance(name, str):
            raise TypeError(f"parameter names are str, got {type(name).__name__}")
        shape = self._parameter_shapes.get(name)
        if shape is None:
            raise InvalidArgumentError(
                f"unknown parameter {name!r}; this {type(self).__name__} has {', '.join(self._parameter_shapes)}",
                MH_ERR_INVALID_ARGUMENT)
        return shape

    def get_parameter(self, name: str) -> np.ndarray:
        """A float32 copy of parameter ``name``."""
        handle = self._live()
        out = np.empty(self._check_name(name), dtype=F32)
        descriptor = mh_tensor()
        fill(descriptor, out.shape, MH_DTYPE_F32, contiguous_strides(out.shape))
        descriptor.data = out.ctypes.data
        check(self._function("get_parameter")(handle, name.encode("utf-8"), ctypes.byref(descriptor)),
              f"get_parameter({name!r})")
        return out

    def set_parameter(self, name: str, value: Any) -> None:
        """Copies ``value`` (numpy array or torch tensor of the parameter's shape) into ``name``."""
        handle = self._live()
        shape = self._check_name(name)
        array = as_float_array(value, name)
        if tuple(array.shape) != shape:
            raise ShapeError(f"size mismatch for {name}: copying a param with shape {tuple(array.shape)}, "
                             f"the shape in current model is {shape}", MH_ERR_SHAPE)
        array, strides = element_strides(array, name)
        descriptor = mh_tensor()
        fill(descriptor, array.shape, MH_DTYPE_F32, strides)
        descriptor.data = data_pointer(array)
        check(self._function("set_parameter")(handle, name.encode("utf-8"), ctypes.byref(descriptor)),
              f"set_parameter({name!r})")

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every parameter as a float32 numpy copy, by PyTorch's state_dict names and order."""
        return {name: self.get_parameter(name) for name in self._parameter_shapes}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copies parameters from a mapping of names to arrays or tensors (e.g. a torch module's
        ``state_dict()``). With ``strict``, missing and unexpected keys are errors
        (InvalidArgumentError); a wrong shape is a ShapeError. Nothing changes when it raises."""
        self._live()
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
        names = self._parameter_shapes
        if strict:
            missing = [name for name in names if name not in state_dict]
            unexpected = [name for name in state_dict if name not in names]
            if missing or unexpected:
                parts = []
                if missing:
                    parts.append("Missing key(s) in state_dict: " + ", ".join(f'"{n}"' for n in missing))
                if unexpected:
                    parts.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{n}"' for n in unexpected))
                raise InvalidArgumentError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                                           + ". ".join(parts) + ".", MH_ERR_INVALID_ARGUMENT)
        arrays = {}
        for name, value in state_dict.items():
            if name not in names:
                continue
            array = as_float_array(value, name)
            if tuple(array.shape) != names[name]:
                raise ShapeError(f"size mismatch for {name}: copying a param with shape {tuple(array.shape)}, "
                                 f"the shape in current model is {names[name]}", MH_ERR_SHAPE)
            arrays[name] = array
        for name, array in arrays.items():
            self.set_parameter(name, array)

    def load_safetensors(self, path, prefix: str = "") -> None:
        """Loads every parameter from a .safetensors file (F32, F16 and BF16 are converted),
        reading ``prefix + name`` for each parameter name; other tensors are ignored.
        All-or-nothing. Raises FileError (unreadable), FormatError (malformed),
        InvalidArgumentError (a missing parameter), ShapeError, UnsupportedError (dtype)."""
        handle = self._live()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        encoded = os.fsencode(os.fspath(path))
        # ctypes would cut the strings at a NUL byte and load another file; open() refuses too.
        for name, text in (("path", encoded), ("prefix", prefix.encode("utf-8"))):
            if b"\0" in text:
                raise ValueError(f"{name} contains an embedded null byte")
        check(self._function("load_safetensors")(handle, encoded, prefix.encode("utf-8")),
              f"load_safetensors({os.fspath(path)!r})")
