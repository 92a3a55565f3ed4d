"""diffusers' ``EulerAncestralDiscreteScheduler`` on :func:`gencore.diffusion.euler_ancestral_step`."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from gencore import diffusion as gd
from gencore.diffusion import schedules as gsched
from gencore.integrations.diffusers._base import (
    KARRAS_COMPATIBLES,
    SigmaScheduler,
    check_float_timestep,
    check_prediction_type,
)

__all__ = ["EulerAncestralDiscreteScheduler"]


class EulerAncestralDiscreteScheduler(SigmaScheduler, SchedulerMixin, ConfigMixin):
    """Ancestral sampling with Euler steps with diffusers' API; each step is
    :func:`gencore.diffusion.euler_ancestral_step` (noise and guidance fused).

    Supported: ``prediction_type`` epsilon / v_prediction / sample (diffusers raises on sample),
    every ``timestep_spacing``, ``rescale_betas_zero_snr``.
    """

    _compatibles = KARRAS_COMPATIBLES
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, prediction_type: str = "epsilon",
                 timestep_spacing: str = "linspace", steps_offset: int = 0, rescale_betas_zero_snr: bool = False):
        self._build_sigmas(zero_snr_terminal=True)
        self.sigmas = torch.cat([self._schedule.sigmas.flip(0), torch.zeros(1, dtype=torch.float64)]).float()
        self.num_inference_steps = None
        self.timesteps = gsched.timesteps(num_train_timesteps, num_train_timesteps, "linspace", integer=False)
        self.is_scale_input_called = False
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int, device=None):
        self.num_inference_steps = num_inference_steps
        ts = self._spaced_timesteps(num_inference_steps)
        sig = gsched.interp_sigmas(self._schedule, ts)
        self.sigmas = torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).to(torch.float32)
        self.timesteps = ts.to(device=device)
        self._reset_steps()

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, generator=None,
             return_dict: bool = True):
        return self._step(model_output, timestep, sample, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, generator=None, return_dict=True, uncond_output=None,
              guidance_scale=1.0):
        check_float_timestep(timestep, "EulerDiscreteScheduler")
        if self.step_index is None:
            self._init_step_index(timestep)
        pt = check_prediction_type(self.config, ("epsilon", "v_prediction", "sample"))
        i = self._step_index
        sig = self._sig if hasattr(self, "_sig") else self.sigmas.double().tolist()
        # diffusers draws the noise on every step, the last included: keep the generator in step.
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype,
                             step_dtype=x.dtype)
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        prev, x0 = gd.euler_ancestral_step(x, m, sig[i], sig[i + 1], eta=1.0, uncond_output=u,
                                           guidance_scale=guidance_scale, prediction_type=pt, **nkw)
        prev = prev.to(model_output.dtype)
        self._step_index += 1
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return EulerAncestralDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=x0)
