"""diffusers' ``DDPMScheduler`` on :func:`gencore.diffusion.ddpm_step`."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from gencore import diffusion as gd
from gencore.integrations.diffusers._base import (
    KARRAS_COMPATIBLES,
    Gencore,
    VPNoising,
    check_prediction_type,
    clip_arg,
    reject_options,
    train_schedule,
    unsupported,
)

__all__ = ["DDPMScheduler"]

# diffusers' variance types with an effect gencore does not implement. Any other value,
# ``None`` and another class's values included, falls through diffusers' ``_get_variance``
# to the fixed-small posterior variance.
_UNSUPPORTED_VARIANCE = ("fixed_large_log", "learned", "learned_range")


def _variance_kind(variance_type) -> str:
    return "fixed_large" if variance_type == "fixed_large" else "fixed_small"


class DDPMScheduler(VPNoising, Gencore, SchedulerMixin, ConfigMixin):
    """Denoising diffusion probabilistic models (Ho et al., 2020) with diffusers' API; each step
    is :func:`gencore.diffusion.ddpm_step`.

    Supported: ``beta_schedule`` linear / scaled_linear / squaredcos_cap_v2 / sigmoid or
    ``trained_betas``, ``variance_type`` fixed_small / fixed_small_log / fixed_large (and, as in
    diffusers, any value diffusers does not act on, ``None`` included, as fixed_small),
    ``prediction_type`` epsilon / sample / v_prediction, ``clip_sample``, every
    ``timestep_spacing``, ``rescale_betas_zero_snr``. Not supported (NotImplementedError):
    ``thresholding``, learned variances, ``fixed_large_log``, the laplace schedule.
    """

    _compatibles = KARRAS_COMPATIBLES
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, variance_type: str = "fixed_small",
                 clip_sample: bool = True, prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, clip_sample_range: float = 1.0,
                 sample_max_value: float = 1.0, timestep_spacing: str = "leading", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False):
        name = type(self).__name__
        reject_options(name, self.config, "thresholding")
        if variance_type in _UNSUPPORTED_VARIANCE:
            raise unsupported(name, "variance_type", variance_type)
        self._set_schedule(train_schedule(self.config, name, ("linear", "scaled_linear", "squaredcos_cap_v2",
                                                              "sigmoid")))
        self.one = torch.tensor(1.0)
        self.init_noise_sigma = 1.0
        self.custom_timesteps = False
        self.num_inference_steps = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)
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
            ts = torch.tensor([int(t) for t in timesteps], dtype=torch.int64)
            self.custom_timesteps = True
        else:
            if num_inference_steps > T:
                raise ValueError(f"`num_inference_steps`: {num_inference_steps} cannot be larger than "
                                 f"`self.config.train_timesteps`: {T}")
            self.num_inference_steps = num_inference_steps
            self.custom_timesteps = False
            ts = gd.timesteps(T, num_inference_steps, self.config.timestep_spacing, self.config.steps_offset)
        self.timesteps = ts.to(device)
        self._ts = ts.tolist()
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
        prediction_type = check_prediction_type(self.config, ("epsilon", "sample", "v_prediction"))
        t = self._int_t(timestep)
        prev_t = int(self.previous_timestep(t))
        a_t = self._schedule.alpha_prod(t)
        a_prev = self._schedule.alpha_prod(prev_t)
        add = t > 0
        nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype) if add else {}
        prev, x0 = gd.ddpm_step(sample, model_output, a_t, a_prev, variance_type=_variance_kind(self.variance_type),
                                uncond_output=uncond_output, guidance_scale=guidance_scale,
                                prediction_type=prediction_type, clip_sample=clip_arg(self.config), add_noise=add,
                                **nkw)
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return DDPMSchedulerOutput(prev_sample=prev, pred_original_sample=x0)
