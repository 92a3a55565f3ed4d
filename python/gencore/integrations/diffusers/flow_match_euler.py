"""diffusers' ``FlowMatchEulerDiscreteScheduler`` on :func:`gencore.diffusion.flow_match_euler_step`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from gencore import diffusion as gd
from gencore.diffusion import schedules as gsched
from gencore.diffusion.paths import FLOW
from gencore.integrations.diffusers._base import (
    Gencore,
    IndexedMixin,
    check_float_timestep,
    check_one_sigma_family,
    reject_options,
    unsupported,
)

__all__ = ["FlowMatchEulerDiscreteScheduler"]


def _as_input(result: torch.Tensor, like):
    """``result`` (float64) in the kind of ``like``: tensor (same dtype and device), array or float."""
    if isinstance(like, torch.Tensor):
        return result.to(device=like.device, dtype=like.dtype)
    if isinstance(like, np.ndarray):
        return result.numpy().astype(like.dtype)
    return float(result)


class FlowMatchEulerDiscreteScheduler(IndexedMixin, Gencore, SchedulerMixin, ConfigMixin):
    """Euler steps of a flow-matching ODE (Lipman et al., 2023; Esser et al., 2024) with
    diffusers' API; each step is :func:`gencore.diffusion.flow_match_euler_step`.

    Supported: ``shift``, dynamic shifting (``mu``, exponential or linear), ``shift_terminal``,
    ``use_karras_sigmas``, ``stochastic_sampling``, custom ``sigmas``/``timesteps``. Not
    supported (NotImplementedError): ``invert_sigmas``, ``use_exponential_sigmas``,
    ``use_beta_sigmas``, ``per_token_timesteps``.
    """

    _compatibles: ClassVar[list[str]] = []
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0, use_dynamic_shifting: bool = False,
                 base_shift: float | None = 0.5, max_shift: float | None = 1.15, base_image_seq_len: int = 256,
                 max_image_seq_len: int = 4096, invert_sigmas: bool = False, shift_terminal: float | None = None,
                 use_karras_sigmas: bool | None = False, use_exponential_sigmas: bool | None = False,
                 use_beta_sigmas: bool | None = False, time_shift_type: str = "exponential",
                 stochastic_sampling: bool = False):
        check_one_sigma_family(self.config)
        reject_options(type(self).__name__, self.config, "invert_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
        if time_shift_type not in {"exponential", "linear"}:
            raise ValueError("`time_shift_type` must either be 'exponential' or 'linear'.")
        sigmas = gsched.flow_match_sigmas(num_train_timesteps, num_train_timesteps)
        if not use_dynamic_shifting:
            sigmas = gsched.flow_shift(sigmas, shift)
        sigmas = sigmas.to(torch.float32)
        self.timesteps = sigmas * num_train_timesteps
        self._step_index = None
        self._begin_index = None
        self._shift = shift
        self.sigmas = sigmas
        self.sigma_min = self.sigmas[-1].item()
        self.sigma_max = self.sigmas[0].item()

    @property
    def shift(self):
        return self._shift

    def set_shift(self, shift: float):
        self._shift = shift

    def scale_noise(self, sample: torch.Tensor, timestep, noise: torch.Tensor | None = None) -> torch.Tensor:
        return FLOW.add_noise(sample, noise, self._sigmas_for(timestep, sample))

    def _sigma_to_t(self, sigma):
        return sigma * self.config.num_train_timesteps

    def time_shift(self, mu: float, sigma: float, t):
        """:func:`gencore.diffusion.schedules.flow_time_shift` of ``t`` (tensor, array or float)
        with the config's ``time_shift_type``."""
        return _as_input(gsched.flow_time_shift(t, mu, sigma, self.config.time_shift_type), t)

    def stretch_shift_to_terminal(self, t):
        """:func:`gencore.diffusion.schedules.stretch_to_terminal` of ``t`` to the config's ``shift_terminal``."""
        return _as_input(gsched.stretch_to_terminal(t, self.config.shift_terminal), t)

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
        given_ts = None if timesteps is None else torch.tensor(timesteps, dtype=torch.float32)
        if sigmas is not None:
            sig = torch.tensor(sigmas, dtype=torch.float32).double()
            num_inference_steps = len(sig)
        elif given_ts is not None:
            sig = given_ts.double() / cfg.num_train_timesteps
        else:
            sig = gsched.flow_match_sigmas(num_inference_steps, cfg.num_train_timesteps, sigma_max=self.sigma_max,
                                           sigma_min=self.sigma_min)
        if cfg.use_dynamic_shifting:
            sig = gsched.flow_time_shift(sig, mu, 1.0, cfg.time_shift_type)
        else:
            sig = gsched.flow_shift(sig, self.shift)
        if cfg.shift_terminal:
            sig = gsched.stretch_to_terminal(sig, cfg.shift_terminal)
        if cfg.use_karras_sigmas:
            sig = self._karras(sig, num_inference_steps)
        sig = sig.to(dtype=torch.float32, device=device)
        self.timesteps = given_ts.to(device) if given_ts is not None else sig * cfg.num_train_timesteps
        self.sigmas = torch.cat([sig, torch.zeros(1, device=sig.device)])
        self._reset_steps()

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, s_churn: float = 0.0,
             s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0, generator=None,
             per_token_timesteps: torch.Tensor | None = None, return_dict: bool = True):
        if per_token_timesteps is not None:
            raise unsupported(type(self).__name__, "per_token_timesteps", "tensor")
        return self._step(model_output, timestep, sample, generator=generator, return_dict=return_dict)

    def _step(self, model_output, timestep, sample, generator=None, return_dict=True, uncond_output=None,
              guidance_scale=1.0, **unused):
        check_float_timestep(timestep, type(self).__name__)
        if self.step_index is None:
            self._init_step_index(timestep)
        i = self._step_index
        sig = self._sig if hasattr(self, "_sig") else self.sigmas.double().tolist()
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        nkw = {}
        if self.config.stochastic_sampling:
            # diffusers computes this step in float32 and draws its noise there, float64 samples too
            nkw = self._noise_kw(x.shape, generator, x.device, torch.float32, step_dtype=x.dtype)
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
