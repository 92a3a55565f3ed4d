"""diffusers' ``DPMSolverMultistepScheduler`` (DPM-Solver++ 2M and 2M SDE) on
:func:`gencore.diffusion.dpmpp_2m_sde_step` (eta = 0 is the ODE solver)."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

from gencore import diffusion as gd
from gencore.diffusion import schedules as gsched
from gencore.diffusion.paths import VP
from gencore.integrations.diffusers._base import (
    KARRAS_COMPATIBLES,
    Gencore,
    IndexedMixin,
    check_one_sigma_family,
    check_prediction_type,
    final_sigma,
    reject_options,
    train_schedule,
    unsupported,
)

__all__ = ["DPMSolverMultistepScheduler"]

# What diffusers accepts; the aliases it maps to others in __init__ (and writes back to the config).
_ALGORITHMS = ("dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++")
_SOLVERS = ("midpoint", "heun")
_ALGORITHM_ALIASES = {"deis": "dpmsolver++"}
_SOLVER_ALIASES = {"logrho": "midpoint", "bh1": "midpoint", "bh2": "midpoint"}


class DPMSolverMultistepScheduler(IndexedMixin, Gencore, SchedulerMixin, ConfigMixin):
    """DPM-Solver++ multistep (Lu et al., 2022), first and second order, with diffusers' API; each
    step is :func:`gencore.diffusion.dpmpp_2m_sde_step` (data prediction; eta = 1 for the SDE
    variant, whose noise is drawn from ``generator`` in float32 as diffusers draws it, or taken from
    ``variance_noise``).

    Supported: ``algorithm_type`` ``"dpmsolver++"`` and ``"sde-dpmsolver++"`` ("DPM++ 2M SDE", with
    ``use_karras_sigmas`` "DPM++ 2M SDE Karras"; ``deis``, which diffusers maps to dpmsolver++, with
    ``final_sigmas_type="sigma_min"`` as diffusers requires), ``solver_type`` ``"midpoint"`` and
    ``"heun"`` (``logrho``/``bh1``/``bh2`` map to midpoint, likewise), ``solver_order`` 1 or 2,
    ``lower_order_final``, ``euler_at_final``, ``use_karras_sigmas``, ``final_sigmas_type``,
    ``lambda_min_clipped``, every ``timestep_spacing``, ``rescale_betas_zero_snr``; a learned
    ``variance_type`` keeps the first 3 channels of an epsilon prediction, other values are
    ignored, as in diffusers. Not supported (NotImplementedError): the noise-prediction algorithms
    ``dpmsolver``/``sde-dpmsolver``,
    ``solver_order=3``, ``thresholding``, ``prediction_type="flow_prediction"``,
    exponential/beta/lu/flow sigmas, dynamic shifting (``mu``).
    """

    _compatibles = KARRAS_COMPATIBLES
    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas=None, solver_order: int = 2,
                 prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 algorithm_type: str = "dpmsolver++", solver_type: str = "midpoint", lower_order_final: bool = True,
                 euler_at_final: bool = False, use_karras_sigmas: bool | None = False,
                 use_exponential_sigmas: bool | None = False, use_beta_sigmas: bool | None = False,
                 use_lu_lambdas: bool | None = False, use_flow_sigmas: bool | None = False,
                 flow_shift: float | None = 1.0,
                 final_sigmas_type: str | None = "zero", lambda_min_clipped: float = -float("inf"),
                 variance_type: str | None = None, timestep_spacing: str = "linspace", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False, use_dynamic_shifting: bool = False,
                 time_shift_type: str = "exponential"):
        name = type(self).__name__
        check_one_sigma_family(self.config)
        if algorithm_type not in _ALGORITHMS:
            if algorithm_type not in _ALGORITHM_ALIASES:
                raise NotImplementedError(f"{algorithm_type} is not implemented for {type(self)}")
            self.register_to_config(algorithm_type=_ALGORITHM_ALIASES[algorithm_type])
        if solver_type not in _SOLVERS:
            if solver_type not in _SOLVER_ALIASES:
                raise NotImplementedError(f"{solver_type} is not implemented for {type(self)}")
            self.register_to_config(solver_type=_SOLVER_ALIASES[solver_type])
        if algorithm_type not in ("dpmsolver++", "sde-dpmsolver++") and final_sigmas_type == "zero":
            raise ValueError(f"`final_sigmas_type` {final_sigmas_type} is not supported for `algorithm_type` "
                             f"{algorithm_type}. Please choose `sigma_min` instead.")
        checks = {
            "algorithm_type": (self.config.algorithm_type, ("dpmsolver++", "sde-dpmsolver++")),
            "solver_order": (solver_order, (1, 2)),
        }
        for opt, (value, ok) in checks.items():
            if value not in ok:
                raise unsupported(name, opt, value)
        if prediction_type == "flow_prediction":
            raise unsupported(name, "prediction_type", prediction_type)
        reject_options(name, self.config, "thresholding", "use_exponential_sigmas", "use_beta_sigmas",
                       "use_lu_lambdas", "use_flow_sigmas")
        self._set_schedule(train_schedule(self.config, name, zero_snr_terminal=True))
        self.alpha_t = torch.sqrt(self.alphas_cumprod)
        self.sigma_t = torch.sqrt(1 - self.alphas_cumprod)
        self.lambda_t = torch.log(self.alpha_t) - torch.log(self.sigma_t)
        self.sigmas = self._schedule.sigmas.float()
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = gsched.timesteps(num_train_timesteps, num_train_timesteps, "linspace",
                                          integer=False).to(torch.float32)
        self.model_outputs = [None] * solver_order
        self.lower_order_nums = 0
        self._step_index = None
        self._begin_index = None

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, mu: float | None = None,
                      timesteps: list[int] | None = None):
        cfg = self.config
        if mu is not None:
            raise unsupported(type(self).__name__, "mu (dynamic shifting)", mu)
        if num_inference_steps is None and timesteps is None:
            raise ValueError("Must pass exactly one of `num_inference_steps` or `timesteps`.")
        if num_inference_steps is not None and timesteps is not None:
            raise ValueError("Can only pass one of `num_inference_steps` or `custom_timesteps`.")
        if timesteps is not None and cfg.use_karras_sigmas:
            raise ValueError("Cannot use `timesteps` with `config.use_karras_sigmas = True`")
        if timesteps is not None:
            ts = torch.tensor([int(t) for t in timesteps], dtype=torch.int64)
        else:
            ts = gsched.multistep_timesteps(self._schedule, num_inference_steps, cfg.timestep_spacing,
                                            cfg.steps_offset, lambda_min_clipped=cfg.lambda_min_clipped)
        if cfg.use_karras_sigmas:
            sig = self._karras(self._schedule.sigmas.flip(0), num_inference_steps)
            ts = gsched.sigma_to_t(sig, self._schedule)
            if cfg.beta_schedule != "squaredcos_cap_v2":
                ts = ts.round()
        else:
            sig = gsched.interp_sigmas(self._schedule, ts)
        sigma_last = final_sigma(self._schedule, cfg.final_sigmas_type)
        self.sigmas = torch.cat([sig, sigma_last]).to(torch.float32)
        self.timesteps = ts.to(device=device, dtype=torch.int64)
        self.num_inference_steps = len(ts)
        self.model_outputs = [None] * cfg.solver_order
        self.lower_order_nums = 0
        self._reset_steps()

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
        cfg = self.config
        prediction_type = check_prediction_type(cfg, ("epsilon", "sample", "v_prediction"))
        # diffusers returns the dtype of its converted output: the x0 prediction mixes sample and model
        # output (promoted) except for sample prediction, which is the model output itself.
        out_dtype = (model_output.dtype if prediction_type == "sample"
                     else torch.promote_types(model_output.dtype, sample.dtype))
        if prediction_type == "epsilon" and cfg.variance_type in ("learned", "learned_range"):
            model_output = model_output[:, :3]
            uncond_output = None if uncond_output is None else uncond_output[:, :3]
        i = self._step_index
        sig = self._sig
        lower = (cfg.solver_order == 1 or self.lower_order_nums < 1
                 or gd.dpmpp_2m_lower_order(i, len(self.timesteps), lower_order_final=cfg.lower_order_final,
                                            euler_at_final=cfg.euler_at_final, final_sigmas_type=cfg.final_sigmas_type))
        prev_x0 = self.model_outputs[-1]
        x = sample.to(torch.float32) if sample.dtype != torch.float64 else sample
        m = model_output.to(x.dtype)
        u = uncond_output.to(x.dtype) if uncond_output is not None else None
        sde = cfg.algorithm_type == "sde-dpmsolver++"
        # diffusers draws the SDE's noise on every step, the last included: keep the generator in step.
        nkw = self._noise_kw(model_output.shape, generator, model_output.device, torch.float32, variance_noise,
                             step_dtype=x.dtype) if sde else {}
        prev, x0 = gd.dpmpp_2m_sde_step(x, m, sig[i], sig[i + 1], prev_x0=None if lower else prev_x0.to(x.dtype),
                                        sigma_prev=sig[i - 1] if i > 0 and not lower else None, eta=float(sde),
                                        solver_type=cfg.solver_type, parameterization="vp", uncond_output=u,
                                        guidance_scale=guidance_scale, prediction_type=prediction_type, **nkw)
        for k in range(cfg.solver_order - 1):
            self.model_outputs[k] = self.model_outputs[k + 1]
        self.model_outputs[-1] = x0
        if self.lower_order_nums < cfg.solver_order:
            self.lower_order_nums += 1
        prev = prev.to(out_dtype)
        self._step_index += 1
        self._noise_stream += 1
        if not return_dict:
            return (prev,)
        return SchedulerOutput(prev_sample=prev)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        return VP.add_noise(original_samples, noise, self._sigmas_for(timesteps, original_samples))

    def __len__(self):
        return self.config.num_train_timesteps
