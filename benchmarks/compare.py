#!/usr/bin/env python3
"""Multihead vs PyTorch vs ONNX Runtime: one process, same thread count, alternating runs.

A benchmark, not a test (DESIGN.md section 7): it prints figures and asserts nothing. The
workloads are those of `multihead-cli bench` (Sources/multihead/Bench.swift), layout (L, N, E),
batch_first=False. For each workload, every peer runs the SAME module (same weights):

  multihead    the Python binding (bindings/python), `mh.Engine(num_threads=T)`
  torch        `torch.nn.MultiheadAttention.eval()` under `torch.inference_mode()`,
               `torch.set_num_threads(T)`
  onnxruntime  `torch.onnx.export` of that module (wrapped so the call options are fixed),
               `intra_op_num_threads=T`, `inter_op_num_threads=1`, run through
               `InferenceSession.run` on numpy arrays

Each peer's output is checked against multihead's before timing. Timing: warm-up, then rounds
in which every peer takes one sample in turn (the starting peer rotates), medians of the samples;
a sample is one call, or for small shapes enough calls to last ~10-20 ms. Ratios are
peer time / multihead time (> 1: multihead is faster). GFLOP/s are set against the machine's
FMA peak, measured by benchmarks/peak.c (compiled here, cached in benchmarks/.cache).

    make lib
    export MULTIHEAD_LIBRARY=$PWD/build/lib/libmultihead.so PYTHONPATH=$PWD/bindings/python
    python benchmarks/compare.py [--quick] [--threads T] [--only bert-base,long-2k] [--repeats R]
                                 [--no-onnx] [--no-torch] [--memory] [--overhead] [--workloads]

`--memory` and `--overhead` run only their own section unless `--workloads` is also given.
Results: printed, and written to benchmarks/results.md (each section keeps its latest run) and
benchmarks/results.png (ratio to the fastest peer per workload; needs matplotlib).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"
RESULTS_MD = HERE / "results.md"
RESULTS_PNG = HERE / "results.png"
SECTIONS = ("workloads", "memory", "overhead")

# The binding: installed, or the repository's copy (the library itself is found by the package:
# $MULTIHEAD_LIBRARY, the package's lib/, then build/lib/).
try:
    import multihead as mh
except ImportError:
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    import multihead as mh


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# Workloads (kept in step with Workload.standard in Sources/multihead/Bench.swift)


@dataclass(frozen=True)
class Workload:
    name: str
    N: int
    L: int
    S: int
    E: int
    H: int
    kdim: Optional[int] = None
    vdim: Optional[int] = None
    need_weights: bool = False
    causal: bool = False
    padding: bool = False

    @property
    def self_attention(self) -> bool:
        return self.kdim is None and self.vdim is None and self.S == self.L

    @property
    def summary(self) -> str:
        parts = [f"N={self.N} L={self.L} S={self.S} E={self.E} H={self.H}"]
        if self.kdim is not None:
            parts.append(f"kdim={self.kdim}")
        if self.vdim is not None:
            parts.append(f"vdim={self.vdim}")
        parts.append("self-attention" if self.self_attention else "cross-attention")
        parts.append("need_weights (averaged)" if self.need_weights else "need_weights=False")
        if self.causal:
            parts.append("causal")
        if self.padding:
            parts.append("key_padding_mask")
        return ", ".join(parts)

    @property
    def flops(self) -> float:
        """2 x multiply-adds of the four projections and the two attention products (causal: half)."""
        n, l, s, e = self.N, self.L, self.S, self.E
        qdim, kdim, vdim = e, self.kdim or e, self.vdim or e
        projections = 2.0 * n * (l * e * qdim + s * e * kdim + s * e * vdim + l * e * e)
        attention = 4.0 * n * l * s * e * (0.5 if self.causal else 1.0)
        return projections + attention

    @property
    def small(self) -> bool:
        return self.flops < 1e8


WORKLOADS: List[Workload] = [
    Workload("seed-tiny", N=5, L=2, S=2, E=4, H=2, need_weights=True),
    Workload("bert-base", N=8, L=128, S=128, E=768, H=12),
    Workload("bert-base-weights", N=8, L=128, S=128, E=768, H=12, need_weights=True),
    Workload("bert-base-padding", N=8, L=128, S=128, E=768, H=12, padding=True),
    Workload("long-2k", N=1, L=2048, S=2048, E=1024, H=16),
    Workload("long-2k-causal", N=1, L=2048, S=2048, E=1024, H=16, causal=True),
    Workload("cross-attention", N=4, L=128, S=512, E=512, H=8, kdim=256, vdim=384),
]


@dataclass
class Inputs:
    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    key_padding_mask: Optional[np.ndarray]  # bool (N, S), True = padding
    attn_mask: Optional[np.ndarray]  # bool (L, S), True = not allowed


def make_inputs(w: Workload, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((w.L, w.N, w.E), dtype=np.float32)
    if w.self_attention:
        k = v = q  # the same array: every peer sees a self-attention call
    else:
        k = rng.standard_normal((w.S, w.N, w.kdim or w.E), dtype=np.float32)
        v = rng.standard_normal((w.S, w.N, w.vdim or w.E), dtype=np.float32)
    kpm = None
    if w.padding:
        # As in Bench.swift: sequence b keeps its first S - b*S/(2N) keys (S down towards S/2).
        lengths = np.array([w.S - b * w.S // (2 * w.N) for b in range(w.N)])
        kpm = np.arange(w.S)[None, :] >= lengths[:, None]
    mask = np.triu(np.ones((w.L, w.S), dtype=bool), 1) if w.causal else None
    return Inputs(q, k, v, kpm, mask)


# ---------------------------------------------------------------------------------------------
# Machine peak (benchmarks/peak.c)


@dataclass
class Peak:
    per_core: float = float("nan")  # GFLOP/s, one thread
    all_threads: float = float("nan")  # GFLOP/s, `threads` threads, one per core
    threads: int = 1
    isa: str = "?"
    detail: str = ""


def cpu_flags() -> set:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_peak() -> List[Tuple[str, Path]]:
    """Compiles peak.c for the ISAs this CPU has (cached by source mtime); returns (isa, binary)."""
    flags = cpu_flags()
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return []
    variants = []
    if "avx512f" in flags:
        variants.append(("avx512", ["-mavx512f", "-mfma"]))
    if "avx2" in flags and "fma" in flags:
        variants.append(("avx2", ["-mavx2", "-mfma"]))
    source = HERE / "peak.c"
    CACHE.mkdir(exist_ok=True)
    built = []
    for isa, extra in variants:
        binary = CACHE / f"peak-{isa}"
        if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
            cmd = [cc, "-O2", *extra, "-pthread", str(source), "-o", str(binary)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"note: could not compile peak.c for {isa}: {result.stderr.strip()[:300]}")
                continue
        built.append((isa, binary))
    return built


def measure_peak(threads: int, quick: bool) -> Peak:
    binaries = build_peak()
    if not binaries:
        print("note: no C compiler or no AVX2/AVX-512: machine peak not measured")
        return Peak(threads=threads, detail="not measured")
    ms, trials = ("150", "4") if quick else ("200", "8")
    peak = Peak(threads=threads)
    details = []
    best_single, best_all = 0.0, 0.0
    for isa, binary in binaries:
        figures = {}
        for t in sorted({1, threads}):
            out = subprocess.run([str(binary), str(t), ms, trials], capture_output=True, text=True)
            try:
                figures[t] = float(out.stdout.split("gflops=")[1].split()[0])
            except (IndexError, ValueError):
                figures[t] = float("nan")
        details.append(f"{isa}: {figures[1]:.1f} (1 thread), {figures[threads]:.1f} ({threads} threads)")
        if figures[1] > best_single:
            best_single = figures[1]
        if figures[threads] > best_all:
            best_all, peak.isa = figures[threads], isa
    peak.per_core, peak.all_threads = best_single, best_all
    peak.detail = "; ".join(details)
    return peak


# ---------------------------------------------------------------------------------------------
# Peers


@dataclass
class Peer:
    name: str
    call: Callable[[], object]  # one forward call
    result: Callable[[object], Tuple[np.ndarray, Optional[np.ndarray]]]  # (out, weights) as numpy
    note: str = ""


def import_torch(enabled: bool):
    if not enabled:
        return None
    try:
        import torch
    except ImportError:
        print("note: torch is not installed: the torch and onnxruntime peers are skipped")
        return None
    return torch


def import_ort(enabled: bool, torch):
    if not enabled:
        return None
    if torch is None:
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        print("note: onnxruntime is not installed: that peer is skipped")
        return None
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
    except ImportError:
        print("note: onnx is not installed (needed by torch.onnx.export): onnxruntime is skipped")
        return None
    return ort


def torch_module(torch, w: Workload, seed: int):
    torch.manual_seed(seed)
    mod = torch.nn.MultiheadAttention(w.E, w.H, kdim=w.kdim, vdim=w.vdim).eval()
    # Non-zero biases, so that a bias the engine drops would show in the check.
    with torch.no_grad():
        for name, p in mod.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.1, 0.1)
    return mod


def call_kwargs(w: Workload) -> dict:
    return dict(need_weights=w.need_weights, average_attn_weights=True, is_causal=w.causal)


def multihead_peer(name: str, module, w: Workload, x: Inputs, use_mask: bool = True) -> Peer:
    q, k, v, kpm = x.query, x.key, x.value, x.key_padding_mask
    mask = x.attn_mask if use_mask else None
    kwargs = call_kwargs(w)

    def call():
        return module(q, k, v, key_padding_mask=kpm, attn_mask=mask, **kwargs)

    return Peer(name, call, lambda r: (np.asarray(r[0]), None if r[1] is None else np.asarray(r[1])))


def torch_peer(torch, mod, w: Workload, x: Inputs) -> Peer:
    t = {id(a): torch.from_numpy(a) for a in (x.query, x.key, x.value)}
    q, k, v = t[id(x.query)], t[id(x.key)], t[id(x.value)]
    kpm = None if x.key_padding_mask is None else torch.from_numpy(x.key_padding_mask)
    mask = None if x.attn_mask is None else torch.from_numpy(x.attn_mask)
    kwargs = call_kwargs(w)

    def call():
        # Runs inside the torch.inference_mode() block that wraps the whole comparison.
        return mod(q, k, v, key_padding_mask=kpm, attn_mask=mask, **kwargs)

    def result(r):
        return r[0].numpy(), None if r[1] is None else r[1].numpy()

    return Peer(f"torch {torch.__version__.split('+')[0]}", call, result, note="eval, inference_mode")


def ort_peer(torch, ort, mod, w: Workload, x: Inputs, threads: int, tmpdir: Path, spinning: bool,
             exporter: str) -> Tuple[Optional[Peer], str]:
    """Exports `mod` for this workload's call; returns (peer, "") or (None, why)."""
    nn = torch.nn
    names = ["query"] + ([] if w.self_attention else ["key", "value"])
    if x.key_padding_mask is not None:
        names.append("key_padding_mask")
    if x.attn_mask is not None:
        names.append("attn_mask")
    kwargs = call_kwargs(w)

    class Fixed(nn.Module):
        """The module with this workload's call options baked in; inputs are positional."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            named = dict(zip(names, args))
            q = named["query"]
            k = named.get("key", q)
            v = named.get("value", q)
            out, weights = self.inner(q, k, v, key_padding_mask=named.get("key_padding_mask"),
                                      attn_mask=named.get("attn_mask"), **kwargs)
            return (out, weights) if w.need_weights else out

    arrays = {"query": x.query, "key": x.key, "value": x.value,
              "key_padding_mask": x.key_padding_mask, "attn_mask": x.attn_mask}
    example = tuple(torch.from_numpy(arrays[n]) for n in names)
    output_names = ["output", "weights"] if w.need_weights else ["output"]
    path = tmpdir / f"{w.name}.onnx"
    errors = []
    chosen = None
    for dynamo in {"dynamo": [True], "legacy": [False], "auto": [True, False]}[exporter]:
        label = "dynamo" if dynamo else "legacy (TorchScript)"
        try:
            sink = io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                warnings.simplefilter("ignore")
                torch.onnx.export(Fixed(mod).eval(), example, str(path), input_names=names,
                                  output_names=output_names, dynamo=dynamo, verbose=False)
            chosen = label
            break
        except Exception as e:  # noqa: BLE001 - any failure means: skip this peer, say why
            msg = str(e).strip().splitlines()
            errors.append(f"{label} export failed: {type(e).__name__}: {msg[0][:200] if msg else ''}")
    if chosen is None:
        return None, "; ".join(errors)

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if not spinning:
        # Idle ORT workers would otherwise spin after each run and steal the cores from the peer
        # timed next (multihead's and torch's workers block or spin only briefly).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        return None, f"onnxruntime could not load the {chosen} export: {type(e).__name__}: {str(e)[:200]}"
    # An exporter may drop an input the graph does not use (the causal mask when is_causal
    # lets torch ignore it): feed what the session asks for.
    feed = {i.name: arrays[i.name] for i in session.get_inputs()}
    run = session.run

    def call():
        return run(None, feed)

    def result(r):
        return r[0], (r[1] if w.need_weights else None)

    dropped = [n for n in names if n not in feed]
    note = f"{chosen} export" + (f", graph ignores {','.join(dropped)}" if dropped else "")
    if errors:
        note += f" ({errors[0]})"
    return Peer(f"onnxruntime {ort.__version__}", call, result, note=note), ""


# ---------------------------------------------------------------------------------------------
# Timing


def sample(fn: Callable[[], object], inner: int) -> float:
    """Seconds per call over `inner` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def warm_up(fn: Callable[[], object], seconds: float) -> float:
    """Calls fn for at least 2 calls and `seconds`; returns the fastest single call (seconds)."""
    best, calls, start = float("inf"), 0, time.perf_counter()
    while calls < 2 or (time.perf_counter() - start < seconds and calls < 20000):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


@dataclass
class Timing:
    samples: List[float] = field(default_factory=list)  # seconds per call
    inner: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr_pct(self) -> float:
        if len(self.samples) < 4:
            return float("nan")
        q = statistics.quantiles(self.samples, n=4)
        return (q[2] - q[0]) / self.median * 100


def time_peers(peers: Sequence[Peer], repeats: Optional[int], quick: bool) -> Dict[str, Timing]:
    warm_s, target_sample, budget = (0.15, 0.01, 0.8) if quick else (0.4, 0.02, 3.5)
    min_r, max_r = (3, 25) if quick else (7, 201)
    timings: Dict[str, Timing] = {}
    per_round = 0.0
    for p in peers:
        one = warm_up(p.call, warm_s)
        inner = max(1, int(target_sample / max(one, 1e-9)))
        timings[p.name] = Timing(inner=inner)
        per_round += inner * one
    if repeats is None:
        repeats = int(min(max_r, max(min_r, math.ceil(budget / max(per_round, 1e-9)))))
    for r in range(repeats):
        for i in range(len(peers)):  # round-robin, the first peer rotating
            p = peers[(r + i) % len(peers)]
            t = timings[p.name]
            t.samples.append(sample(p.call, t.inner))
    return timings


# ---------------------------------------------------------------------------------------------
# Output checks


def compare(reference: Tuple[np.ndarray, Optional[np.ndarray]],
            other: Tuple[np.ndarray, Optional[np.ndarray]]) -> Tuple[float, float, str]:
    """(max abs diff, relative to max |reference|, warning or "") over output and weights."""
    worst_abs, worst_rel, problems = 0.0, 0.0, []
    for label, a, b in (("output", reference[0], other[0]), ("weights", reference[1], other[1])):
        if a is None and b is None:
            continue
        if a is None or b is None:
            problems.append(f"{label} missing")
            continue
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a64.shape != b64.shape:
            problems.append(f"{label} shape {b64.shape} != {a64.shape}")
            continue
        finite = np.isfinite(a64) & np.isfinite(b64)
        if not finite.all():
            problems.append(f"{label}: {(~finite).sum()} non-finite values")
        diff = float(np.abs(a64 - b64)[finite].max()) if finite.any() else float("nan")
        scale = float(np.abs(a64[finite]).max()) if finite.any() else 1.0
        rel = diff / max(scale, 1e-30)
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, rel)
        if rel > 1e-3:
            problems.append(f"{label} differs: max abs {diff:.3g} = {rel:.3g} of max |value|")
    return worst_abs, worst_rel, "; ".join(problems)


# ---------------------------------------------------------------------------------------------
# Markdown helpers


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.4f}"


def fmt_gflops(g: float) -> str:
    return f"{g:.1f}" if g >= 10 else f"{g:.3g}"


def fmt_pct(p: float) -> str:
    if not math.isfinite(p):
        return "-"
    return f"{p:.0f}%" if p >= 1 else f"{p:.2g}%"


def geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def versions(torch, ort) -> str:
    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}",
             f"multihead {mh.__version__} (lib {mh.library_version()}: {mh.library_path()})"]
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
    if ort is not None:
        parts.append(f"onnxruntime {ort.__version__}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Section: workloads


@dataclass
class WorkloadResult:
    workload: Workload
    timings: Dict[str, Timing]
    checks: Dict[str, Tuple[float, float, str]]
    notes: Dict[str, str]
    skipped: List[str]
    reference: str  # multihead's peer name (the baseline of the ratios)
    others: List[str]  # the non-multihead peers (ratio vs fastest of them)


def run_workloads(args, torch, ort, peak: Peak) -> Tuple[str, List[WorkloadResult]]:
    selected = [w for w in WORKLOADS if not args.only or w.name in args.only]
    engine = mh.Engine(num_threads=args.threads)
    if engine.num_threads != args.threads:
        print(f"WARNING: the engine runs {engine.num_threads} thread(s), not {args.threads}")
    results: List[WorkloadResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="multihead-onnx-"))
    guard = torch.inference_mode() if torch is not None else contextlib.nullcontext()
    try:
        with guard:
            for w in selected:
                results.append(run_workload(args, w, engine, torch, ort, tmp, peak))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        engine.close()
    return workloads_markdown(args, results, peak), results


def run_workload(args, w: Workload, engine, torch, ort, tmp: Path, peak: Peak) -> WorkloadResult:
    print(f"\n== {w.name}: {w.summary}; {w.flops / 1e9:.3g} GFLOP per call")
    x = make_inputs(w, args.seed)
    skipped, notes = [], {}
    tmod = torch_module(torch, w, args.seed) if torch is not None else None
    if tmod is not None:
        module = mh.MultiheadAttention.from_torch(tmod, engine=engine)
    else:
        module = mh.MultiheadAttention(w.E, w.H, kdim=w.kdim, vdim=w.vdim, seed=args.seed, engine=engine)
    ref_name = "multihead"
    peers = [multihead_peer(ref_name, module, w, x)]
    if w.causal:
        notes[ref_name] = "attn_mask (bool causal) + is_causal=True, as torch gets"
        peers.append(multihead_peer("multihead (is_causal only)", module, w, x, use_mask=False))
        notes[peers[-1].name] = "is_causal=True, no attn_mask"
    if tmod is not None and not args.no_torch:
        peers.append(torch_peer(torch, tmod, w, x))
        notes[peers[-1].name] = peers[-1].note
    elif args.no_torch:
        skipped.append("torch (--no-torch)")
    if ort is not None:
        t0 = time.perf_counter()
        peer, why = ort_peer(torch, ort, tmod, w, x, args.threads, tmp, args.ort_spinning, args.onnx_exporter)
        if peer is None:
            print(f"   onnxruntime skipped: {why}")
            skipped.append(f"onnxruntime ({why})")
        else:
            print(f"   exported to ONNX in {time.perf_counter() - t0:.1f} s ({peer.note})")
            peers.append(peer)
            notes[peer.name] = peer.note + (", spinning" if args.ort_spinning else ", no spinning")
    elif args.no_onnx:
        skipped.append("onnxruntime (--no-onnx)")
    else:
        skipped.append("onnxruntime (onnxruntime, onnx or torch not installed)")

    # Outputs first: every peer against multihead.
    reference = peers[0].result(peers[0].call())
    checks = {}
    for p in peers[1:]:
        checks[p.name] = compare(reference, p.result(p.call()))
        diff, rel, problem = checks[p.name]
        line = f"   check {p.name}: max abs diff {diff:.3g} (relative {rel:.2g})"
        print(line + (f"  WARNING: {problem}" if problem else ""))

    timings = time_peers(peers, args.repeats, args.quick)
    others = [p.name for p in peers if not p.name.startswith("multihead")]
    result = WorkloadResult(w, timings, checks, notes, skipped, ref_name, others)
    print(workload_table(result, peak))
    module.close()
    return result


def workload_table(r: WorkloadResult, peak: Peak) -> str:
    w, base = r.workload, r.timings[r.reference].median
    rows = []
    for name, t in r.timings.items():
        gflops = w.flops / t.median / 1e9
        pct = gflops / peak.all_threads * 100 if math.isfinite(peak.all_threads) and peak.all_threads > 0 else float("nan")
        check = r.checks.get(name)
        iqr = f"{t.iqr_pct:.0f}%" if math.isfinite(t.iqr_pct) else "-"
        rows.append([name, fmt_ms(t.median), iqr, f"{len(t.samples)}x{t.inner}",
                     f"{t.median / base:.2f}", fmt_gflops(gflops), fmt_pct(pct),
                     "(reference)" if name == r.reference else (f"{check[0]:.2g}" if check else "-")])
    table = md_table(["peer", "median ms", "IQR", "samples", "ratio peer/mh", "GFLOP/s", "% peak", "max abs diff"],
                     rows, "lrrrrrrr")
    extra = [f"- {n}: {note}" for n, note in r.notes.items() if note]
    extra += [f"- skipped: {s}" for s in r.skipped]
    extra += [f"- WARNING {n}: {c[2]}" for n, c in r.checks.items() if c[2]]
    return table + ("\n" + "\n".join(extra) if extra else "")


def fastest_ratio(r: WorkloadResult) -> Tuple[Optional[str], float]:
    if not r.others:
        return None, float("nan")
    best = min(r.others, key=lambda n: r.timings[n].median)
    return best, r.timings[best].median / r.timings[r.reference].median


def workloads_markdown(args, results: List[WorkloadResult], peak: Peak) -> str:
    out = [f"Threads: {args.threads} (torch.set_num_threads, ORT intra_op_num_threads with inter_op 1, "
           f"mh.Engine(num_threads)); {'quick' if args.quick else 'full'} run"
           + (f", {args.repeats} repeats" if args.repeats else ", repeats sized to ~"
              + ("0.8" if args.quick else "3.5") + " s per workload") + "."]
    out.append("Ratio = peer time / multihead time (> 1: multihead is faster). % peak = multihead's GFLOP/s "
               f"over the measured {peak.threads}-thread FMA peak ({peak.all_threads:.1f} GFLOP/s).")
    # Summary across workloads.
    peer_names: List[str] = []
    for r in results:
        for n in r.others:
            if n not in peer_names:
                peer_names.append(n)
    header = ["workload", "multihead ms"] + [f"{n} ms" for n in peer_names] + \
             [f"{n.split()[0]}/mh" for n in peer_names] + ["fastest peer/mh", "mh GFLOP/s", "% peak"]
    rows, per_peer = [], {n: [] for n in peer_names}
    fastest = []
    for r in results:
        base = r.timings[r.reference].median
        gflops = r.workload.flops / base / 1e9
        pct = gflops / peak.all_threads * 100 if peak.all_threads > 0 else float("nan")
        row = [r.workload.name, fmt_ms(base)]
        row += [fmt_ms(r.timings[n].median) if n in r.timings else "-" for n in peer_names]
        for n in peer_names:
            if n in r.timings:
                ratio = r.timings[n].median / base
                per_peer[n].append(ratio)
                row.append(f"{ratio:.2f}")
            else:
                row.append("-")
        best, ratio = fastest_ratio(r)
        if best is not None:
            fastest.append(ratio)
        row += [f"{ratio:.2f} ({best.split()[0]})" if best else "-", fmt_gflops(gflops), fmt_pct(pct)]
        rows.append(row)
    if fastest:
        geo = ["**geomean**", ""] + [""] * len(peer_names) + [f"**{geomean(per_peer[n]):.2f}**" for n in peer_names]
        geo += [f"**{geomean(fastest):.2f}**", "", ""]
        rows.append(geo)
    out.append("")
    out.append(md_table(header, rows))
    for r in results:
        out.append(f"\n#### {r.workload.name}: {r.workload.summary}, {r.workload.flops / 1e9:.3g} GFLOP\n")
        out.append(workload_table(r, peak))
    return "\n".join(out)


def plot(results: List[WorkloadResult], path: Path, threads: int) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker  # noqa: F401  (matplotlib.ticker below)
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib)"
    rows = [(r.workload.name, *fastest_ratio(r)) for r in results]
    rows = [(name, best, ratio) for name, best, ratio in rows if best is not None]
    if not rows:
        return "no peer to compare with: no chart"
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows) + 2), 4.5))
    names = [n for n, _, _ in rows]
    ratios = [ratio for _, _, ratio in rows]
    colors = ["tab:green" if ratio >= 1 else "tab:red" for ratio in ratios]
    bars = ax.bar(names, ratios, color=colors)
    for bar, (_, best, ratio) in zip(bars, rows):
        ax.annotate(f"{ratio:.2f}\nvs {best.split()[0]}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("fastest peer time / multihead time")
    ax.set_title(f"multihead vs the fastest of torch / onnxruntime, {threads} thread(s); "
                 f"geomean {geomean(ratios):.2f}\n(> 1: multihead is faster)", fontsize=10)
    low, high = min(0.5, min(ratios) * 0.7), max(2.0, max(ratios) * 1.6)
    ax.set_ylim(low, high)
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 50, 100, 200) if low <= t <= high]
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{t:g}" for t in ticks]))
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart: {path.relative_to(ROOT)}"


# ---------------------------------------------------------------------------------------------
# Section: memory (peak RSS of a fresh process per run)

MEMORY_E, MEMORY_H = 1024, 16  # the shape: E=1024, H=16


def _vm(field_name: str) -> int:
    """A /proc/self/status figure in KiB (VmRSS, VmHWM), or -1."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def _reset_hwm() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0), so that it then measures one forward."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_child(spec: str) -> None:
    """Runs in a fresh process: `peer,L,threads`. Prints the forward's seconds and, for a
    forward, the RSS before it and the high-water mark during it (KiB; -1 when unknown)."""
    peer, L, threads = spec.split(",")
    L, threads = int(L), int(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((L, 1, MEMORY_E), dtype=np.float32)
    forward = None
    if peer in ("multihead", "multihead-baseline"):
        engine = mh.Engine(num_threads=threads)
        mh.library_path()  # the library is loaded
        if peer == "multihead":
            m = mh.MultiheadAttention(MEMORY_E, MEMORY_H, engine=engine)

            def forward(x=x):
                return m(x, x, x, need_weights=False)[0]
    else:
        import torch
        torch.set_num_threads(threads)
        xt = torch.from_numpy(x)
        if peer == "torch":
            torch.manual_seed(0)
            mod = torch.nn.MultiheadAttention(MEMORY_E, MEMORY_H).eval()

            def forward(x=xt):
                with torch.inference_mode():
                    return mod(x, x, x, need_weights=False)[0]
    seconds, before, hwm = 0.0, -1, -1
    if forward is not None:
        # One query row first: the module's one-time state (multihead packs its weights on the
        # first call) is not the call's memory.
        forward(x[:1].copy() if peer.startswith("multihead") else xt[:1].clone())
        before = _vm("VmRSS")
        reset = _reset_hwm()
        t0 = time.perf_counter()
        out = forward()
        seconds = time.perf_counter() - t0
        hwm = _vm("VmHWM") if reset else -1
        assert tuple(out.shape) == x.shape
    print(f"seconds={seconds:.6f} rss_before_kib={before} hwm_kib={hwm}")


# Runs the measured command as its only child and prints that child's max RSS. A launcher is
# needed because Linux carries the RSS high-water mark across exec: a child forked (or vforked)
# from this process, which has torch and onnxruntime loaded, would report at least our own RSS.
# The launcher is a bare `python -S`, a few MiB, so its RUSAGE_CHILDREN figure is the child's.
_LAUNCHER = """
import resource, subprocess, sys
try:
    r = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=float(sys.argv[1]))
except subprocess.TimeoutExpired:
    print("timed out after %s s" % sys.argv[1], file=sys.stderr)
    sys.exit(124)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
print("maxrss_kib=%d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
"""


def rss_of(spec: str, timeout: float) -> Tuple[float, float, float, str]:
    """(max RSS MiB, forward seconds, forward's own peak MiB, error) of a fresh process running
    memory_child(spec); the forward's own peak is its RSS high-water mark over the RSS before it."""
    cmd = [sys.executable, "-S", "-c", _LAUNCHER, str(timeout),
           sys.executable, str(Path(__file__).resolve()), "--_memory-child", spec]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return float("nan"), float("nan"), float("nan"), f"exit {proc.returncode}: {last[:200]}"
    figures = dict(item.split("=") for item in proc.stdout.split() if "=" in item)
    before, hwm = int(figures.get("rss_before_kib", -1)), int(figures.get("hwm_kib", -1))
    own = (hwm - before) / 1024.0 if before >= 0 and hwm >= 0 else float("nan")
    return int(figures["maxrss_kib"]) / 1024.0, float(figures.get("seconds", "nan")), own, ""  # KiB


def run_memory(args, torch) -> str:
    lengths = (4096, 16384)
    peers = ["multihead-baseline", "multihead"]
    if torch is not None and not args.no_torch:
        peers += ["torch-baseline", "torch"]
    print(f"\n== memory: self-attention N=1 E={MEMORY_E} H={MEMORY_H}, need_weights=False, "
          f"{args.threads} thread(s), max RSS of a fresh process per run")
    rows = []
    for L in lengths:
        found: Dict[str, float] = {}
        for peer in peers:
            rss, seconds, own, err = rss_of(f"{peer},{L},{args.threads}", timeout=900)
            found[peer] = rss
            base = None if peer.endswith("baseline") else found.get(f"{peer}-baseline")
            delta = rss - base if base is not None else float("nan")
            output_mib = L * MEMORY_E * 4 / 2**20
            extra = own - output_mib
            rows.append([str(L), peer, f"{rss:.0f}" if math.isfinite(rss) else "-",
                         f"{delta:+.0f}" if math.isfinite(delta) else "",
                         f"{own:.0f}" if math.isfinite(own) else "",
                         f"{extra:.0f}" if math.isfinite(extra) and not peer.endswith("baseline") else "",
                         f"{seconds:.2f}" if seconds else "", err])
            print(f"   L={L:6d} {peer:20s} max RSS {rss:8.0f} MiB"
                  + (f"  ({delta:+.0f} over baseline)" if math.isfinite(delta) else "")
                  + (f"  forward's own peak {own:.0f} MiB ({extra:.0f} beyond the output)" if math.isfinite(own) else "")
                  + (f"  forward {seconds:.2f} s" if seconds else "") + (f"  ERROR {err}" if err else ""))
    table = md_table(["L", "process", "max RSS MiB", "minus baseline", "forward's own peak MiB",
                      "beyond the output MiB", "forward s", "error"], rows, "rlrrrrrl")
    notes = ["max RSS: ru_maxrss of a fresh process (getrusage(RUSAGE_CHILDREN) in a bare launcher that "
             "runs only it). Baselines: the same process without module or forward: it imports the "
             "peer's library (multihead: numpy + the binding + an Engine; torch: import torch) and "
             "allocates the (L, 1, E) float32 input.",
             "minus baseline understates a peer whose import has a transient peak above its steady RSS "
             "(torch); forward's own peak does not: VmHWM during the forward (reset through "
             "/proc/self/clear_refs just before it) minus VmRSS before it, after a one-row call that "
             "builds the module's one-time state (multihead packs its weights then); outputs included; beyond the "
             "output: that minus the (L, 1, E) float32 output the call returns, i.e. the call's extra memory.",
             "For scale: the input is " + ", ".join(f"{L * MEMORY_E * 4 / 2**20:.0f} MiB at L={L}" for L in lengths)
             + "; Q, K, V and the output are as big each; one materialised H x L x L float32 score tensor "
             "would be " + ", ".join(f"{MEMORY_H * L * L * 4 / 2**20:.0f} MiB at L={L}" for L in lengths) + "."]
    print(table)
    return (f"Self-attention N=1, E={MEMORY_E}, H={MEMORY_H}, need_weights=False, {args.threads} thread(s).\n\n"
            + table + "\n\n" + "\n".join(f"- {n}" for n in notes))


# ---------------------------------------------------------------------------------------------
# Section: overhead (per-call cost of the seed-tiny shape)


def run_overhead(args, torch, ort) -> str:
    """Per-call time at --threads and, when that is more than one, at one thread."""
    w = WORKLOADS[0]
    calls, repeats = (3000, 7) if args.quick else (20000, 15)
    thread_counts = [args.threads] + ([1] if args.threads > 1 else [])
    print(f"\n== overhead: {w.name} ({w.summary}) from Python, median of {repeats} x {calls} calls, "
          f"alternating; thread(s): {', '.join(map(str, thread_counts))}")
    x = make_inputs(w, args.seed)
    tmod = torch_module(torch, w, args.seed) if torch is not None else None
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="multihead-onnx-"))
    guard = torch.inference_mode() if torch is not None else contextlib.nullcontext()
    try:
        with guard:
            for threads in thread_counts:
                if torch is not None:
                    torch.set_num_threads(threads)
                engine = mh.Engine(num_threads=threads)
                module = (mh.MultiheadAttention.from_torch(tmod, engine=engine) if tmod is not None
                          else mh.MultiheadAttention(w.E, w.H, engine=engine))
                q = x.query
                peers = [multihead_peer("multihead", module, w, x),
                         Peer("multihead, need_weights=False", lambda: module(q, q, q, need_weights=False),
                              lambda r: r)]
                if tmod is not None and not args.no_torch:
                    peers.append(torch_peer(torch, tmod, w, x))
                if ort is not None:
                    peer, why = ort_peer(torch, ort, tmod, w, x, threads, tmp, args.ort_spinning,
                                         args.onnx_exporter)
                    if peer is not None:
                        peers.append(peer)
                    else:
                        print(f"   onnxruntime skipped: {why}")
                for p in peers:
                    for _ in range(min(calls, 2000)):
                        p.call()
                samples = {p.name: [] for p in peers}
                for r in range(repeats):
                    for i in range(len(peers)):
                        p = peers[(r + i) % len(peers)]
                        samples[p.name].append(sample(p.call, calls))
                base = statistics.median(samples["multihead"])
                for name, s in samples.items():
                    med = statistics.median(s)
                    q1, _, q3 = statistics.quantiles(s, n=4)
                    rows.append([str(threads), name, f"{med * 1e6:.2f}", f"{(q3 - q1) / med * 100:.0f}%",
                                 f"{med / base:.2f}"])
                module.close()
                engine.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if torch is not None:
            torch.set_num_threads(args.threads)
    table = md_table(["threads", "peer", "us per call", "IQR", "ratio peer/mh"], rows, "rlrrr")
    print(table)
    return (f"Shape {w.name} ({w.summary}); numpy in/out for multihead and onnxruntime, torch tensors "
            f"for torch (module in eval(), under inference_mode); median of {repeats} samples of "
            f"{calls} back-to-back calls, peers alternating.\n\n" + table)


# ---------------------------------------------------------------------------------------------
# results.md: the latest run of each section


def write_results(sections: Dict[str, str]) -> None:
    CACHE.mkdir(exist_ok=True)
    titles = {"workloads": "Workloads", "memory": "Memory (--memory)", "overhead": "Per-call overhead (--overhead)"}
    for name, text in sections.items():
        (CACHE / f"section-{name}.md").write_text(text)
    parts = ["# Multihead vs PyTorch vs ONNX Runtime",
             "",
             "Written by `benchmarks/compare.py` (a benchmark, not a test). Each section is the latest "
             "run of that section; rerun `python benchmarks/compare.py [--memory] [--overhead] "
             "[--workloads]` to refresh it. Shared machines are noisy: read ratios, not absolute times, "
             "and rerun before drawing conclusions."]
    for name in SECTIONS:
        path = CACHE / f"section-{name}.md"
        if path.exists():
            parts += ["", f"## {titles[name]}", "", path.read_text().rstrip()]
    RESULTS_MD.write_text("\n".join(parts) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=cores(), help="threads of every peer (default: cores)")
    parser.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=None,
                        help="comma-separated workloads: " + ",".join(w.name for w in WORKLOADS))
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per workload (default: sized to ~3.5 s, or ~0.8 s with --quick)")
    parser.add_argument("--quick", action="store_true", help="shorter warm-up, fewer repeats, quicker peak")
    parser.add_argument("--no-onnx", action="store_true", help="skip onnxruntime")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip the torch peer (torch still provides the weights and the ONNX export)")
    parser.add_argument("--memory", action="store_true", help="peak RSS at L=4096 and 16384 (fresh processes)")
    parser.add_argument("--overhead", action="store_true", help="per-call time of the seed-tiny shape")
    parser.add_argument("--workloads", action="store_true",
                        help="also run the workload comparison when --memory or --overhead is given")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--onnx-exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                        help="torch.onnx.export flavour (auto: dynamo, then the TorchScript one)")
    parser.add_argument("--ort-spinning", action="store_true",
                        help="let ORT's idle workers spin (off by default: they would steal the cores "
                             "from the peer timed next)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results.md/png alone")
    parser.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    unknown = set(args.only or []) - {w.name for w in WORKLOADS}
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(w.name for w in WORKLOADS)}")

    start = time.perf_counter()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    run_main = args.workloads or not (args.memory or args.overhead)
    torch = import_torch(True)  # weights and the ONNX export come from torch even with --no-torch
    if torch is not None:
        torch.set_num_threads(args.threads)
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    ort = import_ort(not args.no_onnx and (run_main or args.overhead), torch)
    header = (f"{cpu_model()}, {cores()} core(s) available, {args.threads} thread(s); {versions(torch, ort)}; "
              f"{datetime.datetime.now().isoformat(timespec='seconds')}")
    print(header)

    sections: Dict[str, str] = {}
    results: List[WorkloadResult] = []
    if run_main:
        peak = measure_peak(args.threads, args.quick)
        peak_line = (f"Measured FMA peak (benchmarks/peak.c, best of the ISAs): {peak.per_core:.1f} GFLOP/s on "
                     f"one core, {peak.all_threads:.1f} GFLOP/s with {peak.threads} thread(s) [{peak.detail}]")
        print(peak_line)
        text, results = run_workloads(args, torch, ort, peak)
        elapsed = time.perf_counter() - start
        sections["workloads"] = f"{header}\n\n{peak_line}.\n\n{text}\n\nSection runtime {elapsed:.0f} s."
        print("\n== summary\n" + text.split("\n####")[0])
    if args.overhead:
        sections["overhead"] = f"{header}\n\n" + run_overhead(args, torch, ort)
    if args.memory:
        sections["memory"] = f"{header}\n\n" + run_memory(args, torch)
    total = time.perf_counter() - start
    if not args.no_write:
        write_results(sections)
        print(f"\nwrote {RESULTS_MD.relative_to(ROOT)}")
        if results:
            print(plot(results, RESULTS_PNG, args.threads))
    print(f"total runtime {total:.0f} s")


if __name__ == "__main__":
    main()
