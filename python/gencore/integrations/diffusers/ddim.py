"""diffusers' ``DDIMScheduler`` on :func:`gencore.diffusion.ddim_step`."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
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
)

__all__ = ["DDIMScheduler"]


class DDIMScheduler(VPNoising, Gencore, SchedulerMixin, ConfigMixin):
    """Denoising diffusion implicit models (Song et al., 2021) with diffusers' API; each step is
    :func:`gencore.diffusion.ddim_step` (eta, clipping and guidance fused).

    Not supported (NotImplementedError): ``thresholding``, beta schedules other than linear /
    scaled_linear / squaredcos_cap_v2 (as diffusers).
    """

    _compatibles = KARRAS_COMPATIBLES
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, clip_sample: bool = True,
                 set_alpha_to_one: bool = True, steps_offset: int = 0, prediction_type: str = "epsilon",
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                 clip_sample_range: float = 1.0, sample_max_value: float = 1.0, timestep_spacing: str = "leading",
                 rescale_betas_zero_snr: bool = False):
        name = type(self).__name__
        reject_options(name, self.config, "thresholding")
        self._set_schedule(train_schedule(self.config, name))
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self._final = 1.0 if set_alpha_to_one else self._schedule.alpha_prod(0)
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)

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
        prediction_type = check_prediction_type(self.config, ("epsilon", "sample", "v_prediction"))
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
                                 variance_noise, step_dtype=sample.dtype)
        prev, x0 = gd.ddim_step(sample, model_output, a_t, a_prev, eta=float(eta), uncond_output=uncond_output,
                                guidance_scale=guidance_scale, prediction_type=prediction_type,
                                clip_sample=clip_arg(self.config),
                                use_clipped_model_output=use_clipped_model_output, **nkw)
        self._noise_stream += 1
        if not return_dict:
            return (prev, x0)
        return DDIMSchedulerOutput(prev_sample=prev, pred_original_sample=x0)
