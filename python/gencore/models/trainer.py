"""One small training loop for every model family of the zoo, resumable from checkpoints.

Everything random in a run is a function of ``(seed, step)``: the batch order of epoch ``e``
is :func:`gencore.data.digits.batches` with ``(seed, e)``, and models draw their noise from
gencore's counter-based generator with ``stream`` derived from the step. So a run resumed from
a checkpoint (parameters, optimizer moments, EMA weights, step) ends with exactly the same
parameters as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gencore.checkpoint import (
    CheckpointError,
    load_training_state,
    remove_stale_temporaries,
    save_training_state,
)

__all__ = ["Objective", "Trainer"]

log = logging.getLogger(__name__)

# An objective: (name of the parameter group it updates, closure returning the loss).
Objective = tuple[str, Callable[[], torch.Tensor]]


class Trainer:
    """Adam on one or more parameter groups, deterministic batches, optional EMA, checkpoints.

    The model provides ``param_groups() -> {group: [parameters]}`` and
    ``objectives(batch, *, step, seed) -> [(group, closure)]``: for each objective in order the
    trainer zeroes that group's gradients, calls the closure, back-propagates and steps the
    group's optimizer (a GAN's discriminator then generator; a single loss for the others).

    Args:
        model: the model (an ``nn.Module`` with ``param_groups`` and ``objectives``).
        data: ``data(epoch) -> tuple of tensors`` sharing their first dimension (called once
            per epoch, so dequantisation noise can change with the epoch), or the tensors.
        steps: number of optimisation steps.
        batch_size: batch size (incomplete final batches are dropped, so every epoch has
            ``n // batch_size`` steps).
        lr: Adam learning rate (one float, or ``{group: lr}``).
        seed: seed of the batch order (and handed to the model's objectives).
        ema_decay: keep an exponential moving average of the parameters and load it into the
            model at the end (None: no EMA).
        grad_clip: clip the gradient norm of each group (None: no clipping).
        warmup: linear learning-rate warm-up steps.
        progress: show a tqdm bar.
        checkpoint: path of the training checkpoint (None: none written).
        checkpoint_every: write the checkpoint every this many steps (and at the end).
        config: JSON config stored in the checkpoint (must hold ``"kind"``). Resuming refuses a
            checkpoint whose config differs from this one in any key but ``steps`` and
            ``resume_may_change`` (a different seed or learning rate would silently give a
            run that no uninterrupted run matches).
        hooks: callables ``hook(trainer, step, losses)`` called after every step.
        resume_may_change: config keys that may differ between a checkpoint and the run that
            resumes it (options that do not affect training, e.g. evaluation settings).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Line(nn.Module):
        ...     def __init__(self):
        ...         super().__init__(); self.lin = nn.Linear(1, 1)
        ...     def param_groups(self):
        ...         return {"main": list(self.parameters())}
        ...     def objectives(self, batch, *, step, seed):
        ...         x, = batch
        ...         return [("main", lambda: (self.lin(x) - 3 * x).pow(2).mean())]
        >>> torch.manual_seed(0) and None
        >>> m = Line()
        >>> _ = Trainer(m, (torch.linspace(-1, 1, 64)[:, None],), steps=300, batch_size=16, lr=0.05).run()
        >>> round(float(m.lin.weight.detach()), 2)
        3.0
    """

    def __init__(self, model: nn.Module, data: Callable[[int], Sequence[torch.Tensor]] | Sequence[torch.Tensor], *,
                 steps: int, batch_size: int, lr: float | dict[str, float] = 1e-3, seed: int = 0,
                 ema_decay: float | None = None, grad_clip: float | None = None, warmup: int = 0,
                 betas: tuple[float, float] = (0.9, 0.999), progress: bool = False,
                 checkpoint: str | Path | None = None, checkpoint_every: int = 0,
                 config: dict | None = None,
                 hooks: Sequence[Callable[[Trainer, int, dict], None]] = (),
                 resume_may_change: Sequence[str] = ()) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        self.model = model
        self._data = data if callable(data) else (lambda epoch, _d=tuple(data): _d)
        self.steps, self.batch_size, self.seed = steps, batch_size, int(seed)
        self.grad_clip, self.warmup = grad_clip, int(warmup)
        self.progress = progress
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.checkpoint_every = int(checkpoint_every)
        self.config = dict(config or {"kind": type(model).__name__})
        self.hooks = list(hooks)
        self.resume_may_change = frozenset(resume_may_change) | {"steps"}
        groups = model.param_groups()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        for name, params in groups.items():
            group_lr = lr[name] if isinstance(lr, dict) else lr
            self.optimizers[name] = torch.optim.Adam(params, lr=group_lr, betas=betas)
        self.base_lr = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        self.ema_decay = ema_decay
        self.ema: dict[str, torch.Tensor] | None = None
        if ema_decay is not None:
            self.ema = {k: p.detach().clone() for k, p in model.named_parameters()}
        self.step = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        self._epoch_cache: tuple[int, tuple[torch.Tensor, ...], torch.Tensor] | None = None

    # ------------------------------------------------------------------ data
    def batch_at(self, step: int) -> tuple[torch.Tensor, ...]:
        """The batch of a given step (deterministic in ``(seed, step)``)."""
        epoch, index = self._epoch_and_index(step)
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            tensors = tuple(self._data(epoch))
            for t in tensors:
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise ValueError(f"data must be finite, got NaN or infinity (epoch {epoch})")
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            order = torch.randperm(tensors[0].shape[0], generator=g)
            self._epoch_cache = (epoch, tensors, order)
        _, tensors, order = self._epoch_cache
        sel = order[index * self.batch_size:(index + 1) * self.batch_size]
        return tuple(t[sel] for t in tensors)

    def _epoch_and_index(self, step: int) -> tuple[int, int]:
        if not hasattr(self, "_per_epoch"):
            n = next(iter(self._data(0))).shape[0]
            if n < self.batch_size:
                raise ValueError(f"batch_size={self.batch_size} is larger than the training set ({n})")
            self._per_epoch = n // self.batch_size
        return divmod(step, self._per_epoch)

    # ------------------------------------------------------------------ state
    def save(self, path: str | Path | None = None) -> Path:
        """Writes the training state (model, optimizers, EMA, step) atomically."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise ValueError("path must be given (the trainer has no checkpoint path)")
        extra: dict[str, Any] = {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                                 "seconds": self.seconds, "history": list(self.history)}
        if self.ema is not None:
            extra["ema"] = dict(self.ema)
        return save_training_state(path, model=self.model, config=self.config, step=self.step, extra=extra)

    def load(self, path: str | Path) -> int:
        """Restores a state written by :meth:`save`; returns the step to continue from.

        Raises:
            CheckpointError: the checkpoint is corrupt or holds another model.
            ValueError: the checkpoint was written by a run with other options (see ``config``),
                or is past ``steps``.
        """
        step, _, extra = load_training_state(path, model=self.model, kind=self.config.get("kind"),
                                             check=lambda step, config: self._check_options(path, config, step))
        opts = extra.get("optimizers", {})
        if set(opts) != set(self.optimizers):
            raise CheckpointError(f"checkpoint {path} has optimizers {sorted(opts)}, "
                                  f"expected {sorted(self.optimizers)}")
        for k, o in self.optimizers.items():
            o.load_state_dict(opts[k])
        if self.ema is not None:
            if "ema" not in extra:
                raise CheckpointError(f"checkpoint {path} holds no EMA weights")
            self.ema = {k: v.clone() for k, v in extra["ema"].items()}
        self.seconds = float(extra.get("seconds", 0.0))
        self.history = [dict(h) for h in extra.get("history", [])]
        self.step = step
        return step

    def _check_options(self, path: str | Path, config: dict, step: int) -> None:
        stored = {k: v for k, v in config.items() if k != "training_state"}
        keys = (set(stored) | set(self.config)) - self.resume_may_change
        differ = sorted(k for k in keys if _jsonish(stored.get(k)) != _jsonish(self.config.get(k)))
        if differ:
            listed = ", ".join(f"{k} (checkpoint {stored.get(k)!r}, this run {self.config.get(k)!r})"
                               for k in differ)
            raise ValueError(f"resume: checkpoint {path} was written by a run with other options: {listed}; "
                             "resume with the same options, or start a new run in another directory")
        if step > self.steps:
            raise ValueError(f"resume: checkpoint {path} is at step {step}, past steps={self.steps}")

    # ------------------------------------------------------------------ loop
    def _set_lr(self, step: int) -> None:
        if self.warmup <= 0:
            return
        f = min(1.0, (step + 1) / self.warmup)
        for k, o in self.optimizers.items():
            for g in o.param_groups:
                g["lr"] = self.base_lr[k] * f

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        d = self.ema_decay
        for k, p in self.model.named_parameters():
            self.ema[k].mul_(d).add_(p.detach(), alpha=1 - d)

    def train_step(self) -> dict[str, float]:
        """One step: every objective of the model on the batch of ``self.step``."""
        batch = self.batch_at(self.step)
        self._set_lr(self.step)
        self.model.train()
        losses: dict[str, float] = {}
        for group, closure in self.model.objectives(batch, step=self.step, seed=self.seed):
            opt = self.optimizers[group]
            opt.zero_grad(set_to_none=True)
            loss = closure()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the {group} loss became {float(loss)} at step {self.step}")
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.grad_clip)
            opt.step()
            losses[group] = float(loss.detach())
        self._update_ema()
        self.step += 1
        return losses

    def run(self, *, resume: bool | str | Path = False) -> Trainer:
        """Trains up to ``steps`` (continuing from a checkpoint when ``resume`` is set).

        Args:
            resume: True resumes from ``self.checkpoint`` if it exists; a path resumes from it.
        """
        from tqdm.auto import tqdm

        if self.checkpoint is not None:
            remove_stale_temporaries(_with_suffix(self.checkpoint))
        if resume:
            path = self.checkpoint if resume is True else Path(resume)
            if path is not None and (_with_suffix(path).is_file() or Path(path).is_file()):
                self.load(path)
                log.info("resumed from %s at step %d", path, self.step)
        t0 = time.perf_counter() - self.seconds
        bar = tqdm(total=self.steps, initial=self.step, disable=not self.progress,
                   desc=str(self.config.get("kind", "train")), leave=False)
        try:
            while self.step < self.steps:
                losses = self.train_step()
                bar.update(1)
                if self.step % 50 == 0 or self.step == self.steps:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
                    self.history.append({"step": self.step, **losses})
                for hook in self.hooks:
                    hook(self, self.step, losses)
                self.seconds = time.perf_counter() - t0
                if self.checkpoint is not None and self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.save()
        finally:
            bar.close()
        self.seconds = time.perf_counter() - t0
        if self.checkpoint is not None and self.checkpoint_every and self.step % self.checkpoint_every != 0:
            self.save()
        if self.ema is not None:
            self.model.load_state_dict({**self.model.state_dict(), **self.ema})
        self.model.eval()
        return self

    @property
    def final_losses(self) -> dict[str, float]:
        return {k: v for k, v in (self.history[-1] if self.history else {}).items() if k != "step"}


def _jsonish(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparing configs."""
    if isinstance(value, (tuple, list)):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonish(v) for k, v in value.items()}
    return value


def _with_suffix(path: str | Path) -> Path:
    """The ``.safetensors`` file :func:`~gencore.checkpoint.save_checkpoint` writes for ``path``."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")
