"""diffusers-compatible schedulers whose ``step`` is one fused gencore op.

Change one import and keep the pipeline::

    from gencore.integrations.diffusers import DPMSolverMultistepScheduler
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)

Each class has the name, the config keys (``register_to_config``), the public attributes
(``timesteps``, ``sigmas``, ``init_noise_sigma``, ``order``, ``alphas_cumprod``, ...) and the
method signatures of its diffusers namesake (pipelines find ``eta``/``generator`` by reading
``step``'s signature), and subclasses diffusers' ``SchedulerMixin``/``ConfigMixin``, so
``from_config``/``save_pretrained``/``from_pretrained`` work and saved configs load in either
library. The schedule is built as diffusers builds it (float32 betas and cumulative product,
:func:`gencore.diffusion.make_schedule` with ``compute_dtype=torch.float32``), so the per-step
coefficients are the same numbers.

Noise: by default drawn exactly as diffusers draws it (``randn_tensor`` from ``generator``, at
the same points), so outputs match diffusers'. ``scheduler.use_gencore_noise(seed)`` switches to
gencore's counter-based noise drawn inside the kernel (``stream`` = the number of ``step``
calls since ``set_timesteps``), independent of batch size and device.

Classifier-free guidance fused into the step: ``scheduler.guided_step(noise_pred, t, latents,
guidance_scale=7.5, ...)`` takes the stacked ``[uncond; cond]`` prediction (the batch layout
of diffusers' pipelines) and computes ``uncond + s * (cond - uncond)`` in the same pass as the
update, instead of a separate elementwise kernel.

A config option gencore does not implement raises ``NotImplementedError`` naming it.

This module imports diffusers (an optional dependency); ``import gencore`` does not.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput
from diffusers.schedulers.scheduling_euler_ancestral_discrete import (
    EulerAncestralDiscreteSchedulerOutput,
)
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteSchedulerOutput,
)
from diffusers.schedulers.scheduling_heun_discrete import HeunDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_utils import (
    KarrasDiffusionSchedulers,
    SchedulerMixin,
    SchedulerOutput,
)
from diffusers.utils.torch_utils import randn_tensor

from gencore import diffusion as gd
from gencore.diffusion import schedules as gsched

__all__ = [
    "DDIMScheduler",
    "DDPMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "FlowMatchEulerDiscreteScheduler",
    "HeunDiscreteScheduler",
]

_KARRAS = [e.name for e in KarrasDiffusionSchedulers]


def _unsupported(cls: str, option: str, value) -> NotImplementedError:
    return NotImplementedError(f"{cls}: config option {option}={value!r} is not supported by gencore")


def _train_schedule(cfg, cls: str, schedules=("linear", "scaled_linear", "squaredcos_cap_v2")) -> gsched.Schedule:
    """The training schedule exactly as diffusers builds it (float32 betas and cumprod)."""
    rescale = bool(getattr(cfg, "rescale_betas_zero_snr", False))
    if cfg.trained_betas is not None:
        betas = torch.tensor(np.asarray(cfg.trained_betas), dtype=torch.float32)
        if rescale:
            betas = gsched._rescale_zero_terminal_snr(betas)
        return gsched.Schedule.from_betas(betas, compute_dtype=torch.float32)
    if cfg.beta_schedule not in schedules:
        raise _unsupported(cls, "beta_schedule", cfg.beta_schedule)
    return gd.make_schedule(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                            rescale_zero_snr=rescale, compute_dtype=torch.float32)


def _sigma_to_t(sigma, log_sigmas: np.ndarray) -> np.ndarray:
    """diffusers' ``_sigma_to_t``: the fractional timestep of ``sigma`` by interpolation in log sigma."""
    sigma = np.asarray(sigma)
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low_idx = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high_idx = low_idx + 1
    low = log_sigmas[low_idx]
    high = log_sigmas[high_idx]
    w = np.clip((low - log_sigma) / (low - high), 0, 1)
    t = (1 - w) * low_idx + w * high_idx
    return t.reshape(sigma.shape)


def _karras(cfg, in_sigmas: np.ndarray, n: int) -> np.ndarray:
    sigma_min = getattr(cfg, "sigma_min", None)
    sigma_max = getattr(cfg, "sigma_max", None)
    sigma_min = sigma_min if sigma_min is not None else float(in_sigmas[-1])
    sigma_max = sigma_max if sigma_max is not None else float(in_sigmas[0])
    return gd.karras_sigmas(n, sigma_min, sigma_max, 7.0)[:-1].numpy()


class _Gencore:
    """What every gencore scheduler adds to diffusers' API: noise source and fused guidance."""

    _noise_seed: int | None = None
    _noise_offset: int = 0
    _noise_stream: int = 0

    def use_gencore_noise(self, seed: int | None, sample_offset: int = 0) -> None:
        """Draw step noise in-kernel under gencore's noise contract (``None``: back to
        diffusers-style ``generator`` noise). Step ``k`` after ``set_timesteps`` uses ``stream = k``."""
        self._noise_seed = None if seed is None else int(seed)
        self._noise_offset = int(sample_offset)

    def _noise_kw(self, shape, generator, device, dtype, variance_noise=None) -> dict:
        if variance_noise is not None:
            return {"noise": variance_noise}
        if self._noise_seed is not None:
            return {"seed": self._noise_seed, "stream": self._noise_stream, "sample_offset": self._noise_offset}
        return {"noise": randn_tensor(shape, generator=generator, device=device, dtype=dtype)}

    def guided_step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, guidance_scale: float,
                    **step_kwargs):
        """``step`` with classifier-free guidance fused in.

        Args:
            model_output: (2 * batch, ...) the stacked prediction ``cat([uncond, cond])`` of a
                pipeline's doubled batch.
            timestep, sample: as in ``step``.
            guidance_scale: ``s`` in ``uncond + s * (cond - uncond)``.
            **step_kwargs: the other ``step`` arguments (``eta``, ``generator``, ``return_dict``...).

        Example:
            >>> import torch
            >>> from gencore.integrations.diffusers import DDIMScheduler
            >>> s = DDIMScheduler(); s.set_timesteps(10)
            >>> x = torch.randn(2, 4)
            >>> out = s.guided_step(torch.randn(4, 4), s.timesteps[0], x, guidance_scale=7.5)
            >>> out.prev_sample.shape
            torch.Size([2, 4])
        """
        if model_output.shape[0] != 2 * sample.shape[0]:
            raise ValueError(f"model_output must stack [uncond; cond] along the batch: expected batch "
                             f"{2 * sample.shape[0]}, got {model_output.shape[0]}")
        uncond, cond = model_output.chunk(2, dim=0)
        return self._step(cond, timestep, sample, uncond_output=uncond, guidance_scale=float(guidance_scale),
                          **step_kwargs)

    @staticmethod
    def _int_t(timestep) -> int:
        return int(timestep.item()) if isinstance(timestep, torch.Tensor) else int(timestep)


class _IndexedMixin:
    """diffusers' step-index bookkeeping of the sigma-based schedulers."""

    @property
    def step_index(self):
        return self._step_index

    @property
    def begin_index(self):
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0):
        self._begin_index = begin_index

    def index_for_timestep(self, timestep, schedule_timesteps=None):
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        indices = (schedule_timesteps == timestep).nonzero()
        pos = 1 if len(indices) > 1 else 0
        return indices[pos].item()

    def _sigmas_for(self, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The sigmas of ``timesteps`` (one per sample), shaped to broadcast against ``like``;
        diffusers' lookup in ``add_noise``: by timestep before the loop starts, else the current
        (or begin) index."""
        sigmas = self.sigmas.to(device=like.device, dtype=like.dtype)
        schedule_timesteps = self.timesteps.to(like.device)
        timesteps = timesteps.to(like.device)
        if self.begin_index is None:
            step_indices = [self.index_for_timestep(t, schedule_timesteps) for t in timesteps]
        elif self.step_index is not None:
            step_indices = [self.step_index] * timesteps.shape[0]
        else:
            step_indices = [self.begin_index] * timesteps.shape[0]
        return sigmas[step_indices].flatten().reshape((-1,) + (1,) * (like.dim() - 1))

    def _init_step_index(self, timestep):
        if self.begin_index is None:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)
        else:
            self._step_index = self._begin_index


def _check_float_timestep(timestep, cls: str):
    if isinstance(timestep, (int, torch.IntTensor, torch.LongTensor)):
        raise ValueError(
            f"Passing integer indices (e.g. from `enumerate(timesteps)`) as timesteps to `{cls}.step()` is not "
            "supported. Make sure to pass one of the `scheduler.timesteps` as a timestep.")


def _clip_arg(cfg):
    return float(cfg.clip_sample_range) if cfg.clip_sample else None


def _vp_add_noise(alphas_cumprod: torch.Tensor, original_samples, noise, timesteps):
    ac = alphas_cumprod.to(device=original_samples.device, dtype=original_samples.dtype)
    timesteps = timesteps.to(original_samples.device)
    shape = (-1,) + (1,) * (original_samples.dim() - 1)
    a = (ac[timesteps] ** 0.5).flatten().reshape(shape)
    b = ((1 - ac[timesteps]) ** 0.5).flatten().reshape(shape)
    return a * original_samples + b * noise


# ------------------------------------------------------------------------------------------------
# DDPM
# ------------------------------------------------------------------------------------------------

class DDPMScheduler(_Gencore, SchedulerMixin, ConfigMixin):
    """Denoising diffusion probabilistic models (Ho et al., 2020) with diffusers' API; each step
    is :func:`gencore.diffusion.ddpm_step`.

    Supported: ``beta_schedule`` linear / scaled_linear / squaredcos_cap_v2 / sigmoid or
    ``trained_betas``, ``variance_type`` fixed_small / fixed_small_log / fixed_large,
    ``prediction_type`` epsilon / sample / v_prediction, ``clip_sample``, every
    ``timestep_spacing``, ``rescale_betas_zero_snr``. Not supported (NotImplementedError):
    ``thresholding``, learned variances, the laplace schedule.
    """

    _compatibles = _KARRAS
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, variance_type: str = "fixed_small",
                 clip_sample: bool = True, prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, clip_sample_range: float = 1.0,
                 sample_max_value: float = 1.0, timestep_spacing: str = "leading", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False):
        name = type(self).__name__
        if thresholding:
            raise _unsupported(name, "thresholding", thresholding)
        if variance_type not in ("fixed_small", "fixed_small_log", "fixed_large"):
            raise _unsupported(name, "variance_type", variance_type)
        if prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise _unsupported(name, "prediction_type", prediction_type)
        self._schedule = _train_schedule(self.config, name, ("linear", "scaled_linear", "squaredcos_cap_v2",
                                                             "sigmoid"))
        self.betas = self._schedule.betas.float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = self._schedule.alphas_cumprod.float()
        self.one = torch.tensor(1.0)
        self.init_noise_sigma = 1.0
        self.custom_timesteps = False
        self.num_inference_steps = None
        self.timesteps = torch.from_numpy(np.arange(0, num_train_timesteps)[::-1].copy())
        self._ts = list(range(num_train_timesteps - 1, -1, -1))
        self.variance_type = variance_type

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        return sample

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps: list[int] | None = None):
        T = self.config.num_train_timesteps
        if num_inference_steps is not None and timesteps is not None:
            raise ValueError("Can only pass one of `num_inference_steps` or `custom_timesteps`.")
        if timesteps is not None:
            for i in range(1, len(timesteps)):
                if timesteps[i] >= timesteps[i - 1]:
                    raise ValueError("`custom_timesteps` must be in descending order.")
            if timesteps[0] >= T:
                raise ValueError(f"`timesteps` must start before `self.config.train_timesteps`: {T}.")
            ts = np.array(timesteps, dtype=np.int64)
            self.custom_timesteps = True
        else:
            if num_inference_steps > T:
                raise ValueError(f"`num_inference_steps`: {num_inference_steps} cannot be larger than "
                                 f"`self.config.train_timesteps`: {T}")
            self.num_inference_steps = num_inference_steps
            self.custom_timesteps = False
            ts = gd.timesteps(T, num_inference_steps, self.config.timestep_spacing, self.config.steps_offset).numpy()
        self.timesteps = torch.from_numpy(ts).to(device)
        self._ts = [int(t) for t in ts]
        self._noise_stream = 0

    def previous_timestep(self, timestep):
        t = self._int_t(timestep)
        if self.custom_timesteps or self.num_inference_steps:
            index = self._ts.index(t)
            prev_t = -1 if index == len(self._ts) - 1 else self._ts[index + 1]
        else:
            prev_t = t - 1
        return torch.tensor(prev_t) if isinstance(timestep, torch.Tensor) else prev_t

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, generator=None,
             return_dict: bool = True):
        return self._step(model_output, timestep, sample, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, generator=None, return_dict=True, uncond_output=None,
              guidance_scale=1.0):
        t = self._int_t(timestep)
        prev_t = int(self.previous_timestep(t))
        a_t = self._schedule.alpha_prod(t)
        a_prev = self._schedule.alpha_prod(prev_t)
        vt = "fixed_large" if self.variance_type == "fixed_large" else "fixed_small"
        add = t > 0
        nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype) if add else {}
        prev, x0 = gd.ddpm_step(sample, model_output, a_t, a_prev, variance_type=vt, uncond_output=uncond_output,
                                guidance_scale=guidance_scale, prediction_type=self.config.prediction_type,
                                clip_sample=_clip_arg(self.config), add_noise=add, **nkw)
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return DDPMSchedulerOutput(prev_sample=prev, pred_original_sample=x0)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        return _vp_add_noise(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        ac = self.alphas_cumprod.to(device=sample.device, dtype=sample.dtype)
        shape = (-1,) + (1,) * (sample.dim() - 1)
        timesteps = timesteps.to(sample.device)
        return (ac[timesteps] ** 0.5).reshape(shape) * noise - ((1 - ac[timesteps]) ** 0.5).reshape(shape) * sample

    def __len__(self):
        return self.config.num_train_timesteps


# ------------------------------------------------------------------------------------------------
# DDIM
# ------------------------------------------------------------------------------------------------

class DDIMScheduler(_Gencore, SchedulerMixin, ConfigMixin):
    """Denoising diffusion implicit models (Song et al., 2021) with diffusers' API; each step is
    :func:`gencore.diffusion.ddim_step` (eta, clipping and guidance fused).

    Not supported (NotImplementedError): ``thresholding``, beta schedules other than linear /
    scaled_linear / squaredcos_cap_v2 (as diffusers).
    """

    _compatibles = _KARRAS
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, clip_sample: bool = True,
                 set_alpha_to_one: bool = True, steps_offset: int = 0, prediction_type: str = "epsilon",
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                 clip_sample_range: float = 1.0, sample_max_value: float = 1.0, timestep_spacing: str = "leading",
                 rescale_betas_zero_snr: bool = False):
        name = type(self).__name__
        if thresholding:
            raise _unsupported(name, "thresholding", thresholding)
        if prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise _unsupported(name, "prediction_type", prediction_type)
        self._schedule = _train_schedule(self.config, name)
        self.betas = self._schedule.betas.float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = self._schedule.alphas_cumprod.float()
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self._final = 1.0 if set_alpha_to_one else self._schedule.alpha_prod(0)
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = torch.from_numpy(np.arange(0, num_train_timesteps)[::-1].copy().astype(np.int64))

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        return sample

    def set_timesteps(self, num_inference_steps: int, device=None):
        T = self.config.num_train_timesteps
        if num_inference_steps > T:
            raise ValueError(f"`num_inference_steps`: {num_inference_steps} cannot be larger than "
                             f"`self.config.train_timesteps`: {T}")
        self.num_inference_steps = num_inference_steps
        ts = gd.timesteps(T, num_inference_steps, self.config.timestep_spacing, self.config.steps_offset)
        self.timesteps = ts.to(device)
        self._noise_stream = 0

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, eta: float = 0.0,
             use_clipped_model_output: bool = False, generator=None, variance_noise: torch.Tensor | None = None,
             return_dict: bool = True):
        return self._step(model_output, timestep, sample, eta=eta, use_clipped_model_output=use_clipped_model_output,
                          generator=generator, variance_noise=variance_noise, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, eta=0.0, use_clipped_model_output=False, generator=None,
              variance_noise=None, return_dict=True, uncond_output=None, guidance_scale=1.0):
        if self.num_inference_steps is None:
            raise ValueError("Number of inference steps is 'None', you need to run 'set_timesteps' after "
                             "creating the scheduler")
        t = self._int_t(timestep)
        # diffusers' rule (not the next entry of `timesteps`): t - T // steps.
        prev_t = t - self.config.num_train_timesteps // self.num_inference_steps
        a_t = self._schedule.alpha_prod(t)
        a_prev = self._schedule.alpha_prod(prev_t) if prev_t >= 0 else self._final
        nkw = {}
        if eta > 0:
            if variance_noise is not None and generator is not None:
                raise ValueError("Cannot pass both generator and variance_noise. Please make sure that either "
                                 "`generator` or `variance_noise` stays `None`.")
            nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype,
                                 variance_noise)
        prev, x0 = gd.ddim_step(sample, model_output, a_t, a_prev, eta=float(eta), uncond_output=uncond_output,
                                guidance_scale=guidance_scale, prediction_type=self.config.prediction_type,
                                clip_sample=_clip_arg(self.config),
                                use_clipped_model_output=use_clipped_model_output, **nkw)
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return DDIMSchedulerOutput(prev_sample=prev, pred_original_sample=x0)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        return _vp_add_noise(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        return DDPMScheduler.get_velocity(self, sample, noise, timesteps)

    def __len__(self):
        return self.config.num_train_timesteps


# ------------------------------------------------------------------------------------------------
# Sigma-based schedulers (Euler, Euler ancestral, Heun)
# ------------------------------------------------------------------------------------------------

class _SigmaScheduler(_IndexedMixin, _Gencore):
    def _build_sigmas(self, zero_snr_fix: bool):
        self._schedule = _train_schedule(self.config, type(self).__name__)
        self.betas = self._schedule.betas.float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = self._schedule.alphas_cumprod.float()
        if zero_snr_fix and self.config.rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2**-24
        self._train_sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).numpy()

    @property
    def init_noise_sigma(self):
        max_sigma = self.sigmas.max()
        if self.config.timestep_spacing in ("linspace", "trailing"):
            return max_sigma
        return (max_sigma**2 + 1) ** 0.5

    def scale_model_input(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        if self.step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self.step_index]
        sample = sample / ((sigma**2 + 1) ** 0.5)
        self.is_scale_input_called = True
        return sample

    def _spaced_timesteps(self, n: int, num_train: int | None = None) -> np.ndarray:
        T = num_train or self.config.num_train_timesteps
        ts = gd.timesteps(T, n, self.config.timestep_spacing, self.config.steps_offset, integer=False)
        return ts.numpy().astype(np.float32)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
        return original_samples + noise * self._sigmas_for(timesteps, original_samples)

    def __len__(self):
        return self.config.num_train_timesteps


class EulerDiscreteScheduler(_SigmaScheduler, SchedulerMixin, ConfigMixin):
    """Euler steps of the probability-flow ODE (Karras et al., 2022, Algorithm 2) with diffusers'
    API; each step is :func:`gencore.diffusion.euler_step` (churn noise and guidance fused).

    Supported: linear interpolation, ``use_karras_sigmas``, ``sigma_min``/``sigma_max``, every
    ``timestep_spacing``, ``final_sigmas_type``, ``rescale_betas_zero_snr``, custom ``timesteps``
    or ``sigmas``. Not supported (NotImplementedError): ``interpolation_type="log_linear"``,
    ``use_exponential_sigmas``, ``use_beta_sigmas``, ``timestep_type="continuous"``.
    """

    _compatibles = _KARRAS
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, prediction_type: str = "epsilon",
                 interpolation_type: str = "linear", use_karras_sigmas: bool | None = False,
                 use_exponential_sigmas: bool | None = False, use_beta_sigmas: bool | None = False,
                 sigma_min: float | None = None, sigma_max: float | None = None, timestep_spacing: str = "linspace",
                 timestep_type: str = "discrete", steps_offset: int = 0, rescale_betas_zero_snr: bool = False,
                 final_sigmas_type: str = "zero"):
        name = type(self).__name__
        for opt in ("use_exponential_sigmas", "use_beta_sigmas"):
            if getattr(self.config, opt):
                raise _unsupported(name, opt, True)
        if interpolation_type != "linear":
            raise _unsupported(name, "interpolation_type", interpolation_type)
        if timestep_type != "discrete":
            raise _unsupported(name, "timestep_type", timestep_type)
        if prediction_type not in ("epsilon", "sample", "original_sample", "v_prediction"):
            raise _unsupported(name, "prediction_type", prediction_type)
        if final_sigmas_type not in ("zero", "sigma_min"):
            raise ValueError(f"`final_sigmas_type` must be one of 'zero', or 'sigma_min', but got {final_sigmas_type}")
        self._build_sigmas(zero_snr_fix=True)
        sig = torch.from_numpy(self._train_sigmas[::-1].copy())
        self.timesteps = torch.from_numpy(np.linspace(0, num_train_timesteps - 1, num_train_timesteps,
                                                      dtype=float)[::-1].copy()).to(torch.float32)
        self.num_inference_steps = None
        self.sigmas = torch.cat([sig, torch.zeros(1)])
        self.is_scale_input_called = False
        self.use_karras_sigmas = use_karras_sigmas
        self.use_exponential_sigmas = use_exponential_sigmas
        self.use_beta_sigmas = use_beta_sigmas
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps: list[int] | None = None,
                      sigmas: list[float] | None = None):
        if timesteps is not None and sigmas is not None:
            raise ValueError("Only one of `timesteps` or `sigmas` should be set.")
        if num_inference_steps is None and timesteps is None and sigmas is None:
            raise ValueError("Must pass exactly one of `num_inference_steps` or `timesteps` or `sigmas.")
        if num_inference_steps is not None and (timesteps is not None or sigmas is not None):
            raise ValueError("Can only pass one of `num_inference_steps` or `timesteps` or `sigmas`.")
        if timesteps is not None and self.config.use_karras_sigmas:
            raise ValueError("Cannot set `timesteps` with `config.use_karras_sigmas = True`.")
        if num_inference_steps is None:
            num_inference_steps = len(timesteps) if timesteps is not None else len(sigmas) - 1
        self.num_inference_steps = num_inference_steps
        log_sigmas = np.log(self._train_sigmas)
        if sigmas is not None:
            sigmas = np.array(sigmas).astype(np.float32)
            ts = np.array([_sigma_to_t(s, log_sigmas) for s in sigmas[:-1]])
        else:
            if timesteps is not None:
                ts = np.array(timesteps).astype(np.float32)
            else:
                ts = self._spaced_timesteps(num_inference_steps)
            sigmas = np.interp(ts, np.arange(0, len(self._train_sigmas)), self._train_sigmas)
            if self.config.use_karras_sigmas:
                sigmas = _karras(self.config, sigmas, num_inference_steps)
                ts = np.array([_sigma_to_t(s, log_sigmas) for s in sigmas])
            if self.config.final_sigmas_type == "sigma_min":
                sigma_last = float(((1 - self.alphas_cumprod[0]) / self.alphas_cumprod[0]) ** 0.5)
            else:
                sigma_last = 0.0
            sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float32)
        self.sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32)
        self.timesteps = torch.from_numpy(ts.astype(np.float32)).to(device=device)
        self._sig = self.sigmas.double().tolist()
        self._step_index = None
        self._begin_index = None
        self._noise_stream = 0

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, s_churn: float = 0.0,
             s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0, generator=None,
             return_dict: bool = True):
        return self._step(model_output, timestep, sample, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax,
                          s_noise=s_noise, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0,
              generator=None, return_dict=True, uncond_output=None, guidance_scale=1.0):
        _check_float_timestep(timestep, "EulerDiscreteScheduler")
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig if hasattr(self, "_sig") else self.sigmas.double().tolist()
        sigma, sigma_next = sig[i], sig[i + 1]
        num = len(sig) - 1
        gamma = min(s_churn / num, 2**0.5 - 1) if s_tmin <= sigma <= s_tmax else 0.0
        nkw = {}
        if gamma > 0:
            nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype)
        pt = "sample" if self.config.prediction_type == "original_sample" else self.config.prediction_type
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        prev, x0 = gd.euler_step(x, m, sigma, sigma_next, uncond_output=u, guidance_scale=guidance_scale,
                                 prediction_type=pt, s_churn=float(s_churn), s_tmin=float(s_tmin),
                                 s_tmax=float(s_tmax), s_noise=float(s_noise), num_steps=num, **nkw)
        prev = prev.to(model_output.dtype)
        self._step_index += 1
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return EulerDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=x0)


class EulerAncestralDiscreteScheduler(_SigmaScheduler, SchedulerMixin, ConfigMixin):
    """Ancestral sampling with Euler steps with diffusers' API; each step is
    :func:`gencore.diffusion.euler_ancestral_step` (noise and guidance fused)."""

    _compatibles = _KARRAS
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, prediction_type: str = "epsilon",
                 timestep_spacing: str = "linspace", steps_offset: int = 0, rescale_betas_zero_snr: bool = False):
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise _unsupported(type(self).__name__, "prediction_type", prediction_type)
        self._build_sigmas(zero_snr_fix=True)
        sigmas = np.concatenate([self._train_sigmas[::-1], [0.0]]).astype(np.float32)
        self.sigmas = torch.from_numpy(sigmas)
        self.num_inference_steps = None
        self.timesteps = torch.from_numpy(np.linspace(0, num_train_timesteps - 1, num_train_timesteps,
                                                      dtype=float)[::-1].copy())
        self.is_scale_input_called = False
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int, device=None):
        self.num_inference_steps = num_inference_steps
        ts = self._spaced_timesteps(num_inference_steps)
        sigmas = np.interp(ts, np.arange(0, len(self._train_sigmas)), self._train_sigmas)
        sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self.sigmas = torch.from_numpy(sigmas)
        self.timesteps = torch.from_numpy(ts).to(device=device)
        self._sig = self.sigmas.double().tolist()
        self._step_index = None
        self._begin_index = None
        self._noise_stream = 0

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True):
        return self._step(model_output, timestep, sample, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, generator=None, return_dict=True, uncond_output=None,
              guidance_scale=1.0):
        _check_float_timestep(timestep, "EulerDiscreteScheduler")
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig if hasattr(self, "_sig") else self.sigmas.double().tolist()
        # diffusers draws the noise on every step, the last included: keep the generator in step.
        nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype)
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        prev, x0 = gd.euler_ancestral_step(x, m, sig[i], sig[i + 1], eta=1.0, uncond_output=u,
                                           guidance_scale=guidance_scale, prediction_type=self.config.prediction_type,
                                           **nkw)
        prev = prev.to(model_output.dtype)
        self._step_index += 1
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=x0)


class HeunDiscreteScheduler(_SigmaScheduler, SchedulerMixin, ConfigMixin):
    """Heun's second-order method (Karras et al., 2022, Algorithm 1) with diffusers' API: two
    ``step`` calls per noise level; each is :func:`gencore.diffusion.heun_step`.

    Not supported (NotImplementedError): ``beta_schedule="exp"``, ``use_exponential_sigmas``,
    ``use_beta_sigmas``.
    """

    _compatibles = _KARRAS
    order = 2

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "linear", trained_betas=None, prediction_type: str = "epsilon",
                 use_karras_sigmas: bool | None = False, use_exponential_sigmas: bool | None = False,
                 use_beta_sigmas: bool | None = False, clip_sample: bool | None = False,
                 clip_sample_range: float = 1.0, timestep_spacing: str = "linspace", steps_offset: int = 0):
        name = type(self).__name__
        for opt in ("use_exponential_sigmas", "use_beta_sigmas"):
            if getattr(self.config, opt):
                raise _unsupported(name, opt, True)
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise _unsupported(name, "prediction_type", prediction_type)
        self._build_sigmas(zero_snr_fix=False)
        self.set_timesteps(num_train_timesteps, None, num_train_timesteps)
        self.use_karras_sigmas = use_karras_sigmas
        self._step_index = None
        self._begin_index = None

    @property
    def state_in_first_order(self):
        return self.dt is None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, num_train_timesteps: int | None = None,
                      timesteps: list[int] | None = None):
        if num_inference_steps is None and timesteps is None:
            raise ValueError("Must pass exactly one of `num_inference_steps` or `custom_timesteps`.")
        if num_inference_steps is not None and timesteps is not None:
            raise ValueError("Can only pass one of `num_inference_steps` or `custom_timesteps`.")
        if timesteps is not None and self.config.use_karras_sigmas:
            raise ValueError("Cannot use `timesteps` with `config.use_karras_sigmas = True`")
        num_inference_steps = num_inference_steps or len(timesteps)
        self.num_inference_steps = num_inference_steps
        if timesteps is not None:
            ts = np.array(timesteps, dtype=np.float32)
        else:
            ts = self._spaced_timesteps(num_inference_steps, num_train_timesteps)
        log_sigmas = np.log(self._train_sigmas)
        sigmas = np.interp(ts, np.arange(0, len(self._train_sigmas)), self._train_sigmas)
        if self.config.use_karras_sigmas:
            sigmas = _karras(self.config, sigmas, num_inference_steps)
            ts = np.array([_sigma_to_t(s, log_sigmas) for s in sigmas])
        sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
        self.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
        ts = torch.from_numpy(ts)
        ts = torch.cat([ts[:1], ts[1:].repeat_interleave(2)])
        self.timesteps = ts.to(device=device, dtype=torch.float32)
        self._sig = self.sigmas.double().tolist()
        self.prev_derivative = None
        self.dt = None
        self.sample = None
        self._step_index = None
        self._begin_index = None
        self._noise_stream = 0

    def step(self, model_output, timestep, sample, return_dict: bool = True):
        return self._step(model_output, timestep, sample, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, return_dict=True, uncond_output=None, guidance_scale=1.0):
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig
        kw = dict(uncond_output=uncond_output, guidance_scale=guidance_scale,
                  prediction_type=self.config.prediction_type, clip_sample=_clip_arg(self.config))
        if self.state_in_first_order:
            prev, x0, d = gd.heun_step(sample, model_output, sig[i], sig[i + 1], stage=1, **kw)
            self.prev_derivative = d
            self.dt = sig[i + 1] - sig[i]
            self.sample = sample
            self._sigma_pair = (sig[i], sig[i + 1])
        else:
            s, s_next = self._sigma_pair
            prev, x0, _ = gd.heun_step(sample, model_output, s, s_next, stage=2, derivative=self.prev_derivative,
                                       original_sample=self.sample, **kw)
            self.prev_derivative = None
            self.dt = None
            self.sample = None
        self._step_index += 1
        if not return_dict:
            return (prev, x0)
        return HeunDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=x0)


# ------------------------------------------------------------------------------------------------
# DPM-Solver++ (2M)
# ------------------------------------------------------------------------------------------------

class DPMSolverMultistepScheduler(_IndexedMixin, _Gencore, SchedulerMixin, ConfigMixin):
    """DPM-Solver++ multistep (Lu et al., 2022), first and second order, with diffusers' API; each
    step is :func:`gencore.diffusion.dpmpp_2m_step` (data prediction, midpoint form).

    Supported: ``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``, ``solver_order`` 1
    or 2, ``lower_order_final``, ``euler_at_final``, ``use_karras_sigmas``, ``final_sigmas_type``,
    ``lambda_min_clipped``, every ``timestep_spacing``, ``rescale_betas_zero_snr``. Not supported
    (NotImplementedError): other algorithm/solver types, ``solver_order=3``, ``thresholding``,
    learned variances, exponential/beta/lu/flow sigmas, dynamic shifting.
    """

    _compatibles = _KARRAS
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, solver_order: int = 2,
                 prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 algorithm_type: str = "dpmsolver++", solver_type: str = "midpoint", lower_order_final: bool = True,
                 euler_at_final: bool = False, use_karras_sigmas: bool | None = False,
                 use_exponential_sigmas: bool | None = False, use_beta_sigmas: bool | None = False,
                 use_lu_lambdas: bool | None = False, use_flow_sigmas: bool | None = False, flow_shift: float | None = 1.0,
                 final_sigmas_type: str | None = "zero", lambda_min_clipped: float = -float("inf"),
                 variance_type: str | None = None, timestep_spacing: str = "linspace", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False, use_dynamic_shifting: bool = False,
                 time_shift_type: str = "exponential"):
        name = type(self).__name__
        if algorithm_type == "deis":
            self.register_to_config(algorithm_type="dpmsolver++")
        if solver_type in ("logrho", "bh1", "bh2"):
            self.register_to_config(solver_type="midpoint")
        checks = {
            "algorithm_type": (self.config.algorithm_type, ("dpmsolver++",)),
            "solver_type": (self.config.solver_type, ("midpoint",)),
            "solver_order": (solver_order, (1, 2)),
            "prediction_type": (prediction_type, ("epsilon", "sample", "v_prediction")),
            "variance_type": (variance_type, (None,)),
            "final_sigmas_type": (final_sigmas_type, ("zero", "sigma_min")),
        }
        for opt, (value, ok) in checks.items():
            if value not in ok:
                raise _unsupported(name, opt, value)
        for opt in ("thresholding", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas",
                    "use_dynamic_shifting"):
            if getattr(self.config, opt):
                raise _unsupported(name, opt, True)
        self._schedule = _train_schedule(self.config, name)
        self.betas = self._schedule.betas.float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = self._schedule.alphas_cumprod.float()
        if rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2**-24
        self.alpha_t = torch.sqrt(self.alphas_cumprod)
        self.sigma_t = torch.sqrt(1 - self.alphas_cumprod)
        self.lambda_t = torch.log(self.alpha_t) - torch.log(self.sigma_t)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self._train_sigmas = self.sigmas.numpy().copy()
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = torch.from_numpy(np.linspace(0, num_train_timesteps - 1, num_train_timesteps,
                                                      dtype=np.float32)[::-1].copy())
        self.model_outputs = [None] * solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, mu: float | None = None,
                      timesteps: list[int] | None = None):
        if mu is not None:
            raise _unsupported(type(self).__name__, "mu (dynamic shifting)", mu)
        if num_inference_steps is None and timesteps is None:
            raise ValueError("Must pass exactly one of `num_inference_steps` or `timesteps`.")
        if num_inference_steps is not None and timesteps is not None:
            raise ValueError("Can only pass one of `num_inference_steps` or `custom_timesteps`.")
        if timesteps is not None and self.config.use_karras_sigmas:
            raise ValueError("Cannot use `timesteps` with `config.use_karras_sigmas = True`")
        T = self.config.num_train_timesteps
        if timesteps is not None:
            ts = np.array(timesteps).astype(np.int64)
        else:
            clipped_idx = torch.searchsorted(torch.flip(self.lambda_t, [0]), self.config.lambda_min_clipped)
            last = int(T - clipped_idx.item())
            n = num_inference_steps
            spacing = self.config.timestep_spacing
            if spacing == "linspace":
                ts = np.linspace(0, last - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
            elif spacing == "leading":
                ratio = last // (n + 1)
                ts = (np.arange(0, n + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
                ts += self.config.steps_offset
            elif spacing == "trailing":
                ts = np.arange(last, 0, -T / n).round().copy().astype(np.int64) - 1
            else:
                raise ValueError(f"{spacing} is not supported. Please make sure to choose one of 'linspace', "
                                 "'leading' or 'trailing'.")
        sigmas = self._train_sigmas
        log_sigmas = np.log(sigmas)
        if self.config.use_karras_sigmas:
            sigmas = _karras(self.config, np.flip(sigmas).copy(), num_inference_steps)
            ts = np.array([_sigma_to_t(s, log_sigmas) for s in sigmas])
            if self.config.beta_schedule != "squaredcos_cap_v2":
                ts = ts.round()
        else:
            sigmas = np.interp(ts, np.arange(0, len(sigmas)), sigmas)
        if self.config.final_sigmas_type == "sigma_min":
            sigma_last = float(((1 - self.alphas_cumprod[0]) / self.alphas_cumprod[0]) ** 0.5)
        else:
            sigma_last = 0.0
        sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float32)
        self.sigmas = torch.from_numpy(sigmas)
        self.timesteps = torch.from_numpy(ts).to(device=device, dtype=torch.int64)
        self._sig = self.sigmas.double().tolist()
        self.num_inference_steps = len(ts)
        self.model_outputs = [None] * self.config.solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None
        self._noise_stream = 0

    def index_for_timestep(self, timestep, schedule_timesteps=None):
        if schedule_timesteps is None:
            schedule_timesteps = self.timesteps
        candidates = (schedule_timesteps == timestep).nonzero()
        if len(candidates) == 0:
            return len(self.timesteps) - 1
        return candidates[1].item() if len(candidates) > 1 else candidates[0].item()

    def scale_model_input(self, sample: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return sample

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             variance_noise: torch.Tensor | None = None, return_dict: bool = True):
        return self._step(model_output, timestep, sample, generator=generator, variance_noise=variance_noise,
                          return_dict=return_dict)

    def _step(self, model_output, timestep, sample, generator=None, variance_noise=None, return_dict=True,
              uncond_output=None, guidance_scale=1.0):
        if self.num_inference_steps is None:
            raise ValueError("Number of inference steps is 'None', you need to run 'set_timesteps' after "
                             "creating the scheduler")
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig
        cfg = self.config
        lower = (cfg.solver_order == 1 or self.lower_order_nums < 1
                 or gd.dpmpp_2m_lower_order(i, len(self.timesteps), lower_order_final=cfg.lower_order_final,
                                            euler_at_final=cfg.euler_at_final, final_sigmas_type=cfg.final_sigmas_type))
        prev_x0 = self.model_outputs[-1]
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        prev, x0 = gd.dpmpp_2m_step(x, m, sig[i], sig[i + 1], prev_x0=None if lower else prev_x0.to(x.dtype),
                                    sigma_prev=sig[i - 1] if i > 0 else None, lower_order=lower,
                                    parameterization="vp", uncond_output=u, guidance_scale=guidance_scale,
                                    prediction_type=cfg.prediction_type)
        for k in range(cfg.solver_order - 1):
            self.model_outputs[k] = self.model_outputs[k + 1]
        self.model_outputs[-1] = x0
        if self.lower_order_nums < cfg.solver_order:
            self.lower_order_nums += 1
        prev = prev.to(model_output.dtype)
        self._step_index += 1
        self._noise_stream += 1
        if not return_dict:
            return (prev,)
        return SchedulerOutput(prev_sample=prev)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        sigma = self._sigmas_for(timesteps, original_samples)
        alpha_t = 1 / (sigma**2 + 1) ** 0.5
        return alpha_t * original_samples + sigma * alpha_t * noise

    def __len__(self):
        return self.config.num_train_timesteps


# ------------------------------------------------------------------------------------------------
# Flow matching
# ------------------------------------------------------------------------------------------------

class FlowMatchEulerDiscreteScheduler(_IndexedMixin, _Gencore, SchedulerMixin, ConfigMixin):
    """Euler steps of a flow-matching ODE (Lipman et al., 2023; Esser et al., 2024) with
    diffusers' API; each step is :func:`gencore.diffusion.flow_match_euler_step`.

    Supported: ``shift``, dynamic shifting (``mu``, exponential or linear), ``shift_terminal``,
    ``use_karras_sigmas``, ``stochastic_sampling``, custom ``sigmas``/``timesteps``. Not
    supported (NotImplementedError): ``invert_sigmas``, ``use_exponential_sigmas``,
    ``use_beta_sigmas``, ``per_token_timesteps``.
    """

    _compatibles = []
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0, use_dynamic_shifting: bool = False,
                 base_shift: float | None = 0.5, max_shift: float | None = 1.15, base_image_seq_len: int = 256,
                 max_image_seq_len: int = 4096, invert_sigmas: bool = False, shift_terminal: float | None = None,
                 use_karras_sigmas: bool | None = False, use_exponential_sigmas: bool | None = False,
                 use_beta_sigmas: bool | None = False, time_shift_type: str = "exponential",
                 stochastic_sampling: bool = False):
        name = type(self).__name__
        for opt in ("invert_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
            if getattr(self.config, opt):
                raise _unsupported(name, opt, True)
        if time_shift_type not in {"exponential", "linear"}:
            raise ValueError("`time_shift_type` must either be 'exponential' or 'linear'.")
        ts = np.linspace(1, num_train_timesteps, num_train_timesteps, dtype=np.float32)[::-1].copy()
        ts = torch.from_numpy(ts).to(dtype=torch.float32)
        sigmas = ts / num_train_timesteps
        if not use_dynamic_shifting:
            sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.timesteps = sigmas * num_train_timesteps
        self._step_index = None
        self._begin_index = None
        self._shift = shift
        self.sigmas = sigmas.to("cpu")
        self.sigma_min = self.sigmas[-1].item()
        self.sigma_max = self.sigmas[0].item()

    @property
    def shift(self):
        return self._shift

    def set_shift(self, shift: float):
        self._shift = shift

    def scale_noise(self, sample: torch.Tensor, timestep, noise: torch.Tensor | None = None) -> torch.Tensor:
        sigma = self._sigmas_for(timestep, sample)
        return sigma * noise + (1.0 - sigma) * sample

    def _sigma_to_t(self, sigma):
        return sigma * self.config.num_train_timesteps

    def time_shift(self, mu: float, sigma: float, t):
        if self.config.time_shift_type == "exponential":
            return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)
        return mu / (mu + (1 / t - 1) ** sigma)

    def stretch_shift_to_terminal(self, t):
        one_minus_z = 1 - t
        scale_factor = one_minus_z[-1] / (1 - self.config.shift_terminal)
        return 1 - one_minus_z / scale_factor

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, sigmas: list[float] | None = None,
                      mu: float | None = None, timesteps: list[float] | None = None):
        cfg = self.config
        if cfg.use_dynamic_shifting and mu is None:
            raise ValueError("`mu` must be passed when `use_dynamic_shifting` is set to be `True`")
        if sigmas is not None and timesteps is not None and len(sigmas) != len(timesteps):
            raise ValueError("`sigmas` and `timesteps` should have the same length")
        if num_inference_steps is not None:
            if (sigmas is not None and len(sigmas) != num_inference_steps) or (
                    timesteps is not None and len(timesteps) != num_inference_steps):
                raise ValueError("`sigmas` and `timesteps` should have the same length as num_inference_steps, "
                                 "if `num_inference_steps` is provided")
        else:
            num_inference_steps = len(sigmas) if sigmas is not None else len(timesteps)
        self.num_inference_steps = num_inference_steps
        given_ts = timesteps is not None
        if given_ts:
            timesteps = np.array(timesteps).astype(np.float32)
        if sigmas is None:
            if timesteps is None:
                timesteps = np.linspace(self._sigma_to_t(self.sigma_max), self._sigma_to_t(self.sigma_min),
                                        num_inference_steps)
            sigmas = timesteps / cfg.num_train_timesteps
        else:
            sigmas = np.array(sigmas).astype(np.float32)
            num_inference_steps = len(sigmas)
        if cfg.use_dynamic_shifting:
            sigmas = self.time_shift(mu, 1.0, sigmas)
        else:
            sigmas = self.shift * sigmas / (1 + (self.shift - 1) * sigmas)
        if cfg.shift_terminal:
            sigmas = self.stretch_shift_to_terminal(sigmas)
        if cfg.use_karras_sigmas:
            sigmas = _karras(cfg, sigmas, num_inference_steps)
        sigmas = torch.from_numpy(np.asarray(sigmas)).to(dtype=torch.float32, device=device)
        if given_ts:
            timesteps = torch.from_numpy(timesteps).to(dtype=torch.float32, device=device)
        else:
            timesteps = sigmas * cfg.num_train_timesteps
        self.timesteps = timesteps
        self.sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])
        self._sig = self.sigmas.double().tolist()
        self._step_index = None
        self._begin_index = None
        self._noise_stream = 0

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, s_churn: float = 0.0,
             s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0, generator=None,
             per_token_timesteps: torch.Tensor | None = None, return_dict: bool = True):
        if per_token_timesteps is not None:
            raise _unsupported(type(self).__name__, "per_token_timesteps", "tensor")
        return self._step(model_output, timestep, sample, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, generator=None, return_dict=True, uncond_output=None,
              guidance_scale=1.0, **unused):
        if isinstance(timestep, int) or isinstance(timestep, (torch.IntTensor, torch.LongTensor)):
            raise ValueError("Passing integer indices (e.g. from `enumerate(timesteps)`) as timesteps to "
                             "`FlowMatchEulerDiscreteScheduler.step()` is not supported. Make sure to pass one of "
                             "the `scheduler.timesteps` as a timestep.")
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig if hasattr(self, "_sig") else self.sigmas.double().tolist()
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        nkw = {}
        if self.config.stochastic_sampling:
            nkw = self._noise_kw(x.shape, generator, x.device, x.dtype)
        prev, _ = gd.flow_match_euler_step(x, m, sig[i], sig[i + 1], uncond_output=u, guidance_scale=guidance_scale,
                                           prediction_type="flow", stochastic=bool(self.config.stochastic_sampling),
                                           **nkw)
        prev = prev.to(model_output.dtype)
        self._step_index += 1
        self._noise_stream += 1
        if not return_dict:
            return (prev,)
        return FlowMatchEulerDiscreteSchedulerOutput(prev_sample=prev)

    def __len__(self):
        return self.config.num_train_timesteps
