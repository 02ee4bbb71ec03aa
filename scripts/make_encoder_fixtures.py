#!/usr/bin/env python3
"""Write the golden fixtures that pin Multihead's encoder layers to PyTorch.

Every fixture is made by real PyTorch (modules in eval() mode, float32, fixed seeds, the
MHA fast path switched off so the documented semantics are what is recorded), so the Swift, C
and Python tests can check TransformerEncoderLayer and TransformerEncoder without PyTorch.
Requirements: torch and numpy; the safetensors writer is scripts/make_fixtures.py's.

Output (relative to the repository root):

  Tests/MultiheadTests/Fixtures/encoder/<case>.safetensors   one forward call each
  Tests/MultiheadTests/Fixtures/encoder/INDEX.json           JSON array of case names
  Tests/MultiheadTests/Fixtures/encoder/tiny_bert/{config.json,model.safetensors,expected.safetensors}
      a 2-layer BERT made by Hugging Face transformers (random weights, HF's names), and its
      last_hidden_state and mean-pooled, normalised embeddings for a padded batch
  Tests/MultiheadTests/Fixtures/encoder/seed_example3.safetensors
      the seed article's Example 3: its own TransformerEncoderLayer class (attention, linear1
      E->E, relu, linear2, two layer norms, post-norm), run exactly as written

File layout:

  __metadata__    {"config": <JSON string>, "torch_version": <str>}
                  config keys: kind ("layer" | "encoder"), d_model, nhead, dim_feedforward,
                  activation ("relu" | "gelu"), layer_norm_eps, batch_first, norm_first, bias,
                  is_causal, unbatched; for "encoder" also num_layers, norm (bool),
                  norm_eps, norm_bias
  param.<name>    F32, every entry of module.state_dict() (PyTorch's names)
  src             F32, as passed to the module
  src_mask        optional, BOOL or F32: the layer's src_mask / the encoder's mask
  src_key_padding_mask   optional, BOOL or F32
  expected.output F32, as torch returned it

Padded positions: TransformerEncoder is built with enable_nested_tensor=False, so PyTorch
computes every position (its nested-tensor fast path would return 0 where the key padding mask
is True); Multihead computes every position too, so whole outputs are compared. No row of any
fixture has every key masked. Each case is also run in float64 (the float32 inputs cast up);
a draw whose float32 result is not within CONDITION_TOL of it is redrawn.

Usage: python3 scripts/make_encoder_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import write_safetensors  # noqa: E402  (the project's one writer)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "MultiheadTests" / "Fixtures" / "encoder"
CONDITION_TOL = 2e-6

MASKS = ["none", "kpm-bool", "kpm-float", "mask-2d-bool", "mask-2d-float", "mask-3d-float", "causal",
         "kpm-bool+mask-2d-float"]
LAYOUTS = ["bf0", "bf1", "unb"]
SIZES = [(4, 2, 8), (8, 2, 16), (8, 4, 32), (12, 3, 20), (16, 4, 24), (6, 1, 10)]   # d_model, nhead, dim_ff


@dataclass(frozen=True)
class Case:
    kind: str            # "layer" or "encoder"
    d_model: int
    nhead: int
    dim_feedforward: int
    activation: str
    eps: float
    layout: str          # "bf0", "bf1", "unb"
    norm_first: bool
    bias: bool
    masks: str
    num_layers: int = 1
    norm: str = "none"   # "none", "ln" (eps 1e-5), "ln-eps12-nobias"
    batch: int = 2
    seq: int = 5

    @property
    def batch_first(self) -> bool:
        return self.layout == "bf1"

    @property
    def unbatched(self) -> bool:
        return self.layout == "unb"

    def name(self) -> str:
        parts = [self.kind if self.kind == "layer" else f"encoder{self.num_layers}-norm-{self.norm}",
                 self.layout, self.activation, "prenorm" if self.norm_first else "postnorm",
                 f"bias{int(self.bias)}", f"eps{self.eps:g}", self.masks.replace("+", "_"),
                 f"E{self.d_model}H{self.nhead}F{self.dim_feedforward}",
                 f"L{self.seq}" + ("" if self.unbatched else f"N{self.batch}")]
        return "_".join(parts)


def layer_cases() -> list[Case]:
    cases = []
    # Every mask kind in every layout; the four binary options cycle through all 16 combinations.
    for i, (masks, layout) in enumerate(itertools.product(MASKS, LAYOUTS)):
        E, H, F = SIZES[i % len(SIZES)]
        bits = i % 16
        cases.append(Case("layer", E, H, F, "gelu" if bits & 1 else "relu", 1e-12 if bits & 2 else 1e-5, layout,
                          bool(bits & 4), bool(bits & 8), masks, batch=1 + i % 3, seq=1 + (i * 3) % 7))
    # PyTorch's default dim_feedforward (2048); more rows than one feed-forward tile (64);
    # a size past the engine's parallel threshold; one token.
    cases.append(Case("layer", 8, 2, 2048, "relu", 1e-5, "bf0", False, True, "kpm-bool", batch=2, seq=4))
    cases.append(Case("layer", 16, 4, 40, "gelu", 1e-12, "bf1", False, True, "kpm-bool", batch=3, seq=37))
    cases.append(Case("layer", 64, 4, 256, "gelu", 1e-5, "bf1", True, True, "kpm-float", batch=2, seq=70))
    cases.append(Case("layer", 64, 8, 128, "relu", 1e-5, "bf0", False, False, "causal", batch=2, seq=66))
    cases.append(Case("layer", 8, 2, 16, "gelu", 1e-5, "bf1", False, True, "none", batch=1, seq=1))
    return cases


def encoder_cases() -> list[Case]:
    cases = []
    combos = list(itertools.product([1, 2, 3], ["none", "ln", "ln-eps12-nobias"]))
    for i, (layers, norm) in enumerate(combos):
        E, H, F = SIZES[(i + 1) % len(SIZES)]
        cases.append(Case("encoder", E, H, F, ["relu", "gelu"][i % 2], [1e-5, 1e-12][(i // 2) % 2],
                          LAYOUTS[i % 3], i % 4 in (1, 2), i % 5 != 3, MASKS[i % len(MASKS)],
                          num_layers=layers, norm=norm, batch=1 + i % 3, seq=2 + i % 6))
    # A BERT-shaped stack: batch_first, post-norm, gelu, eps 1e-12, key padding.
    cases.append(Case("encoder", 32, 4, 64, "gelu", 1e-12, "bf1", False, True, "kpm-bool", num_layers=2,
                      norm="none", batch=3, seq=9))
    return cases


# ---------------------------------------------------------------------------------------------

def make_module(case: Case, dtype=torch.float32):
    layer = torch.nn.TransformerEncoderLayer(
        case.d_model, case.nhead, dim_feedforward=case.dim_feedforward, dropout=0.1, activation=case.activation,
        layer_norm_eps=case.eps, batch_first=case.batch_first, norm_first=case.norm_first, bias=case.bias,
        dtype=dtype)
    if case.kind == "layer":
        return layer
    norm = None
    if case.norm == "ln":
        norm = torch.nn.LayerNorm(case.d_model, dtype=dtype)
    elif case.norm == "ln-eps12-nobias":
        norm = torch.nn.LayerNorm(case.d_model, eps=1e-12, bias=False, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nn.TransformerEncoder(layer, case.num_layers, norm=norm, enable_nested_tensor=False)


def randomise(module) -> None:
    """Layer norm weights and every bias away from PyTorch's ones/zeros, so they count; each
    layer of a stack different from the others."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(p * (1 + 0.1 * torch.randn_like(p)))


def draw_masks(case: Case, N: int, L: int):
    kpm = mask = None
    is_causal = False
    for part in case.masks.split("+"):
        if part.startswith("kpm"):
            shape = (L,) if case.unbatched else (N, L)
            hidden = torch.rand(shape) < 0.3
            hidden[..., 0] = False  # every query keeps a key
            kpm = hidden if part == "kpm-bool" else torch.where(hidden, float("-inf"), torch.randn(shape))
        elif part.startswith("mask"):
            _, dims, kind = part.split("-")
            shape = (L, L) if dims == "2d" else (N * case.nhead, L, L)
            hidden = torch.rand(shape) < 0.3
            hidden[..., 0] = False
            mask = hidden if kind == "bool" else torch.where(hidden, float("-inf"), torch.randn(shape))
        elif part == "causal":
            mask = torch.nn.Transformer.generate_square_subsequent_mask(L)
            is_causal = True
    return kpm, mask, is_causal


def run(module, case: Case, src, kpm, mask, is_causal):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.kind == "layer":
            return module(src, src_mask=mask, src_key_padding_mask=kpm, is_causal=is_causal)
        return module(src, mask=mask, src_key_padding_mask=kpm, is_causal=is_causal if mask is not None else None)


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    a, b = a.double(), b.double()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return False
    return float((a - b).abs().max()) <= tol * max(float(b.abs().max()), 1.0)


def make_case(case: Case, seed: int):
    torch.manual_seed(seed)
    module = make_module(case).eval()
    randomise(module)
    N, L = (1 if case.unbatched else case.batch), case.seq
    shape = (L, case.d_model) if case.unbatched else ((N, L, case.d_model) if case.batch_first else (L, N, case.d_model))
    src = torch.randn(shape)
    kpm, mask, is_causal = draw_masks(case, N, L)
    out = run(module, case, src, kpm, mask, is_causal)

    module64 = make_module(case, torch.float64).eval()
    module64.load_state_dict({k: v.double() for k, v in module.state_dict().items()})
    up = lambda t: t if t is None or t.dtype == torch.bool else t.double()  # noqa: E731
    out64 = run(module64, case, src.double(), up(kpm), up(mask), is_causal)
    if not close(out, out64, CONDITION_TOL):
        return None

    tensors = {f"param.{k}": v.detach().numpy().astype(np.float32) for k, v in module.state_dict().items()}
    tensors["src"] = src.numpy()
    if kpm is not None:
        tensors["src_key_padding_mask"] = kpm.numpy()
    if mask is not None:
        tensors["src_mask"] = mask.numpy()
    tensors["expected.output"] = out.numpy()
    config = dict(kind=case.kind, d_model=case.d_model, nhead=case.nhead, dim_feedforward=case.dim_feedforward,
                  activation=case.activation, layer_norm_eps=case.eps, batch_first=case.batch_first,
                  norm_first=case.norm_first, bias=case.bias, is_causal=is_causal, unbatched=case.unbatched)
    if case.kind == "encoder":
        config.update(num_layers=case.num_layers, norm=case.norm != "none",
                      norm_eps=1e-12 if case.norm == "ln-eps12-nobias" else 1e-5,
                      norm_bias=case.norm != "ln-eps12-nobias")
    return case.name(), tensors, config


class SeedExample3Layer(torch.nn.Module):
    """Example 3 of the seed article, verbatim."""

    def __init__(self, embed_dim, num_heads, dropout=0.1):
        super().__init__()
        self.self_attn = torch.nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout)
        self.linear1 = torch.nn.Linear(embed_dim, embed_dim)
        self.linear2 = torch.nn.Linear(embed_dim, embed_dim)
        self.norm1 = torch.nn.LayerNorm(embed_dim)
        self.norm2 = torch.nn.LayerNorm(embed_dim)
        self.dropout1 = torch.nn.Dropout(dropout)
        self.dropout2 = torch.nn.Dropout(dropout)

    def forward(self, x):
        attn_output, _ = self.self_attn(x, x, x)
        x = x + self.dropout1(attn_output)
        x = self.norm1(x)
        x = x + self.dropout2(self.linear2(torch.relu(self.linear1(x))))
        x = self.norm2(x)
        return x


def seed_example3():
    torch.manual_seed(0)
    encoder_layer = SeedExample3Layer(embed_dim=4, num_heads=2).eval()
    x = torch.randn(2, 5, 4)  # (L=2, N=5, E=4): the article's module is sequence-first
    with torch.no_grad():
        out = encoder_layer(x)
    tensors = {f"param.{k}": v.numpy().copy() for k, v in encoder_layer.state_dict().items()}
    tensors.update({"src": x.numpy(), "expected.output": out.numpy()})
    config = dict(kind="layer", d_model=4, nhead=2, dim_feedforward=4, activation="relu", layer_norm_eps=1e-5,
                  batch_first=False, norm_first=False, bias=True, is_causal=False, unbatched=False)
    return tensors, config


def tiny_bert(folder: Path) -> int:
    """A small BertModel from transformers (random weights) and its outputs on a padded batch."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(42)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40, type_vocab_size=2,
                        attn_implementation="eager")
    model = BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_((1 if name.endswith("weight") else 0) + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    lengths = [7, 4, 1]
    N, L = len(lengths), max(lengths)
    ids = torch.randint(1, 100, (N, L))
    mask = (torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids = ids * mask  # pad id 0
    types = (torch.rand(N, L) < 0.4).long() * mask
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    m = mask[:, :, None].float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(model.config.to_json_string())
    state = {k: v.numpy().copy() for k, v in model.state_dict().items() if v.dtype == torch.float32}
    total = write_safetensors(folder / "model.safetensors", state, {"format": "pt"})
    total += write_safetensors(folder / "expected.safetensors", {
        "input_ids": ids.numpy().astype(np.int64), "attention_mask": mask.numpy().astype(np.int64),
        "token_type_ids": types.numpy().astype(np.int64), "last_hidden_state": hidden.numpy(),
        "pooled": pooled.numpy(), "embeddings": normalised.numpy()}, {"torch_version": torch.__version__})
    return total


def metadata(config: dict) -> dict[str, str]:
    return {"config": json.dumps(config, sort_keys=True), "torch_version": torch.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture folder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.backends.mha.set_fastpath_enabled(False)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.safetensors"):
        stale.unlink()
    names, total, redrawn = [], 0, 0
    for index, case in enumerate(layer_cases() + encoder_cases()):
        made = None
        for attempt in range(50):
            made = make_case(case, seed=7000 + index + 100003 * attempt)
            if made is not None:
                break
            redrawn += 1
        if made is None:
            raise RuntimeError(f"no well-conditioned draw for {case}")
        name, tensors, config = made
        assert name not in names, name
        names.append(name)
        total += write_safetensors(args.out / f"{name}.safetensors", tensors, metadata(config))
    names.sort()
    (args.out / "INDEX.json").write_text(json.dumps(names, indent=1) + "\n")
    tensors, config = seed_example3()
    total += write_safetensors(args.out / "seed_example3.safetensors", tensors, metadata(config))
    total += tiny_bert(args.out / "tiny_bert")
    print(f"wrote {len(names)} encoder cases + seed example 3 + tiny_bert, {total} bytes ({redrawn} redrawn) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
