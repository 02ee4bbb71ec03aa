"""Build hook: put libmultihead.so into the package (multihead/lib/) of the wheel.

The library comes from the repository this directory lives in: build/lib/libmultihead.so,
made by `make lib` (run here when the file is missing and the repository is around). Without
a repository (e.g. from an sdist) the package is built without it and finds the library
through MULTIHEAD_LIBRARY at run time. Everything else is in pyproject.toml.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent.parent
LIBRARY = "libmultihead.dylib" if sys.platform == "darwin" else "libmultihead.so"


def repository_library():
    """The repository's built library, building it with `make lib` when it is missing."""
    built = REPOSITORY / "build" / "lib" / LIBRARY
    is_repository = (REPOSITORY / "include" / "multihead.h").is_file() and (REPOSITORY / "Makefile").is_file()
    if not built.is_file() and is_repository and not os.environ.get("MULTIHEAD_NO_MAKE"):
        print(f"multihead: {built} is missing; running `make -C {REPOSITORY} lib`", flush=True)
        subprocess.run(["make", "-C", str(REPOSITORY), "lib"], check=True)
    return built if built.is_file() else None


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        source = repository_library()
        if source is None:
            print("multihead: no libmultihead to bundle; set MULTIHEAD_LIBRARY at run time", flush=True)
            return
        target = Path(self.build_lib) / "multihead" / "lib"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / LIBRARY)
        print(f"multihead: bundled {source}", flush=True)


class PlatformWheel(bdist_wheel):
    """The wheel carries a native library but no Python extension: py3-none-<platform>."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})
