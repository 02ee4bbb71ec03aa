"""The float64 numpy reference against PyTorch: the committed fixtures, and torch live when installed.

Where PyTorch returned NaN (a query row whose keys are all masked) the
reference must return Multihead's documented value instead: zero attention
for that head, so a weights row of 0 and, when every head of the row is
masked, an output row equal to out_proj.bias (0 without bias).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import fixture_paths, fixture_root, load_fixture, reference_kwargs  # noqa: E402
from reference import causal_mask, fully_masked_rows, mha_reference  # noqa: E402

REL_TOL = 1e-5

CONFIG_KEYS = {"embed_dim", "num_heads", "bias", "add_bias_kv", "add_zero_attn", "kdim", "vdim",
               "batch_first", "need_weights", "average_attn_weights", "is_causal", "unbatched"}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def to_nle(x: np.ndarray, *, batch_first: bool, unbatched: bool) -> np.ndarray:
    """Output as (N, L, E) whatever the layout."""
    if unbatched:
        return x[None]
    return x if batch_first else x.transpose(1, 0, 2)


def weights_nhls(w: np.ndarray, *, unbatched: bool, average: bool) -> np.ndarray:
    """Weights as (N, 1 or H, L, S')."""
    if unbatched:
        w = w[None]
    return w[:, None] if average else w


def assert_close_where_finite(actual, expected, what: str, rel_tol: float = REL_TOL):
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    finite = ~np.isnan(expected)
    if not finite.any():
        return
    exp = expected[finite].astype(np.float64)
    act = actual[finite]
    scale = max(float(np.abs(exp).max()), 1.0)
    err = float(np.abs(act - exp).max())
    assert err <= rel_tol * scale, f"{what}: max |diff| {err:.3g} > {rel_tol:g} * {scale:.3g}"


def check_against_torch_result(kw: dict, out_ref, w_ref, out_exp, w_exp, *, unbatched: bool,
                               rel_tol: float = REL_TOL):
    """Compare the reference with what PyTorch returned, NaN rows held to the documented value."""
    assert np.isfinite(out_ref).all(), "reference output must never be NaN/inf"
    out_exp = np.asarray(out_exp)
    assert_close_where_finite(out_ref, out_exp, "output", rel_tol)

    bf, avg = kw["batch_first"], kw["average_attn_weights"]
    o_ref = to_nle(out_ref, batch_first=bf, unbatched=unbatched)
    o_exp = to_nle(out_exp, batch_first=bf, unbatched=unbatched)
    N, L, E = o_ref.shape
    H = kw["num_heads"]
    S = np.asarray(kw["key"]).shape[0 if unbatched or not bf else 1]
    appended = int(kw["add_bias_kv"]) + int(kw["add_zero_attn"])
    masked = fully_masked_rows(L=L, S=S, N=N, num_heads=H, unbatched=unbatched,
                               key_padding_mask=kw["key_padding_mask"], attn_mask=kw["attn_mask"],
                               is_causal=kw["is_causal"], appended=appended)   # (N, H, L)
    any_head = masked.any(axis=1)                                              # (N, L)
    every_head = masked.all(axis=1)

    nan_rows = np.isnan(o_exp).any(axis=-1)
    assert not (nan_rows & ~any_head).any(), "torch gave NaN in a row that is not fully masked"
    bo = np.asarray(kw["params"]["out_proj.bias"], np.float64) if kw["bias"] else np.zeros(E)
    for n, l in zip(*np.nonzero(every_head)):
        # Documented: all heads see no key -> the row is out_proj.bias. PyTorch: NaN or the same.
        np.testing.assert_allclose(o_ref[n, l], bo, rtol=0, atol=1e-12)

    if not kw["need_weights"]:
        assert w_ref is None
        return
    w_exp = np.asarray(w_exp)
    assert np.isfinite(w_ref).all(), "reference weights must never be NaN/inf"
    assert_close_where_finite(w_ref, w_exp, "weights", rel_tol)
    wr = weights_nhls(w_ref, unbatched=unbatched, average=avg)
    we = weights_nhls(w_exp, unbatched=unbatched, average=avg)
    assert wr.shape[-1] == S + appended
    assert (wr >= 0).all()
    if avg:
        # Each head's row sums to 1, or to 0 when it is fully masked.
        expected_sum = 1.0 - masked.mean(axis=1)
        np.testing.assert_allclose(wr[:, 0].sum(-1), expected_sum, atol=1e-12)
        assert not (np.isnan(we[:, 0]).any(-1) & ~any_head).any()
    else:
        rows_nan = np.isnan(we).any(axis=-1)
        assert not (rows_nan & ~masked).any(), "torch gave NaN weights in a row not fully masked"
        assert (wr[masked] == 0).all(), "fully masked rows must have zero weights"
        np.testing.assert_allclose(wr[~masked].sum(-1), 1.0, atol=1e-12)


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

ALL_FIXTURES = fixture_paths()


def test_fixtures_exist_and_index_is_complete():
    mha = fixture_paths("mha")
    assert 150 <= len(mha) <= 400, len(mha)
    index = json.loads((fixture_root() / "mha" / "INDEX.json").read_text())
    assert sorted(index) == sorted(p.stem for p in mha)
    assert len(set(index)) == len(index)
    assert sorted(p.stem for p in fixture_paths("seed")) == ["example1", "example2"]
    total = sum(p.stat().st_size for p in ALL_FIXTURES)
    assert total < 3 * 1024 * 1024, total


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_reference_matches_fixture(path):
    config, tensors = load_fixture(path)
    assert CONFIG_KEYS <= set(config), set(config) ^ CONFIG_KEYS
    assert config["torch_version"]
    kw = reference_kwargs(config, tensors)
    unbatched = config["unbatched"]
    assert (tensors["query"].ndim == 2) == unbatched
    for name, array in tensors.items():
        if name in ("key_padding_mask", "attn_mask"):
            assert array.dtype in (np.bool_, np.float32), (name, array.dtype)
        else:
            assert array.dtype == np.float32, (name, array.dtype)
    assert ("expected.weights" in tensors) == config["need_weights"]
    out, w = mha_reference(**kw)
    check_against_torch_result(kw, out, w, tensors["expected.output"], tensors.get("expected.weights"),
                               unbatched=unbatched)


def test_fixtures_cover_the_options():
    seen: dict = {}
    masks = set()
    for path in fixture_paths("mha"):
        config, tensors = load_fixture(path)
        for key in CONFIG_KEYS - {"embed_dim", "num_heads", "kdim", "vdim"}:
            seen.setdefault(key, set()).add(config[key])
        seen.setdefault("layout", set()).add((config["batch_first"], config["unbatched"]))
        seen.setdefault("kdim!=E", set()).add(config["kdim"] != config["embed_dim"])
        seen.setdefault("vdim!=E", set()).add(config["vdim"] != config["embed_dim"])
        seen.setdefault("head_dim1", set()).add(config["embed_dim"] == config["num_heads"])
        for name in ("key_padding_mask", "attn_mask"):
            if name in tensors:
                masks.add((name, tensors[name].ndim, tensors[name].dtype.name))
        if "key_padding_mask" in tensors and "attn_mask" in tensors:
            masks.add(("mixed", tensors["key_padding_mask"].dtype.name, tensors["attn_mask"].dtype.name))
        has_nan = np.isnan(tensors["expected.output"]).any()
        seen.setdefault("nan_expected", set()).add(bool(has_nan))
    for key, values in seen.items():
        if key == "layout":
            assert values == {(False, False), (True, False), (False, True), (True, True)}, values
        else:
            assert values == {False, True}, (key, values)
    for dtype in ("bool", "float32"):
        assert ("key_padding_mask", 2, dtype) in masks and ("key_padding_mask", 1, dtype) in masks
        assert ("attn_mask", 2, dtype) in masks and ("attn_mask", 3, dtype) in masks
    assert ("mixed", "bool", "float32") in masks and ("mixed", "float32", "bool") in masks


def test_seed_examples_shapes():
    config, t = load_fixture(fixture_root() / "seed" / "example1.safetensors")
    assert t["query"].shape == (2, 5, 4) and t["expected.output"].shape == (2, 5, 4)
    assert t["expected.weights"].shape == (5, 2, 2)
    assert "param.in_proj_weight" in t
    config, t = load_fixture(fixture_root() / "seed" / "example2.safetensors")
    assert (config["kdim"], config["vdim"]) == (6, 4)
    assert t["key"].shape == (2, 5, 6) and t["param.k_proj_weight"].shape == (4, 6)


# ---------------------------------------------------------------------------
# the reference's own contract
# ---------------------------------------------------------------------------

def _random_params(rng, E, qdim, kdim, vdim, *, bias=True, bias_kv=False, packed=None):
    p = {}
    if packed if packed is not None else (qdim == kdim == vdim == E):
        p["in_proj_weight"] = rng.standard_normal((3 * E, E))
    else:
        p["q_proj_weight"] = rng.standard_normal((E, qdim))
        p["k_proj_weight"] = rng.standard_normal((E, kdim))
        p["v_proj_weight"] = rng.standard_normal((E, vdim))
    p["out_proj.weight"] = rng.standard_normal((E, E))
    if bias:
        p["in_proj_bias"] = rng.standard_normal(3 * E)
        p["out_proj.bias"] = rng.standard_normal(E)
    if bias_kv:
        p["bias_k"] = rng.standard_normal((1, 1, E))
        p["bias_v"] = rng.standard_normal((1, 1, E))
    return p


def test_is_causal_without_mask_is_top_left_causal():
    rng = np.random.default_rng(1)
    E, H, L, S, N = 6, 2, 3, 5, 2
    p = _random_params(rng, E, E, E, E, bias_kv=True)
    q, k, v = rng.standard_normal((L, N, E)), rng.standard_normal((S, N, E)), rng.standard_normal((S, N, E))
    kw = dict(embed_dim=E, num_heads=H, add_bias_kv=True, add_zero_attn=True, average_attn_weights=False)
    a = mha_reference(q, k, v, p, is_causal=True, **kw)
    b = mha_reference(q, k, v, p, attn_mask=causal_mask(L, S), **kw)
    c = mha_reference(q, k, v, p, attn_mask=causal_mask(L, S), is_causal=True, **kw)
    for x, y in ((a, b), (a, c)):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    # Query 0 sees key 0 and the two appended keys only.
    assert (a[1][:, :, 0, 1:S] == 0).all() and (a[1][:, :, 0, S:] > 0).all()
    # A mask given with is_causal is used as given (is_causal is a hint).
    open_mask = np.zeros((L, S), dtype=bool)
    d = mha_reference(q, k, v, p, attn_mask=open_mask, is_causal=True, **kw)
    e = mha_reference(q, k, v, p, **kw)
    np.testing.assert_array_equal(d[0], e[0])


def test_fully_masked_rows_give_out_proj_bias_and_zero_weights():
    rng = np.random.default_rng(2)
    E, H, L, S, N = 4, 2, 3, 4, 2
    p = _random_params(rng, E, E, E, E)
    q, k, v = rng.standard_normal((N, L, E)), rng.standard_normal((N, S, E)), rng.standard_normal((N, S, E))
    kpm = np.zeros((N, S), dtype=bool)
    kpm[1] = True
    out, w = mha_reference(q, k, v, p, embed_dim=E, num_heads=H, batch_first=True,
                           key_padding_mask=kpm, average_attn_weights=False)
    np.testing.assert_allclose(out[1], np.broadcast_to(p["out_proj.bias"], (L, E)), atol=1e-12)
    assert (w[1] == 0).all() and np.isfinite(out).all()
    # Float -inf masks are the same as bool True; bool and float masks mix additively.
    fk = np.where(kpm, -np.inf, 0.0).astype(np.float32)
    am = rng.standard_normal((L, S)).astype(np.float32)
    x = mha_reference(q, k, v, p, embed_dim=E, num_heads=H, batch_first=True, key_padding_mask=kpm, attn_mask=am)
    y = mha_reference(q, k, v, p, embed_dim=E, num_heads=H, batch_first=True, key_padding_mask=fk, attn_mask=am)
    np.testing.assert_array_equal(x[0], y[0])
    np.testing.assert_array_equal(x[1], y[1])


def test_qdim_shapes_and_errors():
    rng = np.random.default_rng(3)
    E, H, L, S = 4, 2, 2, 3
    p = _random_params(rng, E, 8, 6, 4)
    q, k, v = rng.standard_normal((L, 8)), rng.standard_normal((S, 6)), rng.standard_normal((S, 4))
    out, w = mha_reference(q, k, v, p, embed_dim=E, num_heads=H, qdim=8, kdim=6, vdim=4,
                           average_attn_weights=False)
    assert out.shape == (L, E) and w.shape == (H, L, S)
    with pytest.raises(ValueError):
        mha_reference(q, k, v, p, embed_dim=E, num_heads=H, kdim=6, vdim=4)  # query is 8 wide
    with pytest.raises(TypeError):
        mha_reference(q, k, v, p, embed_dim=E, num_heads=H, qdim=8, kdim=6, vdim=4,
                      key_padding_mask=np.zeros(S, dtype=np.int64))
    with pytest.raises(ValueError):
        mha_reference(q, k, v, p, embed_dim=E, num_heads=H, qdim=8, kdim=6, vdim=4,
                      attn_mask=np.zeros((L, S + 1), dtype=bool))


# ---------------------------------------------------------------------------
# live: the reference against torch on random configurations
# ---------------------------------------------------------------------------

def _live_configs(count=80, seed=7):
    rng = np.random.default_rng(seed)
    eh = [(4, 1), (4, 2), (4, 4), (5, 5), (6, 3), (8, 2), (12, 4), (16, 4)]
    out = []
    while len(out) < count:
        E, H = eh[rng.integers(len(eh))]
        c = dict(E=E, H=H, L=int(rng.integers(1, 9)), S=int(rng.integers(1, 9)), N=int(rng.integers(1, 4)),
                 bias=bool(rng.integers(2)), bkv=bool(rng.integers(2)), zattn=bool(rng.integers(2)),
                 kdim=int(rng.choice([E, E, 3, 7])), vdim=int(rng.choice([E, E, 5])),
                 layout=["bf0", "bf1", "unb"][rng.integers(3)], kpm=["none", "bool", "float"][rng.integers(3)],
                 am=["none", "2d-bool", "2d-float", "3d-bool", "3d-float", "causal"][rng.integers(6)],
                 w=bool(rng.integers(2)), avg=bool(rng.integers(2)), self_attn=bool(rng.integers(4) == 0),
                 p_mask=float(rng.choice([0.2, 0.5, 0.9])), dtype=["float64", "float32"][rng.integers(2)],
                 seed=int(rng.integers(1 << 30)))
        if c["self_attn"]:
            c["S"], c["kdim"], c["vdim"] = c["L"], E, E
        # PyTorch's is_causal is not a pure hint there (it masks the appended keys too).
        if c["am"] == "causal" and not c["w"] and c["kpm"] == "none" and (c["bkv"] or c["zattn"]):
            continue
        out.append(c)
    return out


@pytest.mark.parametrize("c", _live_configs(), ids=lambda c: "{layout}-E{E}H{H}-L{L}S{S}N{N}-{kpm}-{am}-w{w}-{dtype}".format(**c))
def test_reference_matches_live_torch(c):
    torch = pytest.importorskip("torch")
    import warnings

    torch.manual_seed(c["seed"])
    dtype = getattr(torch, c["dtype"])
    E, H, L, S, N = c["E"], c["H"], c["L"], c["S"], c["N"]
    unbatched = c["layout"] == "unb"
    bf = c["layout"] == "bf1"
    m = torch.nn.MultiheadAttention(E, H, bias=c["bias"], add_bias_kv=c["bkv"], add_zero_attn=c["zattn"],
                                    kdim=c["kdim"], vdim=c["vdim"], batch_first=bf, dtype=dtype).eval()
    with torch.no_grad():
        if c["bias"]:
            m.in_proj_bias.normal_()
            m.out_proj.bias.normal_()

    def shape(length, feat):
        return (length, feat) if unbatched else ((N, length, feat) if bf else (length, N, feat))

    q = torch.randn(shape(L, E), dtype=dtype)
    k = q if c["self_attn"] else torch.randn(shape(S, c["kdim"]), dtype=dtype)
    v = q if c["self_attn"] else torch.randn(shape(S, c["vdim"]), dtype=dtype)
    kpm = None
    if c["kpm"] != "none":
        hidden = torch.rand((S,) if unbatched else (N, S)) < c["p_mask"]
        kpm = hidden if c["kpm"] == "bool" else torch.randn(hidden.shape, dtype=dtype).masked_fill(hidden, float("-inf"))
    am, is_causal = None, False
    if c["am"] == "causal":
        am, is_causal = torch.triu(torch.ones(L, S), 1).bool(), True
    elif c["am"] != "none":
        dims, kind = c["am"].split("-")
        hidden = torch.rand((L, S) if dims == "2d" else ((1 if unbatched else N) * H, L, S)) < c["p_mask"]
        am = hidden if kind == "bool" else torch.randn(hidden.shape, dtype=dtype).masked_fill(hidden, float("-inf"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, w = m(q, k, v, key_padding_mask=kpm, need_weights=c["w"], attn_mask=am,
                   average_attn_weights=c["avg"], is_causal=is_causal)
    np_ = lambda t: None if t is None else t.detach().numpy()
    kw = dict(query=np_(q), key=np_(k), value=np_(v),
              params={n: t.detach().numpy() for n, t in m.state_dict().items()},
              embed_dim=E, num_heads=H, bias=c["bias"], add_bias_kv=c["bkv"], add_zero_attn=c["zattn"],
              kdim=c["kdim"], vdim=c["vdim"], batch_first=bf, key_padding_mask=np_(kpm),
              need_weights=c["w"], attn_mask=np_(am), average_attn_weights=c["avg"], is_causal=is_causal)
    if is_causal and kpm is None and c["seed"] % 2:
        kw["attn_mask"] = None  # (b): is_causal alone means the same top-left causal mask
    ref_out, ref_w = mha_reference(**kw)
    kw["attn_mask"] = np_(am)
    tol = 1e-10 if c["dtype"] == "float64" else 2e-5
    check_against_torch_result(kw, ref_out, ref_w, np_(out), np_(w), unbatched=unbatched, rel_tol=tol)


def test_qdim_matches_torch_composition():
    """qdim via PyTorch: project the query by q_proj_weight first, then use an identity q projection."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    E, H, L, S, N, qdim = 4, 2, 3, 5, 2, 8
    p = _random_params(rng, E, qdim, E, E, packed=False)
    x, k, v = rng.standard_normal((L, N, qdim)), rng.standard_normal((S, N, E)), rng.standard_normal((S, N, E))
    m = torch.nn.MultiheadAttention(E, H, dtype=torch.float64).eval()
    bq = p["in_proj_bias"][:E]
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.from_numpy(np.concatenate([np.eye(E), p["k_proj_weight"], p["v_proj_weight"]])))
        m.in_proj_bias.copy_(torch.from_numpy(np.concatenate([np.zeros(E), p["in_proj_bias"][E:]])))
        m.out_proj.weight.copy_(torch.from_numpy(p["out_proj.weight"]))
        m.out_proj.bias.copy_(torch.from_numpy(p["out_proj.bias"]))
        q = torch.from_numpy(x @ p["q_proj_weight"].T + bq)
        out, w = m(q, torch.from_numpy(k), torch.from_numpy(v), average_attn_weights=False)
    ref_out, ref_w = mha_reference(x, k, v, p, embed_dim=E, num_heads=H, qdim=qdim, average_attn_weights=False)
    np.testing.assert_allclose(ref_out, out.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref_w, w.numpy(), rtol=0, atol=1e-12)


def test_torch_is_causal_hint_with_appended_keys():
    """Documents a PyTorch quirk the fixtures avoid: with need_weights=False, no key_padding_mask and
    bias_k / zero attention, is_causal=True replaces attn_mask by SDPA's causal mask over the extended
    keys, hiding the appended keys from early queries. The reference (and Multihead) use attn_mask."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(5)
    E, H, L, S, N = 4, 2, 3, 5, 2
    m = torch.nn.MultiheadAttention(E, H, add_zero_attn=True, dtype=torch.float64).eval()
    q, k = torch.randn(L, N, E, dtype=torch.float64), torch.randn(S, N, E, dtype=torch.float64)
    mask = torch.triu(torch.ones(L, S), 1).bool()
    with torch.no_grad():
        plain, _ = m(q, k, k, attn_mask=mask, need_weights=False)
        hinted, _ = m(q, k, k, attn_mask=mask, need_weights=False, is_causal=True)
    params = {n: t.numpy() for n, t in m.state_dict().items()}
    ref, _ = mha_reference(q.numpy(), k.numpy(), k.numpy(), params, embed_dim=E, num_heads=H,
                           add_zero_attn=True, attn_mask=mask.numpy(), need_weights=False, is_causal=True)
    np.testing.assert_allclose(ref, plain.numpy(), rtol=0, atol=1e-12)
    if np.allclose(plain.numpy(), hinted.numpy()):
        pytest.skip("this torch version treats is_causal as a pure hint here")
