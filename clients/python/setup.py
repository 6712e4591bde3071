"""Builds kvpool._native (the C++ batch client, ../cpp, on hiredis) with
pybind11 when the package is installed: `pip install clients/python`.

Needs Debian's pybind11-dev (or python3-pybind11), libhiredis-dev and g++.
Offline (no PyPI), add --no-build-isolation so pip uses the setuptools and
pybind11 already installed.
"""

import glob
import os

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CPP = os.path.join(HERE, "..", "cpp")


def pybind11_include() -> str:
    try:
        import pybind11
        return pybind11.get_include()
    except ImportError:  # pybind11-dev without python3-pybind11
        return "/usr/include"


native = Extension(
    "kvpool._native",
    sources=[os.path.relpath(p, HERE) for p in
             sorted(glob.glob(os.path.join(CPP, "src", "*.cc"))) if not p.endswith("_test.cc")]
    + ["src/native.cc"],
    include_dirs=[os.path.join(CPP, "include"), os.path.join(CPP, "src"), pybind11_include()],
    libraries=["hiredis"],
    extra_compile_args=["-std=c++20", "-O2", "-fvisibility=hidden"],
    language="c++",
)

setup(ext_modules=[native])
