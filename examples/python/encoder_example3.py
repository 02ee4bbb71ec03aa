"""The seed article's Example 3 ("Incorporating Multihead Attention into a Transformer Encoder
Layer") on Multihead, checked against the output real PyTorch computed for the same weights and
input (Tests/MultiheadTests/Fixtures/encoder/seed_example3.safetensors).

The article's own class (attention, linear1 E -> E, relu, linear2, two layer norms, post-norm,
dropout) is exactly torch.nn.TransformerEncoderLayer(d_model=4, nhead=2, dim_feedforward=4),
state_dict names included, so it loads into multihead.TransformerEncoderLayer as it is.

    python examples/python/encoder_example3.py [FIXTURE]

Needs numpy (and libmultihead: `make lib`); with torch installed it also runs the article's
class itself. Exits 1 if an output differs from PyTorch's by more than 1e-5.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bindings" / "python"))
sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))

import multihead as mh  # noqa: E402
from fixtures import read_safetensors  # noqa: E402  (numpy-only safetensors reader)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "Tests/MultiheadTests/Fixtures/encoder/seed_example3.safetensors"
    print("Example 3: a Transformer encoder layer (embed_dim=4, num_heads=2), x of shape (2, 5, 4)")
    # Fresh module, the article's sizes: linear1 and linear2 are 4 -> 4.
    layer = mh.TransformerEncoderLayer(d_model=4, nhead=2, dim_feedforward=4)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    print(f"  output shape {layer(x).shape}")

    # PyTorch's weights and input: the output must be PyTorch's.
    metadata, tensors = read_safetensors(path)
    layer.load_state_dict({name[len("param."):]: value for name, value in tensors.items() if name.startswith("param.")})
    out = layer(tensors["src"])
    worst = float(np.abs(out - tensors["expected.output"]).max())
    print(f"  with PyTorch {metadata.get('torch_version', '?')}'s weights: max |multihead - PyTorch| = {worst:.3g}")

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        nn = torch.nn

        class TransformerEncoderLayer(nn.Module):  # the article's class, verbatim
            def __init__(self, embed_dim, num_heads, dropout=0.1):
                super().__init__()
                self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout)
                self.linear1 = nn.Linear(embed_dim, embed_dim)
                self.linear2 = nn.Linear(embed_dim, embed_dim)
                self.norm1 = nn.LayerNorm(embed_dim)
                self.norm2 = nn.LayerNorm(embed_dim)
                self.dropout1 = nn.Dropout(dropout)
                self.dropout2 = nn.Dropout(dropout)

            def forward(self, x):
                attn_output, _ = self.self_attn(x, x, x)
                x = x + self.dropout1(attn_output)
                x = self.norm1(x)
                x = x + self.dropout2(self.linear2(torch.relu(self.linear1(x))))
                x = self.norm2(x)
                return x

        encoder_layer = TransformerEncoderLayer(embed_dim=4, num_heads=2).eval()
        x = torch.randn(2, 5, 4)
        with torch.no_grad():
            expected = encoder_layer(x)
        ours = mh.TransformerEncoderLayer(4, 2, dim_feedforward=4)
        ours.load_state_dict(encoder_layer.state_dict())
        live = float((ours(x) - expected).abs().max())
        print(f"  the article's class run live in PyTorch {torch.__version__}: max |multihead - PyTorch| = {live:.3g}")
        worst = max(worst, live)
    if worst > 1e-5:
        print("FAILED: differs from PyTorch")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
