"""gencore: native kernels for generative models in PyTorch.

Fused diffusion sampling steps, affine-coupling flows with exact log-determinants,
reparameterized sampling, counter-based noise, and the model families of a course on
generative models, each with a pure-PyTorch reference path.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from gencore import _native
from gencore.rng import rand, randn

__all__ = ["__version__", "info", "rand", "randn", "rng"]

_LAZY = {
    "rng", "vae", "diffusion", "flows", "naive_bayes", "gan", "models", "data", "metrics",
    "integrations", "bench", "checkpoint", "zoo",
}


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"gencore.{name}")
    raise AttributeError(f"module 'gencore' has no attribute {name!r}")


def info() -> dict:
    """What this installation runs on.

    Returns:
        dict with ``version``, ``torch``, ``cpu_native`` (CPU kernels loaded), ``cuda_compiled``,
        ``cuda_available`` (a CUDA device usable by the kernels), ``cuda_archs``, ``threads``,
        ``simd``, ``force_reference``, ``families`` and ``load_error``.

    Example:
        >>> import gencore
        >>> sorted(k for k in gencore.info() if k in ("version", "threads"))
        ['threads', 'version']
    """
    import torch

    lib = _native.lib()
    cuda_compiled = bool(lib is not None and lib.cuda_compiled)
    archs = [a for a in (lib.cuda_archs.split(",") if cuda_compiled else []) if a]
    return {
        "version": __version__,
        "torch": torch.__version__,
        "cpu_native": lib is not None,
        "cuda_compiled": cuda_compiled,
        "cuda_available": bool(cuda_compiled and torch.cuda.is_available() and lib.cuda_device_count() > 0),
        "cuda_archs": archs,
        "threads": torch.get_num_threads(),
        "simd": lib.simd() if lib is not None else "none",
        "force_reference": _native.force_reference(),
        "families": list(lib.families) if lib is not None else [],
        "load_error": _native.load_error(),
    }
