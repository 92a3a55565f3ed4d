"""Argument checks shared by every family: each raises before any kernel runs and names the
argument it rejects."""

from __future__ import annotations

import numbers

import torch

__all__ = [
    "MAX_SEED",
    "check_choice",
    "check_float_tensor",
    "check_index",
    "check_positive",
    "check_same_device",
    "check_same_shape",
    "check_seed",
]

MAX_SEED = 2**64


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: object, name: str = "seed") -> int:
    """An integer seed in [0, 2**64)."""
    if isinstance(seed, torch.Tensor) and seed.numel() == 1 and not seed.is_floating_point():
        seed = int(seed.item())
    if not _is_int(seed):
        raise TypeError(f"{name} must be an integer in [0, 2**64), got {type(seed).__name__}")
    seed = int(seed)  # type: ignore[arg-type]
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"{name} must be in [0, 2**64), got {seed}")
    return seed


def check_index(value: object, name: str, upper: int = 2**64) -> int:
    """A non-negative integer below ``upper`` (streams, sample offsets, step counts)."""
    if not _is_int(value):
        raise TypeError(f"{name} must be a non-negative integer, got {type(value).__name__}")
    value = int(value)  # type: ignore[arg-type]
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    if value >= upper:
        raise ValueError(f"{name} must be below {upper}, got {value}")
    return value


def check_positive(value: object, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return float(value)


def check_float_tensor(t: object, name: str) -> torch.Tensor:
    """A floating-point tensor (float16/bfloat16/float32/float64)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise TypeError(
            f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), got {t.dtype}"
        )
    return t


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the shape of {name_a} {tuple(a.shape)}, got {tuple(b.shape)}"
        )


def check_same_device(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{name_b} is on {b.device} but {name_a} is on {a.device}")


def check_choice(value: object, name: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
