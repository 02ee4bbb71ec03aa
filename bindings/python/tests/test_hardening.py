"""Hardening from Python: inputs a caller can get wrong (beyond test_errors.py), sizes no machine
holds, threads (ctypes releases the GIL during a call), and lifetimes. Each error names the
argument, and the module gives the same bits afterwards."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import multihead as mh
from mhtest import random_params, write_safetensors

E, H, L, S, N = 8, 2, 4, 5, 3


@pytest.fixture
def module():
    with mh.MultiheadAttention(E, H) as m:
        m.load_state_dict(random_params(np.random.default_rng(0), E, E, E, E))
        yield m


@pytest.fixture
def inputs():
    rng = np.random.default_rng(1)
    return tuple(rng.standard_normal(shape).astype(np.float32) for shape in ((L, N, E), (S, N, E), (S, N, E)))


def assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    if a[1] is None:
        assert b[1] is None
    else:
        np.testing.assert_array_equal(a[1], b[1])


# ---------------------------------------------------------------------------------------------
# Arguments the binding checks itself (regressions: these used to do the wrong thing quietly)

@pytest.mark.parametrize("name", ["embed_dim", "num_heads", "kdim", "vdim", "qdim"])
def test_sizes_past_int64_are_refused_not_wrapped(name):
    # ctypes wraps 2**64 + 4 to 4: the module used to be created with embed_dim 4.
    args = dict(embed_dim=4, num_heads=2)
    args[name] = 2**64 + 4
    with pytest.raises(mh.InvalidArgumentError, match=name):
        mh.MultiheadAttention(**args)


def test_paths_and_prefixes_with_nul_bytes_are_refused(module, tmp_path):
    # ctypes cuts a string at NUL, so "good\0junk" used to load "good".
    path = tmp_path / "m.safetensors"
    write_safetensors(path, random_params(np.random.default_rng(2), E, E, E, E))
    with pytest.raises(ValueError, match="path"):
        module.load_safetensors(str(path) + "\0.junk")
    with pytest.raises(ValueError, match="prefix"):
        module.load_safetensors(path, prefix="\0m.")
    module.load_safetensors(path)


def test_flags_must_have_a_truth_value(module, inputs):
    q, k, v = inputs
    with pytest.raises(TypeError, match="need_weights"):
        module(q, k, v, need_weights=np.array([True, False]))
    with pytest.raises(TypeError, match="is_causal"):
        module(q, k, v, is_causal=np.zeros(3))
    # Truthy values work as in torch.
    assert_same(module(q, k, v, need_weights=1, average_attn_weights=np.True_), module(q, k, v))


# ---------------------------------------------------------------------------------------------
# Types, dtypes and layouts

@pytest.mark.parametrize("bad", [b"\x00" * 16, bytearray(16), memoryview(b"abcd"), 1 + 2j, range(3)])
def test_non_arrays_are_type_errors(module, inputs, bad):
    q, k, v = inputs
    with pytest.raises((TypeError, mh.ShapeError)):
        module(bad, k, v)


def test_byte_orders_and_read_only_views(module, inputs):
    q, k, v = inputs
    expected = module(q, k, v)
    swapped = [x.astype(x.dtype.newbyteorder(">")) for x in (q, k, v)]
    assert_same(module(*swapped), expected)
    mask = np.zeros((N, S), np.float32)
    assert_same(module(q, k, v, key_padding_mask=mask.astype(">f4")), module(q, k, v, key_padding_mask=mask))
    read_only = [x.copy() for x in (q, k, v)]
    for x in read_only:
        x.setflags(write=False)
    assert_same(module(*read_only), expected)


def test_structured_field_views_are_copied_correctly(module, inputs):
    q, k, v = inputs
    record = np.zeros(q.shape, dtype=[("pad", np.int8), ("x", np.float32)])
    record["x"] = q
    field = record["x"]  # byte strides of 5: not a multiple of 4
    assert_same(module(field, k, v), module(q, k, v))


def test_zero_dimensional_and_deep_arrays(module, inputs):
    q, k, v = inputs
    with pytest.raises(mh.ShapeError, match="query"):
        module(np.float32(1.0), k, v)
    with pytest.raises(mh.ShapeError, match="MH_MAX_RANK"):
        module(q, np.zeros((1,) * 9 + (E,), np.float32), v)


def test_nan_and_inf_are_values_not_errors(module, inputs):
    q, k, v = inputs
    poisoned = q.copy()
    poisoned[1, 2, 0] = np.nan  # query l = 1, n = 2
    out, w = module(poisoned, k, v)
    clean = module(q, k, v)
    assert np.isnan(out[1, 2]).all() and np.isnan(w[2, 1]).all()
    rows = np.ones((L, N), bool)
    rows[1, 2] = False
    np.testing.assert_array_equal(out[rows], clean[0][rows])
    big = q * np.float32(1e30)
    out, w = module(big, k, v)  # scores overflow to +-inf: no crash, rows may be NaN
    assert out.shape == (L, N, E)


# ---------------------------------------------------------------------------------------------
# Sizes

def test_broadcast_inputs_too_large_for_any_machine_are_memory_errors(module):
    # 2**36 batches that share one row of memory: numpy makes the view, the library refuses it.
    q = np.broadcast_to(np.ones(E, np.float32), (1, 2**36, E))
    with pytest.raises(mh.OutOfMemoryError, match="scratch"):
        module(q, q, q, need_weights=False)
    k = np.broadcast_to(np.ones(E, np.float32), (2**40, 1, E))
    with pytest.raises(mh.OutOfMemoryError):
        module(np.ones((1, 1, E), np.float32), k, k, need_weights=False)


def test_huge_parameters_are_memory_errors():
    with pytest.raises(mh.OutOfMemoryError, match="memory"):
        mh.MultiheadAttention(2**20, 1)
    with pytest.raises(mh.OutOfMemoryError, match="vdim"):
        mh.MultiheadAttention(8, 2, vdim=2**40)


def test_empty_sizes(module):
    bias = module.get_parameter("out_proj.bias")
    q = np.ones((L, N, E), np.float32)
    none = np.zeros((0, N, E), np.float32)
    out, w = module(q, none, none)  # no keys: zero attention, the output is out_proj.bias
    np.testing.assert_array_equal(out, np.broadcast_to(bias, out.shape))
    assert w.shape == (N, L, 0)
    out, w = module(np.zeros((L, 0, E), np.float32), np.zeros((S, 0, E), np.float32), np.zeros((S, 0, E), np.float32))
    assert out.shape == (L, 0, E) and w.shape == (0, L, S)
    # L = 0 with 2**40 broadcast batches: nothing to compute, returned at once.
    q0 = np.broadcast_to(np.ones(E, np.float32), (0, 2**40, E))
    with mh.MultiheadAttention(E, 1) as one_head:
        out, _ = one_head(q0, q0, q0, need_weights=False)
    assert out.shape == (0, 2**40, E)


def test_module_still_works_after_every_kind_of_error(module, inputs, tmp_path):
    q, k, v = inputs
    before = module(q, k, v)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((8).to_bytes(8, "little") + b'{"a":1} ')
    calls = [
        lambda: module(q, k[:, :2], v),
        lambda: module(q, k, v, attn_mask=np.zeros((L + 1, S), bool)),
        lambda: module(q, k, v, key_padding_mask=np.zeros((N, S), np.int32)),
        lambda: module.set_parameter("in_proj_weight", np.zeros((E, E), np.float32)),
        lambda: module.load_safetensors(bad),
        lambda: module.load_safetensors(tmp_path / "missing.safetensors"),
        lambda: module(np.broadcast_to(q[:1, :1], (1, 2**36, E)), k, v),
    ]
    for call in calls:
        with pytest.raises((mh.Error, TypeError, ValueError)):
            call()
        assert_same(module(q, k, v), before)


def test_malformed_safetensors_keep_the_parameters(module, tmp_path):
    before = module.state_dict()
    header_cases = {
        "overlap": '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
        "unknown_dtype": '{"in_proj_weight":{"dtype":"Q8","shape":[1],"data_offsets":[0,12]}}',
        "size_mismatch": '{"in_proj_weight":{"dtype":"F32","shape":[5],"data_offsets":[0,12]}}',
        "absurd_shape": '{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,12]}}',
        "offset_past_int": '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,1e300]}}',
        "not_an_object": "[]",
        "bad_utf8": '{"a\udcff":1}',
    }
    for name, header in header_cases.items():
        text = header.encode("utf-8", "surrogateescape")
        text += b" " * (-len(text) % 8)
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(12))
        with pytest.raises(mh.FormatError) as info:
            module.load_safetensors(path)
        assert info.value.status == -5 and "safetensors" in str(info.value), name
    huge = tmp_path / "huge_header.safetensors"
    huge.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    with pytest.raises(mh.FormatError, match="header length"):
        module.load_safetensors(huge)
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


# ---------------------------------------------------------------------------------------------
# Threads and lifetimes

def test_eight_threads_share_one_module_and_engine():
    rng = np.random.default_rng(3)
    with mh.Engine(2) as engine, mh.MultiheadAttention(64, 4, engine=engine) as m:
        m.load_state_dict(random_params(rng, 64, 64, 64, 64))
        big = [rng.standard_normal(shape).astype(np.float32) for shape in ((70, 2, 64), (66, 2, 64))]
        small = rng.standard_normal((3, 64)).astype(np.float32)
        mask = rng.random((2, 66)) < 0.2
        expected_big = m(big[0], big[1], big[1], key_padding_mask=mask)
        expected_small = m(small, small, small, need_weights=False, is_causal=True)
        failures = []

        def work(thread):
            try:
                for i in range(1000):
                    if (i + thread) % 10 == 0:  # one call in ten runs on the engine's workers
                        got = m(big[0], big[1], big[1], key_padding_mask=mask)
                        if not (np.array_equal(got[0], expected_big[0]) and np.array_equal(got[1], expected_big[1])):
                            failures.append((thread, i, "big"))
                    else:
                        got = m(small, small, small, need_weights=False, is_causal=True)
                        if not np.array_equal(got[0], expected_small[0]):
                            failures.append((thread, i, "small"))
            except BaseException as error:  # pragma: no cover - reported below
                failures.append((thread, repr(error)))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_engines_and_modules_created_and_destroyed_from_threads():
    x = np.random.default_rng(4).standard_normal((3, 2, 8)).astype(np.float32)
    with mh.MultiheadAttention(8, 2, seed=7) as reference:
        expected = reference(x, x, x)[0]
    failures = []

    def work(thread):
        try:
            for round_ in range(20):
                with mh.Engine(1 + (thread + round_) % 2) as engine:
                    with mh.MultiheadAttention(8, 2, seed=7, engine=engine) as m:
                        if not np.array_equal(m(x, x, x)[0], expected):
                            failures.append((thread, round_))
                # Dropped without close(): freed by the finalizer.
                m2 = mh.MultiheadAttention(8, 2, seed=7)
                m2(x, x, x)
                del m2
        except BaseException as error:  # pragma: no cover
            failures.append((thread, repr(error)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert failures == []


def test_closed_engine_and_module_are_refused_but_open_modules_keep_their_engine():
    engine = mh.Engine(1)
    m = mh.MultiheadAttention(8, 2, engine=engine)
    engine.close()  # deferred: m still uses it
    x = np.ones((2, 1, 8), np.float32)
    m(x, x, x)
    with pytest.raises(mh.Error, match="engine is closed"):
        mh.MultiheadAttention(8, 2, engine=engine)
    m.close()
    with pytest.raises(mh.Error, match="closed"):
        m(x, x, x)
    assert engine.closed


def test_a_module_closed_by_another_thread_fails_cleanly():
    """close() while other threads call forward: each call returns a result or raises
    multihead.Error; nothing crashes (the library keeps the module alive during a call)."""
    x = np.random.default_rng(5).standard_normal((16, 2, 32)).astype(np.float32)
    for _ in range(20):
        m = mh.MultiheadAttention(32, 4)
        expected = m(x, x, x)[0]
        outcomes = []
        start = threading.Barrier(5)

        def call():
            start.wait()
            for _ in range(20):
                try:
                    out = m(x, x, x)[0]
                    outcomes.append(np.array_equal(out, expected))
                except mh.Error:
                    outcomes.append("closed")

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        start.wait()
        m.close()
        for t in threads:
            t.join()
        assert all(o is True or o == "closed" for o in outcomes), outcomes
