"""Build of offhook's compiled audio core.

The C kernels in csrc/ are plain C99 (no Python API); the Cython wrappers in
src/offhook/audio/ expose them. Portable -O3 for baseline x86-64 by default: the AVX2 and
AVX-512BW kernels are compiled per function (target attributes, csrc/simd.h) and chosen at run
time, so no -march flag is needed to get them. OFFHOOK_NATIVE=1 adds -march=native for local
builds only (never in a wheel we ship).
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-O3", "-std=c99", "-Wall", "-Wextra",
          "-fopenmp-simd",
          # Python builds with -fwrapv, which stops GCC turning the int16 dot products into
          # multiply-add vector code (2.7x slower); our C does not rely on signed wrap-around.
          "-fno-wrapv"]
if os.environ.get("OFFHOOK_NATIVE") == "1":
    CFLAGS.append("-march=native")

extensions = [
    Extension(
        "offhook.audio._core",
        sources=["src/offhook/audio/_core.pyx", *sorted(glob.glob("csrc/*.c"))],
        include_dirs=["csrc"],
        extra_compile_args=CFLAGS,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
