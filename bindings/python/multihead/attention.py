"""MultiheadAttention: torch.nn.MultiheadAttention's interface on libmultihead."""

from __future__ import annotations

import ctypes
import threading
from typing import Dict, Optional

import numpy as np

from ._errors import Error, InvalidArgumentError, as_int, check_seed
from ._lib import (MH_DTYPE_F32, MH_ERR_INVALID_ARGUMENT, MH_MAX_RANK, check, lib,
                   mh_forward_options, mh_mha_config, mh_tensor)
from ._tensors import (F32, as_float_array, as_mask_array, contiguous_strides, data_pointer,
                       element_strides, fill, is_torch)
from ._module import NativeModule
from .engine import Engine

__all__ = ["MultiheadAttention"]

# Query, key, value, key_padding_mask, attn_mask, output, weights.
_Descriptors = mh_tensor * 7
_TEMPLATE_SIZE = ctypes.sizeof(_Descriptors)
_memmove = ctypes.memmove
_PLAN_CACHE_LIMIT = 64
_empty = np.empty
_ndarray = np.ndarray


class _Plan:
    """Everything a forward call with one set of input layouts needs, but the data pointers."""

    __slots__ = ("template", "output_shape", "weights_shape", "options")

    def __init__(self, template: bytes, output_shape, weights_shape, options):
        self.template = template
        self.output_shape = output_shape
        self.weights_shape = weights_shape
        self.options = options


class _ThreadState(threading.local):
    """One set of descriptors per thread, reused from call to call."""

    def __init__(self):
        self.descriptors = _Descriptors()
        self.items = [self.descriptors[i] for i in range(7)]
        self.plan = None
        self.busy = False


def _plan_key(q, k, v, kpm, kpm_dtype, am, am_dtype, need_weights, average_attn_weights, is_causal):
    """What a plan depends on: every layout (shapes, byte strides, mask dtypes) and the options.
    Self-attention (one array for all three) has a shorter key: cheaper to build and hash."""
    masks = (None if kpm is None else (kpm_dtype, kpm.shape, kpm.strides),
             None if am is None else (am_dtype, am.shape, am.strides))
    if k is q and v is q:
        return (q.shape, q.strides, masks, need_weights, average_attn_weights, is_causal)
    return (q.shape, q.strides, k.shape, k.strides, v.shape, v.strides, masks,
            need_weights, average_attn_weights, is_causal)


class MultiheadAttention(NativeModule):
    """Multi-head attention, computing what ``torch.nn.MultiheadAttention`` computes in eval mode.

    Same constructor arguments, names, defaults and shapes as PyTorch's, plus ``qdim`` (the
    query's feature size, which PyTorch lacks), ``seed`` (of the initial parameters, drawn from
    PyTorch's init distributions) and ``engine`` (``None``: a shared engine with one thread per
    core). ``dropout`` is kept but never applied: this is an inference engine.

    Inputs are numpy arrays or torch tensors (torch is never required), in any layout: float32
    arrays are read through their strides without a copy; other floating dtypes (float64,
    float16) are converted to float32 first. Outputs are fresh C-contiguous float32 arrays, or
    torch tensors when the query is a torch tensor.

    Documented differences from PyTorch: a query row whose keys are all masked gets zero
    attention (output row = ``out_proj.bias``, weights 0) instead of NaN; ``is_causal=True``
    without ``attn_mask`` applies a top-left causal mask instead of raising.

    Thread-safe: one module may run forward from several threads at once (the GIL is released
    during the computation). Free it with ``close()``, a ``with`` block, or by dropping it.
    """

    _api = "mh_mha"

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: Optional[int] = None,
                 vdim: Optional[int] = None, qdim: Optional[int] = None, batch_first: bool = False,
                 *, seed: int = 0, engine: Optional[Engine] = None):
        self._handle = None
        self._engine = None
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads), ("kdim", kdim),
                            ("vdim", vdim), ("qdim", qdim), ("seed", seed)):
            if value is not None:
                as_int(value, name)
        if engine is not None and not isinstance(engine, Engine):
            raise TypeError(f"engine must be a multihead.Engine or None, got {type(engine).__name__}")
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads), ("kdim", kdim),
                            ("vdim", vdim), ("qdim", qdim)):
            # ctypes would silently wrap a value past int64 (2**64 + 4 became 4).
            if value is not None and not -(1 << 63) <= value < 1 << 63:
                raise InvalidArgumentError(f"{name} is {value}, outside the int64 range", MH_ERR_INVALID_ARGUMENT)
        for name, value in (("kdim", kdim), ("vdim", vdim), ("qdim", qdim)):
            if value is not None and value <= 0:
                raise InvalidArgumentError(f"{name} must be positive, got {value}", MH_ERR_INVALID_ARGUMENT)
        check_seed(seed)

        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.add_bias_kv = bool(add_bias_kv)
        self.add_zero_attn = bool(add_zero_attn)
        self.kdim = int(kdim) if kdim is not None else self.embed_dim
        self.vdim = int(vdim) if vdim is not None else self.embed_dim
        self.qdim = int(qdim) if qdim is not None else self.embed_dim
        self.batch_first = bool(batch_first)
        self._qkv_same_embed_dim = self.kdim == self.vdim == self.qdim == self.embed_dim

        self._lib = lib()
        config = mh_mha_config()
        self._lib.mh_mha_config_init(ctypes.byref(config))
        config.embed_dim = self.embed_dim
        config.num_heads = self.num_heads
        config.dropout = self.dropout
        config.bias = int(self.bias)
        config.add_bias_kv = int(self.add_bias_kv)
        config.add_zero_attn = int(self.add_zero_attn)
        config.kdim = 0 if kdim is None else self.kdim
        config.vdim = 0 if vdim is None else self.vdim
        config.qdim = 0 if qdim is None else self.qdim
        config.batch_first = int(self.batch_first)
        config.seed = int(seed)
        engine_handle = engine._live_handle() if engine is not None else None
        handle = ctypes.c_void_p()
        check(self._lib.mh_mha_create(engine_handle, ctypes.byref(config), ctypes.byref(handle)),
              "MultiheadAttention")
        self._adopt(handle.value, engine)
        self._plans: Dict[tuple, _Plan] = {}
        self._plans_lock = threading.Lock()
        self._forward = self._lib.mh_mha_forward
        self._thread_state = _ThreadState()

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def __repr__(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)}" for name in ("kdim", "vdim", "qdim")
                        if getattr(self, name) != self.embed_dim)
        flags = "".join(f", {name}=True" for name in ("add_bias_kv", "add_zero_attn", "batch_first")
                        if getattr(self, name))
        state = ", closed" if self.closed else ""
        return (f"MultiheadAttention(embed_dim={self.embed_dim}, num_heads={self.num_heads}"
                f"{'' if self.bias else ', bias=False'}{extra}{flags}{state})")

    @classmethod
    def from_torch(cls, module, *, engine: Optional[Engine] = None) -> "MultiheadAttention":
        """A module with the configuration and the parameters of a ``torch.nn.MultiheadAttention``."""
        for attribute in ("embed_dim", "num_heads", "in_proj_bias", "bias_k", "kdim", "vdim", "state_dict"):
            if not hasattr(module, attribute):
                raise TypeError(f"from_torch needs a torch.nn.MultiheadAttention, got {type(module).__name__}")
        result = cls(module.embed_dim, module.num_heads, dropout=float(module.dropout),
                     bias=module.in_proj_bias is not None, add_bias_kv=module.bias_k is not None,
                     add_zero_attn=bool(module.add_zero_attn), kdim=module.kdim, vdim=module.vdim,
                     batch_first=bool(module.batch_first), engine=engine)
        try:
            result.load_state_dict(module.state_dict())
        except BaseException:
            result.close()
            raise
        return result

    # -----------------------------------------------------------------------------------------
    # forward

    def _prepare(self, q, k, v, kpm, kpm_dtype, am, am_dtype, need_weights, average_attn_weights, is_causal):
        """Checks the layouts of a call not seen before and caches its plan.

        Returns the arrays (an array whose byte strides are not multiples of its item size is
        replaced by a contiguous copy) and the plan."""
        q, q_strides = element_strides(q, "query")
        k, k_strides = (q, q_strides) if k is q else element_strides(k, "key")
        v, v_strides = (k, k_strides) if v is k else element_strides(v, "value")
        descriptors = _Descriptors()
        fill(descriptors[0], q.shape, MH_DTYPE_F32, q_strides)
        fill(descriptors[1], k.shape, MH_DTYPE_F32, k_strides)
        fill(descriptors[2], v.shape, MH_DTYPE_F32, v_strides)
        if kpm is not None:
            kpm, strides = element_strides(kpm, "key_padding_mask")
            fill(descriptors[3], kpm.shape, kpm_dtype, strides)
        if am is not None:
            am, strides = element_strides(am, "attn_mask")
            fill(descriptors[4], am.shape, am_dtype, strides)
        options = mh_forward_options()
        self._lib.mh_forward_options_init(ctypes.byref(options))
        options.need_weights = int(bool(need_weights))
        options.average_attn_weights = int(bool(average_attn_weights))
        options.is_causal = int(bool(is_causal))
        output_rank, weights_rank = ctypes.c_int32(), ctypes.c_int32()
        output_shape = (ctypes.c_int64 * MH_MAX_RANK)()
        weights_shape = (ctypes.c_int64 * MH_MAX_RANK)()
        check(self._lib.mh_mha_output_shapes(self._live(), descriptors[0], descriptors[1], descriptors[2],
                                             options, ctypes.byref(output_rank), output_shape,
                                             ctypes.byref(weights_rank), weights_shape), "forward")
        out_shape = tuple(output_shape[:output_rank.value])
        w_shape = tuple(weights_shape[:weights_rank.value]) if need_weights else None
        fill(descriptors[5], out_shape, MH_DTYPE_F32, contiguous_strides(out_shape))
        if w_shape is not None:
            fill(descriptors[6], w_shape, MH_DTYPE_F32, contiguous_strides(w_shape))
        plan = _Plan(bytes(descriptors), out_shape, w_shape, options)
        key = _plan_key(q, k, v, kpm, kpm_dtype, am, am_dtype, need_weights, average_attn_weights, is_causal)
        with self._plans_lock:
            if len(self._plans) >= _PLAN_CACHE_LIMIT:
                self._plans.clear()
            self._plans[key] = plan
        return q, k, v, kpm, am, plan

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        """Attention of ``query`` over ``key``/``value``; returns ``(output, weights)``.

        Shapes (L target length, S source length, N batch, E embed_dim, H num_heads):
          query  ``(L, N, qdim)``, ``(N, L, qdim)`` with batch_first, or unbatched ``(L, qdim)``
          key    ``(S, N, kdim)`` / ``(N, S, kdim)`` / ``(S, kdim)``
          value  ``(S, N, vdim)`` / ``(N, S, vdim)`` / ``(S, vdim)``
          key_padding_mask  ``(N, S)`` or ``(S,)``: bool (True = ignore) or float (added)
          attn_mask  ``(L, S)`` or ``(N*H, L, S)``: bool (True = not allowed) or float (added)
          output  like the query, with E features
          weights ``(N, L, S')`` averaged over heads, ``(N, H, L, S')`` with
                  ``average_attn_weights=False`` (no N when unbatched), None unless
                  ``need_weights``; ``S'`` counts bias_k and the zero key.
        float32 inputs are read where they are, through their strides; other floating dtypes
        are converted to float32 first. Outputs are new C-contiguous float32 arrays (torch
        tensors when the query is a torch tensor).
        - Raises: ShapeError for ranks and shapes that do not fit (the message names them),
          TypeError for inputs that are not arrays or masks that are not bool or floating,
          multihead.Error when the module is closed.
        """
        handle = self._handle
        if handle is None:
            raise Error("module is closed")
        # Flags are plan-cache keys: make them plain bools (an array raises as in torch: ambiguous).
        if need_weights.__class__ is not bool:
            need_weights = _flag(need_weights, "need_weights")
        if average_attn_weights.__class__ is not bool:
            average_attn_weights = _flag(average_attn_weights, "average_attn_weights")
        if is_causal.__class__ is not bool:
            is_causal = _flag(is_causal, "is_causal")
        # The common case (float32 numpy arrays) costs two checks each; see _tensors for the rest.
        q = query if type(query) is _ndarray and query.dtype is F32 else as_float_array(query, "query")
        if key is query:
            k = q
        else:
            k = key if type(key) is _ndarray and key.dtype is F32 else as_float_array(key, "key")
        if value is key:
            v = k
        else:
            v = value if type(value) is _ndarray and value.dtype is F32 else as_float_array(value, "value")
        kpm = am = kpm_dtype = am_dtype = None
        if key_padding_mask is not None:
            kpm, kpm_dtype = as_mask_array(key_padding_mask, "key_padding_mask")
        if attn_mask is not None:
            am, am_dtype = as_mask_array(attn_mask, "attn_mask")
        plan = self._plans.get(_plan_key(q, k, v, kpm, kpm_dtype, am, am_dtype, need_weights,
                                         average_attn_weights, is_causal))
        if plan is None:
            q, k, v, kpm, am, plan = self._prepare(q, k, v, kpm, kpm_dtype, am, am_dtype, need_weights,
                                                   average_attn_weights, is_causal)

        output = _empty(plan.output_shape, F32)
        weights = None if plan.weights_shape is None else _empty(plan.weights_shape, F32)
        # Descriptors: this thread's own (kept between calls, so a repeated layout only needs
        # its data pointers written), or fresh ones if this thread is already inside a call.
        state = self._thread_state
        owned = not state.busy
        if owned:
            state.busy = True
            d = state.items
            if state.plan is not plan:
                _memmove(state.descriptors, plan.template, _TEMPLATE_SIZE)
                state.plan = plan
        else:
            descriptors = _Descriptors.from_buffer_copy(plan.template)
            d = [descriptors[i] for i in range(7)]
        try:
            d[0].data = q_data = data_pointer(q)
            d[1].data = k_data = q_data if k is q else data_pointer(k)
            d[2].data = k_data if v is k else data_pointer(v)
            if kpm is not None:
                d[3].data = data_pointer(kpm)
            if am is not None:
                d[4].data = data_pointer(am)
            d[5].data = data_pointer(output)
            if weights is not None:
                d[6].data = data_pointer(weights)
            status = self._forward(handle, d[0], d[1], d[2], d[3] if kpm is not None else None,
                                   d[4] if am is not None else None, plan.options, d[5],
                                   d[6] if weights is not None else None)
        finally:
            if owned:
                state.busy = False
        if status:
            self._lib.raise_for(status, "forward")
        if type(query) is not _ndarray and is_torch(query):
            return _to_torch(output, query), (None if weights is None else _to_torch(weights, query))
        return output, weights

    __call__ = forward


def _flag(value, name: str) -> bool:
    try:
        return bool(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}: {error}") from None


def _to_torch(array: np.ndarray, like):
    import torch  # the caller passed a tensor, so torch is there

    tensor = torch.from_numpy(array)
    device = like.device
    return tensor if device.type == "cpu" else tensor.to(device)
