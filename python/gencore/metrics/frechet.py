"""Frechet distance between Gaussians fitted to two feature sets."""

from __future__ import annotations

import torch

__all__ = ["frechet_distance", "gaussian_stats", "sqrtm_psd"]


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (unbiased, float64) of ``features`` ``(n, d)``."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise ValueError("features must be a tensor of shape (n, d)")
    if features.shape[0] < 2:
        raise ValueError(f"features must hold at least 2 rows, got {features.shape[0]}")
    f = features.detach().to(torch.float64)
    if not bool(torch.isfinite(f).all()):
        raise ValueError("features must be finite, got NaN or infinity")
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigen-decomposition,
    negative round-off eigenvalues clamped to 0)."""
    a = 0.5 * (a + a.T)
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor,
                     sigma2: torch.Tensor) -> float:
    """Squared Frechet (2-Wasserstein) distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1^1/2 sigma2 sigma1^1/2)^1/2)``: the cross
    term is the trace of the square root of a symmetric PSD matrix, i.e. the sum of the square
    roots of its eigenvalues, computed by ``eigh`` in float64 (no complex round-off as with a
    general ``sqrtm(sigma1 @ sigma2)``).

    Args:
        mu1, mu2: means ``(d,)``.
        sigma1, sigma2: covariances ``(d, d)``.

    Returns:
        The distance as a Python float (>= 0 up to round-off).

    References:
        Dowson and Landau (1982); Heusel et al., "GANs trained by a two time-scale update rule
        converge to a local Nash equilibrium" (2017), Eq. 6.

    Example:
        >>> import torch
        >>> from gencore.metrics import frechet_distance
        >>> I = torch.eye(2, dtype=torch.float64)
        >>> round(frechet_distance(torch.zeros(2), I, torch.ones(2), 4 * I), 6)
        4.0
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    s1, s2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    if mu1.shape != mu2.shape or mu1.dim() != 1:
        raise ValueError(f"mu1 and mu2 must be vectors of one length, got {tuple(mu1.shape)}, {tuple(mu2.shape)}")
    d = mu1.shape[0]
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}), got {tuple(s.shape)}")
    r1 = sqrtm_psd(s1)
    m = r1 @ s2 @ r1
    cross = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * cross)
