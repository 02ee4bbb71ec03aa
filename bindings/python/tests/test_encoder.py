"""TransformerEncoderLayer, TransformerEncoder and LayerNorm against PyTorch.

The committed fixtures (scripts/make_encoder_fixtures.py, made by real PyTorch) keep these
honest without torch; the live tests (skipped without torch) compare with torch.nn's modules on
random configurations, and check the seed article's Example 3 verbatim.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import multihead as mh
from fixtures import read_safetensors

FIXTURES = Path(__file__).resolve().parents[3] / "Tests" / "MultiheadTests" / "Fixtures" / "encoder"
REL_TOL = 1e-5


def fixture_paths():
    return sorted(p for p in FIXTURES.glob("*.safetensors"))


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.abs(actual - expected).max() / max(1.0, np.abs(expected).max())) if expected.size else 0.0


def module_for(config: dict, engine=None):
    layer = mh.TransformerEncoderLayer(config["d_model"], config["nhead"], config["dim_feedforward"],
                                       activation=config["activation"], layer_norm_eps=config["layer_norm_eps"],
                                       batch_first=config["batch_first"], norm_first=config["norm_first"],
                                       bias=config["bias"], engine=engine)
    if config["kind"] == "layer":
        return layer
    norm = mh.LayerNorm(config["d_model"], eps=config["norm_eps"], bias=config["norm_bias"]) if config["norm"] else None
    return mh.TransformerEncoder(layer, config["num_layers"], norm=norm, enable_nested_tensor=False)


def run(module, config, tensors, **overrides):
    args = dict(src=tensors["src"])
    args.update(overrides)
    mask, kpm = tensors.get("src_mask"), tensors.get("src_key_padding_mask")
    if config["kind"] == "layer":
        return module(args["src"], src_mask=mask, src_key_padding_mask=kpm, is_causal=config["is_causal"])
    return module(args["src"], mask=mask, src_key_padding_mask=kpm, is_causal=config["is_causal"])


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.stem)
def test_fixture(path):
    metadata, tensors = read_safetensors(path)
    config = json.loads(metadata["config"])
    with module_for(config) as module:
        module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("param.")})
        out = run(module, config, tensors)
        assert out.dtype == np.float32 and out.shape == tensors["expected.output"].shape
        assert relative_error(out, tensors["expected.output"]) < REL_TOL
        # The same module from the file itself.
        module.load_safetensors(path, prefix="param.")
        assert relative_error(run(module, config, tensors), tensors["expected.output"]) < REL_TOL


def test_fixture_count():
    assert len(fixture_paths()) >= 30, "run scripts/make_encoder_fixtures.py"


def test_seed_example3_fixture():
    metadata, tensors = read_safetensors(FIXTURES / "seed_example3.safetensors")
    layer = mh.TransformerEncoderLayer(embed_dim := 4, 2, dim_feedforward=embed_dim)
    layer.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("param.")})
    out = layer(tensors["src"])
    assert out.shape == (2, 5, 4)
    assert relative_error(out, tensors["expected.output"]) < REL_TOL


def test_same_bits_any_thread_count():
    rng = np.random.default_rng(3)
    src = rng.standard_normal((3, 70, 32)).astype(np.float32)
    kpm = rng.random((3, 70)) < 0.2
    kpm[:, 0] = False
    outs = []
    for threads in (1, 2, 3):
        with mh.Engine(threads) as engine:
            layer = mh.TransformerEncoderLayer(32, 4, 96, activation="gelu", batch_first=True, seed=5, engine=engine)
            encoder = mh.TransformerEncoder(layer, 2, norm=mh.LayerNorm(32, engine=engine))
            outs.append(encoder(src, src_key_padding_mask=kpm))
            encoder.close()
            layer.close()
    assert outs[0].tobytes() == outs[1].tobytes() == outs[2].tobytes()


def test_strided_inputs_need_no_copy_and_give_the_same_result():
    rng = np.random.default_rng(4)
    layer = mh.TransformerEncoderLayer(8, 2, 16, batch_first=False, seed=1)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)       # (N, L, E) in memory
    view = x.transpose(1, 0, 2)                                 # (L, N, E) strided view
    np.testing.assert_array_equal(layer(view), layer(np.ascontiguousarray(view)))


def test_state_dict_names_and_shapes():
    layer = mh.TransformerEncoderLayer(8, 2, 16)
    assert list(layer.parameter_shapes) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
        "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    assert layer.parameter_shapes["linear1.weight"] == (16, 8)
    nobias = mh.TransformerEncoderLayer(8, 2, 16, bias=False)
    assert list(nobias.parameter_shapes) == ["self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight",
                                             "linear2.weight", "norm1.weight", "norm2.weight"]
    encoder = mh.TransformerEncoder(layer, 2, norm=mh.LayerNorm(8))
    names = list(encoder.parameter_shapes)
    assert names[0] == "layers.0.self_attn.in_proj_weight" and names[-2:] == ["norm.weight", "norm.bias"]
    assert len(names) == 2 * 12 + 2
    # Layers start as copies of the given layer.
    state = encoder.state_dict()
    np.testing.assert_array_equal(state["layers.1.linear1.weight"], layer.get_parameter("linear1.weight"))
    assert list(mh.LayerNorm(4, bias=False).parameter_shapes) == ["weight"]
    assert list(mh.LayerNorm(4, elementwise_affine=False).parameter_shapes) == []


def test_errors_name_the_argument():
    layer = mh.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    x = np.zeros((2, 5, 8), np.float32)
    with pytest.raises(mh.ShapeError, match=r"d_model=8"):
        layer(np.zeros((2, 5, 6), np.float32))
    with pytest.raises(mh.ShapeError, match=r"src should be"):
        layer(np.zeros((2, 2, 5, 8), np.float32))
    with pytest.raises(mh.ShapeError, match=r"src_key_padding_mask must have shape \[2, 5\]"):
        layer(x, src_key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(mh.ShapeError, match=r"src_mask must have shape \[5, 5\] or \[4, 5, 5\]"):
        layer(x, src_mask=np.zeros((4, 4), bool))
    with pytest.raises(TypeError, match="src_key_padding_mask"):
        layer(x, src_key_padding_mask=np.zeros((2, 5), np.int64))
    encoder = mh.TransformerEncoder(layer, 2)
    with pytest.raises(mh.ShapeError, match=r"mask must have shape"):
        encoder(x, mask=np.zeros((3, 3), bool))
    with pytest.raises(mh.InvalidArgumentError, match="d_model must be divisible by nhead"):
        mh.TransformerEncoderLayer(10, 3)
    with pytest.raises(mh.InvalidArgumentError, match="activation should be relu/gelu, not tanh"):
        mh.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(mh.InvalidArgumentError, match="num_layers"):
        mh.TransformerEncoder(layer, 0)
    with pytest.raises(mh.InvalidArgumentError, match="normalized_shape 6"):
        mh.TransformerEncoder(layer, 1, norm=mh.LayerNorm(6))
    with pytest.raises(mh.InvalidArgumentError, match="unknown parameter 'linear3.weight'"):
        layer.set_parameter("linear3.weight", np.zeros((2, 2), np.float32))
    with pytest.raises(mh.ShapeError, match=r"size mismatch for linear1.weight"):
        layer.set_parameter("linear1.weight", np.zeros((8, 16), np.float32))
    with pytest.raises(mh.InvalidArgumentError, match='Missing key'):
        layer.load_state_dict({"linear1.weight": np.zeros((16, 8), np.float32)})
    with pytest.raises(mh.ShapeError, match=r"must end with normalized_shape \[8\]"):
        mh.LayerNorm(8)(np.zeros((3, 4), np.float32))
    with pytest.raises(mh.FileError):
        layer.load_safetensors("/nonexistent.safetensors")
    layer.close()
    with pytest.raises(mh.Error, match="closed"):
        layer(x)


def test_layer_norm_matches_numpy():
    rng = np.random.default_rng(5)
    norm = mh.LayerNorm(12, eps=1e-5)
    weight, bias = rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    norm.load_state_dict({"weight": weight, "bias": bias})
    x = rng.standard_normal((2, 3, 12)).astype(np.float32) * 3 + 1
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5) * weight + bias
    assert relative_error(norm(x), expected) < 1e-5


# ---------------------------------------------------------------------------------------------
# live comparisons with torch


@pytest.fixture(scope="module")
def torch_module():
    return pytest.importorskip("torch")


def _random_configs(count=24, seed=11):
    rng = np.random.default_rng(seed)
    sizes = [(8, 2, 16), (16, 4, 48), (12, 3, 24), (32, 8, 64), (6, 1, 6)]
    for i in range(count):
        E, H, F = sizes[rng.integers(len(sizes))]
        yield dict(E=E, H=H, F=F, activation=["relu", "gelu"][i % 2], eps=[1e-5, 1e-12][(i // 2) % 2],
                   norm_first=bool((i // 4) % 2), bias=bool(rng.integers(4) != 0), layout=["bf0", "bf1", "unb"][i % 3],
                   layers=int(rng.integers(1, 4)), norm=bool(rng.integers(2)), masks=["none", "kpm", "causal", "2d"][i % 4],
                   N=int(rng.integers(1, 4)), L=int(rng.integers(1, 20)), seed=int(rng.integers(1 << 30)))


@pytest.mark.parametrize("c", list(_random_configs()), ids=lambda c: f"{c['layout']}-{c['activation']}-{c['masks']}-{c['layers']}")
def test_live_against_torch(torch_module, c):
    torch = torch_module
    torch.manual_seed(c["seed"])
    layer = torch.nn.TransformerEncoderLayer(c["E"], c["H"], c["F"], activation=c["activation"], layer_norm_eps=c["eps"],
                                             batch_first=c["layout"] == "bf1", norm_first=c["norm_first"], bias=c["bias"])
    norm = torch.nn.LayerNorm(c["E"]) if c["norm"] else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.nn.TransformerEncoder(layer, c["layers"], norm=norm, enable_nested_tensor=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    N, L, E = c["N"], c["L"], c["E"]
    shape = (L, E) if c["layout"] == "unb" else ((N, L, E) if c["layout"] == "bf1" else (L, N, E))
    src = torch.randn(shape)
    kwargs = {}
    if c["masks"] == "kpm":
        kpm = torch.rand((L,) if c["layout"] == "unb" else (N, L)) < 0.3
        kpm[..., 0] = False
        kwargs["src_key_padding_mask"] = kpm
    elif c["masks"] == "causal":
        kwargs.update(mask=torch.nn.Transformer.generate_square_subsequent_mask(L), is_causal=True)
    elif c["masks"] == "2d":
        kwargs["mask"] = torch.randn(L, L)
    # PyTorch's MHA fast path (eval, no_grad) returns NaN for some float masks in torch 2.15:
    # compare with its regular path, the documented semantics.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            expected = model(src, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    ours = mh.TransformerEncoder.from_torch(model)
    out = ours(src, **kwargs)
    assert isinstance(out, torch.Tensor)
    assert relative_error(out.numpy(), expected.numpy()) < 2e-5
    if c["layers"] == 1 and norm is None:
        single = mh.TransformerEncoderLayer.from_torch(model.layers[0])
        args = dict(src_mask=kwargs.get("mask"), src_key_padding_mask=kwargs.get("src_key_padding_mask"),
                    is_causal=kwargs.get("is_causal", False))
        assert relative_error(single(src, **args).numpy(), expected.numpy()) < 2e-5


def test_live_seed_example3(torch_module):
    """The seed article's Example 3 class, verbatim, against multihead's layer."""
    torch = torch_module
    nn = torch.nn

    class TransformerEncoderLayer(nn.Module):
        def __init__(self, embed_dim, num_heads, dropout=0.1):
            super().__init__()
            self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout)
            self.linear1 = nn.Linear(embed_dim, embed_dim)
            self.linear2 = nn.Linear(embed_dim, embed_dim)
            self.norm1 = nn.LayerNorm(embed_dim)
            self.norm2 = nn.LayerNorm(embed_dim)
            self.dropout1 = nn.Dropout(dropout)
            self.dropout2 = nn.Dropout(dropout)

        def forward(self, x):
            attn_output, _ = self.self_attn(x, x, x)
            x = x + self.dropout1(attn_output)
            x = self.norm1(x)
            x = x + self.dropout2(self.linear2(torch.relu(self.linear1(x))))
            x = self.norm2(x)
            return x

    encoder_layer = TransformerEncoderLayer(embed_dim=4, num_heads=2).eval()
    x = torch.randn(2, 5, 4)
    with torch.no_grad():
        expected = encoder_layer(x)
    ours = mh.TransformerEncoderLayer(4, 2, dim_feedforward=4)
    ours.load_state_dict(encoder_layer.state_dict())
    assert relative_error(ours(x).numpy(), expected.numpy()) < 1e-5
