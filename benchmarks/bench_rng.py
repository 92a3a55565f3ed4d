"""Benchmark of the rng family (see gencore.bench.rng):

    flock /tmp/gencore-bench.lock env PYTHONPATH=python python benchmarks/bench_rng.py [--quick] [--json out.json]
"""

from __future__ import annotations

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("rng")
