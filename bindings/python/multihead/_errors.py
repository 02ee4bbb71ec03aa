"""Exceptions: one class per mh_status, each also a matching built-in exception."""

from __future__ import annotations

import operator

__all__ = [
    "Error", "InvalidArgumentError", "ShapeError", "OutOfMemoryError", "FileError", "FormatError",
    "UnsupportedError", "InternalError", "LibraryNotFoundError",
]


class Error(Exception):
    """A failure reported by libmultihead (or a use of a closed handle).

    ``status`` is the ``mh_status`` value (0 when the error was raised by Python itself) and
    ``message`` the library's ``mh_last_error_message()``.
    """

    def __init__(self, message: str = "", status: int = 0):
        super().__init__(message)
        self.message = message
        self.status = status


class InvalidArgumentError(Error, ValueError):
    """MH_ERR_INVALID_ARGUMENT: a bad size or option, an unknown parameter name, a bad handle."""


class ShapeError(Error, ValueError):
    """MH_ERR_SHAPE: a rank, shape, dtype or stride that does not fit."""


class OutOfMemoryError(Error, MemoryError):
    """MH_ERR_OUT_OF_MEMORY: an allocation failed or a size product overflows."""


class FileError(Error, OSError):
    """MH_ERR_IO: a file cannot be read."""

    def __init__(self, message: str = "", status: int = 0):
        Error.__init__(self, message, status)

    def __str__(self) -> str:  # OSError's own __str__ would show "[Errno ...]" fields we never set
        return self.message


class FormatError(Error, ValueError):
    """MH_ERR_FORMAT: a malformed file (e.g. a broken safetensors header)."""


class UnsupportedError(Error):
    """MH_ERR_UNSUPPORTED: valid, but not supported (e.g. an int64 safetensors weight)."""


class InternalError(Error, RuntimeError):
    """MH_ERR_INTERNAL: a bug in libmultihead; please report it."""


class LibraryNotFoundError(Error, ImportError):
    """libmultihead.so could not be found or loaded."""

    def __init__(self, message: str = "", status: int = 0):
        Error.__init__(self, message, status)
        self.msg = message  # ImportError's attribute

    def __str__(self) -> str:
        return self.message


# mh_status -> exception class.
# The mh_status values (the header's; _lib re-exports them as MH_ERR_*).
_INVALID_ARGUMENT = -1

STATUS_ERRORS = {
    _INVALID_ARGUMENT: InvalidArgumentError,
    -2: ShapeError,
    -3: OutOfMemoryError,
    -4: FileError,
    -5: FormatError,
    -6: UnsupportedError,
    -100: InternalError,
}


# Argument checks shared by the modules and the engine.

def as_int(value, name: str) -> int:
    """``value`` as an int: ints, numpy integers and anything with ``__index__``; TypeError for
    bools, floats, strings and None."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def check_seed(seed: int) -> None:
    """InvalidArgumentError unless ``0 <= seed < 2**64`` (a uint64 seed)."""
    if not 0 <= seed < 1 << 64:
        raise InvalidArgumentError(f"seed must be in [0, 2**64), got {seed}", _INVALID_ARGUMENT)
