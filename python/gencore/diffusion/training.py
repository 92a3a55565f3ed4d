"""The denoising training objective (Ho et al., 2020, "Denoising Diffusion Probabilistic
Models", Algorithm 1) for epsilon, v (Salimans & Ho, 2022) and x0 targets, with label
dropout for classifier-free guidance (Ho & Salimans, 2022, Algorithm 1)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from gencore.diffusion.forward import q_sample
from gencore.diffusion.paths import EPSILON, SAMPLE, V_PREDICTION, VP, Prediction, prediction
from gencore.diffusion.schedules import make_schedule
from gencore.rng import rand

__all__ = ["diffusion_loss", "drop_labels", "training_target"]

_PREDICTIONS = tuple(p.name for p in (EPSILON, V_PREDICTION, SAMPLE))


def _prediction(name: str) -> Prediction:
    if name not in _PREDICTIONS:
        raise ValueError(f"prediction_type must be one of {_PREDICTIONS}, got {name!r}")
    return prediction(name)
# Timesteps and label dropout draw from a key derived from the noise seed, so they never
# reuse the words of the Gaussian noise (which uses ``seed`` itself).
_AUX_KEY = 0x9E3779B97F4A7C15


def _aux_seed(seed: int) -> int:
    return (int(seed) + _AUX_KEY) % 2**64


def _uniform(n: int, seed: int | None, stream: int, sample_offset: int, device, generator=None) -> torch.Tensor:
    if seed is None:
        return torch.rand(n, dtype=torch.float64, generator=generator).to(device)

    return rand(n, 1, seed=_aux_seed(seed), stream=stream, sample_offset=sample_offset,
                dtype=torch.float64)[:, 0].to(device)


def drop_labels(labels: torch.Tensor, p_uncond: float, null_label, *, seed: int | None = None, stream: int = 0,
                sample_offset: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replaces each label by ``null_label`` with probability ``p_uncond``.

    Args:
        labels: (batch, ...) class labels (or any conditioning tensor with a batch dimension).
        p_uncond: drop rate in [0, 1].
        null_label: the unconditional label (a scalar, or a tensor broadcastable to one sample).
        seed, stream, sample_offset: counter-based draws (noise contract, derived key);
            with ``seed=None`` torch's generator is used.

    Returns:
        (batch, ...) labels with the dropped entries replaced.

    Example:
        >>> import torch
        >>> drop_labels(torch.arange(4), 1.0, -1).tolist()
        [-1, -1, -1, -1]
    """
    if not isinstance(p_uncond, (int, float)) or isinstance(p_uncond, bool) or not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be a number in [0, 1], got {p_uncond!r}")
    if not isinstance(labels, torch.Tensor) or labels.dim() < 1:
        raise TypeError("labels must be a tensor with a batch dimension")
    if p_uncond == 0:
        return labels
    u = _uniform(labels.shape[0], seed, stream, sample_offset, labels.device, generator)
    drop = (u < p_uncond).reshape((-1,) + (1,) * (labels.dim() - 1))
    null = torch.as_tensor(null_label, dtype=labels.dtype, device=labels.device)
    return torch.where(drop, null, labels)


def training_target(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, schedule,
                    prediction_type: str = "epsilon") -> torch.Tensor:
    """The regression target: ``eps``, ``x0`` or ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0``.

    Args:
        x0: (batch, ...) clean data.
        noise: (batch, ...) the noise that made ``x_t``.
        t: (batch,) integer timesteps.
        schedule: the :class:`~gencore.diffusion.Schedule`.
        prediction_type: ``epsilon``, ``v_prediction`` or ``sample``.
    """
    pred = _prediction(prediction_type)
    if pred is EPSILON:
        return noise
    if pred is SAMPLE:
        return x0
    ac = schedule.on(x0.device)["alphas_cumprod"][t.long()]
    shape = (-1,) + (1,) * (x0.dim() - 1)
    c0, ce = pred.output(*VP.from_alpha_prod(ac.reshape(shape)))
    return c0.to(x0.dtype) * x0 + ce.to(x0.dtype) * noise


def diffusion_loss(model: Callable[..., torch.Tensor], x0: torch.Tensor, schedule=None, *,
                   cond: torch.Tensor | None = None, p_uncond: float = 0.0, null_label=None,
                   prediction_type: str = "epsilon", t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, seed: int | None = None, stream: int = 0,
                   sample_offset: int = 0, generator: torch.Generator | None = None,
                   reduction: str = "mean") -> torch.Tensor:
    """One Monte-Carlo estimate of the simple DDPM loss ``|| target - model(x_t, t, cond) ||^2``.

    ``t ~ Uniform{0, ..., T-1}``, ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (by
    :func:`~gencore.diffusion.q_sample`), and with probability ``p_uncond`` the label is
    replaced by ``null_label`` so that one network learns both the conditional and the
    unconditional model.

    Args:
        model: ``model(x_t, t, cond) -> prediction``, ``t`` a float (batch,) tensor.
        x0: (batch, ...) clean data.
        schedule: a :class:`~gencore.diffusion.Schedule` (default linear, 1000 steps).
        cond: optional (batch, ...) labels / conditioning.
        p_uncond: label dropout rate for classifier-free guidance.
        null_label: the unconditional label (required when ``p_uncond > 0``).
        prediction_type: ``epsilon``, ``v_prediction`` or ``sample``.
        t: optional (batch,) integer timesteps (drawn when omitted).
        noise: optional (batch, ...) explicit noise.
        seed, stream, sample_offset: counter-based noise and draws (noise contract);
            with ``seed=None`` torch's generator is used.
        generator: torch generator used when ``seed`` is None.
        reduction: ``mean`` (a scalar) or ``none`` ((batch,) per-sample losses).

    Returns:
        The loss.

    Example:
        >>> import torch
        >>> from gencore.diffusion import make_schedule
        >>> model = lambda x, t, c: torch.zeros_like(x)
        >>> loss = diffusion_loss(model, torch.zeros(8, 2), make_schedule("linear"), seed=0)
        >>> 0.2 < float(loss) < 3.0
        True
    """
    if schedule is None:
        schedule = make_schedule("linear")
    _prediction(prediction_type)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 1:
        raise TypeError("x0 must be a floating-point tensor with a batch dimension")
    n = x0.shape[0]
    T = schedule.num_train_timesteps
    if t is None:
        if seed is None:
            t = torch.randint(0, T, (n,), generator=generator).to(x0.device)
        else:
            u = rand(n, 1, seed=_aux_seed(seed), stream=stream, sample_offset=sample_offset + 2**62,
                     dtype=torch.float64)[:, 0]
            t = (u * T).long().clamp_(max=T - 1).to(x0.device)
    else:
        t = torch.as_tensor(t, device=x0.device)
        if t.shape != (n,) or t.is_floating_point():
            raise ValueError(f"t must be an integer tensor of shape ({n},), got {t.dtype} {tuple(t.shape)}")
        if bool(((t < 0) | (t >= T)).any()):
            raise ValueError(f"t must lie in [0, {T})")
    if cond is not None and p_uncond > 0:
        if null_label is None:
            raise ValueError("null_label is required when p_uncond > 0")
        cond = drop_labels(cond, p_uncond, null_label, seed=seed, stream=stream, sample_offset=sample_offset,
                           generator=generator)
    if noise is None and seed is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x_t, noise = q_sample(x0, t, schedule, noise=noise, seed=seed, stream=stream, sample_offset=sample_offset)
    pred = model(x_t, t.to(x0.dtype), cond)
    target = training_target(x0, noise, t, schedule, prediction_type)
    err = (pred.float() - target.float()) ** 2 if x0.dtype in (torch.float16, torch.bfloat16) else (pred - target) ** 2
    per_sample = err.reshape(n, -1).mean(dim=1)
    return per_sample.mean() if reduction == "mean" else per_sample
