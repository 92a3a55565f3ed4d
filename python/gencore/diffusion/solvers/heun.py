"""Heun's second-order steps (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", Algorithm 1), as diffusers' ``HeunDiscreteScheduler.step``."""

from __future__ import annotations

import torch

from gencore.diffusion.checks import check_out, check_sigmas, check_step_args
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import Prediction
from gencore.diffusion.solvers.euler import sigma_derivative

__all__ = ["coef", "heun_step"]


def coef(sigma, sigma_next, *, pred: Prediction, stage: int) -> Coef:
    """Stage 1: x_euler = x + (sigma_next - sigma) d, aux = d. Stage 2 (history h1 = d, h2 = x):
    x_next = x + (sigma_next - sigma) (d + d') / 2, aux = (d + d') / 2."""
    dt = sigma_next - sigma
    if stage == 1:
        return Coef(px=1.0, pd=dt, qd=1.0, **sigma_derivative(pred, sigma))
    return Coef(pd=0.5 * dt, p1=0.5 * dt, p2=1.0, qd=0.5, q1=0.5, **sigma_derivative(pred, sigma_next))


def heun_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    *,
    stage: int = 1,
    derivative: torch.Tensor | None = None,
    original_sample: torch.Tensor | None = None,
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "epsilon",
    clip_sample: float | bool | None = None,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stage of Heun's second-order step (Karras et al. 2022, Algorithm 1), as
    ``HeunDiscreteScheduler.step``.

    Stage 1 (model evaluated at (x, sigma)): x_0 = prediction with sigma, d = (x - x_0) / sigma,
    returns ``(x_euler, x_0, d)`` with x_euler = x + (sigma_next - sigma) d. That is the whole
    step when sigma_next == 0 (k-diffusion and diffusers end with an Euler step).

    Stage 2 (model evaluated at (x_euler, sigma_next)): pass ``sample=x_euler``, the same
    sigma/sigma_next, ``derivative=d`` and ``original_sample=x`` from stage 1; x_0 is converted
    with sigma_next, d' = (x_euler - x_0) / sigma_next, and it returns
    ``(x + (sigma_next - sigma) (d + d') / 2, x_0, (d + d') / 2)``.

    Args:
        sample: x (stage 1) or x_euler (stage 2), (batch, ...).
        model_output: prediction at that point, (batch, ...).
        sigma, sigma_next: the step's noise levels (the same in both stages), float or (batch,).
        stage: 1 or 2.
        derivative: stage 2 only: the derivative returned by stage 1.
        original_sample: stage 2 only: the sample stage 1 started from.
        uncond_output, guidance_scale, prediction_type, clip_sample, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample, derivative).

    Example:
        >>> import torch
        >>> from gencore.diffusion import heun_step
        >>> x = 10.0 * torch.randn(2, 4)
        >>> x1, x0, d = heun_step(x, torch.randn(2, 4), 10.0, 5.0, stage=1)
        >>> x2, x0, d = heun_step(x1, torch.randn(2, 4), 10.0, 5.0, stage=2, derivative=d, original_sample=x)
        >>> x2.shape
        torch.Size([2, 4])
    """
    if stage not in (1, 2) or isinstance(stage, bool):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    if stage == 2 and (derivative is None or original_sample is None):
        raise ValueError("stage 2 needs derivative and original_sample from stage 1")
    if stage == 1 and (derivative is not None or original_sample is not None):
        raise ValueError("derivative and original_sample are stage-2 arguments; stage 1 takes neither")
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, derivative=derivative, original_sample=original_sample)
    sg, sn = check_sigmas(sigma, sigma_next, sample, next_lo_open=(stage == 2))
    history = () if stage == 1 else (derivative, original_sample)
    return run_step(coef(sg, sn, pred=pred, stage=stage), sample, model_output, uncond_output=uncond_output,
                    guidance_scale=g, clip=clip, history=history, want_aux=True, out=check_out(out, sample, 3))
