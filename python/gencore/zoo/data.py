"""The zoo's datasets and data conventions: digits and 2-D toys split into train/val/test."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gencore.data.digits import NUM_CLASSES, load_digits
from gencore.data.toys import TOYS, make_toy

__all__ = ["DATA", "DIGITS", "Dataset", "check_data", "class_labels", "flat", "load_data", "to_symmetric"]

DIGITS = "digits"

DATA: tuple[str, ...] = (DIGITS, *TOYS)
"""The data names :func:`gencore.zoo.train` accepts (digits and the 2-D toys of gencore.data.toys)."""


@dataclass
class Dataset:
    """Train/validation/test tensors of one dataset, scaled for one model family.

    Attributes:
        name: ``"digits"`` or a toy name.
        x_train, y_train, x_val, y_val, x_test, y_test: samples ``(n, *shape)`` and labels
            ``(n,)`` (zeros for toys without labels).
        shape: event shape, ``(1, 8, 8)`` or ``(2,)``.
        num_classes: 10 for digits, the toy's class count or 0.
        scale: ``"unit"`` / ``"symmetric"`` for digits, ``"raw"`` for toys.
        dequantize: whether ``train_epoch`` re-draws dequantisation noise per epoch.
        seed: data seed.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    shape: tuple[int, ...]
    num_classes: int
    scale: str
    dequantize: bool = False
    seed: int = 0

    @property
    def is_digits(self) -> bool:
        return self.name == DIGITS

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def train_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training tensors of one epoch (fresh dequantisation noise per epoch)."""
        if self.dequantize and epoch > 0:
            x, y = load_digits("train", scale=self.scale, dequantize=True, seed=self.seed, stream=epoch)
            return x, y
        return self.x_train, self.y_train


def check_data(data: object) -> str:
    """Returns ``data`` if it names a dataset of :data:`DATA`, else raises ``ValueError``."""
    if not isinstance(data, str) or data not in DATA:
        raise ValueError(f"data must be one of {list(DATA)}, got {data!r}")
    return data


def load_data(data: str, *, scale: str = "symmetric", dequantize: bool = False, seed: int = 0,
              toy_size: int = 4000) -> Dataset:
    """Loads ``data`` (``"digits"`` or a toy name) as a :class:`Dataset`.

    Args:
        data: dataset name.
        scale: digits scaling (``"unit"`` or ``"symmetric"``).
        dequantize: uniform dequantisation of the digits (likelihood models).
        seed: dequantisation / toy sampling seed.
        toy_size: training set size of a toy (validation and test are a quarter each).

    Returns:
        The dataset's three splits.

    Example:
        >>> from gencore.zoo import load_data
        >>> ds = load_data("digits")
        >>> tuple(ds.x_train.shape), ds.num_classes
        ((1258, 1, 8, 8), 10)
    """
    check_data(data)
    if data == DIGITS:
        parts = {}
        for split in ("train", "val", "test"):
            parts[split] = load_digits(split, scale=scale, dequantize=dequantize, seed=seed)
        return Dataset(DIGITS, *parts["train"], *parts["val"], *parts["test"], shape=(1, 8, 8),
                       num_classes=NUM_CLASSES, scale=scale, dequantize=dequantize, seed=seed)
    # toys: train/val/test are disjoint sample ranges of the same seeded generator
    n = toy_size * 3 // 2
    xs, ys = make_toy(data, n, seed=seed).float(), torch.zeros(n, dtype=torch.long)
    n_val = toy_size // 4
    ncls = int(ys.max()) + 1 if bool((ys > 0).any()) else 0
    return Dataset(data, xs[:toy_size], ys[:toy_size], xs[toy_size:toy_size + n_val],
                   ys[toy_size:toy_size + n_val], xs[toy_size + n_val:], ys[toy_size + n_val:],
                   shape=(xs.shape[1],), num_classes=ncls, scale="raw", seed=seed)


def flat(x: torch.Tensor) -> torch.Tensor:
    """``(n, *shape)`` to ``(n, prod(shape))``."""
    return x.reshape(x.shape[0], -1)


def to_symmetric(x: torch.Tensor, scale: str) -> torch.Tensor:
    """Digits images of ``scale`` to [-1, 1] ``(n, 1, 8, 8)`` (the metrics' convention)."""
    x = x.reshape(-1, 1, 8, 8)
    if scale == "unit":
        x = 2 * x - 1
    return x.clamp(-1, 1)


def class_labels(n: int, num_classes: int) -> torch.Tensor:
    """``n`` labels cycling through ``0 .. num_classes - 1``."""
    return torch.arange(n) % num_classes
