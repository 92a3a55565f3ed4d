"""Checkpoints: safetensors for tensors plus a JSON config, written atomically, loaded without pickle.

A checkpoint is one ``.safetensors`` file whose metadata carries the JSON config (the source of
truth when loading) and a readable copy of that config beside it (``<name>.json``). Every file
is written to a temporary name in the same directory, flushed to disk and renamed into place,
so an interrupted write never replaces a good checkpoint with a partial one.

Training state (model, optimizer, random generator, step) round-trips exactly, so a run resumed
from its last checkpoint ends with the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT",
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_checkpoint",
    "load_training_state",
    "save_checkpoint",
    "save_training_state",
]

FORMAT = "gencore-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or from another model."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _flatten(prefix: str, obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Moves tensors of a nested structure into ``tensors``; returns a JSON-able skeleton."""
    if isinstance(obj, torch.Tensor):
        key = prefix
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(f"{prefix}/k{i}", k, tensors), _flatten(f"{prefix}/{i}", v, tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(f"{prefix}/{i}", v, tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def _unflatten(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__dict__" in skel:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in skel["__dict__"]}
        if "__tuple__" in skel:
            return tuple(_unflatten(v, tensors) for v in skel["__tuple__"])
    if isinstance(skel, list):
        return [_unflatten(v, tensors) for v in skel]
    return skel


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """Saves ``tensors`` and a JSON-serialisable ``config`` atomically.

    Args:
        path: target file; ``.safetensors`` is appended when missing.
        tensors: name -> tensor (moved to CPU, made contiguous).
        config: JSON-serialisable dict; must include ``"kind"`` naming the model.

    Returns:
        The path of the ``.safetensors`` file.
    """
    from safetensors.torch import save

    if "kind" not in config:
        raise ValueError("config must contain 'kind' (the model the checkpoint belongs to)")
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    try:
        text = json.dumps(config, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"config must be JSON-serialisable: {exc}") from None
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    blob = save(cpu, metadata={"format": FORMAT, "config": text})
    # Readable copy first; the safetensors file (the source of truth) is renamed in last.
    atomic_write_text(path.with_suffix(".json"), json.dumps(config, indent=2, sort_keys=True) + "\n")
    atomic_write_bytes(path, blob)
    return path


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Loads a checkpoint written by :func:`save_checkpoint` (no pickle involved).

    Args:
        path: the ``.safetensors`` file (or its name without the suffix).
        kind: when given, the checkpoint's ``config["kind"]`` must equal it.
        map_location: device for the tensors.

    Returns:
        (tensors, config)

    Raises:
        FileNotFoundError: no such checkpoint.
        CheckpointError: truncated/corrupt file, not a gencore checkpoint, or another model.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists() and path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    try:
        import safetensors

        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load(data)
    except (SafetensorError, Exception) as exc:  # safetensors raises several types on bad files
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({exc})") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path} is not a gencore checkpoint")
    config = json.loads(meta["config"])
    if kind is not None and config.get("kind") != kind:
        raise CheckpointError(f"checkpoint {path} holds a {config.get('kind')!r} model, expected {kind!r}")
    if str(map_location) != "cpu":
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return tensors, config


def save_training_state(path: str | os.PathLike, *, model: torch.nn.Module, config: dict, step: int,
                        optimizer: torch.optim.Optimizer | None = None,
                        generator: torch.Generator | None = None, extra: dict | None = None) -> Path:
    """Model parameters and buffers, optimizer state, generator state and step, atomically.

    ``extra`` holds small JSON-able values or tensors (e.g. an EMA copy of the weights).
    """
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model.state_dict().items()}
    skeleton: dict[str, Any] = {"step": int(step)}
    if optimizer is not None:
        skeleton["optimizer"] = _flatten("optimizer", optimizer.state_dict(), tensors)
    if generator is not None:
        tensors["generator"] = generator.get_state()
    if extra:
        skeleton["extra"] = _flatten("extra", extra, tensors)
    cfg = dict(config)
    cfg["training_state"] = skeleton
    return save_checkpoint(path, tensors, cfg)


def load_training_state(path: str | os.PathLike, *, model: torch.nn.Module, kind: str | None = None,
                        optimizer: torch.optim.Optimizer | None = None,
                        generator: torch.Generator | None = None) -> tuple[int, dict, dict]:
    """Restores what :func:`save_training_state` wrote. Returns (step, config, extra)."""
    tensors, config = load_checkpoint(path, kind=kind)
    skeleton = config.get("training_state")
    if skeleton is None:
        raise CheckpointError(f"{path} holds no training state")
    state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {exc}") from None
    if optimizer is not None:
        if "optimizer" not in skeleton:
            raise CheckpointError(f"{path} holds no optimizer state")
        optimizer.load_state_dict(_unflatten(skeleton["optimizer"], tensors))
    if generator is not None and "generator" in tensors:
        generator.set_state(tensors["generator"])
    extra = _unflatten(skeleton.get("extra", {}), tensors)
    return int(skeleton["step"]), config, extra
