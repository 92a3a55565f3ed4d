"""Sampling loops on the ``model(x_t, t, cond) -> prediction`` contract.

A loop holds the state (timesteps, sigmas, the previous x0 of a multistep solver, Heun's
first stage); every update is one call of a fused step op from :mod:`gencore.diffusion`
(the unit the native kernels replace), with the classifier-free guidance combine fused into
it. Coefficients are host floats computed once from the float64 schedule.

Conventions follow diffusers' schedulers, so that ``sample`` and a diffusers pipeline loop
produce the same samples from the same initial noise:

- ``ddpm`` / ``ddim``: the variance-preserving sample ``x_t``; the model sees ``x_t``.
- ``euler``, ``euler_ancestral``, ``heun``: Karras' ``x = x_t / sqrt(abar_t)`` with
  ``sigma_t = sqrt((1 - abar_t) / abar_t)``; the model sees ``x / sqrt(sigma^2 + 1) = x_t``.
  The initial noise is scaled by ``sigma_max`` (``trailing``/``linspace``) or
  ``sqrt(sigma_max^2 + 1)`` (``leading``), as diffusers' ``init_noise_sigma``.
- ``dpmpp_2m``: DPM-Solver++(2M) on ``x_t`` (diffusers' ``DPMSolverMultistepScheduler`` with
  ``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``): first step first order,
  final step to ``sigma = 0`` lands on the x0 prediction.

Noise follows the noise contract: step ``i`` draws from ``stream = i``; the initial noise (when
``init_noise`` is not given) from ``stream = 2**32 - 1``.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from gencore.diffusion.paths import EPSILON, SAMPLE, V_PREDICTION
from gencore.diffusion.schedules import SPACINGS, Schedule, interp_sigmas, make_schedule, timesteps
from gencore.diffusion.solvers import (
    ddim_step,
    ddpm_step,
    dpmpp_2m_lower_order,
    dpmpp_2m_step,
    euler_ancestral_step,
    euler_step,
    heun_step,
)
from gencore.rng import randn

__all__ = ["INIT_NOISE_STREAM", "SAMPLERS", "sample"]

log = logging.getLogger(__name__)

SAMPLERS = ("ddpm", "ddim", "euler", "euler_ancestral", "heun", "dpmpp_2m")
PREDICTION_TYPES = tuple(p.name for p in (EPSILON, V_PREDICTION, SAMPLE))
INIT_NOISE_STREAM = 2**32 - 1


def _tqdm(iterable, disable: bool, desc: str):
    return tqdm(iterable, disable=disable, desc=desc, leave=False)


def _cat_batch(a, b):
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.cat([a, b], dim=0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a)(list(a) + list(b))
    raise TypeError("cond and uncond must both be tensors (or both lists) with a batch dimension")


class _Model:
    """Calls the user's model once per step, batching the unconditional and conditional passes."""

    def __init__(self, model, cond, uncond, guidance_scale, t_dtype):
        self.model = model
        self.guided = uncond is not None and guidance_scale != 1.0
        self.cond = cond
        self.both = _cat_batch(uncond, cond) if self.guided else None
        self.t_dtype = t_dtype

    def __call__(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = x.shape[0]
        if not self.guided:
            tt = torch.full((n,), float(t), dtype=self.t_dtype, device=x.device)
            return self.model(x, tt, self.cond), None
        tt = torch.full((2 * n,), float(t), dtype=self.t_dtype, device=x.device)
        out = self.model(torch.cat([x, x], dim=0), tt, self.both)
        if not isinstance(out, torch.Tensor) or out.shape[0] != 2 * n:
            raise ValueError(f"model must return a tensor with batch {2 * n} for a guided call, "
                             f"got {getattr(out, 'shape', type(out))}")
        uncond, cond = out.chunk(2, dim=0)
        return cond, uncond


def _check_args(sampler, steps, schedule, guidance_scale, uncond, eta, prediction_type, timestep_spacing, shape):
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {list(PREDICTION_TYPES)}, got {prediction_type!r}")
    if timestep_spacing not in SPACINGS:
        raise ValueError(f"timestep_spacing must be one of {list(SPACINGS)}, got {timestep_spacing!r}")
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool):
        raise TypeError(f"steps must be an integer, got {type(steps).__name__}")
    if not 1 <= steps <= schedule.num_train_timesteps:
        raise ValueError(f"steps must be in [1, {schedule.num_train_timesteps}], got {steps}")
    if not isinstance(guidance_scale, numbers.Real) or isinstance(guidance_scale, bool):
        raise TypeError(f"guidance_scale must be a real number, got {type(guidance_scale).__name__}")
    if guidance_scale != 1.0 and uncond is None:
        raise ValueError("uncond is required when guidance_scale != 1 (classifier-free guidance)")
    if not isinstance(eta, numbers.Real) or isinstance(eta, bool) or eta < 0:
        raise ValueError(f"eta must be a non-negative number, got {eta!r}")
    if eta != 0 and sampler not in ("ddim", "euler_ancestral"):
        raise ValueError(f"eta applies to the ddim and euler_ancestral samplers, not {sampler!r}")
    if not isinstance(shape, Sequence) or len(shape) < 1 or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"shape must be a sequence of non-negative integers (batch first), got {shape!r}")


def sample(model: Callable[..., torch.Tensor], shape: Sequence[int], *, sampler: str = "ddim", steps: int = 50,
           schedule=None, guidance_scale: float = 1.0, cond=None, uncond=None, eta: float = 0.0,
           prediction_type: str = "epsilon", timestep_spacing: str = "trailing", seed: int = 0,
           sample_offset: int = 0, init_noise: torch.Tensor | None = None, progress: bool = False,
           device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Draws samples by integrating the reverse process with one of six samplers.

    Args:
        model: ``model(x_t, t, cond) -> prediction`` with ``x_t`` (batch, ...) and ``t`` a float
            tensor (batch,) of training timesteps (integer-valued, except with ``linspace``
            spacing for the sigma-based samplers). With guidance the batch is doubled:
            unconditional half first, and ``cond`` is ``cat([uncond, cond])``.
        shape: (batch, ...) of the samples.
        sampler: ``ddpm``, ``ddim``, ``euler``, ``euler_ancestral``, ``heun`` or ``dpmpp_2m``.
        steps: number of steps (model evaluations, except Heun: ``2 * steps - 1``).
        schedule: a :class:`~gencore.diffusion.Schedule` (default ``make_schedule("linear")``).
        guidance_scale: classifier-free guidance scale ``s``: ``uncond + s (cond - uncond)``.
        cond, uncond: conditioning passed to the model (uncond required when ``s != 1``).
        eta: DDIM's eta, or the ancestral noise fraction of ``euler_ancestral`` (pass
            ``eta=1.0`` for the standard ancestral sampler; ``eta=0`` makes it plain Euler).
        prediction_type: what the model predicts: ``epsilon``, ``v_prediction`` or ``sample``.
        timestep_spacing: ``trailing`` (starts at T - 1), ``leading`` or ``linspace``, as diffusers.
        seed, sample_offset: noise contract for the initial noise and the per-step noise.
        init_noise: optional (batch, ...) standard-normal initial noise (scaled here as needed).
        progress: show a tqdm progress bar.
        device, dtype: of the samples when ``init_noise`` is not given (default CPU, float32).

    Returns:
        (batch, ...) samples.

    Example:
        >>> import torch
        >>> from gencore.diffusion import GaussianMixture, sample
        >>> gm = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), torch.tensor([0.3, 0.3]),
        ...                      torch.tensor([0.5, 0.5]))
        >>> x = sample(gm.denoiser(), (16, 2), sampler="dpmpp_2m", steps=20, seed=0)
        >>> x.shape
        torch.Size([16, 2])
    """
    if schedule is None:
        schedule = make_schedule("linear")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule from make_schedule, got {type(schedule).__name__}")
    shape = tuple(shape) if isinstance(shape, (list, tuple, torch.Size)) else shape
    _check_args(sampler, steps, schedule, guidance_scale, uncond, eta, prediction_type, timestep_spacing, shape)
    if init_noise is None:
        x = randn(shape, seed=seed, stream=INIT_NOISE_STREAM, sample_offset=sample_offset, device=device,
                  dtype=dtype)
    else:
        if not isinstance(init_noise, torch.Tensor) or not init_noise.is_floating_point():
            raise TypeError("init_noise must be a floating-point tensor")
        if tuple(init_noise.shape) != shape:
            raise ValueError(f"init_noise must have shape {shape}, got {tuple(init_noise.shape)}")
        x = init_noise
    if x.shape[0] == 0:
        return x.clone()
    t_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    net = _Model(model, cond, uncond, float(guidance_scale), t_dtype)
    noise_kw = dict(seed=seed, sample_offset=sample_offset)
    kw = dict(prediction_type=prediction_type, guidance_scale=float(guidance_scale))
    disable = not progress
    if sampler in ("ddpm", "ddim"):
        return _vp_loop(sampler, net, x, schedule, steps, timestep_spacing, eta, kw, noise_kw, disable)
    if sampler == "dpmpp_2m":
        return _dpmpp_2m_loop(net, x, schedule, steps, timestep_spacing, kw, disable)
    return _sigma_loop(sampler, net, x, schedule, steps, timestep_spacing, eta, kw, noise_kw, disable)


def _vp_loop(sampler, net, x, schedule, steps, spacing, eta, kw, noise_kw, disable):
    ts = timesteps(schedule, steps, spacing).tolist()
    for i in _tqdm(range(len(ts)), disable, sampler):
        t = ts[i]
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        a_t, a_prev = schedule.alpha_prod(t), schedule.alpha_prod(t_prev)
        out, un = net(x, t)
        if sampler == "ddim":
            x, _ = ddim_step(x, out, a_t, a_prev, eta=float(eta), uncond_output=un, stream=i, **kw, **noise_kw)
        else:
            x, _ = ddpm_step(x, out, a_t, a_prev, uncond_output=un, add_noise=t > 0, stream=i, **kw, **noise_kw)
    return x


def _sigmas(schedule, steps, spacing):
    ts = timesteps(schedule, steps, spacing, integer=False)
    sig = [*interp_sigmas(schedule, ts).tolist(), 0.0]
    return ts.tolist(), sig


def _sigma_loop(sampler, net, x, schedule, steps, spacing, eta, kw, noise_kw, disable):
    ts, sig = _sigmas(schedule, steps, spacing)
    init = sig[0] if spacing in ("linspace", "trailing") else (sig[0] ** 2 + 1) ** 0.5
    x = x * init
    for i in _tqdm(range(len(ts)), disable, sampler):
        s, s_next = sig[i], sig[i + 1]
        out, un = net(x / (s * s + 1) ** 0.5, ts[i])
        if sampler == "euler":
            x, _ = euler_step(x, out, s, s_next, uncond_output=un, **kw)
        elif sampler == "euler_ancestral":
            x, _ = euler_ancestral_step(x, out, s, s_next, eta=float(eta), uncond_output=un, stream=i,
                                        **kw, **noise_kw)
        else:
            x1, _, d = heun_step(x, out, s, s_next, stage=1, uncond_output=un, **kw)
            if s_next == 0:
                x = x1
                continue
            # The second stage evaluates the model at sigma_next, at the timestep of the next step.
            out2, un2 = net(x1 / (s_next * s_next + 1) ** 0.5, ts[i + 1])
            x, _, _ = heun_step(x1, out2, s, s_next, stage=2, derivative=d, original_sample=x,
                                uncond_output=un2, **kw)
    return x


def _dpmpp_2m_loop(net, x, schedule, steps, spacing, kw, disable):
    ts, sig = _sigmas(schedule, steps, spacing)
    prev_x0 = None
    for i in _tqdm(range(len(ts)), disable, "dpmpp_2m"):
        out, un = net(x, ts[i])
        lower = prev_x0 is None or dpmpp_2m_lower_order(i, len(ts))
        x, x0 = dpmpp_2m_step(x, out, sig[i], sig[i + 1], prev_x0=prev_x0, sigma_prev=sig[i - 1] if i else None,
                              lower_order=lower, parameterization="vp", uncond_output=un, **kw)
        prev_x0 = x0
    return x
