"""Timing and reporting helpers shared by every benchmark module.

Timings are medians of repeated runs after warm-up; every benchmark compares, in one run,
the native path with the reference path, ``torch.compile`` of the reference and what a user
would otherwise write, and states the bandwidth floor (bytes moved / measured copy bandwidth).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

import gencore

__all__ = [
    "Row",
    "Section",
    "copy_bandwidth",
    "environment",
    "floor_seconds",
    "reference_mode",
    "render_markdown",
    "sync",
    "time_fn",
    "try_compile",
    "write_json",
]


def sync(device: torch.device | str | None = None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], *, warmup: int = 3, repeat: int = 15, min_time: float = 0.0,
            device: torch.device | str | None = None) -> float:
    """Median wall time of ``fn()`` in seconds after ``warmup`` calls (synchronising CUDA)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start_all) < min_time:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeat:
            break
    return statistics.median(times)


def release_free_memory() -> None:
    """Collects garbage and returns the allocator's free pages to the OS (glibc ``malloc_trim``),
    so one benchmark does not inherit the heap another left behind."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _minor_faults() -> int:
    try:
        import resource
    except ImportError:  # not POSIX
        return -1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_with_faults(fn: Callable[[], object], *, warmup: int = 3, repeat: int = 15,
                     device: torch.device | str | None = None) -> tuple[float, float]:
    """``time_fn``'s median, and the minor page faults per timed call (fresh pages the kernel had
    to map and zero; NaN where ``resource`` is unavailable). A call whose outputs land on newly
    mapped memory pays one fault per 4 KiB page, which can cost more than its arithmetic."""
    for _ in range(warmup):
        fn()
    calls = 0

    def counted():
        nonlocal calls
        calls += 1
        return fn()

    before = _minor_faults()
    t = time_fn(counted, warmup=0, repeat=repeat, device=device)
    after = _minor_faults()
    return t, (after - before) / calls if before >= 0 else float("nan")


_BW_CACHE: dict[str, float] = {}


def copy_bandwidth(device: torch.device | str = "cpu", nbytes: int = 256 * 2**20) -> float:
    """Measured copy bandwidth in bytes/s (read + write counted) with torch's own copy kernel."""
    key = str(device)
    if key not in _BW_CACHE:
        n = nbytes // 4
        src = torch.ones(n, device=device)
        dst = torch.empty_like(src)
        t = time_fn(lambda: dst.copy_(src), warmup=3, repeat=10, device=device)
        _BW_CACHE[key] = 2 * n * 4 / t
        del src, dst
        gc.collect()
    return _BW_CACHE[key]


def floor_seconds(bytes_moved: int, device: torch.device | str = "cpu") -> float:
    """The bandwidth floor: bytes moved divided by measured copy bandwidth."""
    return bytes_moved / copy_bandwidth(device)


def try_compile(fn: Callable, **kwargs) -> Callable | None:
    """``torch.compile(fn)`` if it compiles and runs here (a C++ compiler is needed on CPU)."""
    try:
        compiled = torch.compile(fn, **kwargs)
        return compiled
    except Exception:  # pragma: no cover - depends on the toolchain
        return None


class reference_mode:
    """Context manager that forces the pure-PyTorch reference path."""

    def __enter__(self):
        self._old = os.environ.get("GENCORE_FORCE_REFERENCE")
        os.environ["GENCORE_FORCE_REFERENCE"] = "1"
        return self

    def __exit__(self, *exc):
        if self._old is None:
            os.environ.pop("GENCORE_FORCE_REFERENCE", None)
        else:
            os.environ["GENCORE_FORCE_REFERENCE"] = self._old
        return False


@dataclass
class Row:
    """One measured line: ``name`` at ``shape``, median ``seconds`` and free-form extras."""

    name: str
    shape: str
    seconds: float
    extra: dict = field(default_factory=dict)


@dataclass
class Section:
    """A titled table of rows, with notes (targets, floors, ratios) printed below it."""

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *values) -> None:
        self.rows.append(list(values))

    def to_dict(self) -> dict:
        return asdict(self)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000 or abs(v) < 0.01:
            return f"{v:.3g}"
        return f"{v:.2f}"
    return str(v)


def render_markdown(sections: list[Section]) -> str:
    out: list[str] = []
    for s in sections:
        out.append(f"### {s.title}\n")
        out.append("| " + " | ".join(s.columns) + " |")
        out.append("|" + "---|" * len(s.columns))
        for r in s.rows:
            out.append("| " + " | ".join(_fmt(v) for v in r) + " |")
        for n in s.notes:
            out.append(f"\n{n}")
        out.append("")
    return "\n".join(out)


def environment() -> dict:
    return {
        "gencore": gencore.info(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: str, payload: dict) -> None:
    """Atomic write (temp file + rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    os.replace(tmp, path)
