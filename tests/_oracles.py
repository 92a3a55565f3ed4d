"""Independent libraries used as oracles: k-diffusion's samplers, loaded without its package.

``import k_diffusion`` imports torchvision (for training utilities) and fails in a CPU-only
environment without it. ``k_diffusion/sampling.py`` itself only needs ``utils.append_dims``,
so it is loaded from its file under a stub parent package whose ``utils`` provides that.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest

__all__ = ["diffusers_or_skip", "k_sampling"]

_CACHE: dict[str, types.ModuleType] = {}


def _append_dims(x, target_dims):
    dims_to_append = target_dims - x.ndim
    if dims_to_append < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * dims_to_append]


def k_sampling() -> types.ModuleType:
    """k-diffusion's ``sampling`` module (skips the test when k-diffusion is not installed)."""
    if "sampling" in _CACHE:
        return _CACHE["sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("k-diffusion is not installed")
    for dep in ("torchsde", "torchdiffeq", "scipy"):
        if importlib.util.find_spec(dep) is None:
            pytest.skip(f"k-diffusion's sampling module needs {dep}")
    root = next(iter(spec.submodule_search_locations))
    name = "_gencore_oracle_k_diffusion"
    pkg = types.ModuleType(name)
    pkg.__path__ = [root]
    utils = types.ModuleType(f"{name}.utils")
    utils.append_dims = _append_dims
    pkg.utils = utils
    sys.modules[name] = pkg
    sys.modules[f"{name}.utils"] = utils
    sspec = importlib.util.spec_from_file_location(f"{name}.sampling", f"{root}/sampling.py")
    mod = importlib.util.module_from_spec(sspec)
    sys.modules[f"{name}.sampling"] = mod
    sspec.loader.exec_module(mod)
    _CACHE["sampling"] = mod
    return mod


def diffusers_or_skip():
    """The diffusers package, or a skip when it is not installed."""
    return pytest.importorskip("diffusers")
