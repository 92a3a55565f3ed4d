"""Fused reparameterized sampling for VAEs: ``z = mu + exp(logvar / 2) * eps`` and the
per-sample KL divergence to N(0, I), forward and backward as native kernels.

``eps`` is drawn inside the kernel from the noise contract (element ``j`` of sample ``i``
depends only on ``(seed, stream, sample_offset + i, j)``; see :mod:`gencore.rng`), or read from
an explicit ``noise`` tensor. The backward recomputes ``eps`` from its counter instead of
keeping it, so the only memory a call adds is its outputs.

Registered as ``gencore::vae_reparameterize``, ``gencore::vae_gaussian_kl``,
``gencore::vae_reparameterize_kl`` and ``gencore::vae_backward`` (``torch.library.custom_op``)
with fake implementations and autograd, so they run under ``torch.compile(fullgraph=True)``.
In eager mode the public functions call the same kernels through an ``autograd.Function``,
which skips the dispatcher's per-call cost and supports double backward.
"""

from __future__ import annotations

from typing import Optional

import torch

from gencore import _native
from gencore.rng import from_signed64, to_signed64
from gencore.vae import reference
from gencore.vae._checks import check_kl_args, check_reparameterize_args

__all__ = ["gaussian_kl", "reparameterize", "reparameterize_kl"]


def _sample_numel(t: torch.Tensor) -> int:
    d = 1
    for s in t.shape[1:]:
        d *= s
    return d


def _forward(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None, seed: int, stream: int,
             sample_offset: int, want_z: bool, want_kl: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    n, D = mu.shape[0], _sample_numel(mu)
    seed_u, off_u = from_signed64(seed), from_signed64(sample_offset)
    if not _native.use_native(mu, logvar, noise):
        z = kl = None
        if want_z:
            eps = reference._eps(mu, noise, seed_u, stream, off_u)
            z = reference._z(mu, logvar, eps).contiguous()
        if want_kl:
            kl = reference._kl(mu, logvar).contiguous()
        return z, kl
    z = torch.empty(mu.shape, dtype=mu.dtype, device=mu.device) if want_z else None
    kl = torch.empty((n,), dtype=mu.dtype, device=mu.device) if want_kl else None
    if kl is not None and D == 0:
        kl.zero_()
    if n == 0 or D == 0:
        return z, kl
    nz = noise.contiguous() if (noise is not None and want_z) else None
    _native.launch("vae_forward", mu, mu.contiguous(), logvar.contiguous(), nz, z, kl, n, D, seed_u, stream, off_u)
    return z, kl


@torch.library.custom_op("gencore::vae_reparameterize", mutates_args=())
def _reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: Optional[torch.Tensor],  # noqa: UP045
                    seed: int, stream: int, sample_offset: int) -> torch.Tensor:
    z, _ = _forward(mu, logvar, noise, seed, stream, sample_offset, True, False)
    return z


@_reparameterize.register_fake
def _(mu, logvar, noise, seed, stream, sample_offset):
    return torch.empty(mu.shape, dtype=mu.dtype, device=mu.device)


@torch.library.custom_op("gencore::vae_gaussian_kl", mutates_args=())
def _gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    _, kl = _forward(mu, logvar, None, 0, 0, 0, False, True)
    return kl


@_gaussian_kl.register_fake
def _(mu, logvar):
    return mu.new_empty((mu.shape[0],))


@torch.library.custom_op("gencore::vae_reparameterize_kl", mutates_args=())
def _reparameterize_kl(mu: torch.Tensor, logvar: torch.Tensor, noise: Optional[torch.Tensor],  # noqa: UP045
                       seed: int, stream: int, sample_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    z, kl = _forward(mu, logvar, noise, seed, stream, sample_offset, True, True)
    return z, kl


@_reparameterize_kl.register_fake
def _(mu, logvar, noise, seed, stream, sample_offset):
    return torch.empty(mu.shape, dtype=mu.dtype, device=mu.device), mu.new_empty((mu.shape[0],))


def _backward_impl(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None, grad_z: torch.Tensor | None,
                   grad_kl: torch.Tensor | None, seed: int, stream: int, sample_offset: int,
                   differentiable: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients wrt (mu, logvar): the native kernel, or the reference formulas when the
    kernels cannot run or the result must be differentiable again (double backward)."""
    seed_u, off_u = from_signed64(seed), from_signed64(sample_offset)
    if differentiable or not _native.use_native(mu, logvar, noise, grad_z, grad_kl):
        dmu, dlv = reference.backward(mu, logvar, noise, grad_z, grad_kl, seed_u, stream, off_u)
        return dmu.contiguous(), dlv.contiguous()
    n, D = mu.shape[0], _sample_numel(mu)
    dmu = torch.empty(mu.shape, dtype=mu.dtype, device=mu.device)
    dlv = torch.empty(mu.shape, dtype=mu.dtype, device=mu.device)
    if n == 0 or D == 0:
        return dmu, dlv
    gz = grad_z.to(mu.dtype).contiguous() if grad_z is not None else None
    gk = grad_kl.to(mu.dtype).contiguous() if grad_kl is not None else None
    nz = noise.contiguous() if (noise is not None and gz is not None) else None
    _native.launch("vae_backward", mu, mu.contiguous(), logvar.contiguous(), nz, gz, gk, dmu, dlv, n, D, seed_u,
                   stream, off_u)
    return dmu, dlv


@torch.library.custom_op("gencore::vae_backward", mutates_args=())
def _backward(mu: torch.Tensor, logvar: torch.Tensor, noise: Optional[torch.Tensor],  # noqa: UP045
              grad_z: Optional[torch.Tensor], grad_kl: Optional[torch.Tensor],  # noqa: UP045
              seed: int, stream: int, sample_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    return _backward_impl(mu, logvar, noise, grad_z, grad_kl, seed, stream, sample_offset)


@_backward.register_fake
def _(mu, logvar, noise, grad_z, grad_kl, seed, stream, sample_offset):
    return (torch.empty(mu.shape, dtype=mu.dtype, device=mu.device),
            torch.empty(mu.shape, dtype=mu.dtype, device=mu.device))


def _setup_noisy(ctx, inputs, output) -> None:
    mu, logvar, noise, seed, stream, sample_offset = inputs
    ctx.save_for_backward(mu, logvar, noise)
    ctx.counter = (seed, stream, sample_offset)


def _noise_grad(ctx, logvar: torch.Tensor, grad_z: torch.Tensor | None) -> torch.Tensor | None:
    if not ctx.needs_input_grad[2] or grad_z is None:
        return None
    return grad_z * torch.exp(0.5 * logvar)


def _reparameterize_bwd(ctx, grad_z):
    mu, logvar, noise = ctx.saved_tensors
    dmu, dlv = _backward(mu, logvar, noise, grad_z, None, *ctx.counter)
    return dmu, dlv, _noise_grad(ctx, logvar, grad_z), None, None, None


def _reparameterize_kl_bwd(ctx, grad_z, grad_kl):
    mu, logvar, noise = ctx.saved_tensors
    dmu, dlv = _backward(mu, logvar, noise, grad_z, grad_kl, *ctx.counter)
    return dmu, dlv, _noise_grad(ctx, logvar, grad_z), None, None, None


def _setup_kl(ctx, inputs, output) -> None:
    mu, logvar = inputs
    ctx.save_for_backward(mu, logvar)


def _gaussian_kl_bwd(ctx, grad_kl):
    mu, logvar = ctx.saved_tensors
    return _backward(mu, logvar, None, None, grad_kl, 0, 0, 0)


_reparameterize.register_autograd(_reparameterize_bwd, setup_context=_setup_noisy)
_reparameterize_kl.register_autograd(_reparameterize_kl_bwd, setup_context=_setup_noisy)
_gaussian_kl.register_autograd(_gaussian_kl_bwd, setup_context=_setup_kl)


class _Direct(torch.autograd.Function):
    """The three ops outside ``torch.compile``: the same kernels and formulas as the custom ops,
    without the dispatcher's per-call cost (about 55 us per forward + backward, a third of the
    time at a typical latent size such as (128, 32)). Returns ``z``, ``kl`` or both. Under
    ``create_graph=True`` the backward runs the reference formulas, so that double backward
    works."""

    @staticmethod
    def forward(ctx, mu, logvar, noise, seed, stream, sample_offset, want_z, want_kl):
        # forward(ctx, ...) rather than a separate setup_context: apply() then skips binding
        # the arguments to the signature, which costs more than a small kernel.
        z, kl = _forward(mu, logvar, noise, seed, stream, sample_offset, want_z, want_kl)
        ctx.save_for_backward(mu, logvar, noise)
        ctx.counter = (seed, stream, sample_offset)
        ctx.want = (want_z, want_kl)
        ctx.set_materialize_grads(False)
        return (z, kl) if (want_z and want_kl) else (z if want_z else kl)

    @staticmethod
    def backward(ctx, *grads):
        mu, logvar, noise = ctx.saved_tensors
        want_z, want_kl = ctx.want
        grad_z = grads[0] if want_z else None
        grad_kl = grads[-1] if want_kl else None
        if grad_z is None and grad_kl is None:
            return (None,) * 8
        # create_graph=True (grad mode on): formulas autograd can differentiate again.
        dmu, dlv = _backward_impl(mu, logvar, noise, grad_z, grad_kl, *ctx.counter,
                                  differentiable=torch.is_grad_enabled())
        return dmu, dlv, _noise_grad(ctx, logvar, grad_z), None, None, None, None, None


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, *, seed: int | None = None, stream: int = 0,
                   sample_offset: int = 0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Reparameterized Gaussian sample ``z = mu + exp(logvar / 2) * eps`` in one fused kernel.

    Args:
        mu: (batch, ...) means; the first dimension indexes samples.
        logvar: (batch, ...) log-variances, same shape, dtype and device as ``mu``.
        seed: integer in [0, 2**64): draw ``eps`` in the kernel from the noise contract, so
            that element ``j`` of sample ``i`` equals ``gencore.randn(..., seed=seed,
            stream=stream, sample_offset=sample_offset)[i].flatten()[j]`` (float32 normals
            for float16/bfloat16/float32 inputs, float64 for float64).
        stream: integer in [0, 2**32), e.g. a training step.
        sample_offset: global index of the first sample (shard a batch across ranks with it).
        noise: (batch, ...) explicit ``eps`` instead of ``seed`` (cast to mu's dtype).
            Exactly one of ``seed`` and ``noise`` is given.

    Returns:
        z: (batch, ...) in mu's dtype; differentiable in ``mu``, ``logvar`` (and ``noise``).

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, eq. (10).

    Example:
        >>> import torch, gencore.vae
        >>> mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
        >>> z = gencore.vae.reparameterize(mu, logvar, seed=0)
        >>> bool(torch.equal(z, gencore.randn(2, 3, seed=0)))
        True
    """
    seed, stream, sample_offset, noise = check_reparameterize_args(mu, logvar, seed, stream, sample_offset, noise)
    seed, sample_offset = to_signed64(seed), to_signed64(sample_offset)
    if _native.direct_ok(mu, logvar, noise):
        return _Direct.apply(mu, logvar, noise, seed, stream, sample_offset, True, False)
    return _reparameterize(mu, logvar, noise, seed, stream, sample_offset)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per sample, summed over every non-batch dimension.

    Args:
        mu: (batch, ...) means.
        logvar: (batch, ...) log-variances, same shape, dtype and device.

    Returns:
        (batch,) ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)``, in mu's dtype (accumulated in
        float32, float64 for float64 inputs); differentiable in ``mu`` and ``logvar``.

    References:
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, appendix B.

    Example:
        >>> import torch, gencore.vae
        >>> gencore.vae.gaussian_kl(torch.ones(2, 3), torch.zeros(2, 3))
        tensor([1.5000, 1.5000])
    """
    check_kl_args(mu, logvar)
    if _native.direct_ok(mu, logvar):
        return _Direct.apply(mu, logvar, None, 0, 0, 0, False, True)
    return _gaussian_kl(mu, logvar)


def reparameterize_kl(mu: torch.Tensor, logvar: torch.Tensor, *, seed: int | None = None, stream: int = 0,
                      sample_offset: int = 0, noise: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`reparameterize` and :func:`gaussian_kl` in one pass over ``mu`` and ``logvar``.

    Args:
        mu, logvar, seed, stream, sample_offset, noise: as in :func:`reparameterize`.

    Returns:
        ``(z, kl)``: z (batch, ...) and kl (batch,), both differentiable.

    Example:
        >>> import torch, gencore.vae
        >>> mu, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
        >>> z, kl = gencore.vae.reparameterize_kl(mu, logvar, seed=1)
        >>> z.shape, kl.tolist()
        (torch.Size([4, 8]), [0.0, 0.0, 0.0, 0.0])
    """
    seed, stream, sample_offset, noise = check_reparameterize_args(mu, logvar, seed, stream, sample_offset, noise)
    seed, sample_offset = to_signed64(seed), to_signed64(sample_offset)
    if _native.direct_ok(mu, logvar, noise):
        return _Direct.apply(mu, logvar, noise, seed, stream, sample_offset, True, True)
    return _reparameterize_kl(mu, logvar, noise, seed, stream, sample_offset)
