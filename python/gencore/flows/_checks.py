"""Argument checks of the coupling op, shared by the fused op and its reference."""

from __future__ import annotations

import math
import numbers

import torch

from gencore._validate import check_float_tensor, check_same_device, check_same_shape

__all__ = ["CLAMPS", "check_coupling_args"]

CLAMPS = {None: 0, "atan": 1, "tanh": 2, "sigmoid": 3}


def check_coupling_args(x, shift, log_scale, clamp, clamp_value) -> float:
    """Validates the arguments; returns ``clamp_value`` as a float."""
    for name, t in (("x", x), ("shift", shift), ("log_scale", log_scale)):
        check_float_tensor(t, name)
    if x.dim() < 1:
        raise ValueError("x must have a batch dimension, got a 0-d tensor")
    check_same_shape(x, shift, "x", "shift")
    check_same_shape(x, log_scale, "x", "log_scale")
    for name, t in (("shift", shift), ("log_scale", log_scale)):
        if t.dtype != x.dtype:
            raise TypeError(f"{name} must have the dtype of x ({x.dtype}), got {t.dtype}")
        check_same_device(x, t, "x", name)
    if not (clamp is None or isinstance(clamp, str)) or clamp not in CLAMPS:
        raise ValueError(f"clamp must be one of [None, 'atan', 'tanh', 'sigmoid'], got {clamp!r}")
    if not isinstance(clamp_value, numbers.Real) or isinstance(clamp_value, bool):
        raise TypeError(f"clamp_value must be a real number, got {type(clamp_value).__name__}")
    if not (math.isfinite(clamp_value) and clamp_value > 0):
        raise ValueError(f"clamp_value must be positive and finite, got {clamp_value}")
    return float(clamp_value)


def row_stride(t: torch.Tensor) -> int | None:
    """Stride between samples when every sample of ``t`` is contiguous, else None."""
    if t.dim() == 1:
        return t.stride(0)
    expected = 1
    for size, stride in zip(reversed(t.shape[1:]), reversed(t.stride()[1:])):
        if size != 1 and stride != expected:
            return None
        expected *= size
    return t.stride(0) if t.shape[0] > 1 else expected
