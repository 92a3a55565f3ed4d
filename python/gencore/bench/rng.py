"""Counter-based noise benchmark: ``gencore.randn`` against ``torch.randn`` (what a user calls
today), the pure-PyTorch reference, ``torch.compile`` of the reference, and the bandwidth
floor, in one run.

- fp32 normals at a large dense shape, at a small per-sample size (2 values per sample, where
  the kernel vectorises across samples) and at an image-like shape;
- the same into a preallocated tensor (``gencore.rng.fill_`` vs ``torch.randn(out=)``), which
  leaves out the page faults of fresh allocations;
- uniforms and the other dtypes;
- 1 thread against all threads.
"""

from __future__ import annotations

import logging
import math

import torch

import gencore
from gencore.bench.common import Section, copy_bandwidth, reference_mode, time_fn, try_compile
from gencore.rng import reference

__all__ = ["dtype_section", "run", "threads_section", "throughput_section"]

log = logging.getLogger(__name__)


def _msps(numel: int, seconds: float) -> float:
    return numel / seconds / 1e6 if not math.isnan(seconds) and seconds > 0 else float("nan")


def _reference_randn(shape, seed):
    out = torch.empty(shape)
    reference.fill(out, seed, 0, 0)
    return out


def throughput_section(quick: bool = False, device: str = "cpu") -> Section:
    """randn fp32: gencore vs torch.randn vs reference vs torch.compile(reference) vs the floor."""
    shapes = [(1024, 1024), (1 << 19, 2), (64, 3, 32, 32)] if quick else [(2048, 1024), (1 << 20, 2), (256, 3, 32, 32)]
    repeat = 5 if quick else 15
    bw = copy_bandwidth(device)
    sec = Section(
        title=f"Normals, float32, {torch.get_num_threads()} threads, {device}",
        columns=["shape", "method", "ms", "M samples/s", "x torch.randn"],
    )
    ratios = []
    for shape in shapes:
        numel = math.prod(shape)
        t_torch = time_fn(lambda shape=shape: torch.randn(shape, device=device), repeat=repeat, device=device)
        t_gc = time_fn(lambda shape=shape: gencore.randn(shape, seed=1, device=device), repeat=repeat, device=device)
        out = torch.empty(shape, device=device)
        t_fill = time_fn(lambda out=out: gencore.rng.fill_(out, seed=1), repeat=repeat, device=device)
        t_tfill = time_fn(lambda shape=shape, out=out: torch.randn(shape, out=out), repeat=repeat, device=device)
        ratios.append(t_torch / t_gc)
        rows = [
            ("gencore.randn", t_gc),
            ("torch.randn", t_torch),
            ("gencore.rng.fill_ (preallocated)", t_fill),
            ("torch.randn(out=) (preallocated)", t_tfill),
        ]
        if device == "cpu" and numel <= (1 << 21):
            with reference_mode():
                t_ref = time_fn(lambda shape=shape: gencore.randn(shape, seed=1), warmup=1, repeat=3)
            rows.append(("reference (pure PyTorch)", t_ref))
            if not quick:
                compiled = try_compile(_reference_randn, dynamic=False)
                t_comp = float("nan")
                if compiled is not None:
                    try:
                        t_comp = time_fn(lambda shape=shape, compiled=compiled: compiled(shape, 1), warmup=2, repeat=5)
                    except Exception as exc:
                        log.warning("torch.compile of the reference failed: %s", exc)
                rows.append(("torch.compile(reference)", t_comp))
        floor = numel * 4 / bw  # write-only: 4 bytes per value
        rows.append(("bandwidth floor (write 4 B/value)", floor))
        for name, t in rows:
            ratio = t_torch / t if not math.isnan(t) else float("nan")
            sec.add(str(tuple(shape)), name, t * 1e3, _msps(numel, t), ratio)
    sec.notes.append(f"Measured copy bandwidth: {bw / 1e9:.1f} GB/s (read + write). Target: gencore.randn "
                     f">= 4x torch.randn; measured {', '.join(f'{r:.1f}x' for r in ratios)} for the shapes above.")
    sec.notes.append("gencore.randn and torch.randn both allocate their output (page faults of fresh memory "
                     "included); the preallocated rows time the generator alone.")
    return sec


def dtype_section(quick: bool = False, device: str = "cpu") -> Section:
    """Normals and uniforms in every dtype against torch.randn / torch.rand."""
    shape = (512, 1024) if quick else (2048, 1024)
    numel = math.prod(shape)
    repeat = 5 if quick else 15
    sec = Section(title=f"All dtypes at {shape}, {device}",
                  columns=["dtype", "kind", "gencore ms", "torch ms", "x torch", "gencore M samples/s"])
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for kind, g_fn, t_fn in (("normal", gencore.randn, torch.randn), ("uniform", gencore.rand, torch.rand)):
            tg = time_fn(lambda g_fn=g_fn, dtype=dtype: g_fn(shape, seed=3, dtype=dtype, device=device),
                         repeat=repeat, device=device)
            tt = time_fn(lambda t_fn=t_fn, dtype=dtype: t_fn(shape, dtype=dtype, device=device),
                         repeat=repeat, device=device)
            sec.add(str(dtype).replace("torch.", ""), kind, tg * 1e3, tt * 1e3, tt / tg, _msps(numel, tg))
    return sec


def threads_section(quick: bool = False, device: str = "cpu") -> Section:
    """One thread against all threads (CPU only)."""
    shape = (512, 1024) if quick else (2048, 1024)
    numel = math.prod(shape)
    out = torch.empty(shape)
    sec = Section(title=f"Threads, normals float32 into a preallocated {shape}",
                  columns=["threads", "gencore M samples/s", "torch.randn(out=) M samples/s"])
    old = torch.get_num_threads()
    try:
        for nt in sorted({1, old}):
            torch.set_num_threads(nt)
            tg = time_fn(lambda: gencore.rng.fill_(out, seed=1), repeat=10)
            tt = time_fn(lambda: torch.randn(shape, out=out), repeat=10)
            sec.add(nt, _msps(numel, tg), _msps(numel, tt))
    finally:
        torch.set_num_threads(old)
    return sec


def run(quick: bool = False, device: str = "cpu") -> list[Section]:
    sections = [throughput_section(quick, device), dtype_section(quick, device)]
    if device == "cpu":
        sections.append(threads_section(quick, device))
    return sections
