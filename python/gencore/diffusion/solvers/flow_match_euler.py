"""Flow-matching Euler steps (Lipman et al. 2023, "Flow Matching for Generative Modeling"; Esser
et al. 2024, "Scaling Rectified Flow Transformers"), as diffusers' ``FlowMatchEulerDiscreteScheduler.step``."""

from __future__ import annotations

import torch

from gencore.diffusion.checks import check_out, check_sigmas, check_step_args, noise_kwargs
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import EPSILON, FLOW, FLOW_VELOCITY, Prediction

__all__ = ["coef", "flow_match_euler_step"]


def coef(sigma, sigma_next, *, pred: Prediction, clipped: bool, stochastic: bool) -> Coef:
    """On x_sigma = (1 - sigma) x_0 + sigma eps with velocity u = eps - x_0: x_next = x +
    (sigma_next - sigma) u, or (``stochastic``) x_next = (1 - sigma_next) x_0 + sigma_next z."""
    ax, am = FLOW.x0(pred, sigma)
    if clipped or pred not in (FLOW_VELOCITY, EPSILON):  # u = (x - x_0) / sigma
        d = {"ex": 1.0 / sigma, "e0": -1.0 / sigma}
    elif pred is FLOW_VELOCITY:
        d = {"em": 1.0}
    else:  # u = eps - x_0
        d = {"em": 1.0, "e0": -1.0}
    if stochastic:
        return Coef(ax=ax, am=am, p0=1.0 - sigma_next, pz=sigma_next, **d)
    return Coef(ax=ax, am=am, px=1.0, pd=sigma_next - sigma, **d)


def flow_match_euler_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    *,
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "flow",
    clip_sample: float | bool | None = None,
    stochastic: bool = False,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One flow-matching Euler step (Lipman et al. 2023; Esser et al. 2024), as
    ``FlowMatchEulerDiscreteScheduler.step``.

    On the path x_sigma = (1 - sigma) x_0 + sigma eps with velocity u = eps - x_0:
    x_next = x + (sigma_next - sigma) u; with ``stochastic`` (diffusers'
    ``stochastic_sampling``) x_next = (1 - sigma_next) x_0 + sigma_next z, x_0 = x - sigma u.
    ``prediction_type`` defaults to ``flow`` (the model predicts u); ``epsilon``, ``sample``
    and ``v_prediction`` are converted to u. With ``clip_sample`` u is re-derived from the
    clipped x_0.

    Args:
        sample: x at ``sigma``, (batch, ...).
        model_output: prediction, (batch, ...).
        sigma, sigma_next: flow times in [0, 1] (float or (batch,)), sigma > 0.
        stochastic: re-noise to sigma_next from the x_0 prediction (needs noise).
        uncond_output, guidance_scale, prediction_type, clip_sample, noise, seed, stream,
            sample_offset, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample).

    Example:
        >>> import torch
        >>> from gencore.diffusion import flow_match_euler_step
        >>> x = torch.randn(2, 4)
        >>> prev, x0 = flow_match_euler_step(x, torch.randn(2, 4), 1.0, 0.75)
        >>> prev.shape
        torch.Size([2, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, noise=noise)
    sg, sn = check_sigmas(sigma, sigma_next, sample, hi=1.0)
    if prediction_type in ("epsilon", "v_prediction") and isinstance(sg, float) and sg >= 1.0:
        raise ValueError(f"prediction_type={prediction_type!r} needs sigma < 1 (x_0 is not identifiable at sigma=1)")
    if not isinstance(stochastic, bool):
        raise TypeError(f"stochastic must be a bool, got {type(stochastic).__name__}")
    nkw = noise_kwargs(stochastic, noise, seed, stream, sample_offset, "flow_match_euler_step with stochastic=True")
    k = coef(sg, sn, pred=pred, clipped=clip is not None, stochastic=stochastic)
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    out=check_out(out, sample, 2), **nkw)
