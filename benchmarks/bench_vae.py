"""Benchmark of the vae family (see gencore.bench.vae):

    flock /tmp/gencore-bench.lock env PYTHONPATH=python python benchmarks/bench_vae.py [--quick] [--json out.json]
"""

from __future__ import annotations

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("vae")
