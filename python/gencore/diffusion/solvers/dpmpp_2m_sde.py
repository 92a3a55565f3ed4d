"""DPM-Solver++(2M) SDE (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", the SDE variant of Algorithm 2), as k-diffusion's ``sample_dpmpp_2m_sde``
and diffusers' ``DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")`` (eta = 1). Its
coefficients are DPM-Solver++(2M)'s with eta > 0 (:func:`gencore.diffusion.solvers.dpmpp_2m.coef`)."""

from __future__ import annotations

import math

import torch

from gencore.diffusion.checks import (
    check_out,
    check_real,
    check_sigmas,
    check_step_args,
    coef_arg,
    in_range,
    noise_kwargs,
)
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import path
from gencore.diffusion.solvers.dpmpp_2m import coef

__all__ = ["SOLVER_TYPES", "dpmpp_2m_sde_step"]

SOLVER_TYPES = ("midpoint", "heun")


def dpmpp_2m_sde_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    *,
    prev_x0: torch.Tensor | None = None,
    sigma_prev: float | torch.Tensor | None = None,
    eta: float = 1.0,
    s_noise: float = 1.0,
    solver_type: str = "midpoint",
    parameterization: str = "vp",
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "epsilon",
    clip_sample: float | bool | None = None,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DPM-Solver++(2M) SDE step; eta = 0 is the deterministic DPM-Solver++(2M).

    Args:
        sample: x at ``sigma`` in the chosen ``parameterization``, (batch, ...).
        model_output: prediction, (batch, ...).
        sigma, sigma_next: Karras sigmas (float or (batch,)), as in
            :func:`~gencore.diffusion.dpmpp_2m_step`.
        prev_x0: the previous step's ``pred_original_sample`` (second order), or None (first order).
        sigma_prev: the previous step's sigma (needed with ``prev_x0``).
        eta, s_noise: the SDE's noise fraction (1 in k-diffusion and diffusers) and noise scale.
        solver_type: ``midpoint`` or ``heun`` (k-diffusion's two second-order corrections).
        parameterization: ``vp``, ``ve`` (k-diffusion) or ``flow``.
        uncond_output, guidance_scale, prediction_type, clip_sample, noise, seed, stream,
            sample_offset, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample); pass the latter as ``prev_x0`` to the next step.

    Example:
        >>> import torch
        >>> from gencore.diffusion import dpmpp_2m_sde_step
        >>> x = 10.0 * torch.randn(2, 4)
        >>> x1, d1 = dpmpp_2m_sde_step(x, torch.randn(2, 4), 10.0, 5.0, parameterization="ve", seed=0, stream=0)
        >>> x2, d2 = dpmpp_2m_sde_step(x1, torch.randn(2, 4), 5.0, 2.0, prev_x0=d1, sigma_prev=10.0,
        ...                            parameterization="ve", seed=0, stream=1)
        >>> x2.shape
        torch.Size([2, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, prev_x0=prev_x0, noise=noise)
    space = path(parameterization)
    if solver_type not in SOLVER_TYPES:
        raise ValueError(f"solver_type must be one of {list(SOLVER_TYPES)}, got {solver_type!r}")
    eta = check_real(eta, "eta", 0.0)
    s_noise = check_real(s_noise, "s_noise")
    flow = parameterization == "flow"
    hi = 1.0 if flow else math.inf
    sg, sn = check_sigmas(sigma, sigma_next, sample, hi=hi, hi_open=flow)
    sp = None
    if prev_x0 is not None:
        if sigma_prev is None:
            raise ValueError("sigma_prev (the previous step's sigma) is needed with prev_x0")
        sp = coef_arg(sigma_prev, "sigma_prev", sample)
        in_range(sp, "sigma_prev", 0.0, hi, lo_open=True, hi_open=flow)
        if isinstance(sp, float) and isinstance(sg, float) and sp == sg:
            raise ValueError(f"sigma_prev must differ from sigma for a second-order step, got {sp} for both")
    if eta > 0 and isinstance(sg, float) and isinstance(sn, float) and sn > sg:
        raise ValueError(f"sigma_next ({sn}) must be <= sigma ({sg}) with eta > 0: the SDE step goes towards "
                         "less noise")
    needed = eta > 0 and not (isinstance(sn, float) and sn == 0.0)
    nkw = noise_kwargs(needed, noise, seed, stream, sample_offset, "dpmpp_2m_sde_step with eta > 0")
    k = coef(sg, sn, pred=pred, space=space, eta=eta, s_noise=s_noise, solver_type=solver_type, sigma_prev=sp)
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    history=(prev_x0,) if sp is not None else (), out=check_out(out, sample, 2), **nkw)
