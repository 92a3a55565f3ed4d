"""Noise schedules: betas, cumulative alphas and sigmas, built in float64 on the host.

The four beta schedules are those of diffusers' ``DDPMScheduler`` (``linear``,
``scaled_linear``, ``squaredcos_cap_v2`` alias ``cosine``, ``sigmoid``), with the optional
zero-terminal-SNR rescale of Lin et al. (2023). Sigmas follow Karras et al. (2022):
``sigma_t = sqrt((1 - abar_t) / abar_t)``, so that ``x_t / sqrt(abar_t) = x_0 + sigma_t * eps``.
Timestep helpers reproduce diffusers' ``timestep_spacing`` rules, and the sigma-grid helpers
(:func:`interp_sigmas`, :func:`sigma_to_t`, :func:`convert_to_karras`, the flow-matching shifts)
reproduce the grids diffusers' schedulers build in ``set_timesteps``; all are computed in float64
torch, with numpy's ``linspace``/``arange`` arithmetic where diffusers uses numpy, so rounded
timesteps land on the same integers.

Per-step coefficients are read from these float64 CPU tensors as Python floats
(:meth:`Schedule.alpha_prod`), so a sampling loop never synchronises with the device.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch

__all__ = [
    "SCHEDULES",
    "SPACINGS",
    "Schedule",
    "convert_to_karras",
    "flow_match_sigmas",
    "flow_shift",
    "flow_time_shift",
    "interp_sigmas",
    "karras_sigmas",
    "make_schedule",
    "multistep_timesteps",
    "sigma_to_t",
    "stretch_to_terminal",
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
    def from_betas(cls, betas, name: str = "custom", *, rescale_zero_snr: bool = False,
                   terminal_alpha_cumprod: float | None = None,
                   compute_dtype: torch.dtype = torch.float64) -> Schedule:
        """A schedule from explicit betas (diffusers' ``trained_betas``).

        Args:
            betas: sequence or tensor of T values in (0, 1].
            name: a label.
            rescale_zero_snr: rescale to zero terminal SNR first (Lin et al. 2023, Algorithm 1).
            terminal_alpha_cumprod: replaces abar_{T-1} before the sigmas are taken (diffusers'
                sigma-based schedulers use 2**-24 after a zero-SNR rescale, so sigma_{T-1} is finite).
            compute_dtype: dtype of the cumulative product (float32 reproduces diffusers'
                stored values bit for bit; the result is held in float64 either way).

        Example:
            >>> from gencore.diffusion import Schedule
            >>> round(Schedule.from_betas([0.1, 0.2]).alpha_prod(1), 12)
            0.72
        """
        if compute_dtype not in (torch.float32, torch.float64):
            raise TypeError(f"compute_dtype must be torch.float32 or torch.float64, got {compute_dtype}")
        b = torch.as_tensor(betas, dtype=compute_dtype)
        if b.dim() != 1 or b.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(b.shape)}")
        if not bool(((b > 0) & (b <= 1)).all()):
            raise ValueError("betas must lie in (0, 1]")
        if rescale_zero_snr:
            b = _rescale_zero_terminal_snr(b)
        return cls._build(name, b, terminal_alpha_cumprod)

    @classmethod
    def _build(cls, name: str, betas: torch.Tensor, terminal_alpha_cumprod: float | None = None) -> Schedule:
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        if terminal_alpha_cumprod is not None:
            if not 0 < terminal_alpha_cumprod < 1:
                raise ValueError(f"terminal_alpha_cumprod must be in (0, 1), got {terminal_alpha_cumprod!r}")
            abar[-1] = terminal_alpha_cumprod
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
    terminal_alpha_cumprod: float | None = None,
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
        terminal_alpha_cumprod: replaces abar_{T-1} before the sigmas are taken (diffusers'
            Euler, Euler ancestral and DPM-Solver use 2**-24 after a zero-SNR rescale).
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
    return Schedule._build(name, betas, terminal_alpha_cumprod)


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


def _linspace(start: float, stop: float, num: int) -> torch.Tensor:
    """``numpy.linspace(start, stop, num)`` with numpy's arithmetic (``start + i * step``, the
    last point set to ``stop``), float64."""
    num = int(num)
    y = torch.arange(num, dtype=torch.float64)
    if num > 1:
        step = (float(stop) - float(start)) / (num - 1)
        y = y * step if step != 0 else y / (num - 1) * (float(stop) - float(start))
    y = y + float(start)
    if num > 1:
        y[-1] = float(stop)
    return y


def _arange(start: float, stop: float, step: float) -> torch.Tensor:
    """``numpy.arange(start, stop, step)`` for float arguments with numpy's arithmetic (the
    second value is ``start + step``; later ones ``start + i * (second - start)``), float64."""
    n = max(0, math.ceil((float(stop) - float(start)) / float(step)))
    if n == 0:
        return torch.empty(0, dtype=torch.float64)
    second = float(start) + float(step)
    y = float(start) + torch.arange(n, dtype=torch.float64) * (second - float(start))
    y[0] = float(start)
    if n > 1:
        y[1] = second
    return y


def _num_train(schedule_or_T) -> int:
    if isinstance(schedule_or_T, Schedule):
        return schedule_or_T.num_train_timesteps
    if isinstance(schedule_or_T, numbers.Integral) and not isinstance(schedule_or_T, bool):
        return int(schedule_or_T)
    raise TypeError(f"schedule must be a Schedule or an integer T, got {type(schedule_or_T).__name__}")


def _check_steps(steps, T: int, spacing: str, steps_offset) -> int:
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool):
        raise TypeError(f"steps must be an integer, got {type(steps).__name__}")
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, num_train_timesteps={T}], got {steps}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)}, got {spacing!r}")
    if not isinstance(steps_offset, numbers.Integral) or isinstance(steps_offset, bool) or steps_offset < 0:
        raise ValueError(f"steps_offset must be a non-negative integer, got {steps_offset!r}")
    return int(steps)


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
    steps = _check_steps(steps, T, spacing, steps_offset)
    if spacing == "linspace":
        ts = _linspace(0, T - 1, steps).flip(0)
        if integer:
            ts = ts.round()
    elif spacing == "leading":
        ts = (torch.arange(steps, dtype=torch.float64) * (T // steps)).flip(0) + steps_offset
    else:
        ts = _arange(T, 0, -T / steps).round() - 1
    return ts.to(torch.int64) if integer else ts


def _lambda_clipped_last(schedule: Schedule | int, lambda_min_clipped: float) -> int:
    T = _num_train(schedule)
    if lambda_min_clipped == -math.inf:
        return T
    if not isinstance(schedule, Schedule):
        raise TypeError("lambda_min_clipped needs a Schedule (the log-SNR of each timestep), got an integer T")
    abar = schedule.alphas_cumprod
    lambdas = torch.log(abar.sqrt()) - torch.log((1 - abar).sqrt())
    return T - int(torch.searchsorted(lambdas.flip(0), torch.tensor(float(lambda_min_clipped), dtype=torch.float64)))


def multistep_timesteps(schedule: Schedule | int, steps: int, spacing: str = "linspace", steps_offset: int = 0, *,
                        lambda_min_clipped: float = -math.inf) -> torch.Tensor:
    """Integer inference timesteps of diffusers' ``DPMSolverMultistepScheduler.set_timesteps``.

    The grid runs over ``[0, last)``, where ``last`` is T less the timesteps whose half log-SNR
    ``lambda_t = log(alpha_t / sigma_t)`` lies below ``lambda_min_clipped``: ``linspace``:
    ``round(linspace(0, last - 1, steps + 1))`` without its 0; ``leading``:
    ``arange(steps + 1) * (last // (steps + 1)) + steps_offset`` without its smallest entry;
    ``trailing``: ``round(arange(last, 0, -T / steps)) - 1``.

    Args:
        schedule: a :class:`Schedule` (needed with ``lambda_min_clipped``) or the number of
            training timesteps T.
        steps: number of inference steps, 1 <= steps <= T.
        spacing: ``leading``, ``trailing`` or ``linspace``.
        steps_offset: added to ``leading`` timesteps.
        lambda_min_clipped: the clipping threshold on lambda_t (``-inf``: no clipping).

    Returns:
        int64 tensor (steps,), decreasing.

    Example:
        >>> from gencore.diffusion.schedules import multistep_timesteps
        >>> multistep_timesteps(1000, 4).tolist()
        [999, 749, 500, 250]
    """
    T = _num_train(schedule)
    steps = _check_steps(steps, T, spacing, steps_offset)
    last = _lambda_clipped_last(schedule, lambda_min_clipped)
    if spacing == "linspace":
        ts = _linspace(0, last - 1, steps + 1).round().flip(0)[:-1]
    elif spacing == "leading":
        ts = (torch.arange(steps + 1, dtype=torch.float64) * (last // (steps + 1))).flip(0)[:-1] + steps_offset
    else:
        ts = _arange(last, 0, -T / steps).round() - 1
    return ts.to(torch.int64)


def _train_sigmas(schedule_or_sigmas) -> torch.Tensor:
    if isinstance(schedule_or_sigmas, Schedule):
        return schedule_or_sigmas.sigmas
    sig = torch.as_tensor(schedule_or_sigmas)
    if sig.dim() != 1 or sig.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D sequence of at least 2 values, got shape {tuple(sig.shape)}")
    return sig.detach().to("cpu", torch.float64)


def interp_sigmas(schedule: Schedule, ts) -> torch.Tensor:
    """sigma at (possibly fractional) timesteps by linear interpolation in t, as diffusers'
    schedulers compute it (``np.interp(t, arange(T), sigmas)``, same arithmetic).

    Args:
        schedule: the schedule, or its per-timestep sigmas as a 1-D tensor (T,).
        ts: timesteps, tensor or sequence (N,); values outside [0, T - 1] take the end values.

    Returns:
        float64 tensor (N,).

    Example:
        >>> from gencore.diffusion import make_schedule, interp_sigmas
        >>> s = make_schedule("linear")
        >>> bool(interp_sigmas(s, [10])[0] == s.sigmas[10])
        True
    """
    if not isinstance(schedule, (Schedule, torch.Tensor)):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    sig = _train_sigmas(schedule)
    t = torch.as_tensor(ts).detach().to("cpu", torch.float64)
    shape = t.shape
    t = t.reshape(-1)
    last = sig.numel() - 1
    j = t.floor().clamp(0, last).to(torch.int64)
    slope = sig[(j + 1).clamp(max=last)] - sig[j]
    out = slope * (t - j) + sig[j]
    out = torch.where(t == j, sig[j], out)
    out = torch.where(t <= 0, sig[0], out)
    out = torch.where(t >= last, sig[last], out)
    return out.reshape(shape)


def sigma_to_t(sigmas, schedule: Schedule) -> torch.Tensor:
    """The fractional timestep of each sigma: linear interpolation in log sigma between the two
    training timesteps that bracket it (diffusers' ``_sigma_to_t``), clamped to [0, T - 1].

    Computed in float64 throughout (diffusers takes the logarithm of its float32 sigmas in float32,
    so its timesteps can differ from these in the last float32 place).

    Args:
        sigmas: noise levels, tensor or sequence (N,) (0 is read as 1e-10).
        schedule: the training schedule, or its per-timestep sigmas as a 1-D tensor (T,), increasing.

    Returns:
        float64 tensor (N,).

    Example:
        >>> from gencore.diffusion import make_schedule
        >>> from gencore.diffusion.schedules import sigma_to_t
        >>> s = make_schedule("linear")
        >>> [round(float(t), 6) for t in sigma_to_t(s.sigmas[[10, 500]], s)]
        [10.0, 500.0]
    """
    log_sigmas = _train_sigmas(schedule).log()
    sigma = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
    shape = sigma.shape
    log_sigma = sigma.reshape(-1).clamp(min=1e-10).log()
    dists = log_sigma[None, :] - log_sigmas[:, None]
    low_idx = torch.cumsum(dists >= 0, dim=0).argmax(dim=0).clamp(max=log_sigmas.numel() - 2)
    high_idx = low_idx + 1
    low, high = log_sigmas[low_idx], log_sigmas[high_idx]
    w = ((low - log_sigma) / (low - high)).clamp(0, 1)
    return ((1 - w) * low_idx + w * high_idx).reshape(shape)


def convert_to_karras(sigmas, steps: int, sigma_min: float | None = None, sigma_max: float | None = None,
                      rho: float = 7.0) -> torch.Tensor:
    """``steps`` Karras noise levels (eq. 5 of Karras et al. 2022) spanning a given grid, as
    diffusers' ``_convert_to_karras``: the ends are ``sigma_min``/``sigma_max`` when given, else the
    grid's last and first values.

    Args:
        sigmas: the grid being replaced, decreasing, tensor or sequence (N,).
        steps: number of levels.
        sigma_min, sigma_max: explicit ends (diffusers' ``config.sigma_min``/``sigma_max``).
        rho: the warping exponent.

    Returns:
        float64 tensor (steps,), decreasing, without a trailing 0 (see :func:`karras_sigmas`).

    Example:
        >>> from gencore.diffusion.schedules import convert_to_karras
        >>> [round(float(v), 4) for v in convert_to_karras([10.0, 3.0, 0.1], 3)]
        [10.0, 1.4507, 0.1]
    """
    grid = torch.as_tensor(sigmas).detach().to("cpu", torch.float64).reshape(-1)
    sigma_min = float(grid[-1]) if sigma_min is None else float(sigma_min)
    sigma_max = float(grid[0]) if sigma_max is None else float(sigma_max)
    return karras_sigmas(steps, sigma_min, sigma_max, rho)[:-1]


def flow_match_sigmas(steps: int, num_train_timesteps: int = 1000, *, sigma_max: float = 1.0,
                      sigma_min: float | None = None) -> torch.Tensor:
    """Unshifted flow-matching noise levels: ``linspace(sigma_max * T, sigma_min * T, steps) / T``
    (diffusers' ``FlowMatchEulerDiscreteScheduler``; ``sigma_min`` defaults to 1 / T).

    Args:
        steps: number of levels.
        num_train_timesteps: T.
        sigma_max, sigma_min: the ends, in (0, 1].

    Returns:
        float64 tensor (steps,), decreasing.

    Example:
        >>> from gencore.diffusion.schedules import flow_match_sigmas
        >>> flow_match_sigmas(3, 4).tolist()
        [1.0, 0.625, 0.25]
    """
    T = _num_train(num_train_timesteps)
    sigma_min = 1.0 / T if sigma_min is None else float(sigma_min)
    return _linspace(float(sigma_max) * T, sigma_min * T, steps) / T


def flow_shift(sigmas, shift: float) -> torch.Tensor:
    """The resolution shift of SD3 (Esser et al. 2024, eq. 23): ``shift * s / (1 + (shift - 1) * s)``.

    Args:
        sigmas: noise levels in [0, 1], tensor or sequence (N,).
        shift: the shift factor (1: identity).

    Returns:
        float64 tensor (N,).

    Example:
        >>> from gencore.diffusion.schedules import flow_shift
        >>> flow_shift([1.0, 0.5], 3.0).tolist()
        [1.0, 0.75]
    """
    s = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
    return shift * s / (1 + (shift - 1) * s)


def flow_time_shift(sigmas, mu: float, sigma: float = 1.0, kind: str = "exponential") -> torch.Tensor:
    """Dynamic (resolution-dependent) shifting: ``e^mu / (e^mu + (1/t - 1)^sigma)`` (``exponential``,
    Flux) or ``mu / (mu + (1/t - 1)^sigma)`` (``linear``), as diffusers' ``time_shift``.

    Args:
        sigmas: noise levels t in (0, 1], tensor or sequence (N,).
        mu: the shift parameter.
        sigma: the exponent.
        kind: ``exponential`` or ``linear``.

    Returns:
        float64 tensor (N,).

    Example:
        >>> from gencore.diffusion.schedules import flow_time_shift
        >>> flow_time_shift([1.0, 0.5], 0.0).tolist()
        [1.0, 0.5]
    """
    if kind not in ("exponential", "linear"):
        raise ValueError(f"kind must be 'exponential' or 'linear', got {kind!r}")
    t = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
    m = math.exp(mu) if kind == "exponential" else mu
    return m / (m + (1 / t - 1) ** sigma)


def stretch_to_terminal(sigmas, shift_terminal: float) -> torch.Tensor:
    """Rescales ``1 - t`` so that the last level becomes ``shift_terminal`` (diffusers'
    ``stretch_shift_to_terminal``, LTX-Video).

    Args:
        sigmas: noise levels, tensor or sequence (N,).
        shift_terminal: the final level, in [0, 1).

    Returns:
        float64 tensor (N,).

    Example:
        >>> from gencore.diffusion.schedules import stretch_to_terminal
        >>> [round(v, 6) for v in stretch_to_terminal([1.0, 0.5], 0.1).tolist()]
        [1.0, 0.1]
    """
    t = torch.as_tensor(sigmas).detach().to("cpu", torch.float64)
    one_minus_z = 1 - t
    scale_factor = one_minus_z[-1] / (1 - shift_terminal)
    return 1 - one_minus_z / scale_factor
