"""scikit-learn's embedded 8x8 digits with a fixed split, scaling, dequantisation and batching.

The data are the 1797 images of :func:`sklearn.datasets.load_digits` (pixel values 0..16,
10 classes). The split is fixed and documented so that every model in gencore is trained and
measured on the same images:

* stratified by class, seeded (``split_seed=0`` by default): within each class the images are
  permuted by ``numpy.random.default_rng(split_seed)`` (PCG64, stable across numpy versions)
  and cut into 70% train, 15% validation and the rest test (1258 / 269 / 270 images for the
  default seed, every class in every split);
* scaling ``"unit"`` maps pixel ``v`` to ``v / 16`` in [0, 1], ``"symmetric"`` to
  ``2 v / 16 - 1`` in [-1, 1], ``"raw"`` keeps 0..16;
* uniform dequantisation (for likelihood models) replaces ``v`` by ``(v + u) / 17`` with
  ``u ~ U(0, 1)`` drawn under gencore's noise contract (seed, stream, global image index), so a
  given image gets the same noise whatever the split or batch; then the scaling applies
  (``"unit"``: (0, 1), ``"symmetric"``: (-1, 1)).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import torch

from gencore._validate import check_choice, check_index, check_seed
from gencore.rng import rand

__all__ = [
    "IMAGE_SHAPE",
    "LEVELS",
    "NUM_CLASSES",
    "SCALES",
    "SPLITS",
    "batches",
    "check_finite",
    "check_labels",
    "load_digits",
    "split_indices",
    "to_unit",
]

SPLITS = ("train", "val", "test", "all")
SCALES = ("unit", "symmetric", "raw")
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
LEVELS = 17  # pixel values 0..16
_FRACTIONS = (0.70, 0.15)  # train, validation; test is the rest


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as _sk_load

    d = _sk_load()
    return d.data.astype(np.float64), d.target.astype(np.int64)


@lru_cache(maxsize=8)
def _split(split_seed: int) -> dict[str, np.ndarray]:
    _, y = _raw()
    rng = np.random.default_rng(split_seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_train = round(_FRACTIONS[0] * len(idx))
        n_val = round(_FRACTIONS[1] * len(idx))
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train:n_train + n_val])
        parts["test"].append(idx[n_train + n_val:])
    out = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
    out["all"] = np.arange(len(y))
    return out


def split_indices(split: str = "train", *, split_seed: int = 0) -> torch.Tensor:
    """Indices into the 1797 images of one split (sorted, int64).

    Example:
        >>> from gencore.data.digits import split_indices
        >>> [len(split_indices(s)) for s in ("train", "val", "test")]
        [1258, 269, 270]
    """
    check_choice(split, "split", SPLITS)
    split_seed = check_seed(split_seed, "split_seed")
    return torch.from_numpy(_split(split_seed)[split].copy())


def load_digits(split: str = "train", *, scale: str = "unit", dequantize: bool = False,
                seed: int = 0, stream: int = 0, flatten: bool = False, split_seed: int = 0,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the digits as plain tensors.

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        scale: ``"unit"`` ([0, 1]), ``"symmetric"`` ([-1, 1]) or ``"raw"`` (0..16).
        dequantize: add uniform noise ``(v + u) / 17`` before scaling (not with ``"raw"``).
        seed, stream: noise-contract seed and stream of the dequantisation noise (e.g. the
            epoch as stream gives fresh noise per epoch).
        flatten: return ``(n, 64)`` instead of ``(n, 1, 8, 8)``.
        split_seed: seed of the stratified split (0 is the documented split).
        dtype: floating dtype of the images.

    Returns:
        ``(x, y)``: images ``(n, 1, 8, 8)`` (or ``(n, 64)``) and int64 labels ``(n,)``.

    Example:
        >>> from gencore.data.digits import load_digits
        >>> x, y = load_digits("test", scale="symmetric")
        >>> tuple(x.shape), float(x.min()), float(x.max()), int(y.max())
        ((270, 1, 8, 8), -1.0, 1.0, 9)
    """
    check_choice(split, "split", SPLITS)
    check_choice(scale, "scale", SCALES)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if dequantize and scale == "raw":
        raise ValueError("dequantize needs scale='unit' or 'symmetric', got scale='raw'")
    X, y = _raw()
    idx = _split(check_seed(split_seed, "split_seed"))[split]
    x = torch.from_numpy(X[idx]).to(torch.float64)
    if dequantize:
        seed = check_seed(seed)
        stream = check_index(stream, "stream", 2**32)
        # Noise for image i depends only on (seed, stream, i): draw for all, pick this split.
        u = rand(len(X), 64, seed=seed, stream=stream, dtype=torch.float64)[torch.from_numpy(idx)]
        x = (x + u) / LEVELS
    elif scale != "raw":
        x = x / (LEVELS - 1)
    if scale == "symmetric":
        x = 2.0 * x - 1.0
    x = x.to(dtype)
    if not flatten:
        x = x.reshape(-1, *IMAGE_SHAPE)
    return x, torch.from_numpy(y[idx].copy())


def to_unit(x: torch.Tensor, scale: str = "symmetric") -> torch.Tensor:
    """Maps images from ``scale`` back to [0, 1] (clamped), e.g. for plotting and metrics."""
    check_choice(scale, "scale", SCALES)
    if scale == "symmetric":
        x = (x + 1.0) / 2.0
    elif scale == "raw":
        x = x / (LEVELS - 1)
    return x.clamp(0.0, 1.0)


def batches(*tensors: torch.Tensor, batch_size: int, seed: int = 0, epoch: int = 0,
            shuffle: bool = True, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """Seeded mini-batches over tensors that share their first dimension.

    The order of epoch ``e`` is ``torch.randperm`` under a ``torch.Generator`` seeded with
    ``seed * 1_000_003 + e``: the same for the same ``(seed, epoch)`` on any machine.

    Args:
        *tensors: tensors of shape ``(n, ...)``.
        batch_size: positive batch size.
        seed, epoch: determine the permutation.
        shuffle: permute (True) or keep the order.
        drop_last: drop a final incomplete batch.

    Yields:
        tuples of batches, one per input tensor.

    Example:
        >>> import torch
        >>> from gencore.data.digits import batches
        >>> x = torch.arange(10)
        >>> [b[0].tolist() for b in batches(x, batch_size=4, shuffle=False)]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    if not tensors:
        raise ValueError("tensors must contain at least one tensor")
    n = tensors[0].shape[0]
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors[{i}] must be a torch.Tensor, got {type(t).__name__}")
        if t.shape[0] != n:
            raise ValueError(f"tensors[{i}] has {t.shape[0]} rows, tensors[0] has {n}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    seed = check_seed(seed)
    epoch = check_index(epoch, "epoch")
    if shuffle:
        g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        sel = order[start:start + batch_size]
        yield tuple(t[sel.to(t.device)] for t in tensors)


def check_finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raises ``ValueError`` naming ``name`` when ``x`` holds NaN or infinity."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return x


def check_labels(y: object, num_classes: int, name: str = "y", n: int | None = None) -> torch.Tensor:
    """Integer labels in ``[0, num_classes)`` as an int64 tensor (an int is broadcast to ``n``)."""
    if isinstance(y, bool):
        raise TypeError(f"{name} must be an integer or an integer tensor, got bool")
    if isinstance(y, (int, np.integer)):
        if n is None:
            raise TypeError(f"{name} must be a tensor of labels here, got an int")
        y = torch.full((n,), int(y), dtype=torch.int64)
    elif isinstance(y, (list, tuple, np.ndarray)):
        y = torch.as_tensor(np.asarray(y))
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be an integer or an integer tensor, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels, got {y.dtype}")
    y = y.reshape(-1).to(torch.int64)
    if n is not None and y.numel() != n:
        raise ValueError(f"{name} must have {n} labels, got {y.numel()}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"{name} must hold labels in [0, {num_classes}), got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y
