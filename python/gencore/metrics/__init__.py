"""Sample-quality metrics: digits classifier accuracy and Frechet distance, sliced Wasserstein
and MMD for low-dimensional data, likelihoods in bits per dimension."""

from __future__ import annotations

import math

import torch

from gencore.metrics.digits import (
    DigitsClassifier,
    class_accuracy,
    digits_classifier,
    digits_fd,
    digits_features,
    train_digits_classifier,
)
from gencore.metrics.frechet import frechet_distance, gaussian_stats, sqrtm_psd
from gencore.metrics.two_d import mmd, sliced_wasserstein

__all__ = [
    "DigitsClassifier",
    "bits_per_dim",
    "class_accuracy",
    "digits_classifier",
    "digits_fd",
    "digits_features",
    "frechet_distance",
    "gaussian_stats",
    "mmd",
    "sliced_wasserstein",
    "sqrtm_psd",
    "train_digits_classifier",
]


def bits_per_dim(nll_nats: torch.Tensor | float, dims: int, *, bin_width: float = 1.0) -> float:
    """Converts a mean negative log-likelihood in nats per sample to bits per dimension.

    A density fitted to uniformly dequantised data in which one discrete level spans
    ``bin_width`` (e.g. ``1/17`` for digits scaled by ``(v + u) / 17``) gives, since
    ``P(level) = integral of p over the bin ~ p(x) bin_width^dims`` (a bound by Jensen's
    inequality), the discrete NLL ``nll - dims * log(bin_width)``:
    ``bpd = (nll - dims * log(bin_width)) / (dims * log 2)``. ``bin_width=1`` gives the plain
    continuous value.

    Args:
        nll_nats: mean NLL per sample in nats (float or scalar tensor).
        dims: dimensions per sample (64 for digits).
        bin_width: width of one discrete level in the model's data units.

    Example:
        >>> round(bits_per_dim(64 * math.log(2), 64), 6)
        1.0
    """
    nll = float(nll_nats)
    if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
        raise ValueError(f"dims must be a positive integer, got {dims!r}")
    if not isinstance(bin_width, (int, float)) or not bin_width > 0:
        raise ValueError(f"bin_width must be positive, got {bin_width!r}")
    return (nll - dims * math.log(bin_width)) / (dims * math.log(2))
