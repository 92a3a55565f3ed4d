"""Fused sampler steps: one pass over the tensors per step, classifier-free guidance included.

Every step function is pure (no scheduler state) and shares one calling convention:

- ``sample``: x_t, shape (batch, ...) (the first dimension indexes samples);
- ``model_output``: the network's prediction at x_t, shape of ``sample``; with
  ``uncond_output`` (same shape) and ``guidance_scale`` s the step uses the guided output
  ``uncond + s * (cond - uncond)`` (Ho & Salimans 2022), computed in the same pass;
- ``prediction_type``: what the model predicts, ``epsilon`` (noise), ``v_prediction``
  (v = alpha eps - sigma x_0 on the variance-preserving sample, Salimans & Ho 2022),
  ``sample`` (x_0) or ``flow`` (the velocity eps - x_0 of rectified flow);
- coefficients (``alpha_prod_t``, ``sigma``, ...): Python floats computed on the host from a
  float64 :class:`~gencore.diffusion.Schedule` (no ``.item()``, no device synchronisation, so
  a loop can be captured in a CUDA graph), or float tensors of shape (batch,) for per-sample
  timesteps;
- noise (stochastic steps): explicit ``noise=`` (shape of ``sample``) or drawn inside the
  kernel under the noise contract from ``seed``/``stream``/``sample_offset``: element j of
  sample i equals ``gencore.randn(sample.shape, seed=seed, stream=stream,
  sample_offset=sample_offset, dtype=D)[i].flatten()[j]`` with D = float64 for float64
  samples and float32 otherwise (use ``stream`` = step index in a loop);
- ``clip_sample``: ``None`` (default, no clipping) or a range r: x_0 is clamped to [-r, r]
  (``True`` means 1.0, as diffusers' ``clip_sample_range``);
- ``out``: optional preallocated outputs (a tuple of contiguous tensors shaped and typed like
  ``sample``, one per returned tensor), written and returned; ``out[0]`` may be ``sample``
  itself (in-place update). A loop that reuses its buffers avoids allocating (and, on the CPU,
  page-faulting) fresh outputs every step.

Arithmetic runs in float32 for float16/bfloat16/float32 tensors and in float64 for float64;
outputs have the sample's dtype. Sampler steps are not differentiable (no autograd formula is
registered; sampling runs under ``torch.no_grad()``); :func:`gencore.diffusion.q_sample`, used
in training, is.

The math equals diffusers' schedulers ``.step`` (checked in the tests) and k-diffusion's
samplers; the native kernels fold each step into per-sample affine coefficients (see
``csrc/diffusion/diffusion_math.h``), the reference path (:mod:`gencore.diffusion.reference`)
follows diffusers' formulas term by term.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch

from gencore._validate import check_float_tensor, check_index, check_same_device, check_seed

__all__ = [
    "PREDICTION_TYPES",
    "ddim_step",
    "ddpm_step",
    "dpmpp_2m_lower_order",
    "dpmpp_2m_step",
    "euler_ancestral_step",
    "euler_step",
    "flow_match_euler_step",
    "heun_step",
]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample", "flow")
VARIANCE_TYPES = ("fixed_small", "fixed_large")
PARAMETERIZATIONS = ("vp", "ve", "flow")


# ---- argument checks (all run before any kernel) ----

def _check_tensors(sample, model_output, uncond_output, guidance_scale, **others):
    check_float_tensor(sample, "sample")
    if sample.dim() < 1:
        raise ValueError("sample must have a batch dimension (shape (batch, ...)), got a 0-d tensor")
    named = {"model_output": model_output, "uncond_output": uncond_output, **others}
    for name, t in named.items():
        if t is None:
            continue
        check_float_tensor(t, name)
        if t.shape != sample.shape:
            raise ValueError(f"{name} must have the shape of sample {tuple(sample.shape)}, got {tuple(t.shape)}")
        check_same_device(sample, t, "sample", name)
        if t.dtype != sample.dtype:
            raise TypeError(f"{name} must have the dtype of sample ({sample.dtype}), got {t.dtype}")
    if not isinstance(guidance_scale, numbers.Real) or isinstance(guidance_scale, bool):
        raise TypeError(f"guidance_scale must be a real number, got {type(guidance_scale).__name__}")
    if uncond_output is None and guidance_scale != 1.0:
        raise ValueError(
            f"guidance_scale={guidance_scale} needs uncond_output (the unconditional model output); "
            "without it the step uses model_output as is"
        )
    return float(guidance_scale)


def _check_prediction(prediction_type):
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {list(PREDICTION_TYPES)}, got {prediction_type!r}")


def _check_clip(clip_sample) -> float | None:
    if clip_sample is None or clip_sample is False:
        return None
    if clip_sample is True:
        return 1.0
    if not isinstance(clip_sample, numbers.Real):
        raise TypeError(f"clip_sample must be None, a bool or a positive number, got {type(clip_sample).__name__}")
    if not clip_sample > 0:
        raise ValueError(f"clip_sample must be positive, got {clip_sample}")
    return float(clip_sample)


def _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample, **others):
    """The checks every step shares: tensors, guidance, prediction type and clipping; returns
    (guidance scale, clip threshold or None)."""
    g = _check_tensors(sample, model_output, uncond_output, guidance_scale, **others)
    _check_prediction(prediction_type)
    return g, _check_clip(clip_sample)


def _check_sigmas(sigma, sigma_next, sample, hi: float = math.inf, hi_open: bool = False,
                  next_lo_open: bool = False):
    """sigma in (0, hi] and sigma_next in [0, hi] (open at hi with ``hi_open``; sigma_next > 0
    with ``next_lo_open``), as floats or float64 (batch,) tensors."""
    sg = _coef(sigma, "sigma", sample)
    sn = _coef(sigma_next, "sigma_next", sample)
    _in_range(sg, "sigma", 0.0, hi, lo_open=True, hi_open=hi_open)
    _in_range(sn, "sigma_next", 0.0, hi, lo_open=next_lo_open, hi_open=hi_open)
    return sg, sn


def _coef(v, name: str, sample: torch.Tensor):
    """A Python float, or a float64 tensor (batch,) on the sample's device."""
    if isinstance(v, torch.Tensor):
        if not v.is_floating_point():
            raise TypeError(f"{name} must be a float or a floating-point tensor of shape (batch,), got {v.dtype}")
        if v.device != sample.device:
            raise ValueError(f"{name} is on {v.device} but sample is on {sample.device}")
        batch = sample.shape[0]
        if v.dim() == 0:
            v = v.reshape(1).expand(batch)
        if v.shape != (batch,):
            raise ValueError(f"{name} must be a float or a tensor of shape (batch,) = ({batch},), got {tuple(v.shape)}")
        return v.to(torch.float64)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        v = float(v)
        if math.isnan(v):
            raise ValueError(f"{name} must not be NaN")
        return v
    raise TypeError(f"{name} must be a float or a tensor of shape (batch,), got {type(v).__name__}")


def _check_real(v, name: str, lo: float | None = None) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if math.isnan(v) or (lo is not None and v < lo):
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def _check_noise(needed: bool, noise, seed, stream, sample_offset, step: str):
    if noise is not None and seed is not None:
        raise ValueError("pass either noise (an explicit tensor) or seed (in-kernel noise), not both")
    if needed and noise is None and seed is None:
        raise ValueError(f"{step} draws noise here: pass noise= (a tensor shaped like sample) or seed= "
                         "(in-kernel counter-based noise)")
    if seed is not None:
        seed = check_seed(seed)
    if not (type(stream) is int and 0 <= stream < 2**32):
        stream = check_index(stream, "stream", 2**32)
    if not (type(sample_offset) is int and 0 <= sample_offset < 2**63):
        sample_offset = check_index(sample_offset, "sample_offset", 2**63)
    return seed, stream, sample_offset


def _in_range(v, name: str, lo: float, hi: float, *, lo_open=False, hi_open=False) -> None:
    """Range check for host floats (tensor coefficients are the caller's responsibility:
    checking them would synchronise with the device)."""
    if isinstance(v, float):
        bad_lo = v <= lo if lo_open else v < lo
        bad_hi = v >= hi if hi_open else v > hi
        if bad_lo or bad_hi:
            lb = "(" if lo_open else "["
            rb = ")" if hi_open else "]"
            raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {v}")


def _check_out(out, sample: torch.Tensor, n: int):
    """Preallocated outputs: a tuple of n contiguous tensors shaped and typed like sample (the
    first may be ``sample`` itself: the kernels are element-wise, so in place is safe)."""
    if out is None:
        return None
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise TypeError(f"out must be a tuple of {n} tensors (the step's outputs), got {type(out).__name__}")
    for i, t in enumerate(out):
        name = f"out[{i}]"
        check_float_tensor(t, name)
        if t.shape != sample.shape or t.dtype != sample.dtype:
            raise ValueError(f"{name} must have the shape and dtype of sample {tuple(sample.shape)} {sample.dtype}, "
                             f"got {tuple(t.shape)} {t.dtype}")
        check_same_device(sample, t, "sample", name)
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    if len({t.data_ptr() for t in out}) != n:
        raise ValueError("out tensors must be distinct")
    return tuple(out)


def _dispatch(name: str, out=None):
    from gencore.diffusion import ops

    fn = ops.step_impl(name)
    return fn if out is None else functools.partial(fn, out=out)


# ---- the steps ----

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
            sample_offset, out: see :mod:`gencore.diffusion.steps`.
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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               noise=noise)
    a_t = _coef(alpha_prod_t, "alpha_prod_t", sample)
    a_p = _coef(alpha_prod_t_prev, "alpha_prod_t_prev", sample)
    _in_range(a_t, "alpha_prod_t", 0.0, 1.0, hi_open=True)
    _in_range(a_p, "alpha_prod_t_prev", 0.0, 1.0, lo_open=True)
    eta = _check_real(eta, "eta", 0.0)
    seed, stream, sample_offset = _check_noise(eta > 0, noise, seed, stream, sample_offset, "ddim_step with eta > 0")
    out = _check_out(out, sample, 2)
    return _dispatch("ddim", out)(
        sample, model_output, a_t, a_p, eta=eta, uncond_output=uncond_output, guidance_scale=g,
        prediction_type=prediction_type, clip_sample=clip, use_clipped_model_output=bool(use_clipped_model_output),
        noise=noise, seed=seed, stream=stream, sample_offset=sample_offset,
    )


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
            sample_offset, out: see :mod:`gencore.diffusion.steps`.

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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               noise=noise)
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(f"variance_type must be one of {list(VARIANCE_TYPES)}, got {variance_type!r}")
    a_t = _coef(alpha_prod_t, "alpha_prod_t", sample)
    a_p = _coef(alpha_prod_t_prev, "alpha_prod_t_prev", sample)
    _in_range(a_t, "alpha_prod_t", 0.0, 1.0, hi_open=True)
    _in_range(a_p, "alpha_prod_t_prev", 0.0, 1.0, lo_open=True)
    if isinstance(add_noise, torch.Tensor):
        if add_noise.dtype != torch.bool or add_noise.shape != (sample.shape[0],):
            raise ValueError(f"add_noise must be a bool or a bool tensor of shape ({sample.shape[0]},)")
        check_same_device(sample, add_noise, "sample", "add_noise")
        needed = True
    elif isinstance(add_noise, bool):
        needed = add_noise
    else:
        raise TypeError(f"add_noise must be a bool or a bool tensor, got {type(add_noise).__name__}")
    seed, stream, sample_offset = _check_noise(needed, noise, seed, stream, sample_offset, "ddpm_step with add_noise")
    out = _check_out(out, sample, 2)
    return _dispatch("ddpm", out)(
        sample, model_output, a_t, a_p, variance_type=variance_type, uncond_output=uncond_output,
        guidance_scale=g, prediction_type=prediction_type, clip_sample=clip, add_noise=add_noise, noise=noise,
        seed=seed, stream=stream, sample_offset=sample_offset,
    )


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
            sample_offset, out: see :mod:`gencore.diffusion.steps`.

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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               noise=noise)
    sg, sn = _check_sigmas(sigma, sigma_next, sample)
    s_churn = _check_real(s_churn, "s_churn", 0.0)
    s_tmin = _check_real(s_tmin, "s_tmin")
    s_tmax = _check_real(s_tmax, "s_tmax")
    s_noise = _check_real(s_noise, "s_noise")
    if s_churn > 0:
        if not isinstance(num_steps, numbers.Integral) or isinstance(num_steps, bool) or num_steps < 1:
            raise ValueError(f"num_steps (the loop's step count) must be a positive integer when s_churn > 0, "
                             f"got {num_steps!r}")
        num_steps = int(num_steps)
    seed, stream, sample_offset = _check_noise(s_churn > 0, noise, seed, stream, sample_offset,
                                               "euler_step with s_churn > 0")
    out = _check_out(out, sample, 2)
    return _dispatch("euler", out)(
        sample, model_output, sg, sn, uncond_output=uncond_output, guidance_scale=g,
        prediction_type=prediction_type, clip_sample=clip, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax,
        s_noise=s_noise, num_steps=num_steps, noise=noise, seed=seed, stream=stream, sample_offset=sample_offset,
    )


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
            sample_offset, out: see :mod:`gencore.diffusion.steps`.

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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               noise=noise)
    sg, sn = _check_sigmas(sigma, sigma_next, sample)
    eta = _check_real(eta, "eta", 0.0)
    s_noise = _check_real(s_noise, "s_noise")
    needed = eta > 0 and not (isinstance(sn, float) and sn == 0.0)
    seed, stream, sample_offset = _check_noise(needed, noise, seed, stream, sample_offset, "euler_ancestral_step")
    out = _check_out(out, sample, 2)
    return _dispatch("euler_ancestral", out)(
        sample, model_output, sg, sn, eta=eta, s_noise=s_noise, uncond_output=uncond_output, guidance_scale=g,
        prediction_type=prediction_type, clip_sample=clip, noise=noise, seed=seed, stream=stream,
        sample_offset=sample_offset,
    )


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
        uncond_output, guidance_scale, prediction_type, clip_sample, out: see :mod:`gencore.diffusion.steps`.

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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               derivative=derivative, original_sample=original_sample)
    sg, sn = _check_sigmas(sigma, sigma_next, sample, next_lo_open=(stage == 2))
    out = _check_out(out, sample, 3)
    return _dispatch("heun", out)(
        sample, model_output, sg, sn, stage=stage, derivative=derivative, original_sample=original_sample,
        uncond_output=uncond_output, guidance_scale=g, prediction_type=prediction_type, clip_sample=clip,
    )


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
        uncond_output, guidance_scale, prediction_type, clip_sample, out: see :mod:`gencore.diffusion.steps`.

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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               prev_x0=prev_x0)
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {list(PARAMETERIZATIONS)}, got {parameterization!r}")
    if not isinstance(lower_order, bool):
        raise TypeError(f"lower_order must be a bool, got {type(lower_order).__name__}")
    flow = parameterization == "flow"
    hi = 1.0 if flow else math.inf
    sg, sn = _check_sigmas(sigma, sigma_next, sample, hi=hi, hi_open=flow)
    sp = None
    if prev_x0 is not None and not lower_order:
        if sigma_prev is None:
            raise ValueError("sigma_prev (the previous step's sigma) is needed with prev_x0")
        sp = _coef(sigma_prev, "sigma_prev", sample)
        _in_range(sp, "sigma_prev", 0.0, hi, lo_open=True, hi_open=flow)
    else:
        prev_x0 = None
    out = _check_out(out, sample, 2)
    return _dispatch("dpmpp_2m", out)(
        sample, model_output, sg, sn, prev_x0=prev_x0, sigma_prev=sp, lower_order=lower_order,
        parameterization=parameterization, uncond_output=uncond_output, guidance_scale=g,
        prediction_type=prediction_type, clip_sample=clip,
    )


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
            sample_offset, out: see :mod:`gencore.diffusion.steps`.

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
    g, clip = _check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample,
                               noise=noise)
    sg, sn = _check_sigmas(sigma, sigma_next, sample, hi=1.0)
    if prediction_type in ("epsilon", "v_prediction") and isinstance(sg, float) and sg >= 1.0:
        raise ValueError(f"prediction_type={prediction_type!r} needs sigma < 1 (x_0 is not identifiable at sigma=1)")
    if not isinstance(stochastic, bool):
        raise TypeError(f"stochastic must be a bool, got {type(stochastic).__name__}")
    seed, stream, sample_offset = _check_noise(stochastic, noise, seed, stream, sample_offset,
                                               "flow_match_euler_step with stochastic=True")
    out = _check_out(out, sample, 2)
    return _dispatch("flow_match_euler", out)(
        sample, model_output, sg, sn, uncond_output=uncond_output, guidance_scale=g,
        prediction_type=prediction_type, clip_sample=clip, stochastic=stochastic, noise=noise, seed=seed,
        stream=stream, sample_offset=sample_offset,
    )


# ---- forward process ----

def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor,
    schedule,
    *,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward noising x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4),
    one fused pass with per-sample timesteps.

    Differentiable with respect to ``x0`` and an explicit ``noise`` (grad_x0 = sqrt(abar_t) g,
    grad_noise = sqrt(1 - abar_t) g), as training with a learned encoder needs.

    Args:
        x0: clean samples, (batch, ...), floating point.
        t: integer timesteps, (batch,), each in [0, schedule.num_train_timesteps), on x0's
            device (checked: on CUDA the check reads the tensor back).
        schedule: a :class:`~gencore.diffusion.Schedule`.
        noise: explicit standard-normal noise shaped like x0; otherwise drawn under the noise
            contract from ``seed``/``stream``/``sample_offset`` (``seed=None`` draws a seed from
            torch's default generator, so ``torch.manual_seed`` makes runs repeatable).

    Returns:
        (x_t, noise), both shaped and typed like ``x0``.

    Example:
        >>> import torch
        >>> from gencore.diffusion import make_schedule, q_sample
        >>> s = make_schedule("linear")
        >>> xt, eps = q_sample(torch.zeros(2, 3), torch.tensor([0, 999]), s, seed=0)
        >>> bool(torch.allclose(xt[1], (1 - s.alpha_prod(999)) ** 0.5 * eps[1]))
        True
    """
    from gencore.diffusion.schedules import Schedule

    check_float_tensor(x0, "x0")
    if x0.dim() < 1:
        raise ValueError("x0 must have a batch dimension (shape (batch, ...)), got a 0-d tensor")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a gencore.diffusion.Schedule, got {type(schedule).__name__}")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be an integer tensor of shape (batch,), got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer tensor, got {t.dtype}")
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape (batch,) = ({x0.shape[0]},), got {tuple(t.shape)}")
    check_same_device(x0, t, "x0", "t")
    T = schedule.num_train_timesteps
    if torch.compiler.is_compiling():  # no host read-back inside a graph: an asynchronous device assert
        torch._assert_async(((t >= 0) & (t < T)).all(), "t must be in [0, num_train_timesteps)")
    elif t.numel() and bool(((t < 0) | (t >= T)).any()):
        lo, hi = int(t.min()), int(t.max())
        raise ValueError(f"t must be in [0, num_train_timesteps={T}), got values in [{lo}, {hi}]")
    if noise is not None:
        check_float_tensor(noise, "noise")
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        check_same_device(x0, noise, "x0", "noise")
    if noise is not None and seed is not None:
        raise ValueError("pass either noise (an explicit tensor) or seed (in-kernel noise), not both")
    if noise is None and seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    if seed is not None:
        seed = check_seed(seed)
    stream = check_index(stream, "stream", 2**32)
    sample_offset = check_index(sample_offset, "sample_offset", 2**63)
    return _dispatch("q_sample")(x0, t, schedule, noise=noise, seed=seed, stream=stream, sample_offset=sample_offset)


__all__.append("q_sample")
