"""diffusers' ``HeunDiscreteScheduler`` on :func:`gencore.diffusion.heun_step`."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_heun_discrete import HeunDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from gencore import diffusion as gd
from gencore.diffusion import schedules as gsched
from gencore.integrations.diffusers._base import (
    KARRAS_COMPATIBLES,
    SigmaScheduler,
    check_one_sigma_family,
    check_prediction_type,
    clip_arg,
    reject_options,
)

__all__ = ["HeunDiscreteScheduler"]


def _twice_inner(v: torch.Tensor) -> torch.Tensor:
    """``[v0, v1, v1, v2, v2, ...]``: Heun's two ``step`` calls per noise level after the first."""
    return torch.cat([v[:1], v[1:].repeat_interleave(2)])


class HeunDiscreteScheduler(SigmaScheduler, SchedulerMixin, ConfigMixin):
    """Heun's second-order method (Karras et al., 2022, Algorithm 1) with diffusers' API: two
    ``step`` calls per noise level; each is :func:`gencore.diffusion.heun_step`.

    Not supported (NotImplementedError): ``beta_schedule="exp"``, ``use_exponential_sigmas``,
    ``use_beta_sigmas``.
    """

    _compatibles = KARRAS_COMPATIBLES
    order = 2

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "linear", trained_betas=None, prediction_type: str = "epsilon",
                 use_karras_sigmas: bool | None = False, use_exponential_sigmas: bool | None = False,
                 use_beta_sigmas: bool | None = False, clip_sample: bool | None = False,
                 clip_sample_range: float = 1.0, timestep_spacing: str = "linspace", steps_offset: int = 0):
        check_one_sigma_family(self.config)
        reject_options(type(self).__name__, self.config, "use_exponential_sigmas", "use_beta_sigmas")
        self._build_sigmas(zero_snr_terminal=False)
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
            ts = torch.tensor(timesteps, dtype=torch.float32)
        else:
            ts = self._spaced_timesteps(num_inference_steps, num_train_timesteps)
        sig = gsched.interp_sigmas(self._schedule, ts)
        if self.config.use_karras_sigmas:
            sig = self._karras(sig, num_inference_steps)
            ts = gsched.sigma_to_t(sig, self._schedule)
        sigmas = torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).to(torch.float32)
        self.sigmas = torch.cat([_twice_inner(sigmas[:-1]), sigmas[-1:]])
        self.timesteps = _twice_inner(ts).to(device=device, dtype=torch.float32)
        self.prev_derivative = None
        self.dt = None
        self.sample = None
        self._reset_steps()

    def step(self, model_output, timestep, sample, return_dict: bool = True):
        return self._step(model_output, timestep, sample, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, return_dict=True, uncond_output=None, guidance_scale=1.0):
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig
        kw = {"uncond_output": uncond_output, "guidance_scale": guidance_scale,
              "prediction_type": check_prediction_type(self.config, ("epsilon", "v_prediction", "sample")),
              "clip_sample": clip_arg(self.config)}
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
