"""Errors: the exception classes, their messages, and what the binding checks itself."""

from __future__ import annotations

import numpy as np
import pytest

import multihead as mh
from mhtest import random_params, write_safetensors

E, H = 4, 2


@pytest.fixture
def module():
    with mh.MultiheadAttention(E, H) as m:
        yield m


def x(*shape):
    return np.zeros(shape, np.float32)


def test_exception_hierarchy():
    assert issubclass(mh.ShapeError, mh.Error) and issubclass(mh.ShapeError, ValueError)
    assert issubclass(mh.InvalidArgumentError, mh.Error) and issubclass(mh.InvalidArgumentError, ValueError)
    assert issubclass(mh.FileError, mh.Error) and issubclass(mh.FileError, OSError)
    assert issubclass(mh.OutOfMemoryError, mh.Error) and issubclass(mh.OutOfMemoryError, MemoryError)
    assert issubclass(mh.FormatError, mh.Error) and issubclass(mh.UnsupportedError, mh.Error)
    assert issubclass(mh.LibraryNotFoundError, ImportError)


@pytest.mark.parametrize("shapes, words", [
    (((2, 3, 1, E), (2, 3, E), (2, 3, E)), ["query", "4-D", "2, 3, 1, 4"]),
    (((2, 3, E), (2, E), (2, 3, E)), ["key", "2-D", "2, 4"]),
    (((2, 3, E), (2, 3, E + 1), (2, 3, E)), ["key", "2, 3, 5", "kdim"]),
    (((2, 3, E + 2), (2, 3, E), (2, 3, E)), ["query", "2, 3, 6", "embed_dim"]),
    (((2, 3, E), (2, 4, E), (2, 4, E)), ["batch", "2, 3, 4", "2, 4, 4"]),
    (((2, 3, E), (5, 3, E), (4, 3, E)), ["key", "value", "5, 3, 4", "4, 3, 4"]),
    (((E,), (E,), (E,)), ["query", "1-D"]),
])
def test_shape_errors_name_the_shapes(module, shapes, words):
    with pytest.raises(mh.ShapeError) as info:
        module(*(x(*s) for s in shapes))
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert info.value.status == -2 and info.value.message == message


def test_mask_shape_errors(module):
    q = x(3, 2, E)
    with pytest.raises(mh.ShapeError, match="key_padding_mask"):
        module(q, q, q, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(mh.ShapeError, match="attn_mask"):
        module(q, q, q, attn_mask=np.zeros((3, 4), bool))
    with pytest.raises(mh.ShapeError, match="attn_mask"):
        module(q, q, q, attn_mask=np.zeros((2 * H + 1, 3, 3), np.float32))
    with pytest.raises(mh.ShapeError, match="attn_mask"):
        module(q, q, q, attn_mask=np.zeros((1, 1, 3, 3), np.float32))


def test_rank_past_max_rank_is_a_shape_error(module):
    with pytest.raises(mh.ShapeError, match="MH_MAX_RANK"):
        module(x(*[1] * 9), x(3, 2, E), x(3, 2, E))


def test_mask_dtypes_are_type_errors(module):
    q = x(3, 2, E)
    with pytest.raises(TypeError, match="only bool and floating types of key_padding_mask are supported"):
        module(q, q, q, key_padding_mask=np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask are supported"):
        module(q, q, q, attn_mask=np.zeros((3, 3), np.uint8))
    with pytest.raises(TypeError, match="key_padding_mask"):
        module(q, q, q, key_padding_mask="mask")


@pytest.mark.parametrize("bad", [None, "query", 3.0, {"a": 1}, object(), np.zeros((3, 2, E), np.int32),
                                 np.zeros((3, 2, E), np.complex64), np.array([["a"]])])
def test_non_float_arrays_are_type_errors(module, bad):
    q = x(3, 2, E)
    with pytest.raises(TypeError):
        module(bad, q, q)
    with pytest.raises(TypeError):
        module(q, bad, q)


def test_closed_module(module):
    q = x(3, 2, E)
    module.close()
    module.close()  # harmless
    assert module.closed and "closed" in repr(module)
    for call in (lambda: module(q, q, q), module.state_dict, lambda: module.get_parameter("in_proj_bias"),
                 lambda: module.load_state_dict({}), lambda: module.load_safetensors("x"),
                 lambda: module.set_parameter("in_proj_bias", np.zeros(3 * E, np.float32))):
        with pytest.raises(mh.Error, match="module is closed"):
            call()


def test_context_manager_closes():
    with mh.MultiheadAttention(E, H) as m:
        assert not m.closed
    assert m.closed
    with pytest.raises(mh.Error):
        m(x(1, 1, E), x(1, 1, E), x(1, 1, E))


def test_unknown_parameter_names(module):
    with pytest.raises(mh.InvalidArgumentError, match="'q_proj_weight'"):
        module.set_parameter("q_proj_weight", np.zeros((E, E), np.float32))
    with pytest.raises(mh.InvalidArgumentError, match="'bias_k'"):
        module.get_parameter("bias_k")
    with pytest.raises(TypeError):
        module.get_parameter(3)


def test_load_state_dict_is_strict_and_atomic(module):
    params = random_params(np.random.default_rng(0), E, E, E, E)
    before = module.state_dict()
    with pytest.raises(mh.InvalidArgumentError, match="Unexpected key.*bias_k"):
        module.load_state_dict({**params, "bias_k": np.zeros((1, 1, E), np.float32)})
    with pytest.raises(mh.InvalidArgumentError, match="Missing key.*out_proj.bias"):
        module.load_state_dict({k: v for k, v in params.items() if k != "out_proj.bias"})
    bad = dict(params, **{"out_proj.weight": np.zeros((E, E + 1), np.float32)})
    with pytest.raises(mh.ShapeError, match=r"out_proj.weight.*\(4, 5\).*\(4, 4\)"):
        module.load_state_dict(bad)
    with pytest.raises(TypeError):
        module.load_state_dict({**params, "in_proj_bias": np.zeros(3 * E, np.int64)})
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed by a failed load")
    # strict=False ignores unknown names and loads what is there.
    module.load_state_dict({"out_proj.bias": np.ones(E, np.float32), "unknown": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(module.get_parameter("out_proj.bias"), np.ones(E))
    with pytest.raises(TypeError):
        module.load_state_dict([("out_proj.bias", np.ones(E))])


def test_set_parameter_shape_error(module):
    with pytest.raises(mh.ShapeError, match="in_proj_bias"):
        module.set_parameter("in_proj_bias", np.zeros(E, np.float32))


def test_constructor_errors():
    with pytest.raises(mh.InvalidArgumentError, match="divisible"):
        mh.MultiheadAttention(5, 2)
    with pytest.raises(mh.InvalidArgumentError, match="embed_dim"):
        mh.MultiheadAttention(0, 1)
    with pytest.raises(mh.InvalidArgumentError, match="num_heads"):
        mh.MultiheadAttention(4, -1)
    with pytest.raises(mh.InvalidArgumentError, match="kdim"):
        mh.MultiheadAttention(4, 2, kdim=-3)
    with pytest.raises(mh.InvalidArgumentError, match="dropout"):
        mh.MultiheadAttention(4, 2, dropout=1.5)
    with pytest.raises(TypeError):
        mh.MultiheadAttention(4.0, 2)
    with pytest.raises(TypeError):
        mh.MultiheadAttention(4, 2, engine="fast")
    with pytest.raises(mh.InvalidArgumentError):
        mh.Engine(-1)
    with pytest.raises(TypeError):
        mh.Engine("2")


def test_safetensors_errors(module, tmp_path):
    with pytest.raises(mh.FileError) as info:
        module.load_safetensors(tmp_path / "missing.safetensors")
    assert isinstance(info.value, OSError) and "missing.safetensors" in str(info.value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(mh.FormatError):
        module.load_safetensors(garbage)
    truncated = tmp_path / "truncated.safetensors"
    write_safetensors(truncated, {"in_proj_bias": np.zeros(3 * E, np.float32)})
    truncated.write_bytes(truncated.read_bytes()[:-4])
    with pytest.raises(mh.FormatError):
        module.load_safetensors(truncated)
    bad_json = tmp_path / "json.safetensors"
    bad_json.write_bytes((10).to_bytes(8, "little") + b"{not json}")
    with pytest.raises(mh.FormatError):
        module.load_safetensors(bad_json)
    params = random_params(np.random.default_rng(1), E, E, E, E)
    partial = tmp_path / "partial.safetensors"
    write_safetensors(partial, {k: v for k, v in params.items() if k != "in_proj_bias"})
    with pytest.raises(mh.InvalidArgumentError, match="in_proj_bias"):
        module.load_safetensors(partial)
    wrong = tmp_path / "wrong.safetensors"
    write_safetensors(wrong, dict(params, in_proj_bias=np.zeros(5, np.float32)))
    with pytest.raises(mh.ShapeError, match="in_proj_bias"):
        module.load_safetensors(wrong)
    ints = tmp_path / "ints.safetensors"
    write_safetensors(ints, dict(params, in_proj_bias=np.zeros(3 * E, np.int64)))
    with pytest.raises(mh.UnsupportedError):
        module.load_safetensors(ints)
    with pytest.raises(TypeError):
        module.load_safetensors(partial, prefix=3)


def test_error_messages_come_from_the_library(module):
    try:
        mh.MultiheadAttention(6, 4)
    except mh.InvalidArgumentError as error:
        assert error.status == -1
        assert "mh_mha_create" in str(error)
