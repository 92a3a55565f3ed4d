"""Tolerances tied to how far plain PyTorch in the same dtype drifts from float64."""

from __future__ import annotations

import torch

LOW = (torch.float32, torch.float16, torch.bfloat16)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def assert_close_to_ref(fast: torch.Tensor, torch_same_dtype: torch.Tensor, ref64: torch.Tensor,
                        atol: float = 1e-6) -> None:
    """err(fast) <= 2 * err(torch in the same dtype) + atol, both against a float64 reference."""
    e_fast = max_err(fast, ref64)
    e_torch = max_err(torch_same_dtype, ref64)
    assert e_fast <= 2 * e_torch + atol, f"error {e_fast:.3g} vs eager {e_torch:.3g} (+{atol:g})"
