"""What the diffusers-compatible schedulers share: the training schedule, config checks, the
step-index bookkeeping of the sigma-based schedulers, gencore's noise and fused guidance.

Nothing here computes a step; the steps are :mod:`gencore.diffusion`'s step functions and the
grids are :mod:`gencore.diffusion.schedules`'.
"""

from __future__ import annotations

import torch
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers
from diffusers.utils.torch_utils import randn_tensor

from gencore.diffusion import schedules as gsched
from gencore.diffusion.paths import VE, VP

__all__ = [
    "KARRAS_COMPATIBLES",
    "Gencore",
    "IndexedMixin",
    "SigmaScheduler",
    "check_float_timestep",
    "check_one_sigma_family",
    "check_prediction_type",
    "clip_arg",
    "reject_options",
    "train_schedule",
    "unsupported",
    "vp_add_noise",
    "vp_velocity",
]

KARRAS_COMPATIBLES = [e.name for e in KarrasDiffusionSchedulers]

# Added to the last abar after a zero-SNR rescale by diffusers' sigma-based schedulers.
_ZERO_SNR_TERMINAL = 2.0**-24


def unsupported(cls: str, option: str, value) -> NotImplementedError:
    """The error for a config option diffusers implements and gencore does not."""
    return NotImplementedError(f"{cls}: config option {option}={value!r} is not supported by gencore")


def reject_options(cls: str, config, *options: str) -> None:
    """Raises :func:`unsupported` for the first of ``options`` that is set in ``config``."""
    for opt in options:
        value = getattr(config, opt, None)
        if value:
            raise unsupported(cls, opt, value)


def check_one_sigma_family(config) -> None:
    """diffusers' check that at most one of the Karras / exponential / beta sigma grids is asked for."""
    if sum([config.use_beta_sigmas, config.use_exponential_sigmas, config.use_karras_sigmas]) > 1:
        raise ValueError("Only one of `config.use_beta_sigmas`, `config.use_exponential_sigmas`, "
                         "`config.use_karras_sigmas` can be used.")


def check_prediction_type(config, allowed: tuple[str, ...]) -> str:
    """The config's ``prediction_type`` if ``step`` handles it, else diffusers' ``ValueError``
    (raised where diffusers raises it: in ``step``, so a config with another class's value still loads)."""
    pt = config.prediction_type
    if pt not in allowed:
        raise ValueError(f"prediction_type given as {pt} must be one of {', '.join(f'`{p}`' for p in allowed)}")
    return pt


def train_schedule(config, cls: str, names=("linear", "scaled_linear", "squaredcos_cap_v2"), *,
                   zero_snr_terminal: bool = False) -> gsched.Schedule:
    """The training schedule of a diffusers config, built as diffusers builds it (float32 betas
    and cumulative product).

    Args:
        config: the scheduler's config (``trained_betas``, ``beta_schedule``, ``beta_start``,
            ``beta_end``, ``num_train_timesteps``, optionally ``rescale_betas_zero_snr``).
        cls: the scheduler's name, for errors.
        names: the beta schedules the class accepts; others raise ``NotImplementedError``.
        zero_snr_terminal: after a zero-SNR rescale, set the last abar to 2**-24 (diffusers'
            Euler, Euler ancestral and DPM-Solver).
    """
    rescale = bool(getattr(config, "rescale_betas_zero_snr", False))
    terminal = _ZERO_SNR_TERMINAL if (zero_snr_terminal and rescale) else None
    if config.trained_betas is not None:
        return gsched.Schedule.from_betas(config.trained_betas, rescale_zero_snr=rescale,
                                          terminal_alpha_cumprod=terminal, compute_dtype=torch.float32)
    if config.beta_schedule not in names:
        raise unsupported(cls, "beta_schedule", config.beta_schedule)
    return gsched.make_schedule(config.beta_schedule, config.num_train_timesteps, config.beta_start,
                                config.beta_end, rescale_zero_snr=rescale, terminal_alpha_cumprod=terminal,
                                compute_dtype=torch.float32)


def clip_arg(config) -> float | None:
    """The step functions' ``clip_sample`` argument from diffusers' ``clip_sample``/``clip_sample_range``."""
    return float(config.clip_sample_range) if config.clip_sample else None


def check_float_timestep(timestep, cls: str) -> None:
    """diffusers' refusal of integer step indices in the sigma-based schedulers' ``step``."""
    if isinstance(timestep, (int, torch.IntTensor, torch.LongTensor)):
        raise ValueError(
            f"Passing integer indices (e.g. from `enumerate(timesteps)`) as timesteps to `{cls}.step()` is not "
            "supported. Make sure to pass one of the `scheduler.timesteps` as a timestep.")


def _per_sample(values: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    v = values.to(device=like.device, dtype=like.dtype)
    return v[timesteps.to(like.device)].flatten().reshape((-1,) + (1,) * (like.dim() - 1))


def vp_add_noise(alphas_cumprod: torch.Tensor, original_samples: torch.Tensor, noise: torch.Tensor,
                 timesteps: torch.Tensor) -> torch.Tensor:
    """diffusers' ``add_noise`` of the DDPM/DDIM schedulers (``sqrt(abar) x0 + sqrt(1 - abar) noise``,
    per-sample timesteps, in the sample's dtype)."""
    a, s = VP.from_alpha_prod(_per_sample(alphas_cumprod, timesteps, original_samples))
    return a * original_samples + s * noise


def vp_velocity(alphas_cumprod: torch.Tensor, sample: torch.Tensor, noise: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
    """diffusers' ``get_velocity``: ``v = sqrt(abar) noise - sqrt(1 - abar) x0``."""
    a, s = VP.from_alpha_prod(_per_sample(alphas_cumprod, timesteps, sample))
    return a * noise - s * sample


def final_sigma(schedule, final_sigmas_type: str) -> torch.Tensor:
    """The sigma appended after the last step, (1,) float64: the schedule's smallest (``sigma_min``)
    or 0 (``zero``), as diffusers' ``final_sigmas_type``."""
    if final_sigmas_type == "sigma_min":
        return schedule.sigmas[:1]
    if final_sigmas_type == "zero":
        return torch.zeros(1, dtype=torch.float64)
    raise ValueError(f"`final_sigmas_type` must be one of 'zero', or 'sigma_min', but got {final_sigmas_type}")


class VPNoising:
    """``add_noise``, ``get_velocity`` and ``len`` of the schedulers that sample x_t (DDPM, DDIM)."""

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        return vp_add_noise(self.alphas_cumprod, original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        return vp_velocity(self.alphas_cumprod, sample, noise, timesteps)

    def __len__(self):
        return self.config.num_train_timesteps


class Gencore:
    """What every gencore scheduler adds to diffusers' API: noise source and fused guidance."""

    _noise_seed: int | None = None
    _noise_offset: int = 0
    _noise_stream: int = 0

    def _set_schedule(self, schedule: gsched.Schedule) -> None:
        """Holds the training schedule and diffusers' float32 views of it."""
        self._schedule = schedule
        self.betas = schedule.betas.float()
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = schedule.alphas_cumprod.float()

    def _karras(self, sigmas: torch.Tensor, steps: int) -> torch.Tensor:
        """diffusers' ``_convert_to_karras``: ``config.sigma_min``/``sigma_max`` (also when carried
        over from another class's config) or the grid's ends."""
        return gsched.convert_to_karras(sigmas, steps, getattr(self.config, "sigma_min", None),
                                        getattr(self.config, "sigma_max", None))

    def use_gencore_noise(self, seed: int | None, sample_offset: int = 0) -> None:
        """Draw step noise in-kernel under gencore's noise contract (``None``: back to
        diffusers-style ``generator`` noise). Step ``k`` after ``set_timesteps`` uses ``stream = k``."""
        self._noise_seed = None if seed is None else int(seed)
        self._noise_offset = int(sample_offset)

    def _noise_kw(self, shape, generator, device, dtype, variance_noise=None, step_dtype=None) -> dict:
        """The step's noise keywords: ``variance_noise``, gencore's counter-based noise, or noise drawn
        from ``generator`` in ``dtype`` as diffusers draws it; explicit noise is cast to
        ``step_dtype``, the dtype the step computes in."""
        if self._noise_seed is not None and variance_noise is None:
            return {"seed": self._noise_seed, "stream": self._noise_stream, "sample_offset": self._noise_offset}
        noise = variance_noise
        if noise is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        return {"noise": noise if step_dtype is None else noise.to(step_dtype)}

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


class IndexedMixin:
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

    def _reset_steps(self) -> None:
        """After ``set_timesteps``: host copies of the sigmas, no step taken yet."""
        self._sig = self.sigmas.double().tolist()
        self._step_index = None
        self._begin_index = None
        self._noise_stream = 0


class SigmaScheduler(IndexedMixin, Gencore):
    """Common part of the Euler, Euler ancestral and Heun schedulers (Karras sigmas
    ``sqrt((1 - abar) / abar)`` over the training timesteps)."""

    def _build_sigmas(self, zero_snr_terminal: bool) -> None:
        self._set_schedule(train_schedule(self.config, type(self).__name__, zero_snr_terminal=zero_snr_terminal))

    def _spaced_timesteps(self, n: int, num_train: int | None = None) -> torch.Tensor:
        T = num_train or self.config.num_train_timesteps
        return gsched.timesteps(T, n, self.config.timestep_spacing, self.config.steps_offset,
                                integer=False).to(torch.float32)

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

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
        return VE.add_noise(original_samples, noise, self._sigmas_for(timesteps, original_samples))

    def __len__(self):
        return self.config.num_train_timesteps
