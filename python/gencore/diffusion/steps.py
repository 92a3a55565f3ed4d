"""The public step functions, one per solver (:mod:`gencore.diffusion.solvers`, where the calling
convention they share is described), and the forward-noising ``q_sample``."""

from __future__ import annotations

from gencore.diffusion.forward import q_sample
from gencore.diffusion.paths import PREDICTIONS
from gencore.diffusion.solvers import (
    ddim_step,
    ddpm_step,
    dpmpp_2m_lower_order,
    dpmpp_2m_step,
    euler_ancestral_step,
    euler_step,
    flow_match_euler_step,
    heun_step,
)

__all__ = [
    "PREDICTION_TYPES",
    "ddim_step",
    "ddpm_step",
    "dpmpp_2m_lower_order",
    "dpmpp_2m_step",
    "euler_ancestral_step",
    "euler_step",
    "flow_match_euler_step",
    "heun_step",
    "q_sample",
]

PREDICTION_TYPES = tuple(PREDICTIONS)
