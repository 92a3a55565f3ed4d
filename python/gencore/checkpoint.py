"""Checkpoints: safetensors for tensors plus a JSON config, written atomically, loaded without pickle.

A checkpoint is one ``.safetensors`` file whose metadata carries the JSON config (the source of
truth when loading), a SHA-256 digest of every tensor and of the config, and a readable copy of
the config beside it (``<name>.json``). Both files are first written in full to temporary names
in the same directory and flushed to disk; only then are they renamed into place (the tensors
file first). So a full disk or a kill while writing never replaces a good checkpoint with a
partial one, and temporaries a kill leaves behind are removed by the next write of that file
(a temporary's name carries its writer's process id; those of running processes are kept).
Loading verifies the digests (checkpoints written before digests existed load unverified), so
flipped bits in tensor data raise :class:`CheckpointError` naming the tensor.

Training state (model, optimizer, random generator, step) round-trips exactly, so a run resumed
from its last checkpoint ends with the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT",
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_text",
    "load_checkpoint",
    "load_training_state",
    "remove_stale_temporaries",
    "save_checkpoint",
    "save_training_state",
    "tensor_digest",
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


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _writer_alive(tmp: Path, prefix: str) -> bool:
    """Whether the process whose id the temporary's name carries still runs (on this machine)."""
    pid = tmp.name[len(prefix):].split(".", 1)[0]
    if not pid.isdigit() or int(pid) < 1:
        return False
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # another user's process
        return True
    except (OSError, OverflowError):
        return False
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Removes the temporaries that killed atomic writes of ``path`` left in its directory.

    A temporary's name carries the id of the process writing it; those of processes that
    still run (a concurrent writer) are kept.

    Args:
        path: a file written with :func:`atomic_write_bytes` (for a checkpoint, either of its
            two files; the ``.safetensors`` and ``.json`` temporaries are both removed).

    Returns:
        The paths removed (files that vanish meanwhile or cannot be removed are skipped).
    """
    path = Path(path)
    names = {path.name}
    if path.suffix in (".safetensors", ".json"):
        names |= {path.with_suffix(".safetensors").name, path.with_suffix(".json").name}
    removed = []
    for name in sorted(names):
        prefix = f".{name}."
        for tmp in sorted(path.parent.glob(f"{_glob_escape(prefix)}*.tmp")):
            if _writer_alive(tmp, prefix):
                continue
            try:
                tmp.unlink()
            except OSError:
                continue
            removed.append(tmp)
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _write_temporary(path: Path, data: bytes) -> str:
    """Writes ``data`` to a new temporary beside ``path``, flushed to disk; returns its name."""
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write_files(files: dict[str | os.PathLike, bytes]) -> None:
    """Writes several files of one directory so that none is ever left half-written.

    Every file is first written in full to a temporary name beside its target and flushed;
    only when all of them are on disk are they renamed into place, in the order given. If a
    write fails (a full disk, say) the temporaries are removed and the targets keep their old
    content. Temporaries that earlier, killed writes of the same targets left behind are
    removed first.

    Args:
        files: target path -> content.

    Raises:
        OSError: a file could not be written; the message names it (``errno`` kept).
    """
    targets = [(Path(p), data) for p, data in files.items()]
    for path, _ in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create the directory of {path}: {exc.strerror}") from None
        remove_stale_temporaries(path)
    written: list[tuple[str, Path]] = []
    replaced = 0
    current = targets[0][0] if targets else None
    try:
        for path, data in targets:
            current = path
            written.append((_write_temporary(path, data), path))
        for tmp, path in written:
            current = path
            os.replace(tmp, path)
            replaced += 1
    except OSError as exc:
        for tmp, _ in written[replaced:]:
            _unlink_quietly(tmp)
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
        kept = "; no file was replaced" if replaced == 0 else ""
        raise OSError(exc.errno, f"cannot write {current}: {reason}{kept}") from None
    except BaseException:
        for tmp, _ in written[replaced:]:
            _unlink_quietly(tmp)
        raise
    for parent in {path.parent for path, _ in targets}:
        _fsync_dir(parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary file in the same directory and a rename.

    Raises:
        OSError: the file could not be written (e.g. ``ENOSPC``); ``path`` keeps its old content.
    """
    atomic_write_files({path: data})


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 ``text`` to ``path``, as :func:`atomic_write_bytes`."""
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


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 (hex) of a tensor's bytes as safetensors stores them (C order, little-endian)."""
    t = tensor.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256()
    if t.numel():
        h.update(t.view(torch.uint8).numpy().data)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """Saves ``tensors`` and a JSON-serialisable ``config`` atomically, with checksums.

    The safetensors metadata holds ``format``, ``config`` (JSON text), ``config_sha256`` (of that
    text) and ``sha256`` (JSON ``{tensor name: hex digest}``, see :func:`tensor_digest`).

    Args:
        path: target file; ``.safetensors`` is appended when missing.
        tensors: name -> tensor (moved to CPU, made contiguous).
        config: JSON-serialisable dict; must include ``"kind"`` naming the model.

    Returns:
        The path of the ``.safetensors`` file.

    Raises:
        OSError: the files could not be written (e.g. a full disk); the old checkpoint, if any,
            is left as it was.
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
    digests = {k: tensor_digest(v) for k, v in cpu.items()}
    blob = _canonical(save(cpu, metadata={"format": FORMAT, "config": text,
                                          "config_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                                          "sha256": json.dumps(digests, sort_keys=True)}))
    readable = json.dumps(config, indent=2, sort_keys=True) + "\n"
    # The safetensors file (the source of truth) is renamed in first, its readable copy last.
    atomic_write_files({path: blob, path.with_suffix(".json"): readable.encode("utf-8")})
    return path


def _canonical(blob: bytes) -> bytes:
    """``blob`` with its header's keys sorted, so equal checkpoints are equal files.

    safetensors writes the metadata in hash-map order, which differs between processes. The
    header is rewritten as compact sorted JSON, padded with spaces to a multiple of 8 bytes as
    safetensors pads it; the tensor data (whose offsets count from the end of the header) is
    unchanged.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + blob[8 + n:]


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob that :func:`safetensors.torch.load` accepted."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return header.get("__metadata__") or {}


def _json_field(path: Path, meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path}: its {key!r} metadata is not valid JSON "
                              f"({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def _verify(path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    """Checks the digests :func:`save_checkpoint` stored (nothing to check in older files)."""
    if "config_sha256" in meta:
        got = hashlib.sha256(meta["config"].encode("utf-8")).hexdigest()
        if got != meta["config_sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupt: its config does not match its checksum")
    if "sha256" not in meta:
        return
    digests = _json_field(path, meta, "sha256")
    if not isinstance(digests, dict) or set(digests) != set(tensors):
        raise CheckpointError(f"checkpoint {path} is corrupt: its tensors do not match its checksum list")
    for name in sorted(tensors):
        if tensor_digest(tensors[name]) != digests[name]:
            raise CheckpointError(f"checkpoint {path} is corrupt: tensor {name!r} does not match its "
                                  "sha256 checksum (the file was modified or damaged)")


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
        CheckpointError: truncated/corrupt file (including tensors or config that fail their
            checksums), not a gencore checkpoint, or another model.
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.exists() and path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        meta = _metadata(data)
    except Exception as exc:  # safetensors raises several types on bad files
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path} is not a gencore checkpoint")
    _verify(path, meta, tensors)
    config = _json_field(path, meta, "config")
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {path}: its config must be a JSON object, "
                              f"got {type(config).__name__}")
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
                        generator: torch.Generator | None = None,
                        check: Callable[[int, dict], None] | None = None) -> tuple[int, dict, dict]:
    """Restores what :func:`save_training_state` wrote. Returns (step, config, extra).

    Args:
        path: the checkpoint.
        model: receives the parameters and buffers.
        kind: when given, the checkpoint's ``config["kind"]`` must equal it.
        optimizer: receives the optimizer state.
        generator: receives the generator state.
        check: called as ``check(step, config)`` before anything is restored (it raises to
            refuse the checkpoint, e.g. one written with other options).
    """
    tensors, config = load_checkpoint(path, kind=kind)
    skeleton = config.get("training_state")
    if not isinstance(skeleton, dict) or "step" not in skeleton:
        raise CheckpointError(f"{path} holds no training state")
    if check is not None:
        check(int(skeleton["step"]), config)
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
