"""A small CNN digits classifier and the sample-quality metrics built on it.

The classifier is trained once on the training split of :mod:`gencore.data.digits`
(symmetric scaling, dequantised inputs so that it sees continuous values like a generative
model's samples) and cached as safetensors in the user cache directory
(``$GENCORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/gencore``, else ``~/.cache/gencore``),
written atomically. Training takes a few seconds on two CPU cores and is deterministic for a
given seed and thread count.

Metrics:

* :func:`class_accuracy`: the fraction of class-conditional samples classified as the
  requested class;
* :func:`digits_fd`: the Frechet distance between Gaussians fitted to the classifier's
  penultimate features of generated images and of the test split ("digits FD", the FID
  recipe with a digits network).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from gencore.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gencore.data.digits import NUM_CLASSES, batches, check_finite, check_labels, load_digits
from gencore.metrics.frechet import frechet_distance, gaussian_stats

__all__ = [
    "DigitsClassifier",
    "cache_dir",
    "class_accuracy",
    "digits_classifier",
    "digits_fd",
    "digits_features",
    "reference_stats",
    "train_digits_classifier",
]

log = logging.getLogger(__name__)

_VERSION = 1
FEATURES = 64


class DigitsClassifier(nn.Module):
    """CNN for 8x8 digits in [-1, 1]: ``(n, 1, 8, 8)`` or ``(n, 64)`` -> logits ``(n, 10)``.

    ``features(x)`` gives the 64-dimensional penultimate activations used by the digits FD.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.SiLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.SiLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(32, 32, 3, padding=1), nn.SiLU(),
            nn.MaxPool2d(2),  # 2x2
        )
        self.fc = nn.Linear(128, FEATURES)
        self.head = nn.Linear(FEATURES, NUM_CLASSES)

    @staticmethod
    def _images(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[1] == 64:
            x = x.reshape(-1, 1, 8, 8)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"images must have shape (n, 1, 8, 8) or (n, 64), got {tuple(x.shape)}")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._images(x)
        return torch.tanh(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cache_dir() -> Path:
    """The directory where gencore caches trained helper networks."""
    if os.environ.get("GENCORE_CACHE_DIR"):
        return Path(os.environ["GENCORE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gencore"


def train_digits_classifier(*, seed: int = 0, epochs: int = 15, batch_size: int = 64,
                            lr: float = 2e-3) -> tuple[DigitsClassifier, dict]:
    """Trains :class:`DigitsClassifier` on the training split.

    Args:
        seed: seeds the initialisation, the batch order and the dequantisation noise.
        epochs, batch_size, lr: Adam training settings.

    Returns:
        ``(model, info)`` with ``info`` holding validation and test accuracy.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    _, y = load_digits("train")
    model.train()
    with torch.enable_grad():  # callers may hold torch.no_grad()
        _fit(model, opt, sched, y, epochs, batch_size, seed)
    model.eval()
    info = {}
    with torch.no_grad():
        for split in ("val", "test"):
            xs, ys = load_digits(split, scale="symmetric")
            info[f"{split}_accuracy"] = float((model(xs).argmax(1) == ys).double().mean())
    return model, info


def _fit(model, opt, sched, y, epochs, batch_size, seed) -> None:
    for epoch in range(epochs):
        x, _ = load_digits("train", scale="symmetric", dequantize=True, seed=seed, stream=epoch)
        for xb, yb in batches(x, y, batch_size=batch_size, seed=seed, epoch=epoch):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()


_MODELS: dict[int, DigitsClassifier] = {}


def digits_classifier(*, seed: int = 0, cache: bool = True) -> DigitsClassifier:
    """The cached digits classifier (trained on first use, then loaded from the cache).

    Args:
        seed: which classifier (0 is the one every gencore metric uses).
        cache: read and write the cache directory (False: train in memory, keep per process).

    Returns:
        the classifier in eval mode, parameters frozen.

    Example:
        >>> from gencore.metrics import digits_classifier
        >>> from gencore.data import load_digits
        >>> x, y = load_digits("test", scale="symmetric")
        >>> clf = digits_classifier()
        >>> bool((clf(x).argmax(1) == y).double().mean() > 0.9)
        True
    """
    if seed in _MODELS:
        return _MODELS[seed]
    path = cache_dir() / f"digits_classifier_v{_VERSION}_seed{seed}.safetensors"
    model = None
    if cache and path.is_file():
        try:
            tensors, _ = load_checkpoint(path, kind="digits_classifier")
            model = DigitsClassifier()
            model.load_state_dict(tensors)
        except (CheckpointError, RuntimeError, KeyError) as exc:
            log.warning("digits classifier cache %s unusable (%s); retraining", path, exc)
            model = None
    if model is None:
        log.info("training the digits classifier (seed %d)", seed)
        model, info = train_digits_classifier(seed=seed)
        if cache:
            try:
                save_checkpoint(path, model.state_dict(), {"kind": "digits_classifier", "seed": seed,
                                                           "version": _VERSION, **info})
            except OSError as exc:  # read-only home: keep the in-memory model
                log.warning("cannot write the digits classifier cache %s: %s", path, exc)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _MODELS[seed] = model
    return model


def _prep(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    check_finite(images, name)
    x = images.detach().to(torch.float32).cpu()
    if x.dim() == 2 and x.shape[1] == 64:
        x = x.reshape(-1, 1, 8, 8)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
        raise ValueError(f"{name} must have shape (n, 1, 8, 8) or (n, 64), got {tuple(images.shape)}")
    return x


@torch.no_grad()
def class_accuracy(images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0) -> float:
    """Fraction of ``images`` (in [-1, 1], ``(n, 1, 8, 8)``) classified as ``labels`` ``(n,)``."""
    x = _prep(images)
    y = check_labels(labels, NUM_CLASSES, "labels", n=x.shape[0])
    if x.shape[0] == 0:
        raise ValueError("images must hold at least one image")
    return float((digits_classifier(seed=seed)(x).argmax(1) == y).double().mean())


@torch.no_grad()
def digits_features(images: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Penultimate classifier features ``(n, 64)`` of images in [-1, 1]."""
    return digits_classifier(seed=seed).features(_prep(images)).double()


_REF: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}


def reference_stats(split: str = "test", *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature mean and covariance of a digits split (the reference of :func:`digits_fd`)."""
    key = (split, seed)
    if key not in _REF:
        x, _ = load_digits(split, scale="symmetric")
        _REF[key] = gaussian_stats(digits_features(x, seed=seed))
    return _REF[key]


def digits_fd(images: torch.Tensor, *, reference: str = "test", seed: int = 0) -> float:
    """Digits FD: Frechet distance between classifier features of ``images`` and of a split.

    Args:
        images: generated images in [-1, 1], ``(n, 1, 8, 8)`` or ``(n, 64)``, n >= 2.
        reference: the digits split to compare with (``"test"`` by default).
        seed: which cached classifier.

    Returns:
        the distance (0 for identical feature statistics).

    Example:
        >>> from gencore.data import load_digits
        >>> from gencore.metrics import digits_fd
        >>> x, _ = load_digits("val", scale="symmetric")
        >>> digits_fd(x) < 1.0
        True
    """
    mu, sigma = gaussian_stats(digits_features(images, seed=seed))
    mu_r, sigma_r = reference_stats(reference, seed=seed)
    return frechet_distance(mu, sigma, mu_r, sigma_r)
