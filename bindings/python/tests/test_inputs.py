"""Inputs: numpy dtypes and layouts, strided views passed without copies, torch tensors."""

from __future__ import annotations

import numpy as np
import pytest

import multihead as mh
from mhtest import assert_close, mha_reference, random_params

E, H, L, S, N = 8, 2, 5, 7, 3


@pytest.fixture
def module():
    rng = np.random.default_rng(0)
    with mh.MultiheadAttention(E, H, add_bias_kv=True) as m:
        m.load_state_dict(random_params(rng, E, E, E, E, bias_kv=True))
        yield m


@pytest.fixture
def inputs():
    rng = np.random.default_rng(1)
    return tuple(rng.standard_normal(shape).astype(np.float32) for shape in ((L, N, E), (S, N, E), (S, N, E)))


def _spy_forward(module, monkeypatch):
    """Records the data pointers and strides of the query/key/value descriptors passed to C."""
    seen = []
    real = module._forward

    def spy(handle, q, k, v, *rest):
        seen.append([(t.data, tuple(t.shape[:t.rank]), tuple(t.strides[:t.rank])) for t in (q, k, v)])
        return real(handle, q, k, v, *rest)

    monkeypatch.setattr(module, "_forward", spy)
    return seen


def test_float32_contiguous_inputs_are_not_copied(module, inputs, monkeypatch):
    seen = _spy_forward(module, monkeypatch)
    q, k, v = inputs
    module(q, k, v)
    assert seen[0] == [(x.ctypes.data, x.shape, tuple(s // 4 for s in x.strides)) for x in inputs]


def test_strided_views_are_passed_by_strides_without_copies(module, inputs, monkeypatch):
    q, k, v = inputs
    expected, expected_w = module(q, k, v)
    # Batch-first storage viewed as (L, N, E); every-other-feature slices; reversed sequences.
    qt = np.ascontiguousarray(q.transpose(1, 0, 2)).transpose(1, 0, 2)
    wide = np.zeros((S, N, 2 * E), np.float32)
    wide[:, :, ::2] = k
    ks = wide[:, :, ::2]
    vr = np.ascontiguousarray(v[::-1])[::-1]
    assert not qt.flags.c_contiguous and not ks.flags.c_contiguous and not vr.flags.c_contiguous

    def no_copies(*args, **kwargs):
        raise AssertionError("the binding copied a float32 input")

    seen = _spy_forward(module, monkeypatch)
    monkeypatch.setattr(np, "ascontiguousarray", no_copies)
    monkeypatch.setattr(np, "array", no_copies)
    monkeypatch.setattr(np, "copy", no_copies)
    out, w = module(qt, ks, vr)
    monkeypatch.undo()
    assert seen[0][0] == (qt.ctypes.data, (L, N, E), (E, L * E, 1))
    assert seen[0][1] == (ks.ctypes.data, (S, N, E), (N * 2 * E, 2 * E, 2))
    assert seen[0][2] == (vr.ctypes.data, (S, N, E), (-N * E, E, 1))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(w, expected_w)


def test_batch_first_module_on_transposed_views(inputs):
    """A (N, L, E) view of (L, N, E) storage on a batch_first module equals the contiguous call."""
    rng = np.random.default_rng(3)
    params = random_params(rng, E, E, E, E)
    q, k, v = inputs
    with mh.MultiheadAttention(E, H, batch_first=True) as m:
        m.load_state_dict(params)
        views = [x.transpose(1, 0, 2) for x in (q, k, v)]
        out_view, w_view = m(*views)
        out, w = m(*[np.ascontiguousarray(x) for x in views])
    np.testing.assert_array_equal(out_view, out)
    np.testing.assert_array_equal(w_view, w)
    assert out.shape == (N, L, E)


def test_broadcast_and_fortran_inputs(module, inputs):
    q, k, v = inputs
    row = q[:1]
    broadcast = np.broadcast_to(row, q.shape)  # stride 0 along L, read-only
    assert broadcast.strides[0] == 0 and not broadcast.flags.writeable
    out_b, w_b = module(broadcast, k, v)
    out_c, w_c = module(np.ascontiguousarray(broadcast), k, v)
    np.testing.assert_array_equal(out_b, out_c)
    np.testing.assert_array_equal(w_b, w_c)
    fortran = np.asfortranarray(k)
    out_f, _ = module(q, fortran, v)
    np.testing.assert_array_equal(out_f, module(q, k, v)[0])


def test_byte_strides_that_are_not_element_multiples_are_copied(module, inputs):
    q, k, v = inputs
    record = np.zeros((L, N), dtype=[("x", "<f4", (E,)), ("pad", "u1")])
    record["x"] = q
    odd = record["x"]  # float32 (L, N, E) with byte strides (N * (4E + 1), 4E + 1, 4)
    assert odd.strides[1] % 4 != 0
    out, w = module(odd, k, v)
    expected, expected_w = module(q, k, v)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(w, expected_w)


def test_strided_masks(module, inputs):
    q, k, v = inputs
    rng = np.random.default_rng(4)
    kpm = rng.random((S, N)) < 0.3
    kpm[0] = False
    am = rng.standard_normal((S, L)).astype(np.float32)
    expected, _ = module(q, k, v, key_padding_mask=np.ascontiguousarray(kpm.T), attn_mask=np.ascontiguousarray(am.T))
    out, _ = module(q, k, v, key_padding_mask=kpm.T, attn_mask=am.T)
    np.testing.assert_array_equal(out, expected)


def test_other_float_dtypes_are_converted(module, inputs):
    q, k, v = inputs
    expected, expected_w = module(q, k, v)
    for dtype in (np.float64, np.float16, ">f4"):
        args = [x.astype(dtype) for x in (q, k, v)]
        out, w = module(*args)
        assert out.dtype == np.float32
        if np.dtype(dtype).itemsize != 2:
            np.testing.assert_array_equal(out, expected)
        else:
            assert_close(out, expected, rel_tol=1e-2)


def test_lists_are_accepted(module):
    x = np.random.default_rng(5).standard_normal((2, 1, E))
    out, _ = module(x.tolist(), x.tolist(), x.tolist())
    np.testing.assert_array_equal(out, module(x.astype(np.float32), x.astype(np.float32), x.astype(np.float32))[0])


def test_layout_changes_and_reentrant_calls(module, inputs):
    """Alternating layouts reuse the thread's descriptors correctly; a call made while the
    thread is inside another one (a signal handler) uses its own descriptors."""
    q, k, v = inputs
    expected = module(q, k, v)[0]
    unbatched = module(q[:, 0], k[:, 0], v[:, 0])[0]
    for _ in range(3):
        np.testing.assert_array_equal(module(q, k, v)[0], expected)
        np.testing.assert_array_equal(module(q[:, 0], k[:, 0], v[:, 0])[0], unbatched)
    state = module._thread_state
    state.busy = True
    try:
        np.testing.assert_array_equal(module(q, k, v)[0], expected)
        assert state.busy
    finally:
        state.busy = False
    np.testing.assert_array_equal(module(q, k, v)[0], expected)


def test_outputs_are_fresh_c_contiguous_float32(module, inputs):
    q, k, v = inputs
    out1, w1 = module(q, k, v)
    out2, w2 = module(q, k, v)
    assert out1 is not out2 and not np.shares_memory(out1, out2)
    for x in (out1, w1):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.flags.owndata
    assert out1.shape == (L, N, E) and w1.shape == (N, L, S + 1)
    _, w_heads = module(q, k, v, average_attn_weights=False)
    assert w_heads.shape == (N, H, L, S + 1)
    np.testing.assert_allclose(w_heads.mean(axis=1), w1, rtol=1e-6, atol=1e-7)
    out_nw, none = module(q, k, v, need_weights=False)
    assert none is None
    np.testing.assert_array_equal(out_nw, out1)


def test_unbatched_inputs(module, inputs):
    q, k, v = inputs
    out, w = module(q[:, 0], k[:, 0], v[:, 0])
    batched, batched_w = module(q[:, :1], k[:, :1], v[:, :1])
    assert out.shape == (L, E) and w.shape == (L, S + 1)
    np.testing.assert_array_equal(out, batched[:, 0])
    np.testing.assert_array_equal(w, batched_w[0])


def test_empty_sequences(module):
    out, w = module(np.zeros((0, 2, E), np.float32), np.zeros((3, 2, E), np.float32), np.zeros((3, 2, E), np.float32))
    assert out.shape == (0, 2, E) and w.shape == (2, 0, 4)


def test_is_causal_without_mask_is_top_left_causal(module, inputs):
    q, k, v = inputs
    mask = np.triu(np.ones((L, S), dtype=bool), 1)
    out_a, w_a = module(q, k, v, is_causal=True, average_attn_weights=False)
    out_b, w_b = module(q, k, v, attn_mask=mask, average_attn_weights=False)
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(w_a, w_b)
    params = module.state_dict()
    ref, _ = mha_reference(q, k, v, params, embed_dim=E, num_heads=H, add_bias_kv=True, is_causal=True)
    assert_close(out_a, ref)


def test_fully_masked_rows_give_out_proj_bias(module, inputs):
    q, k, v = inputs
    with mh.MultiheadAttention(E, H) as m:
        rng = np.random.default_rng(6)
        params = random_params(rng, E, E, E, E)
        m.load_state_dict(params)
        kpm = np.zeros((N, S), dtype=bool)
        kpm[1] = True
        out, w = m(q, k, v, key_padding_mask=kpm, average_attn_weights=False)
    assert np.isfinite(out).all() and (w[1] == 0).all()
    np.testing.assert_allclose(out[:, 1], np.broadcast_to(params["out_proj.bias"], (L, E)), atol=1e-6)


def _torch():
    return pytest.importorskip("torch")


def test_torch_in_torch_out(module, inputs):
    torch = _torch()
    q, k, v = inputs
    expected, expected_w = module(q, k, v)
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    out, w = module(tq, tk, tv)
    assert isinstance(out, torch.Tensor) and isinstance(w, torch.Tensor)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(w.numpy(), expected_w)
    # numpy query with torch key/value: numpy out.
    out_np, _ = module(q, tk, tv)
    assert isinstance(out_np, np.ndarray)
    # Non-contiguous tensors (a transposed view) go by strides as well.
    tt = torch.from_numpy(np.ascontiguousarray(q.transpose(1, 0, 2))).transpose(0, 1)
    assert not tt.is_contiguous()
    out_t, _ = module(tt, tk, tv)
    np.testing.assert_array_equal(out_t.numpy(), expected)
    # need_weights=False gives None, not a tensor.
    assert module(tq, tk, tv, need_weights=False)[1] is None


def test_torch_tensor_view_is_not_copied(module, inputs, monkeypatch):
    torch = _torch()
    q, k, v = inputs
    tq = torch.from_numpy(np.ascontiguousarray(q.transpose(1, 0, 2))).transpose(0, 1)
    seen = _spy_forward(module, monkeypatch)
    module(tq, torch.from_numpy(k), torch.from_numpy(v))
    assert seen[0][0] == (tq.data_ptr(), (L, N, E), tuple(tq.stride()))
    assert seen[0][1][0] == k.ctypes.data
