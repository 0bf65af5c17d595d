"""Builds the classifier's compiled scoring kernel when the package is installed.

Everything else about the package is declared in pyproject.toml. The kernel is a plain
CPython extension module (``services.router.classification._scores``): it needs a C compiler
and Python's own headers, nothing else (no numpy headers, no Cython).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "services.router.classification._scores",
            sources=["services/router/classification/_scores.c"],
            libraries=["m"],
        ),
    ],
)
