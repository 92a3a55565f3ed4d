"""DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eqs. 6-7),
as diffusers' ``DDPMScheduler.step``."""

from __future__ import annotations

import torch

from gencore._validate import check_same_device
from gencore.diffusion.checks import check_alpha_prods, check_out, check_step_args, noise_kwargs
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import VP, Prediction, sqrt

__all__ = ["VARIANCE_TYPES", "coef", "ddpm_step", "ddpm_variance"]

VARIANCE_TYPES = ("fixed_small", "fixed_large")


def ddpm_variance(alpha_prod_t, alpha_prod_t_prev, variance_type: str = "fixed_small"):
    """The step's noise variance: max((1 - abar_prev) / (1 - abar_t) beta_t, 1e-20) (``fixed_small``,
    the posterior variance) or beta_t = 1 - abar_t / abar_prev (``fixed_large``)."""
    beta_t = 1.0 - alpha_prod_t / alpha_prod_t_prev
    if variance_type == "fixed_large":
        return beta_t
    var = (1.0 - alpha_prod_t_prev) / (1.0 - alpha_prod_t) * beta_t
    return var.clamp_min(1e-20) if isinstance(var, torch.Tensor) else max(var, 1e-20)


def coef(alpha_prod_t, alpha_prod_t_prev, *, pred: Prediction, variance_type: str, add_noise) -> Coef:
    """x_prev = sqrt(abar_prev) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t) x_t
    + sigma z, the posterior mean of q(x_prev | x_t, x_0) plus noise."""
    at, ap = alpha_prod_t, alpha_prod_t_prev
    ax, am = pred.x0(*VP.from_alpha_prod(at))
    cur_a = at / ap
    pz = 0.0
    if add_noise is not False:
        pz = sqrt(ddpm_variance(at, ap, variance_type))
        if isinstance(add_noise, torch.Tensor):
            pz = pz * add_noise.to(torch.float64)
    return Coef(ax=ax, am=am, px=sqrt(cur_a) * (1.0 - ap) / (1.0 - at), p0=sqrt(ap) * (1.0 - cur_a) / (1.0 - at),
                pz=pz)


def ddpm_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    alpha_prod_t: float | torch.Tensor,
    alpha_prod_t_prev: float | torch.Tensor,
    *,
    variance_type: str = "fixed_small",
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "epsilon",
    clip_sample: float | bool | None = None,
    add_noise: bool | torch.Tensor = True,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral DDPM step (Ho et al. 2020, eqs. 6-7), as ``DDPMScheduler.step``.

    With alpha_t = abar_t / abar_prev and beta_t = 1 - alpha_t (the step's own values, so
    strided timesteps work as in diffusers):

        x_prev = sqrt(abar_prev) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t) x_t
                 + sigma z,

    sigma^2 = max((1 - abar_prev) / (1 - abar_t) beta_t, 1e-20) (``fixed_small``, the
    posterior variance) or beta_t (``fixed_large``).

    Args:
        sample, model_output, alpha_prod_t, alpha_prod_t_prev: as in :func:`ddim_step`.
        variance_type: ``fixed_small`` or ``fixed_large``.
        add_noise: whether to add sigma z; diffusers adds it for every timestep t > 0, so pass
            ``t > 0`` (a bool, or a bool tensor (batch,) for per-sample timesteps).
        uncond_output, guidance_scale, prediction_type, clip_sample, noise, seed, stream,
            sample_offset, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample), shaped and typed like ``sample``.

    Example:
        >>> import torch
        >>> from gencore.diffusion import ddpm_step, make_schedule
        >>> s = make_schedule("linear")
        >>> x, eps = torch.randn(2, 4), torch.randn(2, 4)
        >>> prev, x0 = ddpm_step(x, eps, s.alpha_prod(500), s.alpha_prod(499), seed=0, stream=500)
        >>> prev.shape
        torch.Size([2, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, noise=noise)
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(f"variance_type must be one of {list(VARIANCE_TYPES)}, got {variance_type!r}")
    a_t, a_p = check_alpha_prods(alpha_prod_t, alpha_prod_t_prev, sample, pred, increasing=True)
    if isinstance(add_noise, torch.Tensor):
        if add_noise.dtype != torch.bool or add_noise.shape != (sample.shape[0],):
            raise ValueError(f"add_noise must be a bool or a bool tensor of shape ({sample.shape[0]},)")
        check_same_device(sample, add_noise, "sample", "add_noise")
        needed = True
    elif isinstance(add_noise, bool):
        needed = add_noise
    else:
        raise TypeError(f"add_noise must be a bool or a bool tensor, got {type(add_noise).__name__}")
    nkw = noise_kwargs(needed, noise, seed, stream, sample_offset, "ddpm_step with add_noise")
    k = coef(a_t, a_p, pred=pred, variance_type=variance_type, add_noise=add_noise)
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    out=check_out(out, sample, 2), **nkw)
