"""Engine: the worker threads that modules run on, one group per NUMA node."""

from __future__ import annotations

import ctypes
import json
import weakref
from ctypes import c_char_p, c_int32, c_int64, c_uint32
from typing import Any, Dict, Iterable, Optional, Union

from ._errors import Error, InvalidArgumentError, as_int
from ._lib import MH_ERR_INVALID_ARGUMENT, check, lib, mh_engine_options

# mh_policy and mh_executor of the header, by name.
POLICIES = {None: 0, "distribute": 1, "isolate": 2, "none": 3, "cpuset": 4}
EXECUTORS = {None: 0, "pinned": 1, "dispatch": 2, "plain": 3}


class mh_plan_shape(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("batch", c_int64),
        ("num_heads", c_int64),
        ("seq_len", c_int64),
        ("source_len", c_int64),
        ("embed_dim", c_int64),
        ("need_weights", c_int32),
    ]


def _invalid(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, MH_ERR_INVALID_ARGUMENT)


def _cpuset_text(cpuset: Union[str, Iterable[int]]) -> bytes:
    """A PU list as the library's text, from "0-3,8" or an iterable of PU indices."""
    if isinstance(cpuset, str):
        return cpuset.encode("utf-8")
    pus = sorted({as_int(pu, "cpuset entries") for pu in cpuset})
    if any(pu < 0 for pu in pus):
        raise _invalid(f"cpuset entries must be >= 0, got {pus}")
    return ",".join(str(pu) for pu in pus).encode("ascii")


class Engine:
    """Worker threads (and the machine's topology) shared by attention modules.

    ``Engine(num_threads=0, *, policy=None, cpuset=None, executor=None, mirror_weights=None,
    synthetic_topology=None, topology_xml=None, scratch_limit=None)``:

    - ``num_threads``: 0 means one per core of the policy's PUs.
    - ``policy``: ``"distribute"`` (every NUMA node, threads bound to their node), ``"isolate"``
      (the creating thread's node only), ``"none"`` (no binding), ``"cpuset"`` (the PUs of
      ``cpuset``: ``"0-3,8"`` or a list of ints; giving ``cpuset`` alone implies it). ``None``
      is distribute, falling back to no binding when there are more threads than PUs.
    - ``executor``: ``"pinned"`` (persistent bound threads, the default), ``"dispatch"`` or
      ``"plain"`` (no NUMA machinery; a measuring baseline).
    - ``mirror_weights``: copy packed weights to every node (``None``: when there are several).
    - ``synthetic_topology`` / ``topology_xml``: plan on another machine's topology (an hwloc
      synthetic description, or an ``lstopo`` XML file) instead of this one; no binding then.
    - ``scratch_limit``: bytes of scratch one attention call may use (projected Q/K/V, attention
      output, packed K/V) before it runs its heads in groups, each within the limit (one head at
      least); ``None`` is 32 MiB. Long sequences then take memory proportional to the group,
      not to all heads: self-attention at L=16384, E=1024 uses ~24 MiB of scratch instead of ~384 MiB.

    Results are bit-identical whatever the thread count, policy, executor and mirroring; the
    scratch limit changes only the rounding of the output projection's sum (split by group).
    Thread-safe. Close it with ``close()`` or a ``with`` block; modules created on it keep it
    alive, so closing an engine that still has open modules only releases it once the last of
    them is closed. ``describe()`` shows the topology and, for a shape, which node and workers
    take which tiles.
    """

    def __init__(self, num_threads: int = 0, *, policy: Optional[str] = None,
                 cpuset: Union[str, Iterable[int], None] = None, executor: Optional[str] = None,
                 mirror_weights: Optional[bool] = None, synthetic_topology: Optional[str] = None,
                 topology_xml: Optional[str] = None, scratch_limit: Optional[int] = None):
        num_threads = as_int(num_threads, "num_threads")
        if scratch_limit is not None:
            scratch_limit = as_int(scratch_limit, "scratch_limit")
            if scratch_limit <= 0:
                raise _invalid(f"scratch_limit must be a positive byte count or None, got {scratch_limit}")
        if num_threads < 0:
            raise _invalid(f"num_threads must be >= 0 (0 = one per core), got {num_threads}")
        if cpuset is not None and policy is None:
            policy = "cpuset"
        if policy not in POLICIES:
            raise _invalid(f"unknown policy {policy!r} (expected one of 'distribute', 'isolate', 'none', 'cpuset')")
        if policy == "cpuset" and cpuset is None:
            raise _invalid("policy 'cpuset' needs cpuset=, e.g. cpuset='0-3' or cpuset=[0, 1]")
        if cpuset is not None and policy != "cpuset":
            raise _invalid(f"cpuset= is only for policy 'cpuset', not {policy!r}")
        if executor not in EXECUTORS:
            raise _invalid(f"unknown executor {executor!r} (expected 'pinned', 'dispatch' or 'plain')")
        if mirror_weights is not None and not isinstance(mirror_weights, bool):
            raise TypeError(f"mirror_weights must be a bool or None, got {type(mirror_weights).__name__}")
        self._handle = None
        self._closing = False
        self._modules = weakref.WeakSet()
        self._lib = lib()
        options = mh_engine_options()
        self._lib.mh_engine_options_init_sized(ctypes.byref(options), ctypes.sizeof(options))
        options.num_threads = num_threads
        options.policy = POLICIES[policy]
        options.executor = EXECUTORS[executor]
        options.mirror_weights = -1 if mirror_weights is None else int(mirror_weights)
        options.cpuset = None if cpuset is None else _cpuset_text(cpuset)
        options.topology_synthetic = None if synthetic_topology is None else str(synthetic_topology).encode("utf-8")
        options.topology_xml = None if topology_xml is None else str(topology_xml).encode("utf-8")
        options.scratch_limit_bytes = 0 if scratch_limit is None else min(scratch_limit, 2**63 - 1)
        handle = ctypes.c_void_p()
        check(self._lib.mh_engine_create(ctypes.byref(options), ctypes.byref(handle)), "Engine")
        self._handle = handle.value

    @property
    def num_threads(self) -> int:
        """The number of worker threads a forward call uses."""
        out = ctypes.c_int32()
        check(self._lib.mh_engine_num_threads(self._live_handle(), ctypes.byref(out)), "Engine.num_threads")
        return out.value

    @property
    def policy(self) -> str:
        """The policy in force: 'distribute', 'isolate', 'none' or 'cpuset'."""
        return self.describe()["policy"]

    @property
    def executor(self) -> str:
        """The executor in use: 'pinned', 'dispatch' or 'plain'."""
        return self.describe()["executor"]

    def describe(self, batch: Optional[int] = None, num_heads: Optional[int] = None,
                 seq_len: Optional[int] = None, *, source_len: Optional[int] = None,
                 embed_dim: Optional[int] = None, need_weights: bool = False) -> Dict[str, Any]:
        """The engine as a dict (the JSON of ``mh_engine_describe``).

        Keys: ``topology``, ``numa_nodes`` (a list), ``threads``, ``policy``, ``cpuset``,
        ``executor``, ``mirror_weights``, ``caller_participates``, ``groups``, ``notes``,
        ``plan``. Given ``batch``, ``num_heads`` and ``seq_len`` (``source_len`` defaults to
        ``seq_len``, ``embed_dim`` to ``64 * num_heads``), ``plan`` lists the phases of a
        forward call of that shape and which node and workers take which tiles; else it is None.
        """
        handle = self._live_handle()
        shape_pointer = None
        given = [value is not None for value in (batch, num_heads, seq_len)]
        if any(given) or source_len is not None or embed_dim is not None:
            if not all(given):
                raise _invalid("describe() plans a shape from batch, num_heads and seq_len: give all three")
            sizes = {"batch": batch, "num_heads": num_heads, "seq_len": seq_len,
                     "source_len": 0 if source_len is None else source_len,
                     "embed_dim": 0 if embed_dim is None else embed_dim}
            shape = mh_plan_shape()
            self._lib.mh_plan_shape_init(ctypes.byref(shape))
            for name, value in sizes.items():
                value = as_int(value, name)
                if not -(2 ** 63) <= value < 2 ** 63:  # ctypes would wrap it silently
                    raise _invalid(f"{name} is out of range: {value}")
                setattr(shape, name, value)
            shape.need_weights = int(bool(need_weights))
            shape_pointer = ctypes.byref(shape)
        text = c_char_p()
        check(self._lib.mh_engine_describe(handle, shape_pointer, ctypes.byref(text)), "Engine.describe")
        return json.loads(text.value.decode("utf-8"))

    @property
    def closed(self) -> bool:
        return self._handle is None or self._closing

    def _live_handle(self):
        if self._handle is None or self._closing:
            raise Error("engine is closed")
        return self._handle

    def _attach(self, module) -> int:
        handle = self._live_handle()
        self._modules.add(module)
        return handle

    def _detach(self, module) -> None:
        self._modules.discard(module)
        if self._closing and not self._modules:
            self._destroy()

    def close(self) -> None:
        """Releases the engine (at once, or when its last open module is closed). Idempotent."""
        if self._handle is None:
            return
        self._closing = True
        if not self._modules:
            self._destroy()

    def _destroy(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.mh_engine_destroy(handle)

    def __enter__(self) -> "Engine":
        self._live_handle()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # Modules hold a strong reference to their engine, so none is alive here.
        try:
            self._destroy()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass

    def __repr__(self) -> str:
        if self.closed:
            return "Engine(closed)"
        return f"Engine(num_threads={self.num_threads})"
