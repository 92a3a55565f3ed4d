"""k-diffusion-style loops on the ``model(x, sigma, **extra_args) -> denoised`` contract.

Same signatures as k-diffusion's ``k_diffusion.sampling`` (Crowson), so these are drop-in
replacements: ``sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None, ...)``
with ``x = x0 + sigma * eps`` (variance exploding) and ``sigmas`` decreasing, ending in 0.
Each update is one fused step op (:mod:`gencore.diffusion`) instead of inline tensor math.

Noise: by default drawn as k-diffusion draws it (``torch.randn_like`` in the same order, so
outputs match k-diffusion's under the same global seed); pass ``seed=`` for gencore's
counter-based noise (step ``i`` uses ``stream = i``), independent of batch and device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import trange

from gencore.diffusion.schedules import karras_sigmas
from gencore.diffusion.solvers import (
    churn_gamma,
    dpmpp_2m_sde_step,
    dpmpp_2m_step,
    euler_ancestral_step,
    euler_step,
    flow_match_euler_step,
    heun_step,
)
from gencore.rng import randn

__all__ = [
    "get_sigmas_karras",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_flow_match_euler",
    "sample_heun",
]


def _trange(n: int, disable):
    return trange(n, disable=disable)


def _floats(sigmas) -> list[float]:
    if isinstance(sigmas, torch.Tensor):
        if sigmas.dim() != 1 or sigmas.numel() < 1:
            raise ValueError(f"sigmas must be a 1-D tensor, got shape {tuple(sigmas.shape)}")
        return sigmas.detach().to("cpu", torch.float64).tolist()
    return [float(s) for s in sigmas]


def _sigma_tensor(sigmas, i: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """``sigmas[i] * s_in`` as k-diffusion passes it (the sigmas' own dtype and device)."""
    if isinstance(sigmas, torch.Tensor):
        return sigmas[i].to(like.device) * like.new_ones([n])
    return torch.full((n,), float(sigmas[i]), dtype=like.dtype, device=like.device)


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device="cpu") -> torch.Tensor:
    """Constructs the noise schedule of Karras et al. (2022), eq. 5 (k-diffusion's signature and
    float32 result; values from :func:`gencore.diffusion.karras_sigmas` in float64)."""
    return karras_sigmas(n, sigma_min, sigma_max, rho).to(torch.float32).to(device)


def _noise(x: torch.Tensor, seed: int | None, i: int, sample_offset: int) -> torch.Tensor | None:
    if seed is None:
        return torch.randn_like(x)
    return None  # drawn in-kernel by the step op from (seed, stream=i, sample_offset)


def _noise_sampler(x: torch.Tensor, noise_sampler, seed: int | None):
    """k-diffusion's noise source: the given sampler, ``torch.randn_like`` by default, or None when
    ``seed`` asks for in-kernel counter-based noise."""
    if noise_sampler is not None or seed is not None:
        return noise_sampler
    return lambda sigma, sigma_next: torch.randn_like(x)


def _denoise(model, x, sigmas, i: int, extra_args: dict, callback):
    """The denoiser call of step i at ``sigmas[i]`` and k-diffusion's callback."""
    denoised = model(x, _sigma_tensor(sigmas, i, x.shape[0], x), **extra_args)
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
    return denoised


def _churn_denoise(model, x, sigmas, sig, i, extra_args, callback, s_churn, s_tmin, s_tmax, s_noise, seed,
                   sample_offset):
    """Karras' churn (raise sigma to sigma_hat, adding noise) and the denoiser call of step i, as
    k-diffusion's sample_euler and sample_heun do it; returns (x_hat, sigma_hat, denoised)."""
    gamma = churn_gamma(s_churn, len(sig) - 1, sig[i], s_tmin, s_tmax)
    # k-diffusion draws this noise every step, used or not: keep its RNG stream in step.
    eps = _noise(x, seed, i, sample_offset)
    sigma_hat = sig[i] * (gamma + 1)
    if gamma > 0:
        if eps is None:
            eps = randn(x.shape, seed=seed, stream=i, sample_offset=sample_offset, dtype=x.dtype, device=x.device)
        x = x + eps * (s_noise * (sigma_hat**2 - sig[i] ** 2) ** 0.5)
    s_hat = _sigma_tensor(sigmas, i, x.shape[0], x)
    if gamma > 0:
        s_hat = s_hat * (gamma + 1)
    denoised = model(x, s_hat, **extra_args)
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigma_hat, "denoised": denoised})
    return x, sigma_hat, denoised


@torch.no_grad()
def sample_euler(model: Callable, x: torch.Tensor, sigmas, extra_args=None, callback=None, disable=None,
                 s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                 *, seed: int | None = None, sample_offset: int = 0) -> torch.Tensor:
    """Implements Algorithm 2 (Euler steps) from Karras et al. (2022).

    Args:
        model: ``model(x, sigma, **extra_args) -> denoised``, ``sigma`` of shape (batch,).
        x: (batch, ...) initial sample, ``sigmas[0]`` times standard normal noise.
        sigmas: (steps + 1,) decreasing noise levels ending in 0.
        extra_args: keyword arguments for the model.
        callback: called with ``{'x', 'i', 'sigma', 'sigma_hat', 'denoised'}`` each step.
        disable: disable the progress bar.
        s_churn, s_tmin, s_tmax, s_noise: stochastic churn (Karras et al. 2022, Algorithm 2).
        seed, sample_offset: counter-based churn noise instead of ``torch.randn_like``.

    Returns:
        (batch, ...) the sample at ``sigmas[-1]``.

    Example:
        >>> import torch
        >>> denoiser = lambda x, sigma: torch.zeros_like(x)
        >>> sample_euler(denoiser, torch.ones(2, 3) * 10.0, torch.tensor([10.0, 1.0, 0.0]), disable=True)
        tensor([[0., 0., 0.],
                [0., 0., 0.]])
    """

    extra_args = {} if extra_args is None else extra_args
    sig = _floats(sigmas)
    for i in _trange(len(sig) - 1, disable):
        x, sigma_hat, denoised = _churn_denoise(model, x, sigmas, sig, i, extra_args, callback, s_churn, s_tmin,
                                                s_tmax, s_noise, seed, sample_offset)
        x, _ = euler_step(x, denoised, sigma_hat, sig[i + 1], prediction_type="sample")
    return x


@torch.no_grad()
def sample_euler_ancestral(model: Callable, x: torch.Tensor, sigmas, extra_args=None, callback=None, disable=None,
                           eta: float = 1.0, s_noise: float = 1.0, noise_sampler=None, *, seed: int | None = None,
                           sample_offset: int = 0) -> torch.Tensor:
    """Ancestral sampling with Euler method steps (k-diffusion's ``sample_euler_ancestral``).

    ``noise_sampler(sigma, sigma_next)`` supplies the noise (default ``torch.randn_like``);
    with ``seed=`` the noise is drawn in-kernel under the noise contract (``stream = i``).
    """

    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _noise_sampler(x, noise_sampler, seed)
    sig = _floats(sigmas)
    for i in _trange(len(sig) - 1, disable):
        denoised = _denoise(model, x, sigmas, i, extra_args, callback)
        noise = None
        if sig[i + 1] > 0 and noise_sampler is not None:  # drawn even when eta == 0, as k-diffusion
            noise = noise_sampler(sigmas[i], sigmas[i + 1])
        if sig[i + 1] > 0:
            x, _ = euler_ancestral_step(x, denoised, sig[i], sig[i + 1], eta=float(eta), s_noise=float(s_noise),
                                        prediction_type="sample", noise=noise, seed=seed, stream=i,
                                        sample_offset=sample_offset)
        else:
            x, _ = euler_ancestral_step(x, denoised, sig[i], 0.0, eta=0.0, prediction_type="sample")
    return x


@torch.no_grad()
def sample_heun(model: Callable, x: torch.Tensor, sigmas, extra_args=None, callback=None, disable=None,
                s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                *, seed: int | None = None, sample_offset: int = 0) -> torch.Tensor:
    """Implements Algorithm 2 (Heun steps) from Karras et al. (2022); Euler on the last step."""

    extra_args = {} if extra_args is None else extra_args
    sig = _floats(sigmas)
    n = x.shape[0]
    for i in _trange(len(sig) - 1, disable):
        x, sigma_hat, denoised = _churn_denoise(model, x, sigmas, sig, i, extra_args, callback, s_churn, s_tmin,
                                                s_tmax, s_noise, seed, sample_offset)
        if sig[i + 1] == 0:
            x, _ = euler_step(x, denoised, sigma_hat, 0.0, prediction_type="sample")
        else:
            x2, _, d = heun_step(x, denoised, sigma_hat, sig[i + 1], stage=1, prediction_type="sample")
            denoised_2 = model(x2, _sigma_tensor(sigmas, i + 1, n, x), **extra_args)
            x, _, _ = heun_step(x2, denoised_2, sigma_hat, sig[i + 1], stage=2, derivative=d, original_sample=x,
                                prediction_type="sample")
    return x


@torch.no_grad()
def sample_dpmpp_2m(model: Callable, x: torch.Tensor, sigmas, extra_args=None, callback=None,
                    disable=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al., 2022), k-diffusion's ``sample_dpmpp_2m``."""

    extra_args = {} if extra_args is None else extra_args
    sig = _floats(sigmas)
    old = None
    for i in _trange(len(sig) - 1, disable):
        denoised = _denoise(model, x, sigmas, i, extra_args, callback)
        x, _ = dpmpp_2m_step(x, denoised, sig[i], sig[i + 1], prev_x0=old, sigma_prev=sig[i - 1] if i else None,
                             lower_order=old is None, parameterization="ve", prediction_type="sample")
        old = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(model: Callable, x: torch.Tensor, sigmas, extra_args=None, callback=None, disable=None,
                        eta: float = 1.0, s_noise: float = 1.0, noise_sampler=None, solver_type: str = "midpoint",
                        *, seed: int | None = None, sample_offset: int = 0) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (Lu et al., 2022), k-diffusion's ``sample_dpmpp_2m_sde``.

    ``noise_sampler(sigma, sigma_next)`` supplies the noise; with ``seed=`` it is drawn in-kernel
    under the noise contract (``stream = i``). k-diffusion's default is a Brownian tree
    (torchsde); here the default is ``torch.randn_like``, so pass k-diffusion's
    ``BrownianTreeNoiseSampler`` as ``noise_sampler`` for its exact default path.
    """
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _noise_sampler(x, noise_sampler, seed)
    sig = _floats(sigmas)
    old = None
    for i in _trange(len(sig) - 1, disable):
        denoised = _denoise(model, x, sigmas, i, extra_args, callback)
        noisy = sig[i + 1] > 0 and eta > 0
        noise = noise_sampler(sigmas[i], sigmas[i + 1]) if noisy and noise_sampler is not None else None
        x, _ = dpmpp_2m_sde_step(x, denoised, sig[i], sig[i + 1], prev_x0=old, sigma_prev=sig[i - 1] if i else None,
                                 eta=float(eta), s_noise=float(s_noise), solver_type=solver_type,
                                 parameterization="ve", prediction_type="sample", noise=noise,
                                 seed=seed if noisy and noise is None else None, stream=i, sample_offset=sample_offset)
        old = denoised
    return x


@torch.no_grad()
def sample_flow_match_euler(model: Callable, x: torch.Tensor, sigmas, extra_args=None, callback=None,
                            disable=None) -> torch.Tensor:
    """Euler integration of a flow-matching ODE (Lipman et al., 2023; Liu et al., 2023).

    ``x_s = (1 - s) x0 + s eps`` with ``s`` from ``sigmas[0]`` (1 = pure noise) down to 0, and
    ``model(x, s, **extra_args) -> velocity`` ``d x_s / d s = eps - x0``.

    Example:
        >>> import torch
        >>> velocity = lambda x, s: x  # x0 = 0: x_s = s eps, v = eps = x / s at s = 1
        >>> sample_flow_match_euler(velocity, torch.ones(1, 2), torch.tensor([1.0, 0.0]), disable=True)
        tensor([[0., 0.]])
    """

    extra_args = {} if extra_args is None else extra_args
    sig = _floats(sigmas)
    n = x.shape[0]
    for i in _trange(len(sig) - 1, disable):
        v = model(x, _sigma_tensor(sigmas, i, n, x), **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x - sig[i] * v})
        x, _ = flow_match_euler_step(x, v, sig[i], sig[i + 1], prediction_type="flow")
    return x
