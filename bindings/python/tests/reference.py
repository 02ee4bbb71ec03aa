"""An independent float64 numpy reference for multi-head attention.

Written from the math, not by calling torch, so that it can check both
PyTorch's fixtures and the Multihead engine. It follows
torch.nn.MultiheadAttention at inference (eval mode: dropout is a no-op)
plus Multihead's deliberate differences (DESIGN.md section 2):

(a) a query row whose keys are all masked (every score -inf) gets zero
    attention: that head contributes 0 to the output and its weights row is
    0, never NaN. A row masked in every head therefore outputs
    ``out_proj.bias`` (0 without bias).
(b) ``is_causal=True`` without ``attn_mask`` applies a top-left causal mask
    (key ``s`` hidden from query ``l`` when ``s > l``) over the S given keys;
    like any attn_mask it gets an unmasked column for each appended key
    (bias_k, zero attention). With ``attn_mask`` given, ``is_causal`` is only a
    hint and the mask is used as passed.
(c) ``qdim``: the query's feature size may differ from ``embed_dim``; then
    ``q_proj_weight`` is ``(E, qdim)``.

Shapes (L target length, S source length, N batch, E embed_dim, H heads):
query ``(L, N, qdim)``, ``(N, L, qdim)`` with batch_first, or ``(L, qdim)``
unbatched; key ``(S, ..., kdim)``; value ``(S, ..., vdim)``.
key_padding_mask ``(N, S)`` or ``(S,)``; attn_mask ``(L, S)`` or
``(N*H, L, S)`` (``(H, L, S)`` unbatched), indexed ``n*H + h``.
Output like the query with ``E`` features; weights ``(N, L, S')`` averaged or
``(N, H, L, S')`` per head (no ``N`` unbatched), where ``S'`` counts the
appended keys.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Tuple

import numpy as np

__all__ = ["mha_reference", "additive_mask", "fully_masked_rows"]


def _f64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def additive_mask(mask, name: str) -> np.ndarray:
    """A mask as float64 scores to add: bool True -> -inf, False -> 0; floats as given."""
    mask = _as_array(mask)
    if mask.dtype == np.bool_:
        return np.where(mask, -np.inf, 0.0)
    if np.issubdtype(mask.dtype, np.floating):
        return mask.astype(np.float64)
    raise TypeError(f"only bool and floating types of {name} are supported, got {mask.dtype}")


def causal_mask(L: int, S: int) -> np.ndarray:
    """Top-left causal mask as bool ``(L, S)``: True (hidden) where ``s > l``."""
    return np.triu(np.ones((L, S), dtype=bool), k=1)


def _param(params: Mapping, name: str) -> np.ndarray:
    if name not in params:
        raise KeyError(f"missing parameter {name!r}")
    return _f64(params[name])


def _projection_weights(params: Mapping, E: int, qdim: int, kdim: int, vdim: int):
    same = qdim == E and kdim == E and vdim == E
    if same and "in_proj_weight" in params:
        w = _param(params, "in_proj_weight")
        if w.shape != (3 * E, E):
            raise ValueError(f"in_proj_weight is {w.shape}, expected {(3 * E, E)}")
        return w[:E], w[E:2 * E], w[2 * E:]
    wq = _param(params, "q_proj_weight")
    wk = _param(params, "k_proj_weight")
    wv = _param(params, "v_proj_weight")
    for name, w, cols in (("q_proj_weight", wq, qdim), ("k_proj_weight", wk, kdim),
                          ("v_proj_weight", wv, vdim)):
        if w.shape != (E, cols):
            raise ValueError(f"{name} is {w.shape}, expected {(E, cols)}")
    return wq, wk, wv


def mha_reference(query, key, value, params: Mapping[str, np.ndarray], *, embed_dim: int,
                  num_heads: int, bias: bool = True, add_bias_kv: bool = False,
                  add_zero_attn: bool = False, kdim: Optional[int] = None,
                  vdim: Optional[int] = None, qdim: Optional[int] = None,
                  batch_first: bool = False, key_padding_mask=None, need_weights: bool = True,
                  attn_mask=None, average_attn_weights: bool = True,
                  is_causal: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Multi-head attention forward in float64.

    - Parameters: as ``torch.nn.MultiheadAttention(...)`` and its ``forward``, with
      ``params`` a state_dict (names as PyTorch's: ``in_proj_weight`` or
      ``q/k/v_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``,
      ``bias_k``, ``bias_v``), numpy arrays or torch tensors.
    - Returns: ``(output, weights)``, float64; ``weights`` is None unless need_weights.
    - Raises: ValueError for shapes, TypeError for mask dtypes, KeyError for a missing parameter.
    """
    E, H = int(embed_dim), int(num_heads)
    if E <= 0 or H <= 0 or E % H:
        raise ValueError(f"embed_dim {E} must be a positive multiple of num_heads {H}")
    D = E // H
    qdim = E if qdim is None else int(qdim)
    kdim = E if kdim is None else int(kdim)
    vdim = E if vdim is None else int(vdim)

    q_in, k_in, v_in = _f64(query), _f64(key), _f64(value)
    unbatched = q_in.ndim == 2
    if unbatched:
        if k_in.ndim != 2 or v_in.ndim != 2:
            raise ValueError("unbatched query needs 2-D key and value")
        q_in, k_in, v_in = q_in[:, None], k_in[:, None], v_in[:, None]
    elif q_in.ndim == 3:
        if k_in.ndim != 3 or v_in.ndim != 3:
            raise ValueError("batched query needs 3-D key and value")
        if batch_first:
            q_in, k_in, v_in = (x.transpose(1, 0, 2) for x in (q_in, k_in, v_in))
    else:
        raise ValueError(f"query must be 2-D or 3-D, got {q_in.ndim}-D")
    # Now (length, batch, features).
    L, N, qf = q_in.shape
    S = k_in.shape[0]
    if qf != qdim or k_in.shape[2] != kdim or v_in.shape[2] != vdim:
        raise ValueError(f"feature sizes {qf}, {k_in.shape[2]}, {v_in.shape[2]} != "
                         f"qdim {qdim}, kdim {kdim}, vdim {vdim}")
    if k_in.shape[:2] != (S, N) or v_in.shape[:2] != (S, N):
        raise ValueError(f"key {k_in.shape} and value {v_in.shape} disagree with query {q_in.shape}")

    # Masks as additive float64 over the S given keys.
    kpm = None
    if key_padding_mask is not None:
        kpm = additive_mask(key_padding_mask, "key_padding_mask")
        want = (S,) if unbatched else (N, S)
        if kpm.shape != want:
            raise ValueError(f"key_padding_mask is {kpm.shape}, expected {want}")
        kpm = kpm.reshape(N, S)
    am = None
    if attn_mask is not None:
        am = additive_mask(attn_mask, "attn_mask")
        if am.shape == (L, S):
            am = np.broadcast_to(am, (N, H, L, S))
        elif am.ndim == 3 and am.shape == (N * H, L, S):
            am = am.reshape(N, H, L, S)
        else:
            raise ValueError(f"attn_mask is {am.shape}, expected {(L, S)} or {(N * H, L, S)}")
    elif is_causal:
        am = np.broadcast_to(additive_mask(causal_mask(L, S), "attn_mask"), (N, H, L, S))

    # Projections.
    wq, wk, wv = _projection_weights(params, E, qdim, kdim, vdim)
    if bias:
        b = _param(params, "in_proj_bias")
        if b.shape != (3 * E,):
            raise ValueError(f"in_proj_bias is {b.shape}, expected {(3 * E,)}")
        bq, bk, bv = b[:E], b[E:2 * E], b[2 * E:]
        bo = _param(params, "out_proj.bias")
    else:
        bq = bk = bv = bo = np.zeros(E)
    wo = _param(params, "out_proj.weight")
    q = q_in @ wq.T + bq                              # (L, N, E)
    k = k_in @ wk.T + bk                              # (S, N, E)
    v = v_in @ wv.T + bv

    appended = 0
    if add_bias_kv:
        bias_k = _param(params, "bias_k").reshape(1, 1, E)
        bias_v = _param(params, "bias_v").reshape(1, 1, E)
        k = np.concatenate([k, np.broadcast_to(bias_k, (1, N, E))], axis=0)
        v = np.concatenate([v, np.broadcast_to(bias_v, (1, N, E))], axis=0)
        appended += 1

    # Head split: (N, H, length, D).
    q = q.reshape(L, N, H, D).transpose(1, 2, 0, 3)
    k = k.reshape(S + appended, N, H, D).transpose(1, 2, 0, 3)
    v = v.reshape(S + appended, N, H, D).transpose(1, 2, 0, 3)
    if add_zero_attn:
        zeros = np.zeros((N, H, 1, D))
        k = np.concatenate([k, zeros], axis=2)
        v = np.concatenate([v, zeros], axis=2)
        appended += 1
    S_total = S + appended

    scores = (q / math.sqrt(D)) @ k.transpose(0, 1, 3, 2)   # (N, H, L, S')
    # Appended keys are never masked: masks only cover the first S columns.
    if am is not None:
        scores[..., :S] += am
    if kpm is not None:
        scores[..., :S] += kpm[:, None, None, :]

    row_max = scores.max(axis=-1, keepdims=True)
    fully_masked = np.isneginf(row_max)
    shifted = scores - np.where(fully_masked, 0.0, row_max)
    with np.errstate(invalid="ignore"):
        p = np.exp(shifted)
        total = p.sum(axis=-1, keepdims=True)
        weights = np.where(fully_masked, 0.0, p / np.where(fully_masked, 1.0, total))

    heads = weights @ v                                # (N, H, L, D)
    concat = heads.transpose(2, 0, 1, 3).reshape(L, N, E)
    out = concat @ wo.T + bo                           # (L, N, E)

    if unbatched:
        out = out[:, 0]
    elif batch_first:
        out = out.transpose(1, 0, 2)
    if not need_weights:
        return out, None
    if average_attn_weights:
        weights = weights.mean(axis=1)                 # (N, L, S')
    if unbatched:
        weights = weights[0]
    assert weights.shape[-1] == S_total
    return out, weights


def fully_masked_rows(*, L: int, S: int, N: int, num_heads: int, unbatched: bool,
                      key_padding_mask=None, attn_mask=None, is_causal: bool = False,
                      appended: int = 0) -> np.ndarray:
    """Bool ``(N, H, L)``: True where every key of the row is hidden (None without masks)."""
    H = num_heads
    hidden = np.zeros((N, H, L, S), dtype=bool)
    if attn_mask is not None:
        am = np.isneginf(additive_mask(attn_mask, "attn_mask"))
        hidden |= am.reshape(L, S) if am.ndim == 2 else am.reshape(N, H, L, S)
    elif is_causal:
        hidden |= causal_mask(L, S)
    if key_padding_mask is not None:
        kpm = np.isneginf(additive_mask(key_padding_mask, "key_padding_mask")).reshape(N, S)
        hidden |= kpm[:, None, None, :]
    if appended:
        return np.zeros((N, H, L), dtype=bool)
    return hidden.all(axis=-1)
