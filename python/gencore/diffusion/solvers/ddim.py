"""DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12), as diffusers'
``DDIMScheduler.step``."""

from __future__ import annotations

import torch

from gencore.diffusion.checks import check_alpha_prods, check_out, check_real, check_step_args, noise_kwargs
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import VP, Prediction, max0, sqrt

__all__ = ["coef", "ddim_step"]


def coef(alpha_prod_t, alpha_prod_t_prev, *, eta: float, pred: Prediction, eps_from_clipped: bool) -> Coef:
    """x_prev = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z with
    sigma = eta sqrt((1 - abar_prev) / (1 - abar_t) (1 - abar_t / abar_prev))."""
    at, ap = alpha_prod_t, alpha_prod_t_prev
    a, s = VP.from_alpha_prod(at)
    ax, am = pred.x0(a, s)
    if eps_from_clipped:
        ex, em, e0 = 1.0 / s, 0.0, -a / s
    else:
        (ex, em), e0 = pred.eps(a, s), 0.0
    std = eta * sqrt((1.0 - ap) / (1.0 - at) * (1.0 - at / ap)) if eta > 0 else 0.0
    return Coef(ax=ax, am=am, ex=ex, em=em, e0=e0, p0=sqrt(ap), pd=sqrt(max0(1.0 - ap - std * std)),
                pz=std if eta > 0 else 0.0)


def ddim_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    alpha_prod_t: float | torch.Tensor,
    alpha_prod_t_prev: float | torch.Tensor,
    *,
    eta: float = 0.0,
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "epsilon",
    clip_sample: float | bool | None = None,
    use_clipped_model_output: bool = False,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12), as ``DDIMScheduler.step``.

    With x_0 and eps the model's predictions at x_t (after guidance and clipping),
    ``sigma = eta * sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))`` and

        x_prev = sqrt(abar_prev) x_0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z.

    eta = 0 is deterministic (DDIM); eta = 1 is DDPM's posterior variance. Noise is drawn only
    when eta > 0. As in diffusers, eps is re-derived from the clipped x_0 only when
    ``use_clipped_model_output``.

    Args:
        sample: x_t, (batch, ...).
        model_output: prediction at x_t, (batch, ...) (the conditional one when guided).
        alpha_prod_t: abar_t, float or (batch,) tensor.
        alpha_prod_t_prev: abar at the previous timestep (1.0 past the end, diffusers'
            ``set_alpha_to_one``), float or (batch,).
        eta: stochasticity, >= 0.
        uncond_output, guidance_scale, prediction_type, clip_sample, noise, seed, stream,
            sample_offset, out: see :mod:`gencore.diffusion.solvers`.
        use_clipped_model_output: re-derive eps from the clipped x_0.

    Returns:
        (prev_sample, pred_original_sample), both shaped and typed like ``sample``.

    Example:
        >>> import torch
        >>> from gencore.diffusion import ddim_step, make_schedule
        >>> s = make_schedule("linear")
        >>> x, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
        >>> prev, x0 = ddim_step(x, eps, s.alpha_prod(999), s.alpha_prod(979))
        >>> prev.shape
        torch.Size([2, 3, 4, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, noise=noise)
    eta = check_real(eta, "eta", 0.0)
    # eta = 0 also runs backwards (DDIM inversion); the noise of eta > 0 needs a step towards less noise.
    a_t, a_p = check_alpha_prods(alpha_prod_t, alpha_prod_t_prev, sample, pred, increasing=eta > 0)
    nkw = noise_kwargs(eta > 0, noise, seed, stream, sample_offset, "ddim_step with eta > 0")
    k = coef(a_t, a_p, eta=eta, pred=pred, eps_from_clipped=clip is not None and bool(use_clipped_model_output))
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    out=check_out(out, sample, 2), **nkw)
