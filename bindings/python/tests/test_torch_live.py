"""The engine against torch.nn.MultiheadAttention itself, on random configurations.

Skipped when torch is not installed. torch runs in float32 on the same inputs; the float64
reference checks the rows where torch gives NaN (fully masked rows) and the documented
differences: for ``is_causal`` the engine gets ``is_causal=True`` without a mask (a top-left
causal mask) while torch gets that mask explicitly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import multihead as mh
from mhtest import assert_close, assert_close_finite, mha_reference

torch = pytest.importorskip("torch")


def _configs(count=120, seed=2024):
    rng = np.random.default_rng(seed)
    eh = [(4, 1), (4, 2), (5, 5), (6, 3), (8, 2), (12, 4), (16, 4), (32, 4), (64, 8), (48, 3)]
    out = []
    for i in range(count):
        E, H = eh[rng.integers(len(eh))]
        big = i % 10 == 0
        c = dict(E=E, H=H, L=int(rng.integers(1, 70 if big else 9)), S=int(rng.integers(1, 90 if big else 9)),
                 N=int(rng.integers(1, 4)), bias=bool(rng.integers(2)), bkv=bool(rng.integers(2)),
                 zattn=bool(rng.integers(2)), kdim=int(rng.choice([E, E, 3, 7])), vdim=int(rng.choice([E, E, 5])),
                 layout=["bf0", "bf1", "unb"][rng.integers(3)], kpm=["none", "bool", "float"][rng.integers(3)],
                 am=["none", "2d-bool", "2d-float", "3d-bool", "3d-float", "causal"][rng.integers(6)],
                 w=bool(rng.integers(2)), avg=bool(rng.integers(2)), self_attn=bool(rng.integers(4) == 0),
                 p_mask=float(rng.choice([0.2, 0.5, 0.9])), torch_in=bool(rng.integers(2)),
                 seed=int(rng.integers(1 << 30)))
        if c["self_attn"]:
            c["S"], c["kdim"], c["vdim"] = c["L"], E, E
        out.append(c)
    return out


@pytest.fixture(scope="module")
def engine():
    with mh.Engine(2) as e:
        yield e


@pytest.mark.parametrize("c", _configs(), ids=lambda c: "{layout}-E{E}H{H}-L{L}S{S}N{N}-kpm_{kpm}-am_{am}-w{w}".format(**c))
def test_matches_torch(c, engine):
    torch.manual_seed(c["seed"])
    E, H, L, S, N = c["E"], c["H"], c["L"], c["S"], c["N"]
    unbatched, bf = c["layout"] == "unb", c["layout"] == "bf1"
    reference = torch.nn.MultiheadAttention(E, H, bias=c["bias"], add_bias_kv=c["bkv"], add_zero_attn=c["zattn"],
                                            kdim=c["kdim"], vdim=c["vdim"], batch_first=bf).eval()
    with torch.no_grad():
        if c["bias"]:
            reference.in_proj_bias.normal_()
            reference.out_proj.bias.normal_()
    module = mh.MultiheadAttention.from_torch(reference, engine=engine)

    def shape(length, features):
        return (length, features) if unbatched else ((N, length, features) if bf else (length, N, features))

    q = torch.randn(shape(L, E))
    k = q if c["self_attn"] else torch.randn(shape(S, c["kdim"]))
    v = q if c["self_attn"] else torch.randn(shape(S, c["vdim"]))
    kpm = None
    if c["kpm"] != "none":
        hidden = torch.rand((S,) if unbatched else (N, S)) < c["p_mask"]
        kpm = hidden if c["kpm"] == "bool" else torch.randn(hidden.shape).masked_fill(hidden, float("-inf"))
    am, causal = None, c["am"] == "causal"
    if causal:
        am = torch.triu(torch.ones(L, S), 1).bool()
    elif c["am"] != "none":
        dims, kind = c["am"].split("-")
        hidden = torch.rand((L, S) if dims == "2d" else ((1 if unbatched else N) * H, L, S)) < c["p_mask"]
        am = hidden if kind == "bool" else torch.randn(hidden.shape).masked_fill(hidden, float("-inf"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, expected_w = reference(q, k, v, key_padding_mask=kpm, need_weights=c["w"], attn_mask=am,
                                         average_attn_weights=c["avg"])

    def arg(t):
        return t if c["torch_in"] or t is None else t.numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, w = module(arg(q), arg(k), arg(v), key_padding_mask=arg(kpm), need_weights=c["w"],
                        attn_mask=None if causal else arg(am), average_attn_weights=c["avg"], is_causal=causal)
    if c["torch_in"]:
        assert isinstance(out, torch.Tensor) and (w is None or isinstance(w, torch.Tensor))
        out, w = out.numpy(), None if w is None else w.numpy()
    else:
        assert isinstance(out, np.ndarray)
    assert out.shape == tuple(expected.shape)
    assert_close_finite(out, expected.numpy(), "output vs torch")

    params = {name: t.numpy() for name, t in reference.state_dict().items()}
    ref_out, ref_w = mha_reference(q.numpy(), k.numpy(), v.numpy(), params, embed_dim=E, num_heads=H,
                                   bias=c["bias"], add_bias_kv=c["bkv"], add_zero_attn=c["zattn"],
                                   kdim=c["kdim"], vdim=c["vdim"], batch_first=bf,
                                   key_padding_mask=None if kpm is None else kpm.numpy(),
                                   need_weights=c["w"], attn_mask=None if am is None else am.numpy(),
                                   average_attn_weights=c["avg"])
    assert_close(out, ref_out, "output vs float64 reference")
    if c["w"]:
        assert w.shape == tuple(expected_w.shape)
        assert_close_finite(w, expected_w.numpy(), "weights vs torch")
        assert_close(w, ref_w, "weights vs float64 reference")
    else:
        assert w is None
    module.close()


def test_from_torch_copies_config_and_weights():
    reference = torch.nn.MultiheadAttention(8, 2, dropout=0.25, bias=False, add_bias_kv=True, add_zero_attn=True,
                                            kdim=5, vdim=3, batch_first=True)
    with mh.MultiheadAttention.from_torch(reference) as module:
        assert (module.embed_dim, module.num_heads, module.dropout) == (8, 2, 0.25)
        assert (module.bias, module.add_bias_kv, module.add_zero_attn) == (False, True, True)
        assert (module.kdim, module.vdim, module.qdim, module.batch_first) == (5, 3, 8, True)
        state = module.state_dict()
        expected = reference.state_dict()
        assert list(state) == list(expected)
        for name, value in expected.items():
            np.testing.assert_array_equal(state[name], value.numpy(), err_msg=name)


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError):
        mh.MultiheadAttention.from_torch(torch.nn.Linear(4, 4))


def test_torch_state_dict_and_tensors_of_other_dtypes():
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(8, 2, dtype=torch.float64).eval()
    module = mh.MultiheadAttention(8, 2)
    module.load_state_dict(reference.state_dict())  # float64 tensors are converted
    x = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)
    out, w = module(x, x, x)
    assert out.dtype == torch.float32 and not out.requires_grad
    with torch.no_grad():
        expected, expected_w = reference(x, x, x)
    assert_close(out.numpy(), expected.numpy(), "float64 torch input")
    assert_close(w.numpy(), expected_w.numpy(), "float64 torch weights")
    # bfloat16 inputs (numpy has no such dtype) are converted too.
    out16, _ = module(x.detach().to(torch.bfloat16), x.detach().float(), x.detach().float())
    assert out16.dtype == torch.float32 and torch.isfinite(out16).all()


def test_torch_bool_and_float_masks_and_int_masks():
    torch.manual_seed(1)
    reference = torch.nn.MultiheadAttention(4, 2).eval()
    module = mh.MultiheadAttention.from_torch(reference)
    x = torch.randn(3, 2, 4)
    kpm = torch.tensor([[False, False, True], [True, False, False]])
    out_bool, _ = module(x, x, x, key_padding_mask=kpm)
    out_float, _ = module(x, x, x, key_padding_mask=torch.zeros(2, 3).masked_fill(kpm, float("-inf")))
    torch.testing.assert_close(out_bool, out_float, rtol=0, atol=0)
    with pytest.raises(TypeError, match="only bool and floating types of key_padding_mask are supported"):
        module(x, x, x, key_padding_mask=kpm.long())
    with pytest.raises(TypeError, match="only bool and floating types of attn_mask are supported"):
        module(x, x, x, attn_mask=torch.zeros(3, 3, dtype=torch.int32))
    with pytest.raises(TypeError):
        module(x.long(), x, x)
