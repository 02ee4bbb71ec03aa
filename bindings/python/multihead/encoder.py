"""TransformerEncoderLayer, TransformerEncoder and LayerNorm: PyTorch's interfaces on libmultihead.

    import multihead as mh
    layer = mh.TransformerEncoderLayer(d_model=384, nhead=12, dim_feedforward=1536,
                                       activation="gelu", batch_first=True)
    encoder = mh.TransformerEncoder(layer, num_layers=6, norm=mh.LayerNorm(384))
    encoder.load_state_dict(torch_encoder.state_dict())      # or from_torch(torch_encoder)
    out = encoder(src, src_key_padding_mask=padding)

Same constructor arguments, names, defaults, shapes and state_dict names as torch.nn's classes.
Inputs are numpy arrays or torch tensors (torch is never required); outputs are new float32
arrays, or torch tensors when ``src`` is one. Every position is computed, padded ones included
(PyTorch's result with ``enable_nested_tensor=False``; its nested-tensor fast path returns 0
where ``src_key_padding_mask`` is True).
"""

from __future__ import annotations

import ctypes
from ctypes import c_double, c_float, c_int32, c_int64, c_uint32, c_uint64
from typing import Optional

import numpy as np

from ._errors import InvalidArgumentError, as_int, check_seed
from ._lib import MH_DTYPE_F32, MH_ERR_INVALID_ARGUMENT, check, lib, mh_tensor
from ._tensors import (F32, as_float_array, as_mask_array, contiguous_strides, data_pointer, element_strides,
                       fill, is_torch)
from ._module import NativeModule
from .engine import Engine

__all__ = ["TransformerEncoderLayer", "TransformerEncoder", "LayerNorm"]

MH_ACTIVATION_RELU = 0
MH_ACTIVATION_GELU = 1
_ACTIVATIONS = {"relu": MH_ACTIVATION_RELU, "gelu": MH_ACTIVATION_GELU}


class mh_encoder_layer_config(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("d_model", c_int64),
        ("nhead", c_int64),
        ("dim_feedforward", c_int64),
        ("dropout", c_float),
        ("activation", c_int32),
        ("layer_norm_eps", c_double),
        ("batch_first", c_int32),
        ("norm_first", c_int32),
        ("bias", c_int32),
        ("seed", c_uint64),
    ]


class mh_layer_norm_config(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("normalized_shape", c_int64),
        ("eps", c_double),
        ("elementwise_affine", c_int32),
        ("bias", c_int32),
    ]


def activation_name(activation) -> str:
    """PyTorch's activation argument as "relu" or "gelu": a string, ``F.relu``/``F.gelu``, or a
    ``torch.nn.ReLU``/``torch.nn.GELU()`` module (exact GELU only)."""
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise InvalidArgumentError(f"activation should be relu/gelu, not {activation}", MH_ERR_INVALID_ARGUMENT)
        return activation
    kind = type(activation).__name__
    if kind == "ReLU":
        return "relu"
    if kind == "GELU":
        if getattr(activation, "approximate", "none") != "none":
            raise InvalidArgumentError("only the exact GELU (approximate='none') is supported", MH_ERR_INVALID_ARGUMENT)
        return "gelu"
    name = getattr(activation, "__name__", None)
    if callable(activation) and name in _ACTIVATIONS and "torch" in str(getattr(activation, "__module__", "")):
        return name
    raise InvalidArgumentError(f"activation must be 'relu', 'gelu', F.relu, F.gelu, nn.ReLU or nn.GELU, got {activation!r}",
                               MH_ERR_INVALID_ARGUMENT)


class _Module(NativeModule):
    """A libmultihead mh_encoder handle: NativeModule plus the shared forward."""

    _api = "mh_encoder"

    # forward -------------------------------------------------------------------------------

    def _run(self, src, mask, src_key_padding_mask, is_causal, mask_name: str):
        handle = self._live()
        array = as_float_array(src, "src")
        array, strides = element_strides(array, "src")
        descriptors = (mh_tensor * 4)()
        fill(descriptors[0], array.shape, MH_DTYPE_F32, strides)
        descriptors[0].data = data_pointer(array)
        keep = [array]
        pointers = [None, None]
        for i, (value, name) in enumerate(((mask, mask_name), (src_key_padding_mask, "src_key_padding_mask"))):
            if value is None:
                continue
            m, dtype = as_mask_array(value, name)
            m, m_strides = element_strides(m, name)
            fill(descriptors[1 + i], m.shape, dtype, m_strides)
            descriptors[1 + i].data = data_pointer(m)
            pointers[i] = ctypes.byref(descriptors[1 + i])
            keep.append(m)
        out = np.empty(array.shape, dtype=F32)
        fill(descriptors[3], out.shape, MH_DTYPE_F32, contiguous_strides(out.shape))
        descriptors[3].data = out.ctypes.data if out.size else None
        check(self._lib.mh_encoder_forward(handle, ctypes.byref(descriptors[0]), pointers[0], pointers[1],
                                           int(bool(is_causal)), ctypes.byref(descriptors[3])),
              type(self).__name__)
        if is_torch(src):
            import torch

            return torch.from_numpy(out)
        return out


class LayerNorm(_Module):
    """``torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`` over
    the last dimension (``normalized_shape`` an int or a one-element sequence)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 *, engine: Optional[Engine] = None):
        self._handle = None
        self._engine = None
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise InvalidArgumentError(f"normalized_shape must have one dimension (the last), got {tuple(normalized_shape)}",
                                           MH_ERR_INVALID_ARGUMENT)
            normalized_shape = normalized_shape[0]
        as_int(normalized_shape, "normalized_shape")
        self.normalized_shape = (int(normalized_shape),)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self.bias = bool(bias)
        self._lib = lib()
        config = mh_layer_norm_config()
        self._lib.mh_layer_norm_config_init(ctypes.byref(config))
        config.normalized_shape = int(normalized_shape)
        config.eps = self.eps
        config.elementwise_affine = int(self.elementwise_affine)
        config.bias = int(self.bias)
        handle = ctypes.c_void_p()
        check(self._lib.mh_layer_norm_create(engine._live_handle() if engine is not None else None,
                                             ctypes.byref(config), ctypes.byref(handle)), "LayerNorm")
        self._adopt(handle.value, engine)

    def forward(self, input):
        """Normalises ``input`` ``(..., normalized_shape)`` over its last dimension."""
        return self._run(input, None, None, False, "mask")

    __call__ = forward

    @classmethod
    def from_torch(cls, module, *, engine: Optional[Engine] = None) -> "LayerNorm":
        """A LayerNorm with the configuration and parameters of a ``torch.nn.LayerNorm``."""
        if not hasattr(module, "normalized_shape") or not hasattr(module, "eps"):
            raise TypeError(f"from_torch needs a torch.nn.LayerNorm, got {type(module).__name__}")
        result = cls(tuple(module.normalized_shape), eps=module.eps, elementwise_affine=module.elementwise_affine,
                     bias=getattr(module, "bias", None) is not None, engine=engine)
        result.load_state_dict(module.state_dict())
        return result

    def __repr__(self) -> str:
        return (f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
                f"{'' if self.bias else ', bias=False'}{', closed' if self.closed else ''})")


class TransformerEncoderLayer(_Module):
    """``torch.nn.TransformerEncoderLayer`` at inference: the engine's self-attention and a
    feed-forward block with residuals and layer norms (post-norm, or pre-norm with
    ``norm_first``). ``dropout`` is kept, never applied. ``activation``: "relu", "gelu" (exact),
    ``F.relu``, ``F.gelu``, ``nn.ReLU()`` or ``nn.GELU()``. Extra keyword arguments: ``seed`` (of
    the initial parameters) and ``engine``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, *, seed: int = 0, engine: Optional[Engine] = None):
        self._handle = None
        self._engine = None
        for name, value in (("d_model", d_model), ("nhead", nhead), ("dim_feedforward", dim_feedforward), ("seed", seed)):
            as_int(value, name)
        if engine is not None and not isinstance(engine, Engine):
            raise TypeError(f"engine must be a multihead.Engine or None, got {type(engine).__name__}")
        self.d_model = int(d_model)
        self.nhead = int(nhead)
        self.dim_feedforward = int(dim_feedforward)
        self.dropout = float(dropout)
        self.activation = activation_name(activation)
        self.layer_norm_eps = float(layer_norm_eps)
        self.batch_first = bool(batch_first)
        self.norm_first = bool(norm_first)
        self.bias = bool(bias)
        for name, value in (("d_model", self.d_model), ("nhead", self.nhead), ("dim_feedforward", self.dim_feedforward)):
            if not 0 < value < 1 << 31:
                raise InvalidArgumentError(f"{name} must be positive, got {value}", MH_ERR_INVALID_ARGUMENT)
        check_seed(seed)
        self._lib = lib()
        config = mh_encoder_layer_config()
        self._lib.mh_encoder_layer_config_init(ctypes.byref(config))
        config.d_model = self.d_model
        config.nhead = self.nhead
        config.dim_feedforward = self.dim_feedforward
        config.dropout = self.dropout
        config.activation = _ACTIVATIONS[self.activation]
        config.layer_norm_eps = self.layer_norm_eps
        config.batch_first = int(self.batch_first)
        config.norm_first = int(self.norm_first)
        config.bias = int(self.bias)
        config.seed = int(seed)
        handle = ctypes.c_void_p()
        check(self._lib.mh_encoder_layer_create(engine._live_handle() if engine is not None else None,
                                                ctypes.byref(config), ctypes.byref(handle)), "TransformerEncoderLayer")
        self._adopt(handle.value, engine)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        """The layer's output, shaped like ``src``.

        Shapes (L sequence, N batch, E d_model): src ``(L, N, E)``, ``(N, L, E)`` with
        batch_first, or unbatched ``(L, E)``; src_mask ``(L, L)`` or ``(N*nhead, L, L)``, bool
        (True = not allowed) or float (added); src_key_padding_mask ``(N, L)`` or ``(L,)``.
        ``is_causal`` is a hint when src_mask is given; without it, a top-left causal mask.
        - Raises: ShapeError naming the argument and shapes, TypeError for non-arrays.
        """
        return self._run(src, src_mask, src_key_padding_mask, is_causal, "src_mask")

    __call__ = forward

    @classmethod
    def from_torch(cls, module, *, engine: Optional[Engine] = None) -> "TransformerEncoderLayer":
        """A layer with the configuration and parameters of a ``torch.nn.TransformerEncoderLayer``."""
        attention = getattr(module, "self_attn", None)
        if attention is None or not hasattr(module, "linear1") or not hasattr(module, "norm1"):
            raise TypeError(f"from_torch needs a torch.nn.TransformerEncoderLayer, got {type(module).__name__}")
        kind = getattr(module, "activation_relu_or_gelu", 0)
        activation = {1: "relu", 2: "gelu"}.get(kind, module.activation)
        result = cls(attention.embed_dim, attention.num_heads, dim_feedforward=module.linear1.out_features,
                     dropout=float(module.dropout.p), activation=activation, layer_norm_eps=module.norm1.eps,
                     batch_first=bool(attention.batch_first), norm_first=bool(module.norm_first),
                     bias=module.linear1.bias is not None, engine=engine)
        try:
            result.load_state_dict(module.state_dict())
        except BaseException:
            result.close()
            raise
        return result

    def __repr__(self) -> str:
        flags = "".join(f", {name}=True" for name in ("batch_first", "norm_first") if getattr(self, name))
        return (f"TransformerEncoderLayer(d_model={self.d_model}, nhead={self.nhead}, "
                f"dim_feedforward={self.dim_feedforward}, activation={self.activation!r}, "
                f"layer_norm_eps={self.layer_norm_eps}{flags}{'' if self.bias else ', bias=False'}"
                f"{', closed' if self.closed else ''})")


class TransformerEncoder(_Module):
    """``torch.nn.TransformerEncoder(encoder_layer, num_layers, norm=None)``: ``num_layers``
    copies of ``encoder_layer`` (configuration and current parameters, as PyTorch's deep copy),
    then the optional final ``norm`` (copied too). The layer and norm may be multihead modules
    or torch modules. ``enable_nested_tensor`` and ``mask_check`` are accepted for
    compatibility; every position is computed (PyTorch's ``enable_nested_tensor=False``)."""

    def __init__(self, encoder_layer, num_layers: int, norm=None, enable_nested_tensor: bool = True,
                 mask_check: bool = True):
        self._handle = None
        self._engine = None
        as_int(num_layers, "num_layers")
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            encoder_layer = TransformerEncoderLayer.from_torch(encoder_layer)
        if norm is not None and not isinstance(norm, LayerNorm):
            norm = LayerNorm.from_torch(norm)
        if not 0 < num_layers < 1 << 31:
            raise InvalidArgumentError(f"num_layers must be >= 1, got {num_layers}", MH_ERR_INVALID_ARGUMENT)
        self.num_layers = int(num_layers)
        self.enable_nested_tensor = bool(enable_nested_tensor)
        self.mask_check = bool(mask_check)
        self.layer_config = {name: getattr(encoder_layer, name) for name in (
            "d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first",
            "norm_first", "bias")}
        self.norm_config = None if norm is None else dict(normalized_shape=norm.normalized_shape, eps=norm.eps,
                                                          elementwise_affine=norm.elementwise_affine, bias=norm.bias)
        self._lib = lib()
        handle = ctypes.c_void_p()
        check(self._lib.mh_encoder_create(encoder_layer._live(), self.num_layers,
                                          None if norm is None else norm._live(), ctypes.byref(handle)),
              "TransformerEncoder")
        self._adopt(handle.value, encoder_layer.engine)

    @property
    def batch_first(self) -> bool:
        return self.layer_config["batch_first"]

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: Optional[bool] = None):
        """The encoder's output, shaped like ``src`` (shapes as TransformerEncoderLayer.forward;
        ``mask`` is the layers' src_mask). ``is_causal`` is a hint when mask is given; True
        without a mask applies a top-left causal mask."""
        return self._run(src, mask, src_key_padding_mask, bool(is_causal), "mask")

    __call__ = forward

    @classmethod
    def from_torch(cls, module, *, engine: Optional[Engine] = None) -> "TransformerEncoder":
        """An encoder with the configuration and parameters of a ``torch.nn.TransformerEncoder``."""
        layers = getattr(module, "layers", None)
        if layers is None or len(layers) == 0:
            raise TypeError(f"from_torch needs a torch.nn.TransformerEncoder, got {type(module).__name__}")
        first = TransformerEncoderLayer.from_torch(layers[0], engine=engine)
        norm = None if module.norm is None else LayerNorm.from_torch(module.norm, engine=engine)
        try:
            result = cls(first, len(layers), norm=norm)
            result.load_state_dict(module.state_dict())
        finally:
            first.close()
            if norm is not None:
                norm.close()
        return result

    def __repr__(self) -> str:
        c = self.layer_config
        norm = "" if self.norm_config is None else f", norm=LayerNorm({self.norm_config['normalized_shape']})"
        return (f"TransformerEncoder(num_layers={self.num_layers}, d_model={c['d_model']}, nhead={c['nhead']}, "
                f"activation={c['activation']!r}{norm}{', closed' if self.closed else ''})")
