"""The engine against the float64 numpy reference: qdim (which PyTorch lacks) and random shapes,
including sizes past the kernels' block sizes and edge tiles."""

from __future__ import annotations

import numpy as np
import pytest

import multihead as mh
from mhtest import assert_close, mha_reference, random_params


@pytest.fixture(scope="module")
def engine():
    with mh.Engine(2) as e:
        yield e


def _configs(count=60, seed=99):
    rng = np.random.default_rng(seed)
    eh = [(4, 2), (6, 1), (8, 8), (12, 3), (20, 4), (64, 4), (96, 6), (40, 5)]
    out = []
    for i in range(count):
        E, H = eh[rng.integers(len(eh))]
        big = i % 6 == 0
        out.append(dict(
            E=E, H=H, qdim=int(rng.choice([E, 8, 3, 17])), kdim=int(rng.choice([E, 5, 33])),
            vdim=int(rng.choice([E, 2, 9])), L=int(rng.integers(1, 150 if big else 12)),
            S=int(rng.integers(1, 200 if big else 12)), N=int(rng.integers(1, 4)),
            layout=["bf0", "bf1", "unb"][rng.integers(3)], bias=bool(rng.integers(2)), bkv=bool(rng.integers(2)),
            zattn=bool(rng.integers(2)), kpm=["none", "bool", "float"][rng.integers(3)],
            am=["none", "2d-bool", "2d-float", "3d-float", "causal"][rng.integers(5)],
            w=bool(rng.integers(2)), avg=bool(rng.integers(2)), seed=int(rng.integers(1 << 30))))
    return out


@pytest.mark.parametrize("c", _configs(), ids=lambda c: "{layout}-E{E}H{H}-q{qdim}k{kdim}v{vdim}-L{L}S{S}N{N}-{kpm}-{am}".format(**c))
def test_matches_float64_reference(c, engine):
    rng = np.random.default_rng(c["seed"])
    E, H, L, S, N = c["E"], c["H"], c["L"], c["S"], c["N"]
    unbatched, bf = c["layout"] == "unb", c["layout"] == "bf1"

    def shape(length, features):
        return (length, features) if unbatched else ((N, length, features) if bf else (length, N, features))

    q = rng.standard_normal(shape(L, c["qdim"])).astype(np.float32)
    k = rng.standard_normal(shape(S, c["kdim"])).astype(np.float32)
    v = rng.standard_normal(shape(S, c["vdim"])).astype(np.float32)
    params = random_params(rng, E, c["qdim"], c["kdim"], c["vdim"], bias=c["bias"], bias_kv=c["bkv"])
    kpm = am = None
    if c["kpm"] != "none":
        hidden = rng.random((S,) if unbatched else (N, S)) < 0.3
        kpm = hidden if c["kpm"] == "bool" else np.where(hidden, -np.inf, rng.standard_normal(hidden.shape)).astype(np.float32)
    causal = c["am"] == "causal"
    if c["am"] not in ("none", "causal"):
        dims, kind = c["am"].split("-")
        hidden = rng.random((L, S) if dims == "2d" else ((1 if unbatched else N) * H, L, S)) < 0.3
        am = hidden if kind == "bool" else np.where(hidden, -np.inf, rng.standard_normal(hidden.shape)).astype(np.float32)
    options = dict(key_padding_mask=kpm, need_weights=c["w"], attn_mask=am, average_attn_weights=c["avg"],
                   is_causal=causal)
    with mh.MultiheadAttention(E, H, bias=c["bias"], add_bias_kv=c["bkv"], add_zero_attn=c["zattn"],
                               kdim=c["kdim"], vdim=c["vdim"], qdim=c["qdim"], batch_first=bf,
                               engine=engine) as module:
        assert ("in_proj_weight" in module.parameter_shapes) == (c["qdim"] == c["kdim"] == c["vdim"] == E)
        module.load_state_dict(params)
        out, w = module(q, k, v, **options)
    ref_out, ref_w = mha_reference(q, k, v, params, embed_dim=E, num_heads=H, bias=c["bias"], add_bias_kv=c["bkv"],
                                   add_zero_attn=c["zattn"], kdim=c["kdim"], vdim=c["vdim"], qdim=c["qdim"],
                                   batch_first=bf, **options)
    assert_close(out, ref_out, "output")
    if c["w"]:
        assert_close(w, ref_w, "weights")
    else:
        assert w is None


def test_seed_example2_with_qdim():
    """The seed article's Example 2: qdim=8, kdim=6, vdim=4 on embed_dim=4 works here."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    wq, wk, wv = (rng.standard_normal((n, 4)).astype(np.float32) for n in (8, 6, 4))
    q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
    with mh.MultiheadAttention(embed_dim=4, num_heads=2, kdim=6, vdim=4, qdim=8) as module:
        assert module.parameter_shapes["q_proj_weight"] == (4, 8)
        out, w = module(q, k, v)
        params = module.state_dict()
    assert out.shape == (2, 5, 4) and w.shape == (5, 2, 2)
    ref_out, ref_w = mha_reference(q, k, v, params, embed_dim=4, num_heads=2, kdim=6, vdim=4, qdim=8)
    assert_close(out, ref_out, "output")
    assert_close(w, ref_w, "weights")


def test_initial_parameters_are_seeded_and_torch_like():
    a = mh.MultiheadAttention(16, 4, add_bias_kv=True, seed=1).state_dict()
    b = mh.MultiheadAttention(16, 4, add_bias_kv=True, seed=1).state_dict()
    c = mh.MultiheadAttention(16, 4, add_bias_kv=True, seed=2).state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["in_proj_weight"], c["in_proj_weight"])
    bound = np.sqrt(6 / (48 + 16))  # xavier_uniform_ on (3E, E)
    assert np.abs(a["in_proj_weight"]).max() <= bound
    assert not a["in_proj_bias"].any() and not a["out_proj.bias"].any()
    assert np.abs(a["out_proj.weight"]).max() <= 1 / np.sqrt(16)
