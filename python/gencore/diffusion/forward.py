"""The forward (noising) process of DDPM training: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""

from __future__ import annotations

import torch

from gencore._validate import check_float_tensor, check_index, check_same_device, check_seed
from gencore.diffusion.ops import run_q_sample
from gencore.diffusion.schedules import Schedule

__all__ = ["q_sample"]


def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor,
    schedule,
    *,
    noise: torch.Tensor | None = None,
    seed: int | None = None,
    stream: int = 0,
    sample_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward noising x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4),
    one fused pass with per-sample timesteps.

    Differentiable with respect to ``x0`` and an explicit ``noise`` (grad_x0 = sqrt(abar_t) g,
    grad_noise = sqrt(1 - abar_t) g), as training with a learned encoder needs.

    Args:
        x0: clean samples, (batch, ...), floating point.
        t: integer timesteps, (batch,), each in [0, schedule.num_train_timesteps), on x0's
            device (checked: on CUDA the check reads the tensor back).
        schedule: a :class:`~gencore.diffusion.Schedule`.
        noise: explicit standard-normal noise shaped and typed like x0; otherwise drawn under the noise
            contract from ``seed``/``stream``/``sample_offset`` (``seed=None`` draws a seed from
            torch's default generator, so ``torch.manual_seed`` makes runs repeatable).

    Returns:
        (x_t, noise), both shaped and typed like ``x0``.

    Example:
        >>> import torch
        >>> from gencore.diffusion import make_schedule, q_sample
        >>> s = make_schedule("linear")
        >>> xt, eps = q_sample(torch.zeros(2, 3), torch.tensor([0, 999]), s, seed=0)
        >>> bool(torch.allclose(xt[1], (1 - s.alpha_prod(999)) ** 0.5 * eps[1]))
        True
    """

    check_float_tensor(x0, "x0")
    if x0.dim() < 1:
        raise ValueError("x0 must have a batch dimension (shape (batch, ...)), got a 0-d tensor")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a gencore.diffusion.Schedule, got {type(schedule).__name__}")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be an integer tensor of shape (batch,), got {type(t).__name__}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must be an integer tensor, got {t.dtype}")
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape (batch,) = ({x0.shape[0]},), got {tuple(t.shape)}")
    check_same_device(x0, t, "x0", "t")
    T = schedule.num_train_timesteps
    if torch.compiler.is_compiling():  # no host read-back inside a graph: an asynchronous device assert
        torch._assert_async(((t >= 0) & (t < T)).all(), "t must be in [0, num_train_timesteps)")
    elif t.numel() and bool(((t < 0) | (t >= T)).any()):
        lo, hi = int(t.min()), int(t.max())
        raise ValueError(f"t must be in [0, num_train_timesteps={T}), got values in [{lo}, {hi}]")
    if noise is not None:
        check_float_tensor(noise, "noise")
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        check_same_device(x0, noise, "x0", "noise")
        if noise.dtype != x0.dtype:
            raise TypeError(f"noise must have the dtype of x0 ({x0.dtype}), got {noise.dtype}")
    if noise is not None and seed is not None:
        raise ValueError("pass either noise (an explicit tensor) or seed (in-kernel noise), not both")
    if noise is None and seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    if seed is not None:
        seed = check_seed(seed)
    stream = check_index(stream, "stream", 2**32)
    sample_offset = check_index(sample_offset, "sample_offset", 2**63)
    tabs = schedule.on(x0.device)
    t = t.long()
    ab = torch.stack((tabs["sqrt_alphas_cumprod"][t], tabs["sqrt_one_minus_alphas_cumprod"][t]), dim=1)
    return run_q_sample(x0, ab, noise=noise, seed=seed, stream=stream, sample_offset=sample_offset)
