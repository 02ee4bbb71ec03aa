"""Multihead: torch.nn.MultiheadAttention at inference, on a multi-threaded CPU engine.

    import multihead as mh
    m = mh.MultiheadAttention(embed_dim, num_heads, batch_first=True)
    m.load_state_dict(torch_module.state_dict())      # or a dict of numpy arrays
    out, weights = m(query, key, value)

A ctypes binding of libmultihead.so (include/multihead.h). The library is looked for in
``$MULTIHEAD_LIBRARY``, then in this package's ``lib/`` folder, then in the repository's
``build/lib/`` (``make lib``); it is loaded on first use, and ``LibraryNotFoundError`` says
what to do when it is missing. numpy is the only dependency; torch tensors are accepted (and
returned for torch queries) when torch is installed.
"""

from __future__ import annotations

from ._errors import (Error, FileError, FormatError, InternalError, InvalidArgumentError,
                      LibraryNotFoundError, OutOfMemoryError, ShapeError, UnsupportedError)
from .attention import MultiheadAttention
from .engine import Engine
from .encoder import LayerNorm, TransformerEncoder, TransformerEncoderLayer
from .sentence import SentenceEncoder

__version__ = "0.1.0"

__all__ = [
    "MultiheadAttention", "Engine", "TransformerEncoderLayer", "TransformerEncoder", "LayerNorm",
    "SentenceEncoder", "Error", "InvalidArgumentError", "ShapeError", "OutOfMemoryError",
    "FileError", "FormatError", "UnsupportedError", "InternalError", "LibraryNotFoundError",
    "library_path", "library_version", "__version__",
]


def library_path() -> str:
    """Path of the libmultihead.so in use (loading it if needed)."""
    from ._lib import lib

    return str(lib().path)


def library_version() -> str:
    """Version of the loaded libmultihead ("0.1.0")."""
    from ._lib import lib, version_string

    return version_string(lib().version)
