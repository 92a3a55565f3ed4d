"""The interface every family of the zoo implements, and its shared default behaviour."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gencore import metrics
from gencore.data.digits import NUM_CLASSES
from gencore.models.trainer import Objective, Trainer
from gencore.zoo.data import DIGITS, Dataset, class_labels, flat, to_symmetric

__all__ = ["EVALUATION_OPTIONS", "ZooModel", "sample_metrics"]

EVALUATION_OPTIONS = frozenset({"eval_samples", "eval_samplers", "iwae_k", "sampler", "sample_steps",
                                "guidance_scale"})
"""Config keys that only affect sampling and evaluation: a resumed run may change them."""


class ZooModel(nn.Module):
    """Base class of the zoo's families: build, fit, generate, evaluate, save/load.

    A family is one subclass. It declares what it is in class attributes, builds its networks
    from a config in ``__init__`` and implements the methods below; :mod:`gencore.zoo`'s
    functions reach it only through this interface.

    Attributes:
        name: the key of the family in :data:`gencore.zoo.MODELS` (and ``config["kind"]``).
        data_kinds: data it trains on, ``"digits"`` and/or ``"toy"``.
        scale: digits scaling it trains on, ``"unit"`` ([0, 1]) or ``"symmetric"`` ([-1, 1]).
        dequantize: whether it trains on uniformly dequantised digits.
        conditional_family: whether it is class-conditional.
        guidance: whether sampling accepts a classifier-free ``guidance_scale``.
        samplers: the sampler names ``generate`` accepts together with ``steps`` and
            ``progress`` (empty: none of the three).
        defaults: hyper-parameters, including ``steps``, ``batch_size`` and ``lr``.

    Methods to implement: ``objectives`` and ``generate``; ``param_groups``, ``fit``,
    ``evaluate`` and, for state that is not parameters and buffers, ``state_dict`` /
    ``load_state_dict`` have defaults.

    Args:
        config: the run's config (:func:`gencore.zoo.make_config`).
    """

    name: ClassVar[str] = ""
    data_kinds: ClassVar[tuple[str, ...]] = ("digits",)
    scale: ClassVar[str] = "symmetric"
    dequantize: ClassVar[bool] = False
    conditional_family: ClassVar[bool] = False
    guidance: ClassVar[bool] = False
    samplers: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.shape = tuple(config["shape"])
        self.num_classes = int(config["num_classes"]) if self.conditional_family else 0
        self.data_name = config["data"]

    @property
    def conditional(self) -> bool:
        """Whether sampling needs class labels."""
        return self.num_classes > 0

    @property
    def dim(self) -> int:
        """Number of elements of one sample."""
        return math.prod(self.shape)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups with one optimizer each (see :class:`~gencore.models.trainer.Trainer`)."""
        return {"main": list(self.parameters())}

    def objectives(self, batch: tuple[torch.Tensor, torch.Tensor], *, step: int,
                   seed: int) -> list[Objective]:  # pragma: no cover - abstract
        """The losses of one training step, ``[(group, closure)]`` in the order they are stepped.

        Args:
            batch: ``(x, y)``, samples ``(batch, *shape)`` and labels ``(batch,)``.
            step: the training step (keys the step's noise).
            seed: the run's seed.
        """
        raise NotImplementedError

    def fit(self, ds: Dataset, *, progress: bool = False, checkpoint: Path | None = None,
            checkpoint_every: int = 0, resume: bool = False) -> tuple[float, list[dict]]:
        """Trains the model on ``ds.train_epoch`` with the shared trainer and its config.

        Args:
            ds: the dataset, scaled as the family's ``scale`` and ``dequantize`` say.
            progress: tqdm progress bar.
            checkpoint: path of the resumable training state (None: none written).
            checkpoint_every: write the training state every this many steps.
            resume: continue from ``checkpoint`` when it exists.

        Returns:
            ``(seconds, history)``: training time and the losses logged per step.
        """
        config = self.config
        trainer = Trainer(
            self, ds.train_epoch, steps=int(config["steps"]), batch_size=int(config["batch_size"]),
            lr=float(config["lr"]), seed=int(config["seed"]), ema_decay=config.get("ema_decay"),
            grad_clip=config.get("grad_clip"), warmup=int(config.get("warmup", 0)),
            betas=tuple(config.get("betas", (0.9, 0.999))), progress=progress, checkpoint=checkpoint,
            checkpoint_every=int(checkpoint_every), config=config, resume_may_change=EVALUATION_OPTIONS)
        trainer.run(resume=resume)
        return trainer.seconds, trainer.history

    def generate(self, n: int, y: torch.Tensor | None, *, seed: int,
                 **kw: Any) -> torch.Tensor:  # pragma: no cover - abstract
        """Draws ``n`` samples in model space, ``(n, dim)`` or ``(n, *shape)``.

        Args:
            n: number of samples.
            y: labels ``(n,)`` for conditional models, else None.
            seed: noise seed.
            **kw: ``sampler``, ``steps``, ``progress`` (families with ``samplers``) and
                ``guidance_scale`` (families with ``guidance``).
        """
        raise NotImplementedError

    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        """Measures the model on ``ds``'s test split (default: :func:`sample_metrics`)."""
        return sample_metrics(self, ds, seed=seed)

    def to_output(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space samples to the user's convention: digits in [0, 1] ``(n, 1, 8, 8)``."""
        if self.data_name == DIGITS:
            return (to_symmetric(x, self.scale) + 1) / 2
        return x.reshape(x.shape[0], *self.shape)


def sample_metrics(model: ZooModel, ds: Dataset, *, seed: int = 0, **kw: Any) -> dict[str, Any]:
    """Sample quality: digits FD (+ class accuracy) or sliced Wasserstein and MMD (toys).

    Args:
        model: the model; draws ``config["eval_samples"]`` samples (default 1000).
        ds: the dataset whose test split is the reference of the toy metrics.
        seed: seeds the samples (``seed + 1``) and the sliced Wasserstein projections.
        **kw: passed to ``model.generate``.

    Returns:
        ``digits_fd`` (and ``class_accuracy`` for conditional models) on digits,
        ``sliced_wasserstein`` and ``mmd`` on toys.
    """
    n = int(model.config.get("eval_samples", 1000))
    out: dict[str, Any] = {}
    if ds.is_digits:
        y = class_labels(n, NUM_CLASSES) if model.conditional else None
        x = to_symmetric(model.generate(n, y, seed=seed + 1, **kw), model.scale)
        out["digits_fd"] = metrics.digits_fd(x)
        if y is not None:
            out["class_accuracy"] = metrics.class_accuracy(x, y)
    else:
        y = ds.y_test[:n] if model.conditional else None
        x = model.generate(min(n, ds.x_test.shape[0]) if y is not None else n, y, seed=seed + 1, **kw)
        ref = ds.x_test
        out["sliced_wasserstein"] = metrics.sliced_wasserstein(flat(x), flat(ref), seed=seed)
        out["mmd"] = metrics.mmd(flat(x)[:2000], flat(ref)[:2000])
    return out
