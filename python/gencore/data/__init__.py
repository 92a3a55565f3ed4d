"""Embedded datasets: scikit-learn's 8x8 digits (fixed split, scaling, dequantisation) and 2-D
toy distributions made by code (FFJORD's definitions, with exact densities)."""

from __future__ import annotations

from gencore.data.digits import batches, load_digits, split_indices
from gencore.data.toys import TOYS, gaussian_mixture, make_toy, toy_entropy, toy_log_prob

__all__ = [
    "TOYS",
    "batches",
    "gaussian_mixture",
    "load_digits",
    "make_toy",
    "split_indices",
    "toy_entropy",
    "toy_log_prob",
]
