"""Helpers shared by the binding's tests (not a test module)."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

import multihead as mh
from fixtures import load_fixture, reference_kwargs
from reference import mha_reference

REL_TOL = 1e-5


def assert_close(actual, expected, what: str = "", rel_tol: float = REL_TOL) -> None:
    """|actual - expected| <= rel_tol * max|expected| elementwise; NaN in expected is an error."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.isfinite(actual).all(), f"{what}: non-finite values in the engine's result"
    if expected.size == 0:
        return
    scale = float(np.abs(expected).max())
    err = float(np.abs(actual - expected).max())
    assert err <= rel_tol * max(scale, 1e-30), f"{what}: max |diff| {err:.3g} > {rel_tol:g} * max|x| {scale:.3g}"


def assert_close_finite(actual, expected, what: str = "", rel_tol: float = REL_TOL) -> None:
    """As assert_close over the entries where expected is finite (PyTorch's NaN rows excluded)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    finite = np.isfinite(expected)
    if finite.any():
        scale = float(np.abs(expected[finite]).max())
        err = float(np.abs(actual[finite] - expected[finite]).max())
        assert err <= rel_tol * max(scale, 1e-30), f"{what}: max |diff| {err:.3g} > {rel_tol:g} * {scale:.3g}"


def random_params(rng, E: int, qdim: int, kdim: int, vdim: int, *, bias: bool = True,
                  bias_kv: bool = False, dtype=np.float32) -> Dict[str, np.ndarray]:
    """A state_dict for these sizes (in_proj_weight when every size is E)."""
    p = {}
    if qdim == kdim == vdim == E:
        p["in_proj_weight"] = rng.standard_normal((3 * E, E))
    else:
        p["q_proj_weight"] = rng.standard_normal((E, qdim))
        p["k_proj_weight"] = rng.standard_normal((E, kdim))
        p["v_proj_weight"] = rng.standard_normal((E, vdim))
    if bias:
        p["in_proj_bias"] = rng.standard_normal(3 * E)
    if bias_kv:
        p["bias_k"] = rng.standard_normal((1, 1, E))
        p["bias_v"] = rng.standard_normal((1, 1, E))
    p["out_proj.weight"] = rng.standard_normal((E, E)) / np.sqrt(E)
    if bias:
        p["out_proj.bias"] = rng.standard_normal(E)
    return {name: value.astype(dtype) for name, value in p.items()}


def module_for_fixture(config: dict, engine: Optional[mh.Engine] = None) -> mh.MultiheadAttention:
    return mh.MultiheadAttention(config["embed_dim"], config["num_heads"], bias=config["bias"],
                                 add_bias_kv=config["add_bias_kv"], add_zero_attn=config["add_zero_attn"],
                                 kdim=config["kdim"], vdim=config["vdim"], batch_first=config["batch_first"],
                                 engine=engine)


def run_fixture(module: mh.MultiheadAttention, config: dict, tensors: dict, **overrides):
    """Runs a fixture's forward call; overrides replace inputs (query=..., need_weights=...)."""
    kwargs = dict(query=tensors["query"], key=tensors["key"], value=tensors["value"],
                  key_padding_mask=tensors.get("key_padding_mask"), need_weights=config["need_weights"],
                  attn_mask=tensors.get("attn_mask"), average_attn_weights=config["average_attn_weights"],
                  is_causal=config["is_causal"])
    kwargs.update(overrides)
    return module(**kwargs)


def fixture_reference(config: dict, tensors: dict):
    """The float64 reference's (output, weights) for a fixture."""
    return mha_reference(**reference_kwargs(config, tensors))


_SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
                      np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.bool_): "BOOL",
                      np.dtype(np.uint8): "U8"}


def write_safetensors(path, tensors: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None,
                      dtypes: Optional[Dict[str, str]] = None) -> None:
    """A minimal safetensors writer (no dependency): u64 header size, JSON header, data.

    ``dtypes`` overrides the dtype name of some tensors (e.g. "BF16" for raw uint16 bits)."""
    import json

    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        dtype = (dtypes or {}).get(name) or _SAFETENSORS_DTYPES[array.dtype]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for blob in blobs:
            f.write(blob)


__all__ = ["write_safetensors", "assert_close", "assert_close_finite", "random_params", "module_for_fixture", "run_fixture",
           "fixture_reference", "load_fixture", "mha_reference", "REL_TOL"]
