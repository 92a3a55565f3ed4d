"""The public step functions, one per solver (:mod:`gencore.diffusion.solvers`, which describes the
calling convention they share), and the forward-noising ``q_sample``."""

from __future__ import annotations

from gencore.diffusion.forward import q_sample
from gencore.diffusion.paths import PREDICTIONS
from gencore.diffusion.solvers import *  # noqa: F403 - every solver's public names
from gencore.diffusion.solvers import __all__ as _solver_names

__all__ = ["PREDICTION_TYPES", "q_sample", *_solver_names]

PREDICTION_TYPES = tuple(PREDICTIONS)
