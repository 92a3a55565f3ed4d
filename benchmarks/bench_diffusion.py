"""Diffusion step benchmark: fused native steps vs the eager reference, torch.compile of the
reference, diffusers' schedulers and the bandwidth floor; per-call overhead at a tiny size.

    flock /tmp/gencore-bench.lock env PYTHONPATH=python python benchmarks/bench_diffusion.py [--quick] [--json out.json]
"""

from __future__ import annotations

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("diffusion")
