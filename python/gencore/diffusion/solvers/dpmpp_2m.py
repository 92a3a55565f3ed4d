"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Algorithm 2, midpoint form), as diffusers' ``DPMSolverMultistepScheduler``
(``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``) and k-diffusion's ``sample_dpmpp_2m``."""

from __future__ import annotations

import math

import torch

from gencore.diffusion.checks import check_out, check_sigmas, check_step_args, coef_arg, in_range
from gencore.diffusion.coef import Coef
from gencore.diffusion.ops import run_step
from gencore.diffusion.paths import Path, Prediction, exp, expm1, path, sqrt

__all__ = ["coef", "dpmpp_2m_lower_order", "dpmpp_2m_step", "final_step"]


def final_step(sigma_next, **fields) -> Coef:
    """The step's coefficients, where per-sample ``sigma_next`` is 0 replaced by the final
    denoising step x_next = x_0 (x_0's own fields ``ax``, ``am`` are kept)."""
    if not isinstance(sigma_next, torch.Tensor):
        return Coef(**fields)
    last = sigma_next == 0
    keep = {"ax", "am"}
    for name, v in fields.items():
        if name not in keep:
            fields[name] = torch.where(last, 1.0 if name == "p0" else 0.0,
                                       v if isinstance(v, torch.Tensor) else torch.full_like(sigma_next, v))
    return Coef(**fields)


def coef(sigma, sigma_next, *, pred: Prediction, space: Path, sigma_prev=None, eta: float = 0.0,
         s_noise: float = 1.0, solver_type: str = "midpoint") -> Coef:
    """DPM-Solver++(2M), and its SDE variant for eta > 0. With lambda = log(alpha / sigma),
    h = lambda_next - lambda and g = -expm1(-(1 + eta) h):

        x_next = (sigma_t,next / sigma_t) e^(-eta h) x + alpha_t,next g x_0
                 + alpha_t,next w (x_0 - x_0,prev) + sigma_t,next sqrt(-expm1(-2 eta h)) s_noise z,

    w = 0 at first order, else g / (2 r) (``midpoint``) or (g / (-(1 + eta) h) + 1) / r (``heun``)
    with r = h_prev / h (history h1 = x_0,prev); x_next = x_0 where sigma_next = 0. At eta = 0 this
    is x_next = (sigma_t,next / sigma_t) x - alpha_t,next (exp(-h) - 1) D with
    D = x_0 + (x_0 - x_0,prev) / (2 r).
    """
    a_s, st_s = space.alpha_sigma(sigma)
    ax, am = pred.x0(a_s, st_s)
    if not isinstance(sigma_next, torch.Tensor) and sigma_next == 0:
        return Coef(ax=ax, am=am, p0=1.0)
    a_t, st_t = space.alpha_sigma(sigma_next)
    lam_s = space.log_snr(sigma)
    h = space.log_snr(sigma_next) - lam_s
    eta_h = eta * h
    g = -expm1(-h - eta_h)
    px = st_t / st_s
    if eta > 0:
        px = px * exp(-eta_h)
    p0, p1 = a_t * g, 0.0
    if sigma_prev is not None:
        inv_r = h / (lam_s - space.log_snr(sigma_prev))
        if solver_type == "midpoint":
            w = 0.5 * g * inv_r
        elif isinstance(h, torch.Tensor):  # (g / (-(1 + eta) h) + 1) -> 0 as h -> 0
            w = torch.where(h == 0, 0.0, (g / (-h - eta_h) + 1.0) * inv_r)
        else:
            w = 0.0 if h == 0 else (g / (-h - eta_h) + 1.0) * inv_r
        p0, p1 = a_t * (g + w), -a_t * w
    pz = st_t * sqrt(-expm1(-2.0 * eta_h)) * s_noise if eta > 0 else 0.0
    return final_step(sigma_next, ax=ax, am=am, px=px, p0=p0, p1=p1, pz=pz)


def dpmpp_2m_lower_order(step_index: int, num_steps: int, *, lower_order_final: bool = True,
                         euler_at_final: bool = False, final_sigmas_type: str = "zero") -> bool:
    """diffusers' rule for a first-order DPM-Solver++ step at ``step_index``: the first step,
    and the last one when ``euler_at_final``, or ``lower_order_final`` with fewer than 15
    steps, or a zero final sigma.

    Example:
        >>> from gencore.diffusion import dpmpp_2m_lower_order
        >>> [dpmpp_2m_lower_order(i, 4) for i in range(4)]
        [True, False, False, True]
    """
    if step_index == 0:
        return True
    final = step_index == num_steps - 1
    return final and (euler_at_final or (lower_order_final and num_steps < 15) or final_sigmas_type == "zero")


def dpmpp_2m_step(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    *,
    prev_x0: torch.Tensor | None = None,
    sigma_prev: float | torch.Tensor | None = None,
    lower_order: bool = False,
    parameterization: str = "vp",
    uncond_output: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    prediction_type: str = "epsilon",
    clip_sample: float | bool | None = None,
    out: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DPM-Solver++(2M) step (Lu et al. 2022, Algorithm 2, midpoint form), as
    ``DPMSolverMultistepScheduler`` with ``algorithm_type="dpmsolver++"``,
    ``solver_type="midpoint"``, and k-diffusion's ``sample_dpmpp_2m``.

    With x_t = alpha_t x_0 + sigma_t eps, lambda = log(alpha_t / sigma_t), h = lambda_next -
    lambda, x_0 the prediction at (x, sigma) and D = x_0 + (x_0 - prev_x0) / (2 r), r = h_prev / h:

        x_next = (sigma_t,next / sigma_t) x - alpha_t,next (exp(-h) - 1) D.

    First order (D = x_0) when ``prev_x0`` is None (the first step), when ``lower_order`` is
    set (see :func:`dpmpp_2m_lower_order` for diffusers' final-step rules) and when
    sigma_next == 0 (then x_next = x_0).

    Args:
        sample: x at ``sigma`` in the chosen ``parameterization``, (batch, ...).
        model_output: prediction, (batch, ...).
        sigma, sigma_next: Karras sigmas (float or (batch,)): sqrt((1 - abar) / abar) for ``vp``
            and ``ve``, the flow time for ``flow``.
        prev_x0: the ``pred_original_sample`` returned by the previous step, (batch, ...).
        sigma_prev: the previous step's sigma (needed with ``prev_x0``).
        lower_order: force a first-order step.
        parameterization: ``vp`` (alpha = 1 / sqrt(1 + sigma^2), diffusers' DDPM sample),
            ``ve`` (alpha = 1, k-diffusion) or ``flow`` (alpha = 1 - sigma, diffusers'
            ``use_flow_sigmas``).
        uncond_output, guidance_scale, prediction_type, clip_sample, out: see :mod:`gencore.diffusion.solvers`.

    Returns:
        (prev_sample, pred_original_sample); pass the latter as ``prev_x0`` to the next step.

    Example:
        >>> import torch
        >>> from gencore.diffusion import dpmpp_2m_step
        >>> x = torch.randn(2, 4)
        >>> x1, d1 = dpmpp_2m_step(x, torch.randn(2, 4), 10.0, 5.0)
        >>> x2, d2 = dpmpp_2m_step(x1, torch.randn(2, 4), 5.0, 2.0, prev_x0=d1, sigma_prev=10.0)
        >>> x2.shape
        torch.Size([2, 4])
    """
    g, clip, pred = check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type,
                                    clip_sample, prev_x0=prev_x0)
    space = path(parameterization)
    if not isinstance(lower_order, bool):
        raise TypeError(f"lower_order must be a bool, got {type(lower_order).__name__}")
    flow = parameterization == "flow"
    hi = 1.0 if flow else math.inf
    sg, sn = check_sigmas(sigma, sigma_next, sample, hi=hi, hi_open=flow)
    sp = None
    if prev_x0 is not None and not lower_order:
        if sigma_prev is None:
            raise ValueError("sigma_prev (the previous step's sigma) is needed with prev_x0")
        sp = coef_arg(sigma_prev, "sigma_prev", sample)
        in_range(sp, "sigma_prev", 0.0, hi, lo_open=True, hi_open=flow)
        if isinstance(sp, float) and isinstance(sg, float) and sp == sg:
            raise ValueError(f"sigma_prev must differ from sigma for a second-order step, got {sp} for both")
    k = coef(sg, sn, pred=pred, space=space, sigma_prev=sp)
    history = (prev_x0,) if sp is not None else ()
    return run_step(k, sample, model_output, uncond_output=uncond_output, guidance_scale=g, clip=clip,
                    history=history, out=check_out(out, sample, 2))
