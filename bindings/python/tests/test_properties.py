"""Property-based tests (hypothesis): random configurations, shapes, layouts, masks and options
against the float64 reference, and invariants that must hold for every input.

Bounded (about 100 examples per property, no deadline) so that the suite stays fast; run with
``--hypothesis-seed=N`` to replay, or ``--hypothesis-show-statistics`` to see what was drawn.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import multihead as mh  # noqa: E402
from mhtest import assert_close, mha_reference, random_params, write_safetensors  # noqa: E402

# database=None: no .hypothesis/ example store in the checkout; print_blob shows how to replay.
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    print_blob=True, database=None)


@pytest.fixture(scope="module")
def engines():
    with mh.Engine(1) as one, mh.Engine(2) as two:
        yield one, two


@st.composite
def cases(draw):
    """A module configuration, inputs in random layouts, masks and options."""
    H = draw(st.sampled_from([1, 2, 3, 4]))
    E = H * draw(st.sampled_from([1, 2, 3, 4, 8]))
    dims = {name: draw(st.one_of(st.none(), st.integers(1, 9))) for name in ("kdim", "vdim", "qdim")}
    unbatched = draw(st.booleans()) and draw(st.booleans())  # one in four
    c = dict(E=E, H=H, **dims, bias=draw(st.booleans()), bkv=draw(st.booleans()), zattn=draw(st.booleans()),
             bf=draw(st.booleans()), unbatched=unbatched, N=1 if unbatched else draw(st.integers(0, 3)),
             L=draw(st.integers(0, 9)), S=draw(st.integers(0, 9)), need_weights=draw(st.booleans()),
             average=draw(st.booleans()), kpm=draw(st.sampled_from(["none", "bool", "float"])),
             am=draw(st.sampled_from(["none", "2d-bool", "2d-float", "3d-bool", "3d-float", "causal"])),
             layout=draw(st.sampled_from(["contiguous", "transposed", "strided", "reversed", "float64"])),
             seed=draw(st.integers(0, 2**32 - 1)))
    return c


def _inputs(c, rng):
    """query, key, value (in the drawn layout), params, kpm, attn_mask, is_causal."""
    E, N, L, S = c["E"], c["N"], c["L"], c["S"]
    qdim, kdim, vdim = (c[d] or E for d in ("qdim", "kdim", "vdim"))

    def shape(length, features):
        if c["unbatched"]:
            return (length, features)
        return (N, length, features) if c["bf"] else (length, N, features)

    def layout(x):
        kind = c["layout"]
        if kind == "transposed":  # the same values, stored with the first two axes swapped
            return np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
        if kind == "strided":  # every other feature of a wider buffer
            wide = np.full(x.shape[:-1] + (2 * x.shape[-1],), np.nan, np.float32)
            wide[..., ::2] = x
            return wide[..., ::2]
        if kind == "reversed":  # negative strides
            return np.ascontiguousarray(x[::-1])[::-1]
        if kind == "float64":
            return x.astype(np.float64)
        return x

    q = rng.standard_normal(shape(L, qdim)).astype(np.float32)
    k = rng.standard_normal(shape(S, kdim)).astype(np.float32)
    v = rng.standard_normal(shape(S, vdim)).astype(np.float32)
    params = random_params(rng, E, qdim, kdim, vdim, bias=c["bias"], bias_kv=c["bkv"])
    kpm = None
    if c["kpm"] != "none":
        hidden = rng.random((S,) if c["unbatched"] else (N, S)) < 0.3
        kpm = hidden if c["kpm"] == "bool" else np.where(hidden, -np.inf, rng.uniform(-2, 2, hidden.shape)).astype(np.float32)
    am, causal = None, c["am"] == "causal"
    if c["am"] not in ("none", "causal"):
        dims, kind = c["am"].split("-")
        heads = c["H"] * (1 if c["unbatched"] else N)
        hidden = rng.random((L, S) if dims == "2d" else (heads, L, S)) < 0.3
        am = hidden if kind == "bool" else np.where(hidden, -np.inf, rng.uniform(-2, 2, hidden.shape)).astype(np.float32)
    return tuple(layout(x) for x in (q, k, v)), params, kpm, am, causal


def _module(c, engine):
    return mh.MultiheadAttention(c["E"], c["H"], bias=c["bias"], add_bias_kv=c["bkv"], add_zero_attn=c["zattn"],
                                 kdim=c["kdim"], vdim=c["vdim"], qdim=c["qdim"], batch_first=c["bf"], engine=engine)


@SETTINGS
@given(c=cases())
def test_matches_the_float64_reference(c, engines):
    rng = np.random.default_rng(c["seed"])
    (q, k, v), params, kpm, am, causal = _inputs(c, rng)
    options = dict(key_padding_mask=kpm, need_weights=c["need_weights"], attn_mask=am,
                   average_attn_weights=c["average"], is_causal=causal)
    with _module(c, engines[c["seed"] % 2]) as m:
        m.load_state_dict(params)
        out, w = m(q, k, v, **options)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    keys = c["S"] + c["bkv"] + c["zattn"]
    if c["N"] * c["L"] * keys == 0:
        # Empty sizes (the reference needs a key): shapes, and no key at all means zero attention.
        L, N, E = c["L"], c["N"], c["E"]
        assert out.shape == ((L, E) if c["unbatched"] else ((N, L, E) if c["bf"] else (L, N, E)))
        bias = params["out_proj.bias"] if c["bias"] else np.zeros(E, np.float32)
        np.testing.assert_array_equal(out.reshape(-1, E), np.broadcast_to(bias, (out.size // E, E)))
        if c["need_weights"]:
            assert w.shape[-2:] == (L, keys) and w.size == 0 or not w.any()
        return
    ref_out, ref_w = mha_reference(q, k, v, params, embed_dim=c["E"], num_heads=c["H"], bias=c["bias"],
                                   add_bias_kv=c["bkv"], add_zero_attn=c["zattn"], kdim=c["kdim"], vdim=c["vdim"],
                                   qdim=c["qdim"], batch_first=c["bf"], **options)
    assert_close(out, ref_out, "output", rel_tol=2e-5)
    if c["need_weights"]:
        assert_close(w, ref_w, "weights", rel_tol=2e-5)
        # A head's row sums to 1, or to 0 when its keys are all masked; averaged rows to k/H.
        sums = np.asarray(w, np.float64).sum(axis=-1) * (c["H"] if c["average"] else 1)
        assert np.all(np.abs(sums - np.round(sums)) < 1e-4) and np.all((sums > -1e-4) & (sums < c["H"] + 1e-4))
        if not c["average"]:
            assert np.all((np.abs(sums - 1) < 1e-5) | (sums == 0))
    else:
        assert w is None


@SETTINGS
@given(c=cases())
def test_same_bits_on_one_and_two_threads_and_bool_equals_float_masks(c, engines):
    rng = np.random.default_rng(c["seed"])
    (q, k, v), params, kpm, am, causal = _inputs(c, rng)
    results = []
    for engine in engines:
        with _module(c, engine) as m:
            m.load_state_dict(params)
            results.append(m(q, k, v, key_padding_mask=kpm, attn_mask=am, is_causal=causal))
            if kpm is not None and kpm.dtype == np.bool_ or am is not None and am.dtype == np.bool_:
                as_float = [None if x is None else (np.where(x, -np.inf, 0).astype(np.float32) if x.dtype == np.bool_ else x)
                            for x in (kpm, am)]
                out, w = m(q, k, v, key_padding_mask=as_float[0], attn_mask=as_float[1], is_causal=causal)
                np.testing.assert_array_equal(out, results[-1][0])
                np.testing.assert_array_equal(w, results[-1][1])
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@SETTINGS
@given(c=cases())
def test_results_do_not_depend_on_the_input_layout(c, engines):
    assume(c["layout"] != "float64")
    rng = np.random.default_rng(c["seed"])
    (q, k, v), params, kpm, am, causal = _inputs(dict(c, layout="contiguous"), rng)
    with _module(c, engines[1]) as m:
        m.load_state_dict(params)
        expected = m(q, k, v, key_padding_mask=kpm, attn_mask=am, is_causal=causal)
        for x in (q, k, v):
            assert x.flags.c_contiguous
        views = [np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1) for x in (q, k, v)]
        got = m(*views, key_padding_mask=kpm, attn_mask=am, is_causal=causal)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        # float64 inputs are converted to float32: the same bits as converting first.
        got64 = m(*(x.astype(np.float64) for x in (q, k, v)), key_padding_mask=kpm, attn_mask=am, is_causal=causal)
        np.testing.assert_array_equal(got64[0], expected[0])


@SETTINGS
@given(c=cases(), data=st.data())
def test_a_query_row_with_nan_spoils_only_its_own_row(c, data, engines):
    # A bool mask sets a hidden key's score to -inf whatever it was, NaN included: a row whose
    # keys are all hidden that way is a masked row (out_proj.bias), not a NaN row. Float masks add.
    assume(c["N"] > 0 and c["L"] > 0 and c["S"] > 0 and c["kpm"] != "bool" and not c["am"].endswith("bool"))
    rng = np.random.default_rng(c["seed"])
    (q, k, v), params, kpm, am, causal = _inputs(dict(c, layout="contiguous"), rng)
    # A separate query tensor, so the NaN does not reach the keys.
    l, n = data.draw(st.integers(0, c["L"] - 1)), data.draw(st.integers(0, c["N"] - 1))
    index = (l, n) if not c["unbatched"] and not c["bf"] else ((n, l) if not c["unbatched"] else (l,))
    poisoned = q.copy()
    poisoned[index + (0,)] = np.nan
    with _module(c, engines[1]) as m:
        m.load_state_dict(params)
        clean = m(q, k, v, key_padding_mask=kpm, attn_mask=am, is_causal=causal)
        out, w = m(poisoned, k, v, key_padding_mask=kpm, attn_mask=am, is_causal=causal)
    assert np.isnan(out[index]).all()
    rows = np.ones(out.shape[:-1], bool)
    rows[index] = False
    np.testing.assert_array_equal(out[rows], clean[0][rows])
    # Weights (averaged over heads, the default): (N, L, S') or (L, S').
    w_index = (l,) if c["unbatched"] else (n, l)
    assert np.isnan(w[w_index]).all()
    w_rows = np.ones(w.shape[:-1], bool)
    w_rows[w_index] = False
    np.testing.assert_array_equal(w[w_rows], clean[1][w_rows])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
          print_blob=True, database=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.integers(0, 10_000), mode=st.sampled_from(["flip", "cut"]))
def test_corrupted_safetensors_never_crash_and_change_nothing(tmp_path, position, value, cut, mode):
    E, H = 4, 2
    params = random_params(np.random.default_rng(5), E, E, E, E)
    path = tmp_path / "m.safetensors"
    write_safetensors(path, params)
    data = bytearray(path.read_bytes())
    if mode == "flip":
        data[position % len(data)] = value
    else:
        data = data[:cut % len(data)]
    path.write_bytes(bytes(data))
    with mh.MultiheadAttention(E, H, seed=1) as m:
        before = m.state_dict()
        try:
            m.load_safetensors(path)
        except mh.Error as error:
            assert error.status in (-1, -2, -3, -5, -6) and error.message
            for name, value_ in m.state_dict().items():
                np.testing.assert_array_equal(value_, before[name])
        else:  # a flip inside the data, or one the header tolerates (whitespace): loaded as it reads
            assert set(m.state_dict()) == set(params)
        x = np.ones((2, 1, E), np.float32)
        m(x, x, x)  # still usable


@SETTINGS
@given(shapes=st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=3), min_size=1, max_size=4),
       dtype=st.sampled_from([np.float32, np.float16, np.float64]))
def test_safetensors_round_trip(tmp_path_factory, shapes, dtype):
    """Any file of float tensors written the way safetensors writes them loads back exactly."""
    E, H = 4, 2
    params = random_params(np.random.default_rng(len(shapes)), E, E, E, E, dtype=dtype)
    extra = {f"extra.{i}": np.arange(np.prod(s), dtype=np.float32).reshape(s) for i, s in enumerate(shapes)}
    path = tmp_path_factory.mktemp("st") / "m.safetensors"
    write_safetensors(path, {**extra, **{f"m.{k}": v for k, v in params.items()}})
    with mh.MultiheadAttention(E, H) as m:
        m.load_safetensors(path, prefix="m.")
        for name, value in params.items():
            np.testing.assert_array_equal(m.get_parameter(name), value.astype(np.float32))
