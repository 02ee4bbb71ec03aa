"""The seed article's examples ("How can I use PyTorch's nn.MultiheadAttention?") on Multihead,
then checked against the outputs real PyTorch computed for the same weights and inputs
(Tests/MultiheadTests/Fixtures/seed/example{1,2}.safetensors).

    python examples/python/seed_examples.py [FIXTURE_DIR]

Needs only numpy (and libmultihead: `make lib`). Exits 1 if an output differs from PyTorch's
by more than 1e-5.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
try:
    import multihead as mh
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO / "bindings" / "python"))
    import multihead as mh


def example1(rng: np.random.Generator) -> None:
    print("Example 1: basic self-attention")
    # The article says "Batch size 2, sequence length 5", but with the default batch_first=False
    # the layout is (L, N, E): this x is a sequence of length L=2 over a batch of N=5, which is
    # why the weights come out as (N, L, S) = (5, 2, 2). Use batch_first=True for (N, L, E).
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    attention = mh.MultiheadAttention(embed_dim=4, num_heads=2)
    attn_output, attn_output_weights = attention(x, x, x)
    print("  Attention Output Shape:", attn_output.shape)
    print("  Attention Weights Shape:", attn_output_weights.shape)
    print("  output[0, 0] =", np.array2string(attn_output[0, 0], precision=5))
    print("  weights[0, 0] =", np.array2string(attn_output_weights[0, 0], precision=5))


def example2(rng: np.random.Generator) -> None:
    print("Example 2: different input sizes for query, key and value")
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)

    def linear(inputs, outputs):  # nn.Linear(inputs, outputs) with PyTorch's init bounds
        bound = 1 / np.sqrt(inputs)
        weight = rng.uniform(-bound, bound, (outputs, inputs)).astype(np.float32)
        bias = rng.uniform(-bound, bound, outputs).astype(np.float32)
        return lambda t: t @ weight.T + bias

    proj_q, proj_k, proj_v = linear(4, 8), linear(4, 6), linear(4, 4)
    q, k, v = proj_q(x), proj_k(x), proj_v(x)
    # torch.nn.MultiheadAttention has no qdim argument (the article's call raises a TypeError
    # there); Multihead has one: q_proj_weight is then (embed_dim, qdim) = (4, 8).
    attention = mh.MultiheadAttention(embed_dim=4, num_heads=2, kdim=6, vdim=4, qdim=8)
    attn_output, _ = attention(q, k, v)
    print("  Attention Output Shape:", attn_output.shape)
    print("  q_proj_weight:", attention.parameter_shapes["q_proj_weight"])
    print("  output[0, 0] =", np.array2string(attn_output[0, 0], precision=5))


def read_safetensors(path: Path) -> tuple[dict, dict]:
    """(metadata, {name: float32/bool array}) of a safetensors file, with numpy only."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    metadata = header.pop("__metadata__", {})
    dtypes = {"F32": "<f4", "BOOL": "?"}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[8 + size + begin:8 + size + end]
        tensors[name] = np.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return metadata, tensors


def check_against_pytorch(path: Path) -> bool:
    metadata, t = read_safetensors(path)
    config = json.loads(metadata["config"])
    attention = mh.MultiheadAttention(config["embed_dim"], config["num_heads"], bias=config["bias"],
                                      kdim=config["kdim"], vdim=config["vdim"],
                                      batch_first=config["batch_first"])
    # The file also holds the inputs and PyTorch's outputs; the prefix selects the parameters.
    attention.load_safetensors(path, prefix="param.")
    out, weights = attention(t["query"], t["key"], t["value"])
    diff = float(np.abs(out - t["expected.output"]).max())
    weights_diff = float(np.abs(weights - t["expected.weights"]).max())
    ok = diff <= 1e-5 and weights_diff <= 1e-5
    print(f"{path.stem} vs PyTorch {metadata.get('torch_version', '?')}: max |output diff| = {diff:.3g}, "
          f"max |weights diff| = {weights_diff:.3g}{'' if ok else '  ** MORE THAN 1e-5 **'}")
    return ok


def main() -> int:
    fixtures = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "Tests" / "MultiheadTests" / "Fixtures" / "seed"
    rng = np.random.default_rng(0)
    example1(rng)
    example2(rng)
    results = [check_against_pytorch(fixtures / f"{name}.safetensors") for name in ("example1", "example2")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
