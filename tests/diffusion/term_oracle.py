"""Term-by-term oracles of the sampler steps: each function has the signature of its public
counterpart in :mod:`gencore.diffusion` and follows the formulas of the corresponding diffusers
scheduler (or k-diffusion sampler) term by term, independently of the solvers' coefficient
folds. Coefficients are Python floats or float64 tensors of shape (batch,); arithmetic runs in
float32 for low-precision inputs and float64 for float64; noise drawn here (``noise=None``) is
``gencore.randn`` with the step's seed, stream and sample offset, in the arithmetic dtype.
"""

from __future__ import annotations

import math

import torch

from gencore.diffusion.reference import acc_dtype, draw_noise, guided

__all__ = [
    "ddim_step",
    "ddpm_step",
    "dpmpp_2m_sde_step",
    "dpmpp_2m_step",
    "euler_ancestral_step",
    "euler_step",
    "flow_match_euler_step",
    "heun_step",
    "space_coeffs",
    "x0_from_output",
]

Scalar = "float | torch.Tensor"


# ---- helpers on coefficients that are either Python floats or (batch,) float64 tensors ----

def _t(v) -> bool:
    return isinstance(v, torch.Tensor)


def _sqrt(v):
    return v.sqrt() if _t(v) else math.sqrt(v)


def _log(v):
    return v.log() if _t(v) else math.log(v)


def _expm1(v):
    return torch.expm1(v) if _t(v) else math.expm1(v)


def _max0(v):
    return v.clamp_min(0.0) if _t(v) else max(v, 0.0)


def _bc(v, ref: torch.Tensor):
    """A coefficient ready to multiply ``ref`` (batch, ...): floats as they are, tensors as
    (batch, 1, ..., 1) in ref's dtype."""
    if _t(v):
        return v.to(ref.dtype).reshape(-1, *([1] * (ref.dim() - 1)))
    return v


def space_coeffs(sigma, parameterization: str):
    """(alpha_t, sigma_t) with x_t = alpha_t x_0 + sigma_t eps for a Karras/flow ``sigma``.

    ``vp``: alpha = 1/sqrt(1 + sigma^2), sigma_t = sigma alpha (the DDPM sample);
    ``ve``: alpha = 1, sigma_t = sigma (k-diffusion's x = x_0 + sigma eps);
    ``flow``: alpha = 1 - sigma, sigma_t = sigma (rectified flow).
    """
    if parameterization == "vp":
        a = 1.0 / _sqrt(sigma * sigma + 1.0)
        return a, sigma * a
    if parameterization == "ve":
        return (torch.ones_like(sigma) if _t(sigma) else 1.0), sigma
    return 1.0 - sigma, sigma


def x0_from_output(prediction_type: str, x: torch.Tensor, m: torch.Tensor, a, st) -> torch.Tensor:
    """The x_0 prediction for x = a x_0 + st eps from a model output ``m`` of the given type.

    ``epsilon``: (x - st m) / a. ``sample``: m. ``v_prediction`` (Salimans & Ho 2022, on the
    variance-preserving sample; with sigma = st / a, abar = 1 / (1 + sigma^2)):
    (abar / a) x - sqrt(1 - abar) m. ``flow`` (velocity u = eps - x_0): (x - st u) / (a + st).
    """
    if prediction_type == "epsilon":
        return (x - _bc(st, x) * m) / _bc(a, x)
    if prediction_type == "sample":
        return m
    if prediction_type == "v_prediction":
        n2 = a * a + st * st  # abar / a = a / n2, sqrt(1 - abar) = st / sqrt(n2); finite at a = 0
        return _bc(a / n2, x) * x - _bc(st / _sqrt(n2), x) * m
    return (x - _bc(st, x) * m) / _bc(a + st, x)


def _clip(x0: torch.Tensor, clip_sample: float | None) -> torch.Tensor:
    return x0 if clip_sample is None else x0.clamp(-clip_sample, clip_sample)


# ---- DDPM / DDIM: coefficients from alphas_cumprod ----

def _ddpm_x0_eps(prediction_type, x, m, alpha_prod_t):
    a, st = _sqrt(alpha_prod_t), _sqrt(1.0 - alpha_prod_t)
    x0 = x0_from_output(prediction_type, x, m, a, st)
    if prediction_type == "epsilon":
        eps = m
    elif prediction_type == "v_prediction":
        eps = _bc(a, x) * m + _bc(st, x) * x
    else:
        eps = (x - _bc(a, x) * x0) / _bc(st, x)
    return x0, eps


def ddim_step(sample, model_output, alpha_prod_t, alpha_prod_t_prev, *, eta=0.0, uncond_output=None,
              guidance_scale=1.0, prediction_type="epsilon", clip_sample=None, use_clipped_model_output=False,
              noise=None, seed=None, stream=0, sample_offset=0):
    """Reference DDIM step (Song et al. 2021, eq. 12), as diffusers' ``DDIMScheduler.step``."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    x0, eps = _ddpm_x0_eps(prediction_type, x, m, alpha_prod_t)
    if clip_sample is not None:
        x0 = _clip(x0, clip_sample)
        if use_clipped_model_output:
            eps = (x - _bc(_sqrt(alpha_prod_t), x) * x0) / _bc(_sqrt(1.0 - alpha_prod_t), x)
    variance = (1.0 - alpha_prod_t_prev) / (1.0 - alpha_prod_t) * (1.0 - alpha_prod_t / alpha_prod_t_prev)
    std = eta * _sqrt(variance)
    prev = _bc(_sqrt(alpha_prod_t_prev), x) * x0 + _bc(_sqrt(_max0(1.0 - alpha_prod_t_prev - std * std)), x) * eps
    if eta > 0:
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
        prev = prev + _bc(std, x) * z
    return prev.to(sample.dtype), x0.to(sample.dtype)


def ddpm_step(sample, model_output, alpha_prod_t, alpha_prod_t_prev, *, variance_type="fixed_small",
              uncond_output=None, guidance_scale=1.0, prediction_type="epsilon", clip_sample=None,
              add_noise=True, noise=None, seed=None, stream=0, sample_offset=0):
    """Reference DDPM ancestral step (Ho et al. 2020, eqs. 6-7), as ``DDPMScheduler.step``."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    x0, _ = _ddpm_x0_eps(prediction_type, x, m, alpha_prod_t)
    x0 = _clip(x0, clip_sample)
    beta_prod_t = 1.0 - alpha_prod_t
    beta_prod_prev = 1.0 - alpha_prod_t_prev
    current_alpha = alpha_prod_t / alpha_prod_t_prev
    current_beta = 1.0 - current_alpha
    c0 = _sqrt(alpha_prod_t_prev) * current_beta / beta_prod_t
    cx = _sqrt(current_alpha) * beta_prod_prev / beta_prod_t
    prev = _bc(c0, x) * x0 + _bc(cx, x) * x
    if add_noise is not False:
        if variance_type == "fixed_small":
            var = beta_prod_prev / beta_prod_t * current_beta
            var = var.clamp_min(1e-20) if _t(var) else max(var, 1e-20)
        else:
            var = current_beta
        std = _sqrt(var)
        if _t(add_noise):
            std = std * add_noise.to(torch.float64)
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
        prev = prev + _bc(std, x) * z
    return prev.to(sample.dtype), x0.to(sample.dtype)


# ---- sigma-parameterised steps (k-diffusion / diffusers' discrete-sigma schedulers) ----

def _ve_x0(prediction_type, x, m, sigma_eps, sigma_v):
    if prediction_type == "v_prediction":
        return x0_from_output(prediction_type, x, m, 1.0, sigma_v)
    return x0_from_output(prediction_type, x, m, 1.0, sigma_eps)


def euler_step(sample, model_output, sigma, sigma_next, *, uncond_output=None, guidance_scale=1.0,
               prediction_type="epsilon", clip_sample=None, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"),
               s_noise=1.0, num_steps=None, noise=None, seed=None, stream=0, sample_offset=0):
    """Reference Euler step (Karras et al. 2022, Algorithm 2), as ``EulerDiscreteScheduler.step``."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    gamma0 = min(s_churn / num_steps, 2**0.5 - 1) if s_churn > 0 else 0.0
    if _t(sigma):
        gamma = torch.where((sigma >= s_tmin) & (sigma <= s_tmax), torch.tensor(gamma0, dtype=torch.float64), 0.0)
    else:
        gamma = gamma0 if s_tmin <= sigma <= s_tmax else 0.0
    sigma_hat = sigma * (gamma + 1.0)
    if gamma0 > 0:
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
        x = x + _bc(s_noise * _sqrt(_max0(sigma_hat * sigma_hat - sigma * sigma)), x) * z
    x0 = _clip(_ve_x0(prediction_type, x, m, sigma_hat, sigma), clip_sample)
    d = (x - x0) / _bc(sigma_hat, x)
    prev = x + d * _bc(sigma_next - sigma_hat, x)
    return prev.to(sample.dtype), x0.to(sample.dtype)


def ancestral_sigmas(sigma, sigma_next, eta=1.0):
    """(sigma_down, sigma_up) of k-diffusion's ``get_ancestral_step``."""
    up = eta * _sqrt(_max0(sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma)))
    if _t(up):
        up = torch.minimum(up, sigma_next) if _t(sigma_next) else up.clamp_max(sigma_next)
    else:
        up = min(up, sigma_next)
    down = _sqrt(_max0(sigma_next * sigma_next - up * up))
    return down, up


def euler_ancestral_step(sample, model_output, sigma, sigma_next, *, eta=1.0, s_noise=1.0, uncond_output=None,
                         guidance_scale=1.0, prediction_type="epsilon", clip_sample=None, noise=None, seed=None,
                         stream=0, sample_offset=0):
    """Reference ancestral Euler step, as ``EulerAncestralDiscreteScheduler.step`` and k-diffusion's
    ``sample_euler_ancestral``."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    x0 = _clip(_ve_x0(prediction_type, x, m, sigma, sigma), clip_sample)
    down, up = ancestral_sigmas(sigma, sigma_next, eta)
    d = (x - x0) / _bc(sigma, x)
    prev = x + d * _bc(down - sigma, x)
    if eta > 0 and (_t(up) or up > 0):
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
        prev = prev + z * _bc(up * s_noise, x)
    return prev.to(sample.dtype), x0.to(sample.dtype)


def heun_step(sample, model_output, sigma, sigma_next, *, stage=1, derivative=None, original_sample=None,
              uncond_output=None, guidance_scale=1.0, prediction_type="epsilon", clip_sample=None):
    """Reference Heun step (Karras et al. 2022, Algorithm 1), as ``HeunDiscreteScheduler.step``."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    s_in = sigma if stage == 1 else sigma_next
    x0 = _clip(_ve_x0(prediction_type, x, m, s_in, s_in), clip_sample)
    d = (x - x0) / _bc(s_in, x)
    dt = _bc(sigma_next - sigma, x)
    if stage == 1:
        prev = x + d * dt
    else:
        d = (derivative.to(acc) + d) / 2
        prev = original_sample.to(acc) + d * dt
    return prev.to(sample.dtype), x0.to(sample.dtype), d.to(sample.dtype)


def dpmpp_2m_step(sample, model_output, sigma, sigma_next, *, prev_x0=None, sigma_prev=None,
                  lower_order=False, parameterization="vp", uncond_output=None, guidance_scale=1.0,
                  prediction_type="epsilon", clip_sample=None):
    """Reference DPM-Solver++(2M) step (Lu et al. 2022, Algorithm 2, midpoint form), as
    ``DPMSolverMultistepScheduler`` (dpmsolver++, midpoint) and k-diffusion's ``sample_dpmpp_2m``."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    a_s, st_s = space_coeffs(sigma, parameterization)
    a_t, st_t = space_coeffs(sigma_next, parameterization)
    x0 = _clip(x0_from_output(prediction_type, x, m, a_s, st_s), clip_sample)
    if not _t(sigma_next) and sigma_next == 0:
        return x0.to(sample.dtype), x0.to(sample.dtype)
    lam_s = _log(a_s) - _log(st_s)
    lam_t = _log(a_t) - _log(st_t)
    h = lam_t - lam_s
    cx = st_t / st_s
    cd = -a_t * _expm1(-h)
    if prev_x0 is None or lower_order:
        prev = _bc(cx, x) * x + _bc(cd, x) * x0
    else:
        a_p, st_p = space_coeffs(sigma_prev, parameterization)
        h0 = lam_s - (_log(a_p) - _log(st_p))
        r0 = h0 / h
        D = x0 + _bc(0.5 / r0, x) * (x0 - prev_x0.to(acc))
        prev = _bc(cx, x) * x + _bc(cd, x) * D
    if _t(sigma_next):  # per-sample: the final level sigma_next == 0 lands on x0
        prev = torch.where(_bc(sigma_next, x) == 0, x0, prev)
    return prev.to(sample.dtype), x0.to(sample.dtype)


def dpmpp_2m_sde_step(sample, model_output, sigma, sigma_next, *, prev_x0=None, sigma_prev=None, eta=1.0,
                      s_noise=1.0, solver_type="midpoint", parameterization="vp", uncond_output=None,
                      guidance_scale=1.0, prediction_type="epsilon", clip_sample=None, noise=None, seed=None,
                      stream=0, sample_offset=0):
    """Reference DPM-Solver++(2M) SDE step, k-diffusion's ``sample_dpmpp_2m_sde`` update written for
    x = alpha x_0 + sigma eps (diffusers' ``sde-dpmsolver++`` at eta = 1)."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    a_s, st_s = space_coeffs(sigma, parameterization)
    x0 = _clip(x0_from_output(prediction_type, x, m, a_s, st_s), clip_sample)
    if not _t(sigma_next) and sigma_next == 0:
        return x0.to(sample.dtype), x0.to(sample.dtype)
    a_t, st_t = space_coeffs(sigma_next, parameterization)
    lam_s, lam_t = _log(a_s) - _log(st_s), _log(a_t) - _log(st_t)
    h = lam_t - lam_s
    eta_h = eta * h
    g = -_expm1(-h - eta_h)
    decay = torch.exp(-eta_h) if _t(eta_h) else math.exp(-eta_h)
    prev = _bc(st_t / st_s * decay, x) * x + _bc(a_t * g, x) * x0
    if prev_x0 is not None:
        a_p, st_p = space_coeffs(sigma_prev, parameterization)
        r = (lam_s - (_log(a_p) - _log(st_p))) / h
        if solver_type == "heun":
            prev = prev + _bc(a_t * (g / (-h - eta_h) + 1.0) / r, x) * (x0 - prev_x0.to(acc))
        else:
            prev = prev + _bc(0.5 * a_t * g / r, x) * (x0 - prev_x0.to(acc))
    if eta > 0:
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
        prev = prev + _bc(st_t * _sqrt(-_expm1(-2.0 * eta_h)) * s_noise, x) * z
    if _t(sigma_next):
        prev = torch.where(_bc(sigma_next, x) == 0, x0, prev)
    return prev.to(sample.dtype), x0.to(sample.dtype)


def flow_match_euler_step(sample, model_output, sigma, sigma_next, *, uncond_output=None, guidance_scale=1.0,
                          prediction_type="flow", clip_sample=None, stochastic=False, noise=None, seed=None,
                          stream=0, sample_offset=0):
    """Reference flow-matching Euler step (Lipman et al. 2023; Esser et al. 2024), as
    ``FlowMatchEulerDiscreteScheduler.step``: x_t = (1 - sigma) x_0 + sigma eps."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    m = guided(model_output, uncond_output, guidance_scale, acc)
    a, st = 1.0 - sigma, sigma
    x0 = x0_from_output(prediction_type, x, m, a, st)
    if prediction_type == "flow":
        u = m
    elif prediction_type == "epsilon":
        u = m - x0
    else:
        u = (x - x0) / _bc(sigma, x)
    if clip_sample is not None:
        x0 = _clip(x0, clip_sample)
        u = (x - x0) / _bc(sigma, x)
    if stochastic:
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
        prev = _bc(1.0 - sigma_next, x) * x0 + _bc(sigma_next, x) * z
    else:
        prev = x + _bc(sigma_next - sigma, x) * u
    return prev.to(sample.dtype), x0.to(sample.dtype)


# ---- forward process ----
