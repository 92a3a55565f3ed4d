"""Drop-in adapters for other libraries: thin state holders whose every update is a gencore op.

- :mod:`gencore.integrations.diffusers`: diffusers-compatible schedulers (needs ``diffusers``);
- :mod:`gencore.integrations.k_diffusion`: k-diffusion's sampling functions.

Submodules are imported on first use, so ``import gencore`` never imports diffusers.
"""

from __future__ import annotations

import importlib

__all__ = ["diffusers", "k_diffusion"]


def __getattr__(name: str):
    if name in __all__:
        return importlib.import_module(f"gencore.integrations.{name}")
    raise AttributeError(f"module 'gencore.integrations' has no attribute {name!r}")
