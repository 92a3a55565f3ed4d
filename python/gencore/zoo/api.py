"""The zoo's functions: configure, build, train, sample, measure, save and load any family.

They reach a family only through :class:`~gencore.zoo.base.ZooModel` and the registry.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from gencore._validate import check_seed
from gencore.checkpoint import CheckpointError, atomic_write_text, load_checkpoint, save_checkpoint
from gencore.data.digits import NUM_CLASSES, check_finite, check_labels
from gencore.zoo.base import ZooModel
from gencore.zoo.data import DIGITS, Dataset, check_data, load_data
from gencore.zoo.registry import MODELS, family

__all__ = ["build", "copy_model", "evaluate", "load", "make_config", "sample", "save", "train"]

_RUN_OPTIONS = frozenset({"eval_samples", "checkpoint_every"})


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _dataset(cls: type[ZooModel], data: str, seed: int) -> Dataset:
    """``data`` scaled and dequantised as family ``cls`` trains on it."""
    return load_data(data, scale=cls.scale, dequantize=cls.dequantize, seed=seed)


def make_config(name: str, data: str = DIGITS, *, seed: int = 0, **overrides: Any) -> dict:
    """The full config of a run: the family's defaults, ``overrides``, data shape and classes.

    Args:
        name: a key of :data:`~gencore.zoo.MODELS`.
        data: ``"digits"`` or a 2-D toy name.
        seed: the run's seed.
        **overrides: family hyper-parameters (None values keep the default).

    Returns:
        A JSON-serialisable dict with ``kind``, ``data``, ``seed``, ``shape`` and ``num_classes``.
    """
    cls = family(name)
    check_data(data)
    kind = "digits" if data == DIGITS else "toy"
    if kind not in cls.data_kinds:
        raise ValueError(f"data={data!r}: model {name!r} trains on {', '.join(cls.data_kinds)} data only")
    unknown = sorted(set(overrides) - set(cls.defaults) - _RUN_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; options: {sorted(cls.defaults)}")
    cfg = dict(cls.defaults)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("steps", "batch_size"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "steps" else 1):
            raise ValueError(f"{key} must be a {'non-negative' if key == 'steps' else 'positive'} integer, got {v!r}")
    if kind == "digits":
        shape, ncls = [1, 8, 8], NUM_CLASSES
    else:
        ds = load_data(data, seed=seed, toy_size=64)
        shape, ncls = list(ds.shape), ds.num_classes
        if cls.conditional_family and ncls == 0:
            raise ValueError(f"data={data!r} has no class labels; model {name!r} is class-conditional")
    cfg.update({"kind": name, "data": data, "seed": int(seed), "shape": shape, "num_classes": ncls})
    return _jsonable(cfg)


def build(config: dict) -> ZooModel:
    """Builds the (untrained) model a config describes, initialised under ``config["seed"]``."""
    cls = family(config.get("kind"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        return cls(config)


def train(name: str, data: str = DIGITS, *, steps: int | None = None, seed: int = 0, progress: bool = False,
          out: str | Path | None = None, resume: bool = False, checkpoint_every: int = 0,
          evaluate_model: bool = True, threads: int | None = None,
          **overrides: Any) -> tuple[ZooModel, dict, dict]:
    """Trains one model of the zoo and measures it.

    Args:
        name: a key of :data:`MODELS`.
        data: ``"digits"`` or a 2-D toy name (see :data:`DATA`).
        steps: optimisation steps (default: the family's full-quality setting).
        seed: seeds initialisation, batch order and all training noise.
        progress: tqdm progress bar.
        out: directory to write ``model.safetensors`` + ``model.json`` (the final model),
            ``train_state.safetensors`` (resumable training state) and ``metrics.json``.
        resume: continue from ``out/train_state`` when it exists.
        checkpoint_every: write the training state every this many steps (needs ``out``).
        evaluate_model: compute the metrics (False: only ``train_seconds``).
        threads: torch CPU threads for this call (restored afterwards; None: unchanged). On a
            machine whose cores are busy with other work, 1 thread avoids OpenMP contention.
        **overrides: family hyper-parameters (see ``MODELS[name].defaults``).

    Returns:
        ``(model, metrics, config)``.

    Example:
        >>> from gencore import zoo
        >>> model, metrics, config = zoo.train("naive_bayes")
        >>> metrics["test_accuracy"] == metrics["sklearn_test_accuracy"]
        True
    """
    if checkpoint_every and out is None:
        raise ValueError("checkpoint_every needs out (a directory for the checkpoints)")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return train(name, data, steps=steps, seed=seed, progress=progress, out=out, resume=resume,
                         checkpoint_every=checkpoint_every, evaluate_model=evaluate_model, **overrides)
        finally:
            torch.set_num_threads(old)
    config = make_config(name, data, seed=seed, steps=steps, **overrides)
    ds = _dataset(MODELS[name], data, seed)
    for split in ("x_train", "x_test"):
        check_finite(getattr(ds, split), "data")
    model = build(config)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        _check_writable(out_dir)
    seconds, history = model.fit(ds, progress=progress,
                                 checkpoint=(out_dir / "train_state") if out_dir is not None else None,
                                 checkpoint_every=int(checkpoint_every), resume=resume)
    model.eval()
    metrics: dict[str, Any] = {"train_seconds": seconds}
    if history:
        metrics["final_losses"] = {k: v for k, v in history[-1].items() if k != "step"}
    if evaluate_model:
        t1 = time.perf_counter()
        metrics.update(model.evaluate(ds, seed=seed))
        metrics["eval_seconds"] = time.perf_counter() - t1
    if out_dir is not None:
        save(model, out_dir / "model")
        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return model, metrics, config


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out={str(path)!r} cannot be created: {exc}") from None
    probe = path / ".gencore-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"out={str(path)!r} is not writable: {exc}") from None


def _check_model(model: object) -> ZooModel:
    if not isinstance(model, ZooModel):
        raise TypeError(f"model must be a model returned by gencore.zoo.train or load, got {type(model).__name__}")
    return model


def _sampling_options(model: ZooModel, sampler: str | None, steps: int | None, guidance_scale: float | None,
                      progress: bool) -> dict[str, Any]:
    """Checks the sampling options against what the family declares; the keywords for ``generate``."""
    kw: dict[str, Any] = {}
    if guidance_scale is not None:
        if not model.guidance:
            raise ValueError(f"guidance_scale is only for guided diffusion models, not {model.name!r}")
        if not isinstance(guidance_scale, (int, float)) or isinstance(guidance_scale, bool) \
                or not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        kw["guidance_scale"] = float(guidance_scale)
    if sampler is not None or steps is not None:
        if not model.samplers:
            raise ValueError(f"sampler and steps are only for diffusion models, not {model.name!r}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if sampler is not None and sampler not in model.samplers:
            raise ValueError(f"sampler must be one of {list(model.samplers)}, got {sampler!r}")
        kw.update(sampler=sampler, steps=steps)
    if progress and model.samplers:
        kw["progress"] = True
    return kw


def sample(model: ZooModel, n: int, y: Any = None, *, seed: int = 0, sampler: str | None = None,
           steps: int | None = None, guidance_scale: float | None = None,
           progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draws ``n`` samples from a zoo model.

    Args:
        model: from :func:`train` or :func:`load`.
        n: number of samples.
        y: class labels for conditional models (one int or ``(n,)``); required for them and
            rejected for unconditional ones.
        seed: noise seed.
        sampler, steps: diffusion sampler and step count (diffusion families only).
        guidance_scale: classifier-free guidance scale (guided diffusion families only).
        progress: tqdm progress bar (diffusion families).

    Returns:
        ``(x, y)``: digits as images in [0, 1] ``(n, 1, 8, 8)``, toys as ``(n, 2)``; the labels
        used (or None).

    Example:
        >>> from gencore import zoo
        >>> model, _, _ = zoo.train("naive_bayes", evaluate_model=False)
        >>> x, y = zoo.sample(model, 4, y=3, seed=0)
        >>> tuple(x.shape), y.tolist()
        ((4, 1, 8, 8), [3, 3, 3, 3])
    """
    model = _check_model(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    seed = check_seed(seed)
    if model.conditional:
        if y is None:
            raise ValueError(f"y is required: model {model.name!r} is class-conditional "
                             f"(labels in [0, {model.num_classes}))")
        y = check_labels(y, model.num_classes, "y", n=n)
    elif y is not None:
        raise ValueError(f"y must be None: model {model.name!r} is unconditional")
    kw = _sampling_options(model, sampler, steps, guidance_scale, progress)
    if n == 0:
        return torch.zeros(0, *model.shape), y
    x = model.generate(n, y, seed=seed, **kw)
    return model.to_output(x), y


def evaluate(model: ZooModel, *, seed: int = 0) -> dict[str, Any]:
    """Re-measures a model on its dataset (test split).

    Args:
        model: from :func:`train` or :func:`load`.
        seed: seeds the evaluation's noise.

    Returns:
        The family's metrics, as :func:`train` reports them.
    """
    model = _check_model(model)
    ds = _dataset(type(model), model.data_name, int(model.config["seed"]))
    return model.evaluate(ds, seed=seed)


def save(model: ZooModel, path: str | Path) -> Path:
    """Writes ``path.safetensors`` + ``path.json`` (weights and config), atomically."""
    model = _check_model(model)
    return save_checkpoint(path, model.state_dict(), dict(model.config))


def load(path: str | Path) -> ZooModel:
    """Reads a model written by :func:`save` (or the model checkpoint of :func:`train`).

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointError: the checkpoint is corrupt, holds no zoo model, or holds a config or
            weights that do not fit the model kind its config names.
    """
    tensors, config = load_checkpoint(path)
    kind = config.get("kind")
    if not isinstance(kind, str) or kind not in MODELS:
        raise CheckpointError(f"checkpoint {path} holds {kind!r}, not a zoo model (one of {sorted(MODELS)})")
    try:
        model = build(config)
    except KeyError as exc:
        raise CheckpointError(f"checkpoint {path} names model kind {kind!r}, but its config lacks the option "
                              f"{exc.args[0]!r} that {kind!r} needs: it was written for another model or "
                              "edited") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its config does not describe a {kind!r} model "
                              f"({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit model {kind!r}: {exc}") from None
    model.eval()
    return model


def copy_model(model: ZooModel) -> ZooModel:
    """A deep copy of a zoo model."""
    return copy.deepcopy(_check_model(model))
