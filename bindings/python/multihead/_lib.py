"""ctypes declarations of include/multihead.h and the loading of libmultihead.so.

Every function of the header is declared here with its argtypes and restype; nothing else in
the package calls into the library without going through the function objects made here.
The library is loaded on first use (``lib()``), so ``import multihead`` works even when it is
missing and the error (``LibraryNotFoundError``) says how to build it.

Lookup order: the ``MULTIHEAD_LIBRARY`` environment variable (a path to the .so), the
package's own ``multihead/lib/libmultihead.so`` (what ``pip install`` puts there), then a
``build/lib/libmultihead.so`` in a directory above the package (the repository's build folder,
made by ``make lib``).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from ctypes import POINTER, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p
from pathlib import Path
from typing import List, Optional

from ._errors import STATUS_ERRORS, InternalError, LibraryNotFoundError

# ---------------------------------------------------------------------------------------------
# Constants of the header
# ---------------------------------------------------------------------------------------------

MH_VERSION_MAJOR = 0
MH_VERSION_MINOR = 1
MH_VERSION_PATCH = 0
MH_VERSION_NUMBER = MH_VERSION_MAJOR * 10000 + MH_VERSION_MINOR * 100 + MH_VERSION_PATCH
MH_MAX_RANK = 8

# mh_status
MH_OK = 0
MH_ERR_INVALID_ARGUMENT = -1
MH_ERR_SHAPE = -2
MH_ERR_OUT_OF_MEMORY = -3
MH_ERR_IO = -4
MH_ERR_FORMAT = -5
MH_ERR_UNSUPPORTED = -6
MH_ERR_INTERNAL = -100

# mh_dtype
MH_DTYPE_F32 = 1
MH_DTYPE_BOOL = 2

LIBRARY_NAME = "libmultihead.so" if sys.platform != "darwin" else "libmultihead.dylib"
ENV_VAR = "MULTIHEAD_LIBRARY"

# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------

mh_status = c_int     # a C enum: int-sized on every ABI this package supports
mh_dtype = c_int
mh_engine_p = c_void_p  # opaque handles
mh_mha_p = c_void_p


class mh_tensor(ctypes.Structure):
    """A strided tensor view; strides in elements."""

    _fields_ = [
        ("data", c_void_p),
        ("dtype", mh_dtype),
        ("rank", c_int32),
        ("shape", c_int64 * MH_MAX_RANK),
        ("strides", c_int64 * MH_MAX_RANK),
    ]


class mh_engine_options(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("num_threads", c_int32),
        ("policy", c_int32),            # mh_policy (engine.py has the names)
        ("executor", c_int32),          # mh_executor
        ("mirror_weights", c_int32),    # -1 auto, 0, 1
        ("cpuset", c_char_p),
        ("topology_synthetic", c_char_p),
        ("topology_xml", c_char_p),
        ("scratch_limit_bytes", c_int64),  # 0 default (32 MiB), -1 never group heads, else bytes
    ]


class mh_mha_config(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("embed_dim", c_int64),
        ("num_heads", c_int64),
        ("dropout", c_float),
        ("bias", c_int32),
        ("add_bias_kv", c_int32),
        ("add_zero_attn", c_int32),
        ("kdim", c_int64),
        ("vdim", c_int64),
        ("qdim", c_int64),
        ("batch_first", c_int32),
        ("seed", c_uint64),
    ]


class mh_forward_options(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("need_weights", c_int32),
        ("average_attn_weights", c_int32),
        ("is_causal", c_int32),
    ]


mh_tensor_p = POINTER(mh_tensor)
c_int64_p = POINTER(c_int64)
c_int32_p = POINTER(c_int32)

# name: (restype, argtypes), in the header's order.
FUNCTIONS = {
    "mh_tensor_init_contiguous": (mh_status, [mh_tensor_p, c_void_p, mh_dtype, c_int32, c_int64_p]),
    "mh_status_string": (c_char_p, [mh_status]),
    "mh_last_error_message": (c_char_p, []),
    "mh_version_number": (c_uint32, []),
    "mh_engine_options_init_sized": (None, [POINTER(mh_engine_options), c_size_t]),
    "mh_engine_options_init": (None, [POINTER(mh_engine_options)]),
    "mh_engine_create": (mh_status, [POINTER(mh_engine_options), POINTER(mh_engine_p)]),
    "mh_engine_destroy": (None, [mh_engine_p]),
    "mh_engine_num_threads": (mh_status, [mh_engine_p, c_int32_p]),
    "mh_plan_shape_init": (None, [c_void_p]),  # mh_plan_shape is defined in engine.py
    "mh_engine_describe": (mh_status, [mh_engine_p, c_void_p, POINTER(c_char_p)]),
    "mh_mha_config_init": (None, [POINTER(mh_mha_config)]),
    "mh_mha_create": (mh_status, [mh_engine_p, POINTER(mh_mha_config), POINTER(mh_mha_p)]),
    "mh_mha_destroy": (None, [mh_mha_p]),
    "mh_mha_parameter_count": (mh_status, [mh_mha_p, c_int32_p]),
    "mh_mha_parameter_info": (mh_status, [mh_mha_p, c_int32, POINTER(c_char_p), c_int32_p, c_int64_p]),
    "mh_mha_set_parameter": (mh_status, [mh_mha_p, c_char_p, mh_tensor_p]),
    "mh_mha_get_parameter": (mh_status, [mh_mha_p, c_char_p, mh_tensor_p]),
    "mh_mha_load_safetensors": (mh_status, [mh_mha_p, c_char_p, c_char_p]),
    "mh_forward_options_init": (None, [POINTER(mh_forward_options)]),
    "mh_mha_output_shapes": (mh_status, [mh_mha_p, mh_tensor_p, mh_tensor_p, mh_tensor_p,
                                         POINTER(mh_forward_options), c_int32_p, c_int64_p,
                                         c_int32_p, c_int64_p]),
    "mh_mha_forward": (mh_status, [mh_mha_p, mh_tensor_p, mh_tensor_p, mh_tensor_p, mh_tensor_p,
                                   mh_tensor_p, POINTER(mh_forward_options), mh_tensor_p, mh_tensor_p]),
    # Encoder modules and BERT (encoder.py, sentence.py define the config structs; passed by
    # reference as c_void_p).
    "mh_encoder_layer_config_init": (None, [c_void_p]),
    "mh_encoder_layer_create": (mh_status, [mh_engine_p, c_void_p, POINTER(c_void_p)]),
    "mh_layer_norm_config_init": (None, [c_void_p]),
    "mh_layer_norm_create": (mh_status, [mh_engine_p, c_void_p, POINTER(c_void_p)]),
    "mh_encoder_create": (mh_status, [c_void_p, c_int32, c_void_p, POINTER(c_void_p)]),
    "mh_encoder_destroy": (None, [c_void_p]),
    "mh_encoder_parameter_count": (mh_status, [c_void_p, c_int32_p]),
    "mh_encoder_parameter_info": (mh_status, [c_void_p, c_int32, POINTER(c_char_p), c_int32_p, c_int64_p]),
    "mh_encoder_set_parameter": (mh_status, [c_void_p, c_char_p, mh_tensor_p]),
    "mh_encoder_get_parameter": (mh_status, [c_void_p, c_char_p, mh_tensor_p]),
    "mh_encoder_load_safetensors": (mh_status, [c_void_p, c_char_p, c_char_p]),
    "mh_encoder_forward": (mh_status, [c_void_p, mh_tensor_p, mh_tensor_p, mh_tensor_p, c_int32, mh_tensor_p]),
    "mh_bert_create": (mh_status, [mh_engine_p, c_char_p, POINTER(c_void_p)]),
    "mh_bert_destroy": (None, [c_void_p]),
    "mh_bert_get_config": (mh_status, [c_void_p, c_void_p]),
    "mh_bert_hidden_states": (mh_status, [c_void_p, mh_tensor_p, mh_tensor_p, mh_tensor_p, mh_tensor_p]),
    "mh_bert_embed": (mh_status, [c_void_p, mh_tensor_p, mh_tensor_p, mh_tensor_p, c_int32, mh_tensor_p]),
}

# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def candidate_paths() -> List[Path]:
    """Where the library is looked for, in order (the environment variable first)."""
    paths: List[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        paths.append(Path(env))
    package_dir = Path(__file__).resolve().parent
    paths.append(package_dir / "lib" / LIBRARY_NAME)
    for parent in package_dir.parents:
        candidate = parent / "build" / "lib" / LIBRARY_NAME
        if candidate.is_file():
            paths.append(candidate)
            break
    return paths


class Library:
    """The loaded library: the CDLL, its path and one attribute per header function."""

    def __init__(self, path: Path):
        self.path = path
        self.cdll = ctypes.CDLL(str(path))
        missing = []
        for name, (restype, argtypes) in FUNCTIONS.items():
            try:
                function = getattr(self.cdll, name)
            except AttributeError:
                missing.append(name)
                continue
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)
        if missing:
            raise LibraryNotFoundError(
                f"{path} is not a compatible libmultihead: it lacks {', '.join(missing)}; "
                "rebuild it with `make lib`")
        self.version = int(self.mh_version_number())
        if self.version // 10000 != MH_VERSION_MAJOR or self.version < MH_VERSION_NUMBER:
            raise LibraryNotFoundError(
                f"{path} is libmultihead version {version_string(self.version)}, this package needs "
                f"{version_string(MH_VERSION_NUMBER)} (same major version); rebuild it with `make lib`")

    def last_error(self) -> str:
        message = self.mh_last_error_message()
        return message.decode("utf-8", "replace") if message else ""

    def raise_for(self, status: int, context: str = ""):
        """Raises the exception for a non-OK status, with the library's message."""
        message = self.last_error()
        if not message:
            name = self.mh_status_string(status)
            message = name.decode("ascii", "replace") if name else f"status {status}"
        if context:
            message = f"{context}: {message}"
        raise STATUS_ERRORS.get(status, InternalError)(message, status)


_library: Optional[Library] = None
_lock = threading.Lock()


def version_string(number: int) -> str:
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def lib() -> Library:
    """The library, loaded on the first call."""
    global _library
    if _library is not None:
        return _library
    with _lock:
        if _library is None:
            _library = _load()
        return _library


def _load() -> Library:
    tried = []
    env = os.environ.get(ENV_VAR)
    for path in candidate_paths():
        if not path.is_file():
            tried.append(f"{path} (no such file)")
            if env and path == Path(env):
                raise LibraryNotFoundError(
                    f"{ENV_VAR}={env} does not name a file; unset it or point it at libmultihead.so "
                    "(build it with `make lib` in the repository)")
            continue
        try:
            return Library(path)
        except OSError as error:
            if env and path == Path(env):
                raise LibraryNotFoundError(f"cannot load {ENV_VAR}={env}: {error}") from error
            tried.append(f"{path} ({error})")
    raise LibraryNotFoundError(
        "libmultihead.so was not found. Build it with `make lib` in the repository root (it "
        f"lands in build/lib/), install the package with `pip install ./bindings/python`, or set "
        f"{ENV_VAR} to its path. Tried: " + "; ".join(tried))


def check(status: int, context: str = "") -> None:
    """Raises unless status is MH_OK."""
    if status:
        lib().raise_for(status, context)
