"""Build of the optional C module ``scsa.attention._native`` (everything else is in pyproject.toml).

The module holds the fused full-size passes of SCSA's CPU fast path. It needs no PyTorch headers:
plain C over raw pointers, so one build serves every PyTorch version. ``optional=True``: where no C
compiler exists the install goes on and the fast path runs the same passes as PyTorch ops.
"""

import sys

from setuptools import Extension, setup

# Reductions vectorise through `omp simd reduction` pragmas, loop by loop; no -ffast-math or
# global reassociation: the exp's argument reduction depends on the order of evaluation.
compile_args, link_args, libraries = [], [], []
if sys.platform != "win32":
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]
    libraries = ["m"]
if sys.platform.startswith("linux"):
    # libgomp: at run time the copy PyTorch already loaded under that soname serves both
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

setup(
    ext_modules=[
        Extension(
            "scsa.attention._native",
            sources=["src/scsa/attention/_native.c"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            libraries=libraries,
            optional=True,
        )
    ]
)
