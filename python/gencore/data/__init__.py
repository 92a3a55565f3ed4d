"""Embedded datasets: scikit-learn's 8x8 digits (fixed split, scaling, dequantisation)."""

from __future__ import annotations

from gencore.data.digits import batches, load_digits, split_indices

__all__ = ["load_digits", "split_indices", "batches"]
