"""Read the golden fixtures written by scripts/make_fixtures.py (pure numpy, no safetensors).

A fixture is a safetensors file: u64 little-endian header length, a JSON
header (``__metadata__`` plus, per tensor, dtype, shape and [begin, end)
data offsets relative to the data start), then the data.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["read_safetensors", "load_fixture", "fixture_root", "fixture_paths", "reference_kwargs"]

_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"),
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
}


def read_safetensors(path) -> Tuple[Dict[str, str], Dict[str, np.ndarray]]:
    """Return ``(metadata, tensors)`` of a safetensors file; arrays are native-endian copies."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header length {header_len} past the end of the file")
    header = json.loads(data[8:8 + header_len].decode("utf-8"))
    body = memoryview(data)[8 + header_len:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or end > len(body) or begin > end:
            raise ValueError(f"{path}: tensor {name!r} has bad data_offsets {begin, end}")
        array = np.frombuffer(body[begin:end], dtype=dtype, count=count).reshape(shape)
        tensors[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return metadata, tensors


def load_fixture(path) -> Tuple[dict, Dict[str, np.ndarray]]:
    """Return ``(config, tensors)``: the decoded ``config`` metadata (plus ``torch_version``)."""
    metadata, tensors = read_safetensors(path)
    config = json.loads(metadata["config"])
    config["torch_version"] = metadata.get("torch_version")
    return config, tensors


def fixture_root() -> Path:
    """``Tests/MultiheadTests/Fixtures`` of this repository (``MULTIHEAD_FIXTURES`` overrides)."""
    override = os.environ.get("MULTIHEAD_FIXTURES")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "Tests" / "MultiheadTests" / "Fixtures"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("Tests/MultiheadTests/Fixtures not found above " + str(here))


def fixture_paths(kind: str = "all") -> List[Path]:
    """Sorted fixture files: ``kind`` is ``"mha"``, ``"seed"`` or ``"all"``."""
    root = fixture_root()
    kinds = ["mha", "seed"] if kind == "all" else [kind]
    paths: List[Path] = []
    for k in kinds:
        paths += sorted((root / k).glob("*.safetensors"))
    return paths


def reference_kwargs(config: dict, tensors: Dict[str, np.ndarray]) -> dict:
    """Keyword arguments for ``mha_reference`` (and the engine's forward) from a fixture."""
    params = {name[len("param."):]: array for name, array in tensors.items() if name.startswith("param.")}
    return dict(
        query=tensors["query"], key=tensors["key"], value=tensors["value"], params=params,
        embed_dim=config["embed_dim"], num_heads=config["num_heads"], bias=config["bias"],
        add_bias_kv=config["add_bias_kv"], add_zero_attn=config["add_zero_attn"],
        kdim=config["kdim"], vdim=config["vdim"], batch_first=config["batch_first"],
        key_padding_mask=tensors.get("key_padding_mask"), need_weights=config["need_weights"],
        attn_mask=tensors.get("attn_mask"), average_attn_weights=config["average_attn_weights"],
        is_causal=config["is_causal"],
    )
