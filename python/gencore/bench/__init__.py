"""Benchmarks an installed gencore can run: ``gencore bench`` or ``python benchmarks/bench_X.py``.

Each family has a module ``gencore.bench.<family>`` with
``run(quick: bool = False, device: str = "cpu") -> list[Section]``. The runner prints the
markdown tables and can save JSON.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

from gencore.bench.common import (
    Section,
    environment,
    release_free_memory,
    render_markdown,
    write_json,
)

__all__ = ["available", "main_for", "run"]

log = logging.getLogger(__name__)


def available() -> list[str]:
    """Benchmark families in this installation."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "common"
    )


def run(families: list[str] | None = None, *, quick: bool = False, device: str = "cpu",
        progress: bool = True) -> dict[str, list[Section]]:
    """Runs the named benchmark families (all by default) and returns their sections."""
    names = families or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        raise ValueError(f"unknown benchmark family {unknown}; available: {available()}")
    results: dict[str, list[Section]] = {}
    from tqdm.auto import tqdm

    for name in tqdm(names, desc="bench", disable=not progress):
        mod = importlib.import_module(f"gencore.bench.{name}")
        log.info("running benchmark %s", name)
        release_free_memory()  # each family starts from a trimmed heap, as when run alone
        results[name] = mod.run(quick=quick, device=device)
    return results


def main_for(family: str, argv: list[str] | None = None) -> None:
    """Entry point for the thin scripts in ``benchmarks/``."""
    import argparse

    p = argparse.ArgumentParser(description=f"gencore {family} benchmark")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write results to this JSON file")
    a = p.parse_args(argv)
    res = run([family], quick=a.quick, device=a.device, progress=False)
    print(render_markdown(res[family]))
    if a.json:
        write_json(a.json, {"env": environment(), family: [s.to_dict() for s in res[family]]})
