"""Public switches of SCSA's fast path, in the manner of timm's ``set_fused_attn`` / ``use_fused_attn``.

Three independent switches, all process-wide:

* the **fast path** (:func:`set_fast_path`, :func:`fast_path`, :func:`use_fast_path`): off, every
  :class:`scsa.SCSA` runs its readable definition (``SCSA.forward_plain``), the one the oracle tests
  read; on (the default), SCSA runs :mod:`scsa.attention._scsa_fast` wherever it applies (eager CPU
  float tensors). Same numbers either way, within float rounding.
* the **C module** (:func:`set_native`, :func:`native`, :func:`use_native`): the fast path's fused
  passes in ``_native.c``; off, the fast path runs the same passes as PyTorch ops. It matters only
  while the fast path is on.
* the **compiled op** (:func:`set_compile_op`, :func:`compile_op`, :func:`use_compile_op`): on (the
  default), ``torch.compile`` captures each SCSA as one custom operator, ``torch.ops.scsa.scsa``,
  with a shape-only fake implementation: the compiler does not trace the block's internals, and the
  eager fast path runs inside the compiled graph. Off, the compiler traces the readable definition
  and fuses it with the layers around it (longer compiles, guards on the map sizes).

Initial state from the environment, read once at import: ``SCSA_FAST_PATH=0`` starts with the fast
path off, ``SCSA_NATIVE=0`` with the C module off (and not even loaded).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

__all__ = [
    "compile_op",
    "fast_path",
    "native",
    "native_available",
    "set_compile_op",
    "set_fast_path",
    "set_native",
    "use_compile_op",
    "use_fast_path",
    "use_native",
]


def _load_native() -> ModuleType | None:
    if os.environ.get("SCSA_NATIVE", "1") == "0":
        return None
    try:
        from scsa.attention import _native
    except ImportError:  # installed without a C compiler: the same passes run as PyTorch ops
        return None
    return _native


# the built C module, or None (not built, or SCSA_NATIVE=0)
_LOADED: ModuleType | None = _load_native()
# read by scsa.attention._scsa_fast on every forward: a module-global lookup, no call
FAST_PATH: bool = os.environ.get("SCSA_FAST_PATH", "1") != "0"
NATIVE: ModuleType | None = _LOADED
# read while torch.compile traces an SCSA (torch.compile guards on it: flipping it recompiles)
COMPILE_OP: bool = True


def use_fast_path() -> bool:
    """Whether :class:`scsa.SCSA` takes its fast path where it applies (the default) or always its
    readable definition."""
    return FAST_PATH


def set_fast_path(enabled: bool) -> None:
    """Turn SCSA's fast path on (default) or off for the whole process. Off: every SCSA runs
    ``forward_plain``, the readable definition, as under TorchScript, tracing or ``torch.compile``."""
    global FAST_PATH
    FAST_PATH = bool(enabled)


@contextlib.contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    """``with fast_path(False): ...`` runs the block with the fast path off, then restores the state."""
    before = FAST_PATH
    set_fast_path(enabled)
    try:
        yield
    finally:
        set_fast_path(before)


def native_available() -> bool:
    """Whether the C module was built and loaded (``SCSA_NATIVE=0`` at import: not loaded)."""
    return _LOADED is not None


def use_native() -> bool:
    """Whether the fast path uses the C module's passes now."""
    return NATIVE is not None


def set_native(enabled: bool) -> None:
    """Use the C module's passes in the fast path (default where it is built) or the PyTorch ops that
    replace them. Turning it on where it is not available is an error that says why."""
    global NATIVE
    if enabled and _LOADED is None:
        why = (
            "SCSA_NATIVE=0 was set when scsa was imported"
            if os.environ.get("SCSA_NATIVE", "1") == "0"
            else "scsa.attention._native was not built (no C compiler when scsa was installed)"
        )
        raise RuntimeError(f"set_native(True): the C module is not available: {why}")
    NATIVE = _LOADED if enabled else None


@contextlib.contextmanager
def native(enabled: bool) -> Iterator[None]:
    """``with native(False): ...`` runs the fast path without the C module, then restores the state."""
    global NATIVE
    before = NATIVE
    set_native(enabled)
    try:
        yield
    finally:
        NATIVE = before


def use_compile_op() -> bool:
    """Whether ``torch.compile`` captures each SCSA as the one custom operator ``torch.ops.scsa.scsa``
    (the default) or traces its readable definition."""
    return COMPILE_OP


def set_compile_op(enabled: bool) -> None:
    """Capture SCSA under ``torch.compile`` as one custom operator (default: compile time close to the
    plain backbone's, no recompilation for new map sizes, the eager fast path inside the graph) or
    let the compiler trace and fuse its readable definition. ``torch.export``, ONNX, FX, TorchScript
    and tracing always record the readable definition."""
    global COMPILE_OP
    COMPILE_OP = bool(enabled)


@contextlib.contextmanager
def compile_op(enabled: bool) -> Iterator[None]:
    """``with compile_op(False): torch.compile(model)(x)`` traces SCSA's internals for that compile."""
    before = COMPILE_OP
    set_compile_op(enabled)
    try:
        yield
    finally:
        set_compile_op(before)
