"""Noise schedules: betas, cumulative alphas and sigmas, built in float64 on the host.

The four beta schedules are those of diffusers' ``DDPMScheduler`` (``linear``,
``scaled_linear``, ``squaredcos_cap_v2`` alias ``cosine``, ``sigmoid``), with the optional
zero-terminal-SNR rescale of Lin et al. (2023). Sigmas follow Karras et al. (2022):
``sigma_t = sqrt((1 - abar_t) / abar_t)``, so that ``x_t / sqrt(abar_t) = x_0 + sigma_t * eps``.
Timestep helpers reproduce diffusers' ``timestep_spacing`` rules.

Per-step coefficients are read from these float64 CPU tensors as Python floats
(:meth:`Schedule.alpha_prod`), so a sampling loop never synchronises with the device.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "SCHEDULES",
    "SPACINGS",
    "Schedule",
    "interp_sigmas",
    "karras_sigmas",
    "make_schedule",
    "timesteps",
]

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "cosine", "sigmoid")
SPACINGS = ("leading", "trailing", "linspace")


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete diffusion schedule (all tensors float64 on the CPU, shape (T,)).

    Attributes:
        name: the schedule's name (``linear``, ``scaled_linear``, ``squaredcos_cap_v2``,
            ``sigmoid`` or ``custom``).
        num_train_timesteps: T, the number of training timesteps.
        betas: beta_t, t = 0 .. T-1.
        alphas: 1 - beta_t.
        alphas_cumprod: abar_t = prod_{s <= t} alpha_s.
        sigmas: sqrt((1 - abar_t) / abar_t) (the Karras / k-diffusion sigma of timestep t).
    """

    name: str
    num_train_timesteps: int
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    sigmas: torch.Tensor
    _device_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_betas(cls, betas, name: str = "custom", *, compute_dtype: torch.dtype = torch.float64) -> Schedule:
        """A schedule from explicit betas (diffusers' ``trained_betas``).

        Args:
            betas: sequence or tensor of T values in (0, 1].
            name: a label.
            compute_dtype: dtype of the cumulative product (float32 reproduces diffusers'
                stored values bit for bit; the result is held in float64 either way).
        """
        b = torch.as_tensor(betas).to(compute_dtype)
        if b.dim() != 1 or b.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(b.shape)}")
        if not bool(((b > 0) & (b <= 1)).all()):
            raise ValueError("betas must lie in (0, 1]")
        return cls._build(name, b)

    @classmethod
    def _build(cls, name: str, betas: torch.Tensor) -> Schedule:
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        sigmas = ((1 - abar) / abar) ** 0.5
        f64 = torch.float64
        return cls(
            name=name,
            num_train_timesteps=int(betas.numel()),
            betas=betas.to(f64),
            alphas=alphas.to(f64),
            alphas_cumprod=abar.to(f64),
            sigmas=sigmas.to(f64),
        )

    def __len__(self) -> int:
        return self.num_train_timesteps

    def alpha_prod(self, t: int) -> float:
        """abar_t as a Python float; ``t < 0`` gives 1.0 (the DDIM/DDPM "final" value)."""
        t = int(t)
        if t >= self.num_train_timesteps:
            raise ValueError(f"t must be below num_train_timesteps={self.num_train_timesteps}, got {t}")
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def sigma(self, t: int) -> float:
        """sigma_t = sqrt((1 - abar_t) / abar_t) as a Python float."""
        t = int(t)
        if not 0 <= t < self.num_train_timesteps:
            raise ValueError(f"t must be in [0, {self.num_train_timesteps}), got {t}")
        return float(self.sigmas[t])

    def on(self, device: torch.device | str) -> dict[str, torch.Tensor]:
        """The schedule's tensors on ``device`` (copied once, then cached)."""
        key = str(torch.device(device))
        if key not in self._device_cache:
            self._device_cache[key] = {
                "betas": self.betas.to(device),
                "alphas_cumprod": self.alphas_cumprod.to(device),
                "sqrt_alphas_cumprod": self.alphas_cumprod.sqrt().to(device),
                "sqrt_one_minus_alphas_cumprod": (1.0 - self.alphas_cumprod).sqrt().to(device),
                "sigmas": self.sigmas.to(device),
            }
        return self._device_cache[key]


def _rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 of Lin et al. (2023), "Common diffusion noise schedules and sample steps are flawed"."""
    alphas = 1.0 - betas
    abar_sqrt = torch.cumprod(alphas, dim=0).sqrt()
    first = abar_sqrt[0].clone()
    last = abar_sqrt[-1].clone()
    abar_sqrt = abar_sqrt - last
    abar_sqrt = abar_sqrt * (first / (first - last))
    abar = abar_sqrt**2
    alphas = torch.cat([abar[0:1], abar[1:] / abar[:-1]])
    return 1 - alphas


def _cosine_betas(T: int, max_beta: float = 0.999) -> list[float]:
    def abar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return [min(1 - abar((i + 1) / T) / abar(i / T), max_beta) for i in range(T)]


def make_schedule(
    name: str,
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    *,
    rescale_zero_snr: bool = False,
    compute_dtype: torch.dtype = torch.float64,
) -> Schedule:
    """Builds a beta schedule exactly as diffusers' ``DDPMScheduler`` defines it.

    Args:
        name: ``linear`` (betas evenly spaced from ``beta_start`` to ``beta_end``),
            ``scaled_linear`` (square roots evenly spaced, latent diffusion),
            ``squaredcos_cap_v2`` or its alias ``cosine`` (Nichol & Dhariwal 2021, eq. 17, betas
            capped at 0.999), ``sigmoid`` (GeoDiff: ``sigmoid(linspace(-6, 6)) * (end - start) + start``).
        num_train_timesteps: T.
        beta_start, beta_end: the end points (unused by the cosine schedule).
        rescale_zero_snr: rescale to zero terminal SNR (Lin et al. 2023, Algorithm 1); then
            ``alphas_cumprod[-1] == 0`` and ``sigmas[-1] == inf``.
        compute_dtype: dtype the betas and the cumulative product are computed in.
            ``torch.float64`` (default) gives the schedule to double precision;
            ``torch.float32`` reproduces the values diffusers stores (it builds in float32)
            bit for bit. The result is held in float64 either way.

    Returns:
        A :class:`Schedule`.

    Example:
        >>> from gencore.diffusion import make_schedule
        >>> s = make_schedule("linear")
        >>> s.betas.dtype, s.num_train_timesteps, round(s.alpha_prod(999), 6)
        (torch.float64, 1000, 4e-05)
    """
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"name must be one of {list(SCHEDULES)}, got {name!r}")
    if not isinstance(num_train_timesteps, numbers.Integral) or isinstance(num_train_timesteps, bool):
        raise TypeError(f"num_train_timesteps must be an integer, got {type(num_train_timesteps).__name__}")
    if num_train_timesteps < 2:
        raise ValueError(f"num_train_timesteps must be at least 2, got {num_train_timesteps}")
    for nm, v in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f"{nm} must be a real number, got {type(v).__name__}")
        if not 0 < v < 1:
            raise ValueError(f"{nm} must be in (0, 1), got {v}")
    if compute_dtype not in (torch.float32, torch.float64):
        raise TypeError(f"compute_dtype must be torch.float32 or torch.float64, got {compute_dtype}")
    T = int(num_train_timesteps)
    dt = compute_dtype
    if name == "linear":
        betas = torch.linspace(beta_start, beta_end, T, dtype=dt)
    elif name == "scaled_linear":
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=dt) ** 2
    elif name in ("squaredcos_cap_v2", "cosine"):
        name = "squaredcos_cap_v2"
        betas = torch.tensor(_cosine_betas(T), dtype=dt)
    else:  # sigmoid
        betas = torch.sigmoid(torch.linspace(-6, 6, T, dtype=dt)) * (beta_end - beta_start) + beta_start
    if rescale_zero_snr:
        betas = _rescale_zero_terminal_snr(betas)
    return Schedule._build(name, betas)


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, *,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The noise levels of Karras et al. (2022), eq. 5, as k-diffusion's ``get_sigmas_karras``.

    ``sigma_i = (sigma_max^(1/rho) + i/(n-1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho``
    for i = 0 .. n-1, followed by a trailing 0 (the final, noise-free level), so the result has
    ``n + 1`` entries. Computed in float64 (k-diffusion builds its ramp in float32).

    Args:
        n: number of non-zero noise levels (>= 1).
        sigma_min, sigma_max: the end points, 0 < sigma_min <= sigma_max.
        rho: the warping exponent (7 in the paper).
        device: where to put the result.

    Returns:
        float64 tensor (n + 1,), decreasing, ending in 0.

    Example:
        >>> from gencore.diffusion import karras_sigmas
        >>> s = karras_sigmas(3, 0.1, 10.0)
        >>> [round(float(v), 4) for v in s]
        [10.0, 1.4507, 0.1, 0.0]
    """
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    for nm, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max), ("rho", rho)):
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"{nm} must be a positive number, got {v!r}")
    if sigma_min > sigma_max:
        raise ValueError(f"sigma_min ({sigma_min}) must not exceed sigma_max ({sigma_max})")
    ramp = torch.linspace(0, 1, int(n), dtype=torch.float64)
    min_inv = float(sigma_min) ** (1 / rho)
    max_inv = float(sigma_max) ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device)


def _num_train(schedule_or_T) -> int:
    if isinstance(schedule_or_T, Schedule):
        return schedule_or_T.num_train_timesteps
    if isinstance(schedule_or_T, numbers.Integral) and not isinstance(schedule_or_T, bool):
        return int(schedule_or_T)
    raise TypeError(f"schedule must be a Schedule or an integer T, got {type(schedule_or_T).__name__}")


def timesteps(schedule: Schedule | int, steps: int, spacing: str = "trailing", steps_offset: int = 0, *,
              integer: bool = True) -> torch.Tensor:
    """Inference timesteps (decreasing) as diffusers' ``set_timesteps`` computes them.

    ``leading``: ``arange(steps) * (T // steps) + steps_offset``; ``trailing``:
    ``round(arange(T, 0, -T / steps)) - 1`` (starts at T - 1); ``linspace``:
    ``linspace(0, T - 1, steps)``, rounded when ``integer`` (DDPM/DDIM) and kept fractional
    otherwise (Euler, Heun and the other sigma-based schedulers). See Lin et al. (2023), Table 2.

    Args:
        schedule: a :class:`Schedule` or the number of training timesteps T.
        steps: number of inference steps, 1 <= steps <= T.
        spacing: ``leading``, ``trailing`` or ``linspace``.
        steps_offset: added to ``leading`` timesteps (diffusers' ``steps_offset``).
        integer: int64 timesteps (DDPM/DDIM) or float64 (sigma-based schedulers).

    Returns:
        tensor (steps,), int64 or float64, decreasing.

    Example:
        >>> from gencore.diffusion import timesteps
        >>> timesteps(1000, 4).tolist(), timesteps(1000, 4, "leading", 1).tolist()
        ([999, 749, 499, 249], [751, 501, 251, 1])
    """
    T = _num_train(schedule)
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool):
        raise TypeError(f"steps must be an integer, got {type(steps).__name__}")
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, num_train_timesteps={T}], got {steps}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)}, got {spacing!r}")
    if not isinstance(steps_offset, numbers.Integral) or isinstance(steps_offset, bool) or steps_offset < 0:
        raise ValueError(f"steps_offset must be a non-negative integer, got {steps_offset!r}")
    steps = int(steps)
    if spacing == "linspace":
        ts = np.linspace(0, T - 1, steps)[::-1].copy()
        if integer:
            ts = ts.round()
    elif spacing == "leading":
        ratio = T // steps
        ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.float64) + steps_offset
    else:
        ratio = T / steps
        ts = np.round(np.arange(T, 0, -ratio)).astype(np.float64) - 1
    if integer:
        return torch.from_numpy(ts.astype(np.int64))
    return torch.from_numpy(ts.astype(np.float64))


def interp_sigmas(schedule: Schedule, ts) -> torch.Tensor:
    """sigma at (possibly fractional) timesteps by linear interpolation in t, as diffusers'
    Euler/Heun schedulers compute it (``np.interp(t, arange(T), sigmas)``).

    Args:
        schedule: the schedule.
        ts: timesteps, tensor or sequence (N,).

    Returns:
        float64 tensor (N,).

    Example:
        >>> from gencore.diffusion import make_schedule, interp_sigmas
        >>> s = make_schedule("linear")
        >>> bool(interp_sigmas(s, [10])[0] == s.sigmas[10])
        True
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    t = torch.as_tensor(ts).detach().cpu().to(torch.float64).numpy()
    T = schedule.num_train_timesteps
    out = np.interp(t, np.arange(0, T), schedule.sigmas.numpy())
    return torch.from_numpy(np.asarray(out, dtype=np.float64))
