"""Image grids written as PNG, atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from gencore.checkpoint import atomic_write_bytes

__all__ = ["image_grid", "save_png"]


def image_grid(images: torch.Tensor, nrow: int, *, pad: int = 1, scale: int = 4) -> np.ndarray:
    """Tiles images into one uint8 array.

    Args:
        images: ``(n, C, H, W)`` with values in [0, 1] (C = 1 or 3); ``n`` need not fill the
            last row.
        nrow: images per row.
        pad: pixels between images (before scaling).
        scale: nearest-neighbour upscaling factor (8x8 digits are tiny).

    Returns:
        ``(rows * (H + pad) + pad) * scale`` by ``(nrow * (W + pad) + pad) * scale`` uint8
        array (grey) or with a trailing channel axis (RGB).
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (n, 1 or 3, H, W), got {tuple(images.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be positive, got {nrow}")
    n, c, h, w = images.shape
    rows = max(1, -(-n // nrow))
    grid = np.ones((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    x = images.detach().float().clamp(0, 1).cpu().numpy()
    for k in range(n):
        r, q = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top:top + h, left:left + w] = x[k]
    grid = np.kron(grid, np.ones((1, scale, scale), dtype=np.float32))
    out = (grid * 255 + 0.5).astype(np.uint8)
    return out[0] if c == 1 else np.moveaxis(out, 0, -1)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Writes a uint8 array as PNG via a temporary file and a rename."""
    from PIL import Image


    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
