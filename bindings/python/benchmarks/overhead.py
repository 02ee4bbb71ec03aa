"""Per-call cost of a tiny forward from Python: multihead vs torch.nn.MultiheadAttention.

The shape is the seed article's Example 1 (embed_dim 4, 2 heads, L = 2, N = 5, self-attention,
weights returned), where the arithmetic is negligible and the figure is the binding's overhead
plus the engine's fixed cost. A benchmark, not a test: it prints medians and asserts nothing.

    python bindings/python/benchmarks/overhead.py [--calls 20000] [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import multihead as mh  # noqa: E402


def median_us(fn, calls: int, repeats: int) -> float:
    for _ in range(min(calls, 1000)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def raw_forward(module, x):
    """The bare ctypes call of mh_mha_forward with descriptors built once: the engine's own cost."""
    import ctypes

    from multihead._lib import MH_DTYPE_F32, lib, mh_forward_options, mh_tensor

    library = lib()
    out = np.empty_like(x)
    weights = np.empty((x.shape[1], x.shape[0], x.shape[0]), np.float32)
    descriptors = []
    for array in (x, out, weights):
        t = mh_tensor()
        shape = (ctypes.c_int64 * array.ndim)(*array.shape)
        library.mh_tensor_init_contiguous(ctypes.byref(t), array.ctypes.data, MH_DTYPE_F32, array.ndim, shape)
        descriptors.append(t)
    q, o, w = descriptors
    options = mh_forward_options()
    library.mh_forward_options_init(ctypes.byref(options))
    forward, handle = library.mh_mha_forward, module._handle
    return lambda: forward(handle, q, q, q, None, None, options, o, w)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per timed repeat")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="engine and torch threads (0 = all cores)")
    args = parser.parse_args()

    E, H, L, N = 4, 2, 2, 5
    rng = np.random.default_rng(0)
    x = rng.standard_normal((L, N, E)).astype(np.float32)
    engine = mh.Engine(args.threads)
    module = mh.MultiheadAttention(E, H, engine=engine)
    print(f"shape: embed_dim={E} num_heads={H} L={L} N={N}, self-attention, need_weights=True; "
          f"library {mh.library_path()}, {engine.num_threads} engine thread(s)")

    results = {}
    results["multihead (numpy in/out)"] = median_us(lambda: module(x, x, x), args.calls, args.repeats)
    raw = raw_forward(module, x)
    results["  of which mh_mha_forward alone (C)"] = median_us(raw, args.calls, args.repeats)
    results["multihead, need_weights=False"] = median_us(lambda: module(x, x, x, need_weights=False),
                                                         args.calls, args.repeats)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        if args.threads:
            torch.set_num_threads(args.threads)
        reference = torch.nn.MultiheadAttention(E, H).eval()
        module.load_state_dict(reference.state_dict())
        xt = torch.from_numpy(x)
        results["multihead (torch in/out)"] = median_us(lambda: module(xt, xt, xt), args.calls, args.repeats)

        def run_torch():
            with torch.no_grad():
                return reference(xt, xt, xt)

        results[f"torch {torch.__version__} (no_grad, eval)"] = median_us(run_torch, args.calls, args.repeats)
    else:
        print("torch is not installed: only multihead is measured")

    width = max(len(name) for name in results)
    for name, us in results.items():
        print(f"{name:<{width}}  {us:8.2f} us/call (median of {args.repeats} x {args.calls})")
    overhead = results["multihead (numpy in/out)"] - results["  of which mh_mha_forward alone (C)"]
    print(f"binding overhead (numpy call - bare C call): {overhead:.2f} us/call")
    if torch is not None:
        ratio = results[f"torch {torch.__version__} (no_grad, eval)"] / results["multihead (numpy in/out)"]
        print(f"torch / multihead: {ratio:.2f}x")


if __name__ == "__main__":
    main()
