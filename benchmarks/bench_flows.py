"""Flows benchmark: fused affine coupling vs reference / torch.compile / bandwidth floor, and a
RealNVP training step vs zuko.

    flock /tmp/gencore-bench.lock env PYTHONPATH=python python benchmarks/bench_flows.py [--quick] [--json out.json]
"""

from __future__ import annotations

from gencore.bench import main_for

if __name__ == "__main__":
    main_for("flows")
