"""Ancestral Euler steps, as diffusers' ``EulerAncestralDiscreteScheduler.step`` and
k-diffusion's ``sample_euler_ancestral`` (Crowson; Song et al. 2021, "Score-Based Generative
Modeling through Stochastic Differential Equations")."""

from __future__ import annotations

import torch

from gencore.diffusion.checks import check_out, check_real, check_sigmas, check_step_args, noise_kwargs
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import Prediction, max0, sqrt
from gencore.diffusion.solvers.euler import sigma_derivative

__all__ = ["ancestral_sigmas", "coef", "euler_ancestral_step"]


def ancestral_sigmas(sigma, sigma_next, eta: float = 1.0):
    """(sigma_down, sigma_up) of k-diffusion's ``get_ancestral_step``."""
    if not isinstance(sigma, torch.Tensor) and sigma * sigma == 0.0:
        # sigma^2 underflows (sigma below about 1e-162): the same value as sigma_next sqrt(1 - r^2)
        r = sigma_next / sigma
        up = eta * sigma_next * sqrt(max0(1.0 - r * r))
    else:
        up = eta * sqrt(max0(sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma)))
    if isinstance(up, torch.Tensor):
        up = torch.minimum(up, sigma_next) if isinstance(sigma_next, torch.Tensor) else up.clamp_max(sigma_next)
    else:
        up = min(up, sigma_next)
    return sqrt(max0(sigma_next * sigma_next - up * up)), up


def coef(sigma, sigma_next, *, pred: Prediction, eta: float, s_noise: float, noisy: bool) -> Coef:
    """x_next = x + (sigma_down - sigma) d + s_noise sigma_up z."""
    down, up = ancestral_sigmas(sigma, sigma_next, eta)
    return Coef(px=1.0, pd=down - sigma, pz=up * s_noise if noisy else 0.0, **sigma_derivative(pred, sigma))


def euler_ancestral_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
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
    """One ancestral Euler step, as ``EulerAncestralDiscreteScheduler.step`` and k-diffusion's
    ``sample_euler_ancestral`` (with its ``get_ancestral_step``).

    sigma_up = min(sigma_next, eta sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2)),
    sigma_down = sqrt(sigma_next^2 - sigma_up^2), d = (x - x_0) / sigma and

        x_next = x + (sigma_down - sigma) d + s_noise sigma_up z.

    Noise is needed unless eta == 0 or sigma_next == 0 (host floats).

    Args:
        sample: x at ``sigma`` (k-diffusion space), (batch, ...).
        model_output: prediction, (batch, ...).
        sigma, sigma_next: noise levels, float or (batch,); sigma > 0.
        eta, s_noise: ancestral noise amount and scale (1.0 each in diffusers).
        uncond_output, guidance_scale, prediction_type, clip_sample, noise, seed, stream,
            sample_offset, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample).

    Example:
        >>> import torch
        >>> from gencore.diffusion import euler_ancestral_step
        >>> x = 10.0 * torch.randn(2, 4)
        >>> prev, x0 = euler_ancestral_step(x, torch.randn(2, 4), 10.0, 5.0, seed=1, stream=0)
        >>> prev.shape
        torch.Size([2, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, noise=noise)
    sg, sn = check_sigmas(sigma, sigma_next, sample)
    eta = check_real(eta, "eta", 0.0)
    s_noise = check_real(s_noise, "s_noise")
    needed = eta > 0 and not (isinstance(sn, float) and sn == 0.0)
    nkw = noise_kwargs(needed, noise, seed, stream, sample_offset, "euler_ancestral_step")
    k = coef(sg, sn, pred=pred, eta=eta, s_noise=s_noise, noisy=needed)
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    out=check_out(out, sample, 2), **nkw)
