"""Loads the native extension ``gencore._C`` and is the one way Python calls its kernels.

``import gencore`` always works: when the extension is missing or fails to load, a single
warning says why and every op runs its pure-PyTorch reference. ``GENCORE_FORCE_REFERENCE=1``
forces the reference path.

How an op reaches a kernel (every family the same way):

- the public function asks :func:`direct_ok` once: eager calls on plain tensors run the op's
  implementation directly (through an ``autograd.Function`` when differentiable), everything
  else (``torch.compile``, fake tensors, subclasses, ``torch.func``) calls the registered
  custom op, whose implementation is the same function;
- the implementation asks :func:`use_native`: the kernel, or the pure-PyTorch reference;
- the kernel runs through :func:`launch`, e.g.
  ``launch("vae_forward", mu, mu, logvar, None, z, kl, n, D, seed, stream, offset)``: tensors
  and ``None`` travel as data pointers, and the launch context of ``like`` (dtype code, device
  index, CUDA stream, CPU threads; :func:`launch_context`) is appended as the last argument.
  The C++ binding turns the arguments into the family's params struct and calls the shared
  CPU/CUDA router (``csrc/common/launch.h``).

``ptr``, ``dtype_code``, ``device_index``, ``cuda_stream`` and ``threads`` are the building
blocks of the launch context, kept for callers that pass them one by one.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import torch

__all__ = [
    "FLOAT_DTYPES",
    "call",
    "cuda_stream",
    "device_index",
    "direct_ok",
    "dtype_code",
    "force_reference",
    "launch",
    "launch_context",
    "lib",
    "load_error",
    "ptr",
    "threads",
    "use_native",
]

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}

_lib: ModuleType | None = None
_error: str | None = None


def _truthy(value: str | None) -> bool:
    return bool(value) and value.strip().lower() not in ("", "0", "false", "no", "off")


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


_ENV_FORCE = "GENCORE_FORCE_REFERENCE"


def force_reference() -> bool:
    """True when ``GENCORE_FORCE_REFERENCE`` is set to a true value (read at every call)."""
    return _truthy(os.environ.get("GENCORE_FORCE_REFERENCE"))


def use_native(*tensors: torch.Tensor | None) -> bool:
    """Whether the native kernels can run on these tensors (same device is checked by callers):
    the extension is loaded, the reference is not forced, and each tensor (None is skipped) has a
    kernel dtype and lives on the CPU or, in a CUDA build, on a CUDA device."""
    if _lib is None or (_ENV_FORCE in os.environ and force_reference()):
        return False
    for t in tensors:
        if t is None:
            continue
        if t.dtype not in _DTYPE_CODES:
            return False
        if t.is_cuda:
            if not _lib.cuda_compiled:
                return False
        elif not t.is_cpu:
            return False
    return True


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def direct_ok(*tensors: torch.Tensor | None) -> bool:
    """The dispatcher-bypass rule, asked once by each public op: whether an eager call on these
    tensors (None is skipped) may run the op's implementation directly (through an
    ``autograd.Function`` when it is differentiable) instead of the registered custom op: the same
    function, so the same results, without the dispatcher's per-call cost. torch.compile, fake
    tensors, tensor subclasses and torch.func transforms use the registered op, which they know
    how to trace."""
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


def launch_context(t: torch.Tensor) -> tuple[int, int, int, int]:
    """``(dtype code, device index, CUDA stream, threads)`` of a kernel running on ``t``: the
    device index is -1 and the stream 0 on the CPU; threads is ``torch.get_num_threads()``.
    It is the ``launch`` argument of every kernel binding (C++ ``gencore::Launch``)."""
    if t.is_cuda:
        return _DTYPE_CODES[t.dtype], device_index(t), cuda_stream(t), torch.get_num_threads()
    return _DTYPE_CODES[t.dtype], -1, 0, torch.get_num_threads()


def launch(kernel: str, like: torch.Tensor, *args) -> None:
    """Runs ``gencore._C.<kernel>(*args, launch_context(like))``.

    Args:
        kernel: the binding's name, e.g. ``"vae_forward"``.
        like: the tensor whose dtype, device and stream the kernel runs with (its first input).
        *args: the binding's arguments in order; tensors (contiguous as the binding expects)
            and ``None`` (a null pointer) pass as data pointers, the rest as Python scalars.
    """
    getattr(_lib, kernel)(*args, launch_context(like))


def call(kernel: str, *args):
    """Runs ``gencore._C.<kernel>(*args)`` for host utilities that take no launch context (tensors
    and ``None`` pass as data pointers, as in :func:`launch`)."""
    return getattr(_lib, kernel)(*args)
