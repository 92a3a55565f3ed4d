"""Euler steps of the probability-flow ODE in sigma with Karras' churn (Karras et al. 2022,
"Elucidating the Design Space of Diffusion-Based Generative Models", Algorithm 2), as diffusers'
``EulerDiscreteScheduler.step`` and k-diffusion's ``sample_euler``."""

from __future__ import annotations

import numbers

import torch

from gencore.diffusion.checks import check_out, check_real, check_sigmas, check_step_args, noise_kwargs
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import V_PREDICTION, VE, Prediction, max0, sqrt

__all__ = ["churn_gamma", "coef", "euler_step", "sigma_derivative"]


def churn_gamma(s_churn: float, num_steps: int, sigma, s_tmin: float = 0.0, s_tmax: float = float("inf")):
    """Karras' gamma: min(s_churn / num_steps, sqrt(2) - 1) where s_tmin <= sigma <= s_tmax, else 0."""
    gamma0 = min(s_churn / num_steps, 2**0.5 - 1) if s_churn > 0 else 0.0
    if isinstance(sigma, torch.Tensor):
        inside = (sigma >= s_tmin) & (sigma <= s_tmax)
        return torch.where(inside, torch.tensor(gamma0, dtype=torch.float64, device=sigma.device), 0.0)
    return gamma0 if s_tmin <= sigma <= s_tmax else 0.0


def sigma_derivative(pred: Prediction, sigma_eps, sigma_v=None) -> dict:
    """The fields of d = (x - x_0) / sigma on k-diffusion's x = x_0 + sigma eps, with x_0
    converted at ``sigma_eps`` (at ``sigma_v`` for v-prediction, as diffusers does with churn)."""
    s_conv = sigma_v if pred is V_PREDICTION and sigma_v is not None else sigma_eps
    ax, am = VE.x0(pred, s_conv)
    return {"ax": ax, "am": am, "ex": 1.0 / sigma_eps, "e0": -1.0 / sigma_eps}


def coef(sigma, sigma_next, *, pred: Prediction, gamma=0.0, s_noise: float = 1.0, churn: bool = False) -> Coef:
    """x_hat = x + s_noise sqrt(sigma_hat^2 - sigma^2) z with sigma_hat = sigma (1 + gamma), then
    x_next = x_hat + (sigma_next - sigma_hat) d."""
    sh = sigma * (gamma + 1.0)
    kpre = s_noise * sqrt(max0(sh * sh - sigma * sigma)) if churn else 0.0
    return Coef(kpre=kpre, px=1.0, pd=sigma_next - sh, **sigma_derivative(pred, sh, sigma))


def euler_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    *,
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "epsilon",
    clip_sample: float | bool | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    num_steps: int | None = None,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the probability-flow ODE in sigma (Karras et al. 2022, Algorithm 2),
    as ``EulerDiscreteScheduler.step``.

    The sample lives in k-diffusion's space x = x_0 + sigma eps (diffusers' Euler sample; the
    model sees ``x / sqrt(sigma^2 + 1)``). With churn, gamma = min(s_churn / num_steps,
    sqrt(2) - 1) when s_tmin <= sigma <= s_tmax (else 0), sigma_hat = sigma (1 + gamma) and
    x_hat = x + s_noise sqrt(sigma_hat^2 - sigma^2) z; then

        x_0 = prediction at (x_hat, sigma_hat),  d = (x_hat - x_0) / sigma_hat,
        x_next = x_hat + (sigma_next - sigma_hat) d.

    As in diffusers, the model output is the one computed at (x, sigma) and v-prediction is
    converted with sigma, epsilon with sigma_hat.

    Args:
        sample: x at ``sigma``, (batch, ...).
        model_output: prediction, (batch, ...).
        sigma, sigma_next: current and next noise level (float or (batch,)); sigma > 0.
        s_churn, s_tmin, s_tmax, s_noise: Karras' stochastic churn (noise drawn only if s_churn > 0).
        num_steps: the loop's number of steps (``len(sigmas) - 1``), needed when s_churn > 0.
        uncond_output, guidance_scale, prediction_type, clip_sample, noise, seed, stream,
            sample_offset, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample), shaped and typed like ``sample``.

    Example:
        >>> import torch
        >>> from gencore.diffusion import euler_step
        >>> x = 14.6 * torch.randn(2, 4)
        >>> prev, x0 = euler_step(x, torch.randn(2, 4), 14.6, 10.0)
        >>> prev.shape
        torch.Size([2, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, noise=noise)
    sg, sn = check_sigmas(sigma, sigma_next, sample)
    s_churn = check_real(s_churn, "s_churn", 0.0)
    s_tmin = check_real(s_tmin, "s_tmin")
    s_tmax = check_real(s_tmax, "s_tmax")
    s_noise = check_real(s_noise, "s_noise")
    churn = s_churn > 0
    if churn and (not isinstance(num_steps, numbers.Integral) or isinstance(num_steps, bool) or num_steps < 1):
        raise ValueError(f"num_steps (the loop's step count) must be a positive integer when s_churn > 0, "
                         f"got {num_steps!r}")
    gamma = churn_gamma(s_churn, int(num_steps), sg, s_tmin, s_tmax) if churn else 0.0
    churn = isinstance(gamma, torch.Tensor) or gamma > 0  # no noise outside [s_tmin, s_tmax]
    nkw = noise_kwargs(churn, noise, seed, stream, sample_offset, "euler_step with s_churn > 0")
    k = coef(sg, sn, pred=pred, gamma=gamma, s_noise=s_noise, churn=churn)
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    out=check_out(out, sample, 2), **nkw)
