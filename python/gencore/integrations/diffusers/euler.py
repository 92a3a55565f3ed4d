"""diffusers' ``EulerDiscreteScheduler`` on :func:`gencore.diffusion.euler_step`."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from gencore import diffusion as gd
from gencore.diffusion import schedules as gsched
from gencore.diffusion.solvers import churn_gamma
from gencore.integrations.diffusers._base import (
    KARRAS_COMPATIBLES,
    SigmaScheduler,
    check_float_timestep,
    check_one_sigma_family,
    check_prediction_type,
    final_sigma,
    reject_options,
    unsupported,
)

__all__ = ["EulerDiscreteScheduler"]


class EulerDiscreteScheduler(SigmaScheduler, SchedulerMixin, ConfigMixin):
    """Euler steps of the probability-flow ODE (Karras et al., 2022, Algorithm 2) with diffusers'
    API; each step is :func:`gencore.diffusion.euler_step` (churn noise and guidance fused).

    Supported: linear interpolation, ``use_karras_sigmas``, ``sigma_min``/``sigma_max``, every
    ``timestep_spacing``, ``final_sigmas_type``, ``rescale_betas_zero_snr``, custom ``timesteps``
    or ``sigmas``. Not supported (NotImplementedError): ``interpolation_type="log_linear"``,
    ``use_exponential_sigmas``, ``use_beta_sigmas``, ``timestep_type="continuous"`` with
    v-prediction (diffusers ignores ``timestep_type`` otherwise).
    """

    _compatibles = KARRAS_COMPATIBLES
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
        check_one_sigma_family(self.config)
        reject_options(name, self.config, "use_exponential_sigmas", "use_beta_sigmas")
        if interpolation_type == "log_linear":
            raise unsupported(name, "interpolation_type", interpolation_type)
        if timestep_type == "continuous" and prediction_type == "v_prediction":
            raise unsupported(name, "timestep_type", timestep_type)
        self._build_sigmas(zero_snr_terminal=True)
        self.timesteps = gsched.timesteps(num_train_timesteps, num_train_timesteps, "linspace",
                                          integer=False).to(torch.float32)
        self.num_inference_steps = None
        self.sigmas = torch.cat([self._schedule.sigmas.flip(0).float(), torch.zeros(1)])
        self.is_scale_input_called = False
        self.use_karras_sigmas = use_karras_sigmas
        self.use_exponential_sigmas = use_exponential_sigmas
        self.use_beta_sigmas = use_beta_sigmas
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, timesteps: list[int] | None = None,
                      sigmas: list[float] | None = None):
        cfg = self.config
        if timesteps is not None and sigmas is not None:
            raise ValueError("Only one of `timesteps` or `sigmas` should be set.")
        if num_inference_steps is None and timesteps is None and sigmas is None:
            raise ValueError("Must pass exactly one of `num_inference_steps` or `timesteps` or `sigmas.")
        if num_inference_steps is not None and (timesteps is not None or sigmas is not None):
            raise ValueError("Can only pass one of `num_inference_steps` or `timesteps` or `sigmas`.")
        if timesteps is not None and cfg.use_karras_sigmas:
            raise ValueError("Cannot set `timesteps` with `config.use_karras_sigmas = True`.")
        if num_inference_steps is None:
            num_inference_steps = len(timesteps) if timesteps is not None else len(sigmas) - 1
        self.num_inference_steps = num_inference_steps
        if sigmas is not None:
            sigmas = torch.tensor(sigmas, dtype=torch.float32)
            ts = gsched.sigma_to_t(sigmas[:-1], self._schedule)
        else:
            if timesteps is not None:
                ts = torch.tensor(timesteps, dtype=torch.float32)
            else:
                ts = self._spaced_timesteps(num_inference_steps)
            if cfg.interpolation_type != "linear":
                raise ValueError(f"{cfg.interpolation_type} is not implemented. Please specify interpolation_type "
                                 "to either 'linear' or 'log_linear'")
            sig = gsched.interp_sigmas(self._schedule, ts)
            if cfg.use_karras_sigmas:
                sig = self._karras(sig, num_inference_steps)
                ts = gsched.sigma_to_t(sig, self._schedule)
            sigma_last = final_sigma(self._schedule, cfg.final_sigmas_type)
            sigmas = torch.cat([sig, sigma_last]).to(torch.float32)
        self.sigmas = sigmas
        self.timesteps = ts.to(device=device, dtype=torch.float32)
        self._reset_steps()

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, s_churn: float = 0.0,
             s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0, generator=None,
             return_dict: bool = True):
        return self._step(model_output, timestep, sample, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax,
                          s_noise=s_noise, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0,
              generator=None, return_dict=True, uncond_output=None, guidance_scale=1.0):
        check_float_timestep(timestep, type(self).__name__)
        if self.step_index is None:
            self._init_step_index(timestep)
        pt = check_prediction_type(self.config, ("original_sample", "sample", "epsilon", "v_prediction"))
        pt = "sample" if pt == "original_sample" else pt
        i = self._step_index
        sig = self._sig if hasattr(self, "_sig") else self.sigmas.double().tolist()
        sigma, sigma_next = sig[i], sig[i + 1]
        num = len(sig) - 1
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        nkw = {}
        if churn_gamma(s_churn, num, sigma, s_tmin, s_tmax) > 0:
            nkw = self._noise_kw(model_output.shape, generator, model_output.device, model_output.dtype,
                                 step_dtype=x.dtype)
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
