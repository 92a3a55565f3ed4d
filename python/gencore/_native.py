"""Loads the native extension ``gencore._C`` and hands kernels the raw views they need.

``import gencore`` always works: when the extension is missing or fails to load, a single
warning says why and every op runs its pure-PyTorch reference. ``GENCORE_FORCE_REFERENCE=1``
forces the reference path.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch

__all__ = [
    "lib",
    "load_error",
    "force_reference",
    "use_native",
    "direct_ok",
    "dtype_code",
    "ptr",
    "device_index",
    "cuda_stream",
    "threads",
    "FLOAT_DTYPES",
]

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}

_lib: ModuleType | None = None
_error: str | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _load() -> None:
    global _lib, _error
    try:
        from gencore import _C  # type: ignore[attr-defined]
    except Exception as exc:  # ImportError, OSError from a broken build, ...
        _error = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            f"gencore: native kernels unavailable ({_error}); using the PyTorch reference path",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    _lib = _C


_load()


def lib() -> ModuleType | None:
    """The loaded extension module, or None."""
    return _lib


def load_error() -> str | None:
    """Why the extension failed to load, or None."""
    return _error


def force_reference() -> bool:
    """True when ``GENCORE_FORCE_REFERENCE`` is set to a true value (read at every call)."""
    return _truthy(os.environ.get("GENCORE_FORCE_REFERENCE"))


def use_native(*tensors: torch.Tensor) -> bool:
    """Whether the native kernels can run on these tensors (same device is checked by callers)."""
    if _lib is None or force_reference():
        return False
    for t in tensors:
        if t is None:
            continue
        if t.dtype not in _DTYPE_CODES:
            return False
        kind = t.device.type
        if kind == "cuda":
            if not _lib.cuda_compiled:
                return False
        elif kind != "cpu":
            return False
    return True


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def direct_ok(*tensors: torch.Tensor | None) -> bool:
    """Whether an eager call on these tensors may run the kernels through an
    ``autograd.Function`` instead of the registered custom op: the same results without the
    dispatcher's per-call cost. torch.compile, fake tensors, tensor subclasses and torch.func
    transforms use the registered op, which they know how to trace."""
    return (not torch.compiler.is_compiling() and not torch._C._are_functorch_transforms_active()
            and all(t is None or type(t) in _PLAIN for t in tensors))


def dtype_code(dtype: torch.dtype) -> int:
    return _DTYPE_CODES[dtype]


def ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def device_index(t: torch.Tensor) -> int:
    """-1 for CPU tensors, the CUDA device index otherwise."""
    if t.device.type == "cpu":
        return -1
    return t.device.index if t.device.index is not None else torch.cuda.current_device()


def cuda_stream(t: torch.Tensor) -> int:
    """The raw handle of the current CUDA stream on the tensor's device (0 on the CPU)."""
    if t.device.type != "cuda":
        return 0
    return torch.cuda.current_stream(t.device).cuda_stream


def threads() -> int:
    return torch.get_num_threads()
