"""Argument checks of the VAE ops, shared by the native path and the reference."""

from __future__ import annotations

from gencore._validate import (
    check_float_tensor,
    check_index,
    check_same_device,
    check_same_shape,
    check_seed,
)

__all__ = ["check_kl_args", "check_reparameterize_args"]


def check_kl_args(mu: object, logvar: object) -> None:
    """mu and logvar: floating tensors of one shape, dtype and device, with a batch dimension."""
    check_float_tensor(mu, "mu")
    check_float_tensor(logvar, "logvar")
    if mu.dim() == 0:  # type: ignore[union-attr]
        raise ValueError("mu must have a batch dimension (shape (batch, ...)), got a 0-d tensor")
    check_same_shape(mu, logvar, "mu", "logvar")  # type: ignore[arg-type]
    check_same_device(mu, logvar, "mu", "logvar")  # type: ignore[arg-type]
    if logvar.dtype != mu.dtype:  # type: ignore[union-attr]
        raise TypeError(f"logvar must have the dtype of mu ({mu.dtype}), got {logvar.dtype}")  # type: ignore[union-attr]


def check_reparameterize_args(mu, logvar, seed, stream, sample_offset, noise):
    """Checks every argument; returns (seed, stream, sample_offset, noise) normalised.

    Exactly one of ``seed`` and ``noise`` is given; ``noise`` is cast to mu's dtype.
    """
    check_kl_args(mu, logvar)
    if (seed is None) == (noise is None):
        raise ValueError("exactly one of seed and noise must be given (seed draws eps in the kernel, "
                         "noise supplies it)")
    stream = check_index(stream, "stream", 2**32)
    sample_offset = check_index(sample_offset, "sample_offset", 2**64)
    if noise is not None:
        check_float_tensor(noise, "noise")
        check_same_shape(mu, noise, "mu", "noise")
        check_same_device(mu, noise, "mu", "noise")
        if noise.dtype != mu.dtype:
            noise = noise.to(mu.dtype)
        return 0, stream, sample_offset, noise
    seed = check_seed(seed)
    if sample_offset + mu.shape[0] > 2**64:
        raise ValueError("sample_offset + batch size must stay below 2**64")
    return seed, stream, sample_offset, None
