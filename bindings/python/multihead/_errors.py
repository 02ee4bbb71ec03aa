"""Exceptions: one class per mh_status, each also a matching built-in exception."""

from __future__ import annotations

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
STATUS_ERRORS = {
    -1: InvalidArgumentError,
    -2: ShapeError,
    -3: OutOfMemoryError,
    -4: FileError,
    -5: FormatError,
    -6: UnsupportedError,
    -100: InternalError,
}
