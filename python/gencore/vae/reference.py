"""Pure-PyTorch twin of the fused VAE ops: the specification, the fallback path, and the
formulas the native kernels must match.

``z = mu + exp(logvar / 2) * eps`` with ``eps`` from the noise contract (``gencore.rng``) or a
given ``noise`` tensor, and the per-sample ``KL(N(mu, exp(logvar)) || N(0, I))``
``= 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)`` over every non-batch dimension. float16 and
bfloat16 inputs are computed in float32, float32 in float32, float64 in float64.
"""

from __future__ import annotations

import math

import torch

from gencore.rng import reference as rng_reference
from gencore.vae._checks import check_kl_args, check_reparameterize_args

__all__ = ["backward", "gaussian_kl", "noise", "reparameterize", "reparameterize_kl"]


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def noise(mu: torch.Tensor, seed: int, stream: int = 0, sample_offset: int = 0) -> torch.Tensor:
    """The eps the kernels draw for ``mu``: noise-contract normals of mu's shape, in the
    accumulation dtype (float64 for float64 inputs, float32 otherwise)."""
    out = torch.empty(mu.shape, dtype=_acc(mu.dtype), device=mu.device)
    rng_reference.fill(out, seed, stream, sample_offset)
    return out


def _eps(mu, noise_, seed, stream, sample_offset) -> torch.Tensor:
    if noise_ is not None:
        return noise_.to(mu.dtype).to(_acc(mu.dtype))
    return noise(mu, seed, stream, sample_offset)


def _z(mu, logvar, eps) -> torch.Tensor:
    acc = _acc(mu.dtype)
    return (mu.to(acc) + torch.exp(0.5 * logvar.to(acc)) * eps).to(mu.dtype)


def _kl(mu, logvar) -> torch.Tensor:
    acc = _acc(mu.dtype)
    m, lv = mu.to(acc), logvar.to(acc)
    terms = 0.5 * (m * m + torch.exp(lv) - 1.0 - lv)
    return terms.reshape(mu.shape[0], math.prod(mu.shape[1:])).sum(dim=1).to(mu.dtype)  # -1 fails on empty batches


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, *, seed: int | None = None, stream: int = 0,
                   sample_offset: int = 0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Reference for :func:`gencore.vae.reparameterize` (differentiable through torch ops)."""
    seed, stream, sample_offset, noise = check_reparameterize_args(mu, logvar, seed, stream, sample_offset, noise)
    return _z(mu, logvar, _eps(mu, noise, seed, stream, sample_offset))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`gencore.vae.gaussian_kl`: (batch,) KL to N(0, I)."""
    check_kl_args(mu, logvar)
    return _kl(mu, logvar)


def reparameterize_kl(mu: torch.Tensor, logvar: torch.Tensor, *, seed: int | None = None, stream: int = 0,
                      sample_offset: int = 0, noise: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference for :func:`gencore.vae.reparameterize_kl`: ``(z, kl)``."""
    seed, stream, sample_offset, noise = check_reparameterize_args(mu, logvar, seed, stream, sample_offset, noise)
    return _z(mu, logvar, _eps(mu, noise, seed, stream, sample_offset)), _kl(mu, logvar)


def backward(mu, logvar, noise_, grad_z, grad_kl, seed, stream, sample_offset) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients wrt (mu, logvar) of ``<grad_z, z> + <grad_kl, kl>`` (either grad may be None)."""
    acc = _acc(mu.dtype)
    m, lv = mu.to(acc), logvar.to(acc)
    sd = torch.exp(0.5 * lv)
    dmu = torch.zeros_like(m)
    dlv = torch.zeros_like(m)
    if grad_z is not None:
        g = grad_z.to(acc)
        dmu = dmu + g
        dlv = dlv + 0.5 * sd * _eps(mu, noise_, seed, stream, sample_offset) * g
    if grad_kl is not None:
        gk = grad_kl.to(acc).reshape((-1,) + (1,) * (mu.dim() - 1))
        dmu = dmu + gk * m
        dlv = dlv + gk * 0.5 * (torch.exp(lv) - 1.0)
    return dmu.to(mu.dtype), dlv.to(mu.dtype)
