"""Flow quality on embedded data (toys NLL vs entropy floor, digits bits/dim) with PNG plots.

    flock /tmp/gencore-bench.lock env PYTHONPATH=python python benchmarks/bench_flows_quality.py --out results/flows
"""

from __future__ import annotations

import argparse
import logging

from gencore.bench.common import render_markdown
from gencore.bench.flows_quality import TOY_NAMES, run

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="flows_quality_out", help="directory for PNG plots and JSON")
    p.add_argument("--toys", nargs="*", default=list(TOY_NAMES))
    p.add_argument("--no-digits", action="store_true")
    p.add_argument("--toy-steps", type=int, default=None)
    p.add_argument("--digits-epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads for the toy runs")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    sections = run(quick=a.quick, out_dir=a.out, toys=tuple(a.toys), digits=not a.no_digits,
                   toy_steps=a.toy_steps, digits_epochs=a.digits_epochs, threads=a.threads)
    print(render_markdown(sections))
