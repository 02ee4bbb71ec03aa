"""Parameters: state_dict round trips, set/get with strides, safetensors files."""

from __future__ import annotations

import numpy as np
import pytest

import multihead as mh
from mhtest import random_params, write_safetensors


def test_state_dict_names_and_order():
    assert list(mh.MultiheadAttention(8, 2).parameter_shapes) == [
        "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    m = mh.MultiheadAttention(8, 2, bias=False, add_bias_kv=True, kdim=3, vdim=5, qdim=7)
    assert m.parameter_shapes == {"q_proj_weight": (8, 7), "k_proj_weight": (8, 3), "v_proj_weight": (8, 5),
                                  "bias_k": (1, 1, 8), "bias_v": (1, 1, 8), "out_proj.weight": (8, 8)}
    assert list(m.state_dict()) == list(m.parameter_shapes)


def test_state_dict_round_trip():
    rng = np.random.default_rng(0)
    params = random_params(rng, 8, 6, 8, 8, bias_kv=True)
    a = mh.MultiheadAttention(8, 4, add_bias_kv=True, qdim=6)
    a.load_state_dict(params)
    state = a.state_dict()
    assert set(state) == set(params)
    for name, value in params.items():
        assert state[name].dtype == np.float32 and state[name].flags.c_contiguous
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    b = mh.MultiheadAttention(8, 4, add_bias_kv=True, qdim=6, seed=5)
    b.load_state_dict(state)
    q = rng.standard_normal((3, 2, 6)).astype(np.float32)
    kv = rng.standard_normal((4, 2, 8)).astype(np.float32)
    for x, y in zip(a(q, kv, kv), b(q, kv, kv)):
        np.testing.assert_array_equal(x, y)
    # state_dict returns copies.
    state["out_proj.bias"][:] = 7
    assert not (a.get_parameter("out_proj.bias") == 7).any()


def test_set_parameter_from_strided_and_float64_arrays():
    m = mh.MultiheadAttention(4, 2, kdim=6)
    w = np.arange(24, dtype=np.float32).reshape(6, 4)
    m.set_parameter("k_proj_weight", w.T)  # a transposed view
    np.testing.assert_array_equal(m.get_parameter("k_proj_weight"), w.T)
    m.set_parameter("in_proj_bias", np.linspace(0, 1, 12))  # float64 is converted
    np.testing.assert_array_equal(m.get_parameter("in_proj_bias"), np.linspace(0, 1, 12).astype(np.float32))
    big = np.zeros((4, 8), np.float32)
    big[:, ::2] = 3
    m.set_parameter("out_proj.weight", big[:, ::2])
    np.testing.assert_array_equal(m.get_parameter("out_proj.weight"), np.full((4, 4), 3, np.float32))


def test_load_safetensors_with_prefix_and_other_tensors(tmp_path):
    rng = np.random.default_rng(1)
    params = random_params(rng, 8, 8, 8, 8)
    path = tmp_path / "model.safetensors"
    tensors = {"layers.0.self_attn." + k: v for k, v in params.items()}
    tensors["layers.0.linear1.weight"] = rng.standard_normal((3, 8)).astype(np.float32)
    tensors["step"] = np.array([3], np.int64)
    write_safetensors(path, tensors, metadata={"format": "pt"})
    m = mh.MultiheadAttention(8, 2)
    m.load_safetensors(str(path), prefix="layers.0.self_attn.")
    for name, value in params.items():
        np.testing.assert_array_equal(m.get_parameter(name), value, err_msg=name)
    # A pathlib.Path works as well.
    plain = tmp_path / "plain.safetensors"
    write_safetensors(plain, params)
    m2 = mh.MultiheadAttention(8, 2)
    m2.load_safetensors(plain)
    np.testing.assert_array_equal(m2.get_parameter("in_proj_weight"), params["in_proj_weight"])


def test_load_safetensors_converts_f16_and_bf16(tmp_path):
    rng = np.random.default_rng(2)
    params = random_params(rng, 4, 4, 4, 4)
    half = {k: v.astype(np.float16) for k, v in params.items()}
    path = tmp_path / "half.safetensors"
    write_safetensors(path, half)
    m = mh.MultiheadAttention(4, 2)
    m.load_safetensors(path)
    for name, value in half.items():
        np.testing.assert_array_equal(m.get_parameter(name), value.astype(np.float32), err_msg=name)
    # bfloat16: the top 16 bits of a float32.
    bf16 = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in params.items()}
    path = tmp_path / "bf16.safetensors"
    write_safetensors(path, {k: v.view(np.float16) for k, v in bf16.items()}, dtypes={k: "BF16" for k in bf16})
    m.load_safetensors(path)
    for name, bits in bf16.items():
        expected = (bits.astype(np.uint32) << 16).view(np.float32)
        np.testing.assert_array_equal(m.get_parameter(name), expected, err_msg=name)


def test_failed_load_safetensors_changes_nothing(tmp_path):
    m = mh.MultiheadAttention(4, 2)
    before = m.state_dict()
    params = random_params(np.random.default_rng(3), 4, 4, 4, 4)
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, dict(params, **{"out_proj.weight": np.zeros((4, 3), np.float32)}))
    with pytest.raises(mh.ShapeError):
        m.load_safetensors(path)
    for name, value in m.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_safetensors_numpy_files_when_installed(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    params = random_params(np.random.default_rng(4), 6, 6, 6, 6, bias_kv=True)
    path = tmp_path / "st.safetensors"
    st.save_file(params, str(path))
    m = mh.MultiheadAttention(6, 3, add_bias_kv=True)
    m.load_safetensors(path)
    for name, value in params.items():
        np.testing.assert_array_equal(m.get_parameter(name), value, err_msg=name)


def test_torch_state_dict_and_safetensors_torch_when_installed(tmp_path):
    torch = pytest.importorskip("torch")
    reference = torch.nn.MultiheadAttention(8, 4, kdim=5, vdim=3).eval()
    m = mh.MultiheadAttention(8, 4, kdim=5, vdim=3)
    m.load_state_dict(reference.state_dict())
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(m.get_parameter(name), value.numpy(), err_msg=name)
    try:
        from safetensors.torch import save_file
    except ImportError:
        return
    path = tmp_path / "torch.safetensors"
    save_file(reference.state_dict(), str(path))
    m2 = mh.MultiheadAttention(8, 4, kdim=5, vdim=3)
    m2.load_safetensors(path)
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(m2.get_parameter(name), value.numpy(), err_msg=name)
