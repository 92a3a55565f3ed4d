"""Diffusion models: schedules, forward noising and fused sampler steps.

- :mod:`~gencore.diffusion.schedules`: ``make_schedule`` (diffusers' beta schedules, float64),
  ``karras_sigmas``, ``timesteps`` (diffusers' spacings), ``interp_sigmas``;
- :mod:`~gencore.diffusion.paths`: noising paths (VP, VE, flow) and prediction types;
- :mod:`~gencore.diffusion.solvers`: one module per solver (DDPM, DDIM, Euler, Euler ancestral,
  Heun, DPM-Solver++ 2M, flow-matching Euler): its coefficients and its public step, with
  classifier-free guidance fused in;
- :mod:`~gencore.diffusion.ops`: ``affine_step``, the one fused op every step runs
  (:class:`Coef`), and ``q_sample``'s op;
- :mod:`~gencore.diffusion.reference`: the pure-PyTorch twins of the fused ops.
"""

from __future__ import annotations

from gencore.diffusion import steps
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import affine_step
from gencore.diffusion.schedules import (
    Schedule,
    interp_sigmas,
    karras_sigmas,
    make_schedule,
    timesteps,
)
from gencore.diffusion.steps import *  # noqa: F403 - the public step functions

__all__ = [
    "Coef",
    "Schedule",
    "affine_step",
    "interp_sigmas",
    "karras_sigmas",
    "make_schedule",
    "timesteps",
    *steps.__all__,
]

from gencore.diffusion.gmm import GaussianMixture
from gencore.diffusion.guidance import (
    classifier_guided_denoiser,
    classifier_guided_model,
    classifier_log_prob_grad,
)
from gencore.diffusion.k_sampling import (
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_euler,
    sample_euler_ancestral,
    sample_flow_match_euler,
    sample_heun,
)
from gencore.diffusion.sampling import sample
from gencore.diffusion.training import diffusion_loss, drop_labels

__all__ += [
    "GaussianMixture",
    "classifier_guided_denoiser",
    "classifier_guided_model",
    "classifier_log_prob_grad",
    "diffusion_loss",
    "drop_labels",
    "sample",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_flow_match_euler",
    "sample_heun",
]
