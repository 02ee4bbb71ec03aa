#!/usr/bin/env python3
"""Write the golden fixtures that pin Multihead to PyTorch's nn.MultiheadAttention.

Every fixture is made by real PyTorch (module in eval() mode, float32, fixed
seeds), so the Swift, C and Python tests can check the engine against PyTorch
without PyTorch installed. Requirements: torch and numpy only; the
safetensors files are written by hand (see `write_safetensors`).

Output (relative to the repository root):

  Tests/MultiheadTests/Fixtures/mha/<case>.safetensors   covering set of cases
  Tests/MultiheadTests/Fixtures/mha/INDEX.json           JSON array of case names
  Tests/MultiheadTests/Fixtures/seed/example{1,2}.safetensors   the seed article's examples

File layout (one attention call per file):

  __metadata__    {"config": <JSON string>, "torch_version": <str>}
                  config keys: embed_dim, num_heads, bias, add_bias_kv,
                  add_zero_attn, kdim, vdim, batch_first, need_weights,
                  average_attn_weights, is_causal, unbatched
  param.<name>    F32, every entry of module.state_dict()
  query, key, value          F32, the layout passed to the module
  key_padding_mask, attn_mask    optional, BOOL or F32, exactly as passed
  expected.output            F32, as torch returned it (NaN kept)
  expected.weights           F32, only when need_weights

Fully masked rows: PyTorch returns NaN on some internal paths and zeros on
others; the files keep whatever torch returned. Multihead deliberately gives
zero attention there (output row = out_proj applied to zero heads, weights 0).

Every case is also run in float64 (same float32 inputs cast up); a case whose
float32 result is not within CONDITION_TOL of its float64 result (e.g. two
nearly tied logits of size 1e4+) is redrawn with another seed, so each fixture
is well conditioned and a float32 engine can be held to a tight tolerance.

Usage: python3 scripts/make_fixtures.py [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "MultiheadTests" / "Fixtures"

# Relative (to the tensor's max |value|, at least 1) difference allowed between
# torch float32 and torch float64 for a case to be kept. The tests use 1e-5.
CONDITION_TOL = 2e-6

EMBED_HEADS = [(4, 1), (4, 2), (4, 4), (5, 1), (5, 5), (6, 1), (6, 2), (6, 3),
               (8, 2), (8, 4), (12, 3), (12, 4)]
OTHER_DIMS = [3, 7, 10]          # kdim / vdim values different from every E above

# ---------------------------------------------------------------------------
# safetensors, written by hand
# ---------------------------------------------------------------------------

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.bool_): "BOOL",
           np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> int:
    """Write `tensors` in the safetensors format; returns the file size.

    Layout: u64 little-endian header length, JSON header (padded with spaces to
    a multiple of 8), then the tensors' bytes, sorted by name, row-major,
    little-endian, with `data_offsets` [begin, end) relative to the data start.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = _DTYPES[array.dtype]
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    payload = struct.pack("<Q", len(text)) + text + b"".join(blobs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return len(payload)


# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    embed_dim: int
    num_heads: int
    layout: str        # "bf0", "bf1" (batched), "unb0", "unb1" (unbatched, batch_first 0/1)
    kv: str            # "qkv" (kdim=vdim=E), "k", "v", "kv" (kdim/vdim != E), "self" (q is k is v)
    bias: bool
    add_bias_kv: bool
    add_zero_attn: bool
    kpm: str           # "none", "bool", "float"
    am: str            # "none", "2d-bool", "2d-float", "3d-bool", "3d-float", "causal", "causal-float"
    need_weights: bool
    average: bool
    batch: int = 1
    special: str = ""  # "", "big" (inputs x 1e3), "big10", "fullrow", "fullhead", "fullbatch"
    seq: tuple[int, int] | None = None  # (L, S); drawn when None

    @property
    def unbatched(self) -> bool:
        return self.layout.startswith("unb")

    @property
    def batch_first(self) -> bool:
        return self.layout.endswith("1")

    @property
    def is_causal(self) -> bool:
        return self.am.startswith("causal")

    def name(self, L: int, S: int, kdim: int, vdim: int) -> str:
        kv = self.kv
        if kv in ("k", "v", "kv"):
            kv = {"k": f"k{kdim}", "v": f"v{vdim}", "kv": f"k{kdim}v{vdim}"}[kv]
        layout = f"bf{int(self.batch_first)}" + ("_unb" if self.unbatched else "")
        parts = [layout, kv, f"bias{int(self.bias)}", f"bkv{int(self.add_bias_kv)}",
                 f"zattn{int(self.add_zero_attn)}", f"kpm-{self.kpm}", f"am-{self.am}",
                 f"w{int(self.need_weights)}", f"avg{int(self.average)}"]
        if self.special:
            parts.append(self.special)
        n = "" if self.unbatched else f"N{self.batch}"
        parts.append(f"E{self.embed_dim}H{self.num_heads}_L{L}S{S}{n}")
        return "_".join(parts)


def valid(case: Case) -> bool:
    # With is_causal=True, need_weights=False and no key_padding_mask, PyTorch drops
    # attn_mask and asks scaled_dot_product_attention for a causal mask over the
    # *extended* key length (bias_k / zero-attention keys included), which hides
    # the appended keys from early queries; with need_weights=True, or with a
    # key_padding_mask, it uses attn_mask padded with unmasked columns. The two
    # disagree, so is_causal is not a pure hint there: leave those out.
    if case.is_causal and not case.need_weights and case.kpm == "none" \
            and (case.add_bias_kv or case.add_zero_attn):
        return False
    return True


PAIRWISE_FACTORS = {
    "layout": ["bf0", "bf1", "unb0", "unb1"],
    "kv": ["qkv", "k", "v", "kv", "self"],
    "bias": [False, True],
    "add_bias_kv": [False, True],
    "add_zero_attn": [False, True],
    "kpm": ["none", "bool", "float"],
    "am": ["none", "2d-bool", "2d-float", "3d-bool", "3d-float", "causal"],
    "need_weights": [False, True],
    "average": [False, True],
    "eh": list(range(len(EMBED_HEADS))),
    "batch": [1, 3],
}


def _case_from(values: dict) -> Case:
    E, H = EMBED_HEADS[values["eh"]]
    batch = 1 if values["layout"].startswith("unb") else values["batch"]
    return Case(embed_dim=E, num_heads=H, layout=values["layout"], kv=values["kv"],
                bias=values["bias"], add_bias_kv=values["add_bias_kv"],
                add_zero_attn=values["add_zero_attn"], kpm=values["kpm"], am=values["am"],
                need_weights=values["need_weights"], average=values["average"], batch=batch)


def pairwise_cases(rng: random.Random, candidates_per_step: int = 60) -> list[Case]:
    """Greedy all-pairs covering set (AETG style), deterministic for a given rng."""
    names = list(PAIRWISE_FACTORS)
    uncovered = set()
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        for x in range(len(PAIRWISE_FACTORS[a])):
            for y in range(len(PAIRWISE_FACTORS[b])):
                uncovered.add((i, x, j, y))

    def pairs_of(levels):
        return {(i, levels[i], j, levels[j]) for i, j in itertools.combinations(range(len(names)), 2)}

    cases = []
    while uncovered:
        best, best_gain = None, -1
        # Seed half the candidates from an uncovered pair so that every step gains.
        target = sorted(uncovered)[rng.randrange(len(uncovered))]
        for c in range(candidates_per_step):
            levels = [rng.randrange(len(PAIRWISE_FACTORS[n])) for n in names]
            if c % 2 == 0:
                i, x, j, y = target
                levels[i], levels[j] = x, y
            values = {n: PAIRWISE_FACTORS[n][levels[k]] for k, n in enumerate(names)}
            if not valid(_case_from(values)):
                continue
            gain = len(pairs_of(levels) & uncovered)
            if gain > best_gain:
                best, best_gain = levels, gain
        if best is None or best_gain == 0:
            continue
        uncovered -= pairs_of(best)
        cases.append(_case_from({n: PAIRWISE_FACTORS[n][best[k]] for k, n in enumerate(names)}))
    return cases


def random_cases(rng: random.Random, count: int) -> list[Case]:
    cases = []
    while len(cases) < count:
        values = {n: rng.choice(levels) for n, levels in PAIRWISE_FACTORS.items()}
        case = _case_from(values)
        if valid(case):
            cases.append(case)
    return cases


def targeted_cases(rng: random.Random) -> list[Case]:
    """Hand-picked cases: large logits, fully masked rows/batches, mixed masks, fast path."""
    base = dict(embed_dim=6, num_heads=2, layout="bf0", kv="qkv", bias=True, add_bias_kv=False,
                add_zero_attn=False, kpm="none", am="none", need_weights=True, average=True, batch=3)
    out: list[Case] = []

    def add(**kw):
        case = Case(**{**base, **kw})
        assert valid(case), case
        out.append(case)

    # head_dim = 1 and one head, every layout.
    for (E, H), layout in itertools.product([(5, 5), (4, 4), (5, 1)], ["bf0", "bf1", "unb0"]):
        add(embed_dim=E, num_heads=H, layout=layout, kpm="bool", am="2d-float", average=False)
    # Length edge cases: L=1, S=1, and L=S=7.
    for seq in [(1, 1), (1, 7), (7, 1), (7, 7)]:
        add(seq=seq, am="3d-bool", kpm="float", average=False)
    # Mixed mask dtypes, both ways, every layout, with and without weights.
    for i, ((kpm, am), w) in enumerate(itertools.product(
            [("bool", "2d-float"), ("float", "2d-bool"), ("bool", "3d-float"), ("float", "3d-bool")],
            [False, True])):
        add(layout=["bf0", "bf1", "unb1"][i % 3], kpm=kpm, am=am, need_weights=w)
    # Large logits (inputs x 1e3): any softmax without max subtraction overflows.
    for layout, kv, am, w in [("bf0", "qkv", "none", True), ("bf1", "kv", "2d-bool", False),
                              ("unb0", "self", "none", True), ("bf1", "self", "none", False),
                              ("bf0", "k", "3d-float", True), ("bf1", "qkv", "causal", True),
                              ("bf0", "v", "none", False)]:
        add(layout=layout, kv=kv, am=am, need_weights=w, special="big", embed_dim=8, num_heads=2)
    add(special="big", add_zero_attn=True, add_bias_kv=True, kpm="bool", embed_dim=12, num_heads=3)
    # Inputs x 10: logits in the hundreds, past exp's float32 range, softmax not yet one-hot.
    for layout, am, w in [("bf0", "2d-float", True), ("bf1", "none", False), ("unb0", "3d-bool", True)]:
        add(layout=layout, am=am, need_weights=w, average=False, special="big10", embed_dim=8, num_heads=2)
    # Fully masked query rows through attn_mask (every head), 2-D and 3-D, bool and float.
    for i, (am, (w, avg)) in enumerate(itertools.product(
            ["2d-bool", "2d-float", "3d-bool", "3d-float"], [(False, True), (True, True), (True, False)])):
        add(am=am, need_weights=w, average=avg, layout=["bf0", "bf1"][i % 2], special="fullrow")
    # Rows fully masked in one head only (3-D masks), so the other heads still attend.
    for am, w, avg in itertools.product(["3d-bool", "3d-float"], [False, True], [True, False]):
        if not w and not avg:
            continue
        add(am=am, need_weights=w, average=avg, special="fullhead", embed_dim=8, num_heads=4)
    # A batch whose key_padding_mask masks every key.
    for i, (kpm, am, w) in enumerate(itertools.product(["bool", "float"], ["none", "2d-bool", "2d-float"],
                                                       [False, True])):
        add(kpm=kpm, am=am, need_weights=w, layout=["bf0", "bf1", "unb0"][i % 3], special="fullbatch")
    for kpm, w in itertools.product(["bool", "float"], [False, True]):
        add(kpm=kpm, need_weights=w, layout="unb1", special="fullbatch")
    # Fully masked, but bias_k / the zero key is appended unmasked: nothing is fully masked.
    for bkv, zattn, special, w in itertools.product([False, True], [False, True],
                                                    ["fullrow", "fullbatch"], [False, True]):
        if not (bkv or zattn):
            continue
        add(add_bias_kv=bkv, add_zero_attn=zattn, special=special, need_weights=w,
            kpm="bool" if special == "fullbatch" else "none",
            am="2d-bool" if special == "fullrow" else "none")
    # PyTorch's fast path (_native_multi_head_attention): self-attention, batch_first,
    # even heads, bias, bool masks, no bias_kv/zero_attn, grad off.
    for kpm, am, w, avg, special in [("none", "none", True, True, ""), ("bool", "none", True, False, ""),
                                     ("none", "2d-bool", False, True, ""), ("bool", "2d-bool", True, True, ""),
                                     ("bool", "3d-bool", False, True, ""), ("bool", "none", False, True, ""),
                                     ("bool", "none", True, True, "fullbatch"),
                                     ("bool", "none", False, True, "fullbatch"),
                                     ("none", "2d-bool", True, False, "fullrow"),
                                     ("none", "2d-bool", False, True, "fullrow"),
                                     ("none", "3d-bool", False, True, "fullhead")]:
        add(layout="bf1", kv="self", kpm=kpm, am=am, need_weights=w, average=avg, special=special,
            embed_dim=8, num_heads=4 if special == "fullhead" else 2)
    # is_causal with the causal mask passed alongside (bool and float), L < S, L > S, L = S.
    for i, (seq, am, (w, kpm)) in enumerate(itertools.product(
            [(3, 5), (5, 3), (4, 4)], ["causal", "causal-float"],
            [(False, "none"), (True, "none"), (False, "bool"), (True, "float")])):
        add(seq=seq, am=am, need_weights=w, kpm=kpm, layout=["bf0", "unb0", "bf1"][i % 3],
            average=i % 2 == 0)
    for seq in [(3, 5), (5, 3)]:  # causal with appended keys: valid only with weights or a kpm
        add(seq=seq, am="causal", add_bias_kv=True, add_zero_attn=True, need_weights=True)
        add(seq=seq, am="causal", add_zero_attn=True, need_weights=False, kpm="bool")
    # bias=False everywhere it matters: fully masked rows are then exactly zero.
    for special, w in itertools.product(["fullrow", "fullbatch"], [False, True]):
        add(bias=False, special=special, need_weights=w,
            kpm="bool" if special == "fullbatch" else "none",
            am="2d-bool" if special == "fullrow" else "none")
    return out


# ---------------------------------------------------------------------------
# building one case
# ---------------------------------------------------------------------------

def _draw_mask(kind: str, shape: tuple[int, ...], p: float) -> torch.Tensor:
    hidden = torch.rand(shape) < p
    if kind == "bool":
        return hidden
    values = torch.randn(shape)
    return torch.where(hidden, torch.full(shape, float("-inf")), values)


def _hidden(mask: torch.Tensor | None) -> torch.Tensor | None:
    if mask is None:
        return None
    return mask if mask.dtype == torch.bool else torch.isneginf(mask)


def _unhide(mask: torch.Tensor, index: tuple) -> None:
    if mask.dtype == torch.bool:
        mask[index] = False
    else:
        mask[index] = float(torch.randn(()))


def _fix_fully_masked(case: Case, kpm, am, N, H, L, S) -> None:
    """Unmask entries (in place) until no query row has every key hidden."""
    if case.add_bias_kv or case.add_zero_attn:
        return  # the appended key is never masked
    kpm_h = None if kpm is None else _hidden(kpm).reshape(N, S)
    if kpm_h is not None:
        for n in range(N):
            if bool(kpm_h[n].all()):
                s = int(torch.randint(S, ()))
                _unhide(kpm, (n, s) if kpm.dim() == 2 else (s,))
        kpm_h = _hidden(kpm).reshape(N, S)
    if am is None:
        return
    for n, h, l in itertools.product(range(N), range(H), range(L)):
        row = _hidden(am)[l] if am.dim() == 2 else _hidden(am)[n * H + h, l]
        visible = ~row if kpm_h is None else ~row & ~kpm_h[n]
        if bool(visible.any()):
            continue
        if case.is_causal:  # keep the causal mask causal: open a key it allows instead
            allowed = [s for s in range(S) if not bool(row[s])]
            s = allowed[int(torch.randint(len(allowed), ()))]
            _unhide(kpm, (n, s) if kpm.dim() == 2 else (s,))
            kpm_h = _hidden(kpm).reshape(N, S)
        else:
            open_keys = [s for s in range(S) if kpm_h is None or not bool(kpm_h[n, s])]
            s = open_keys[int(torch.randint(len(open_keys), ()))]
            _unhide(am, (l, s) if am.dim() == 2 else (n * H + h, l, s))


def _mask_all(mask: torch.Tensor, index) -> None:
    if mask.dtype == torch.bool:
        mask[index] = True
    else:
        mask[index] = float("-inf")


def build(case: Case, seed: int):
    """Draw module, inputs and masks for `case` from `seed`; returns everything needed."""
    torch.manual_seed(seed)
    E, H = case.embed_dim, case.num_heads
    if case.seq is not None:
        L, S = case.seq
    else:
        L, S = int(torch.randint(1, 8, ())), int(torch.randint(1, 8, ()))
        if L == S and case.kv != "self" and not case.is_causal:
            S = S % 7 + 1  # prefer L != S where nothing requires equality
    if case.kv == "self":
        S = L
    kdim = vdim = E
    if case.kv in ("k", "kv"):
        kdim = OTHER_DIMS[int(torch.randint(len(OTHER_DIMS), ()))]
    if case.kv in ("v", "kv"):
        vdim = OTHER_DIMS[int(torch.randint(len(OTHER_DIMS), ()))]
    N = 1 if case.unbatched else case.batch

    module = torch.nn.MultiheadAttention(E, H, bias=case.bias, add_bias_kv=case.add_bias_kv,
                                         add_zero_attn=case.add_zero_attn, kdim=kdim, vdim=vdim,
                                         batch_first=case.batch_first)
    with torch.no_grad():
        # PyTorch zero-initialises the projection biases: make them count.
        if case.bias:
            module.in_proj_bias.copy_(0.5 * torch.randn_like(module.in_proj_bias))
            module.out_proj.bias.copy_(0.5 * torch.randn_like(module.out_proj.bias))
    module.eval()

    def shaped(length, features):
        if case.unbatched:
            return (length, features)
        return (N, length, features) if case.batch_first else (length, N, features)

    scale = {"big": 1e3, "big10": 10.0}.get(case.special, 1.0)
    query = torch.randn(shaped(L, E)) * scale
    if case.kv == "self":
        key = value = query
    else:
        key = torch.randn(shaped(S, kdim)) * scale
        value = torch.randn(shaped(S, vdim)) * scale

    kpm = None
    if case.kpm != "none":
        kpm = _draw_mask(case.kpm, (S,) if case.unbatched else (N, S), 0.3)
    am = None
    if case.is_causal:
        am = torch.triu(torch.ones(L, S), diagonal=1).bool()
        if case.am == "causal-float":
            am = torch.zeros(L, S).masked_fill(am, float("-inf"))
    elif case.am != "none":
        dims, kind = case.am.split("-")
        shape = (L, S) if dims == "2d" else (N * H, L, S)
        am = _draw_mask(kind, shape, 0.3)
    _fix_fully_masked(case, kpm, am, N, H, L, S)

    if case.special == "fullrow":      # query row(s) with every key hidden, in every head
        rows = sorted({0, int(torch.randint(L, ()))})
        for l in rows:
            _mask_all(am, (l, slice(None)) if am.dim() == 2 else (slice(None), l, slice(None)))
    elif case.special == "fullhead":   # one (batch, head, row) hidden, other heads open
        b, l = int(torch.randint(N * H, ())), int(torch.randint(L, ()))
        _mask_all(am, (b, l, slice(None)))
    elif case.special == "fullbatch":  # the last batch's keys all padded
        _mask_all(kpm, slice(None) if kpm.dim() == 1 else (N - 1, slice(None)))

    return dict(module=module, query=query, key=key, value=value, kpm=kpm, am=am,
                L=L, S=S, N=N, kdim=kdim, vdim=vdim)


def run_module(module, query, key, value, kpm, am, case: Case, is_causal=None):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, weights = module(query, key, value, key_padding_mask=kpm,
                              need_weights=case.need_weights, attn_mask=am,
                              average_attn_weights=case.average,
                              is_causal=case.is_causal if is_causal is None else is_causal)
    return out, weights


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    a, b = a.double(), b.double()
    if not torch.equal(torch.isnan(a), torch.isnan(b)):
        return False
    fa, fb = a[~torch.isnan(a)], b[~torch.isnan(b)]
    if fa.numel() == 0:
        return True
    scale = max(float(fb.abs().max()), 1.0)
    return float((fa - fb).abs().max()) <= tol * scale


def make_case(case: Case, seed: int):
    """Build, run and condition-check one case; returns (name, tensors, config) or None."""
    b = build(case, seed)
    module = b["module"]
    out, weights = run_module(module, b["query"], b["key"], b["value"], b["kpm"], b["am"], case)

    # Well-conditioned? Run the same float32 inputs in float64.
    module64 = torch.nn.MultiheadAttention(case.embed_dim, case.num_heads, bias=case.bias,
                                           add_bias_kv=case.add_bias_kv,
                                           add_zero_attn=case.add_zero_attn, kdim=b["kdim"],
                                           vdim=b["vdim"], batch_first=case.batch_first,
                                           dtype=torch.float64)
    module64.load_state_dict({k: v.double() for k, v in module.state_dict().items()})
    module64.eval()
    def up(t):  # float tensors to float64; bool masks and None as they are
        return t if t is None or t.dtype == torch.bool else t.double()
    q64 = up(b["query"])
    k64 = q64 if case.kv == "self" else up(b["key"])
    v64 = q64 if case.kv == "self" else up(b["value"])
    kpm64, am64 = up(b["kpm"]), up(b["am"])
    out64, weights64 = run_module(module64, q64, k64, v64, kpm64, am64, case)
    if not _close(out, out64, CONDITION_TOL):
        return None
    if case.need_weights and not _close(weights, weights64, CONDITION_TOL):
        return None
    if case.is_causal:  # the hint must not change the answer in any kept case
        plain, plain_w = run_module(module, b["query"], b["key"], b["value"], b["kpm"], b["am"],
                                    case, is_causal=False)
        if not _close(out, plain, 1e-6) or (case.need_weights and not _close(weights, plain_w, 1e-6)):
            raise AssertionError(f"is_causal changed PyTorch's answer for {case}")

    name = case.name(b["L"], b["S"], b["kdim"], b["vdim"])
    tensors = {f"param.{k}": v.detach().numpy().astype(np.float32)
               for k, v in module.state_dict().items()}
    tensors["query"] = b["query"].numpy()
    tensors["key"] = b["key"].numpy()
    tensors["value"] = b["value"].numpy()
    if b["kpm"] is not None:
        tensors["key_padding_mask"] = b["kpm"].numpy()
    if b["am"] is not None:
        tensors["attn_mask"] = b["am"].numpy()
    tensors["expected.output"] = out.numpy()
    if case.need_weights:
        tensors["expected.weights"] = weights.numpy()
    config = dict(embed_dim=case.embed_dim, num_heads=case.num_heads, bias=case.bias,
                  add_bias_kv=case.add_bias_kv, add_zero_attn=case.add_zero_attn,
                  kdim=b["kdim"], vdim=b["vdim"], batch_first=case.batch_first,
                  need_weights=case.need_weights, average_attn_weights=case.average,
                  is_causal=case.is_causal, unbatched=case.unbatched)
    return name, tensors, config


def metadata(config: dict) -> dict[str, str]:
    return {"config": json.dumps(config, sort_keys=True), "torch_version": torch.__version__}


def all_cases() -> list[Case]:
    rng = random.Random(20250130)
    cases = pairwise_cases(rng)
    cases += random_cases(rng, 60)
    cases += targeted_cases(rng)
    return cases


# ---------------------------------------------------------------------------
# the seed article's examples
# ---------------------------------------------------------------------------

def seed_examples() -> dict[str, tuple[dict, dict]]:
    """Example 1 and Example 2 of the seed article, exactly as written where PyTorch allows.

    Example 2 asks for qdim=8 (proj_q = Linear(4, 8)); PyTorch has no qdim, so
    proj_q is Linear(4, 4) here. Biases keep PyTorch's initialisation (zeros).
    """
    examples = {}
    with torch.no_grad():
        torch.manual_seed(0)
        x = torch.randn(2, 5, 4)          # (L=2, N=5, E=4): batch_first=False
        attention = torch.nn.MultiheadAttention(embed_dim=4, num_heads=2).eval()
        out, weights = attention(x, x, x)
        config = dict(embed_dim=4, num_heads=2, bias=True, add_bias_kv=False, add_zero_attn=False,
                      kdim=4, vdim=4, batch_first=False, need_weights=True,
                      average_attn_weights=True, is_causal=False, unbatched=False)
        tensors = {f"param.{k}": v.numpy().copy() for k, v in attention.state_dict().items()}
        tensors.update({"query": x.numpy(), "key": x.numpy(), "value": x.numpy(),
                        "expected.output": out.numpy(), "expected.weights": weights.numpy()})
        examples["example1"] = (config, tensors)

        torch.manual_seed(0)
        x = torch.randn(2, 5, 4)
        proj_q = torch.nn.Linear(4, 4)    # the article's 4->8 needs qdim, which PyTorch lacks
        proj_k = torch.nn.Linear(4, 6)
        proj_v = torch.nn.Linear(4, 4)
        q, k, v = proj_q(x), proj_k(x), proj_v(x)
        attention = torch.nn.MultiheadAttention(embed_dim=4, num_heads=2, kdim=6, vdim=4).eval()
        out, weights = attention(q, k, v)
        config = dict(config, kdim=6, vdim=4)
        tensors = {f"param.{k_}": t.numpy().copy() for k_, t in attention.state_dict().items()}
        tensors.update({"query": q.numpy(), "key": k.numpy(), "value": v.numpy(),
                        "expected.output": out.numpy(), "expected.weights": weights.numpy()})
        examples["example2"] = (config, tensors)
    return examples


# ---------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture root folder")
    args = parser.parse_args()

    torch.set_num_threads(1)  # fixed reduction order: same bits on every run
    mha_dir = args.out / "mha"
    mha_dir.mkdir(parents=True, exist_ok=True)
    for stale in mha_dir.glob("*.safetensors"):
        stale.unlink()

    names: list[str] = []
    total = 0
    redrawn = 0
    for index, case in enumerate(all_cases()):
        made = None
        for attempt in range(50):
            made = make_case(case, seed=1000 + index + 100003 * attempt)
            if made is not None:
                break
            redrawn += 1
        if made is None:
            raise RuntimeError(f"no well-conditioned draw for {case}")
        name, tensors, config = made
        base, k = name, 2
        while name in names:
            name, k = f"{base}_v{k}", k + 1
        names.append(name)
        total += write_safetensors(mha_dir / f"{name}.safetensors", tensors, metadata(config))
    names.sort()
    (mha_dir / "INDEX.json").write_text(json.dumps(names, indent=1) + "\n")

    for name, (config, tensors) in seed_examples().items():
        total += write_safetensors(args.out / "seed" / f"{name}.safetensors", tensors, metadata(config))

    print(f"wrote {len(names)} mha cases + 2 seed examples, {total} bytes "
          f"({redrawn} ill-conditioned draws redrawn) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
