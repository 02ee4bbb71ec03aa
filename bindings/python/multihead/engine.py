"""Engine: the worker threads that modules run on."""

from __future__ import annotations

import ctypes
import operator
import weakref

from ._errors import Error, InvalidArgumentError
from ._lib import MH_ERR_INVALID_ARGUMENT, check, lib, mh_engine_options


class Engine:
    """Worker threads (and the machine's topology) shared by attention modules.

    ``Engine(num_threads=0)``: 0 means one thread per core. Thread-safe. Close it with
    ``close()`` or a ``with`` block; modules created on it keep it alive, so closing an engine
    that still has open modules only releases it once the last of them is closed.
    """

    def __init__(self, num_threads: int = 0):
        if isinstance(num_threads, bool):
            raise TypeError("num_threads must be an int, got bool")
        num_threads = operator.index(num_threads)  # TypeError for floats and strings
        if num_threads < 0:
            raise InvalidArgumentError(f"num_threads must be >= 0 (0 = one per core), got {num_threads}",
                                       MH_ERR_INVALID_ARGUMENT)
        self._handle = None
        self._closing = False
        self._modules = weakref.WeakSet()
        self._lib = lib()
        options = mh_engine_options()
        self._lib.mh_engine_options_init(ctypes.byref(options))
        options.num_threads = num_threads
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
