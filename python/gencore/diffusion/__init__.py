"""Diffusion models: schedules, forward noising and fused sampler steps.

- :mod:`~gencore.diffusion.schedules`: ``make_schedule`` (diffusers' beta schedules, float64),
  ``karras_sigmas``, ``timesteps`` (diffusers' spacings), ``interp_sigmas``;
- :mod:`~gencore.diffusion.steps`: pure step functions (DDPM, DDIM, Euler, Euler ancestral,
  Heun, DPM-Solver++ 2M, flow-matching Euler) with classifier-free guidance fused in, and
  ``q_sample``;
- :mod:`~gencore.diffusion.reference`: the pure-PyTorch twins of the fused ops.
"""

from __future__ import annotations

from gencore.diffusion.schedules import (
    Schedule,
    interp_sigmas,
    karras_sigmas,
    make_schedule,
    timesteps,
)
from gencore.diffusion.steps import (
    ddim_step,
    ddpm_step,
    dpmpp_2m_lower_order,
    dpmpp_2m_step,
    euler_ancestral_step,
    euler_step,
    flow_match_euler_step,
    heun_step,
    q_sample,
)

__all__ = [
    "Schedule",
    "ddim_step",
    "ddpm_step",
    "dpmpp_2m_lower_order",
    "dpmpp_2m_step",
    "euler_ancestral_step",
    "euler_step",
    "flow_match_euler_step",
    "heun_step",
    "interp_sigmas",
    "karras_sigmas",
    "make_schedule",
    "q_sample",
    "timesteps",
]
