from __future__ import annotations

from fuzzlib import COUNTS

OUTCOMES = ("equal", "close", "rejected", "ref_wrong", "known", "mismatch", "unclear", "crash")


def pytest_terminal_summary(terminalreporter):
    """Examples per op and outcome (equal / close under the low-precision criterion / rejected
    with a named error / mismatch / unclear error / crash)."""
    ops = {k: v for k, v in COUNTS.items() if k != "counting"}
    if not ops:
        return
    tr = terminalreporter
    tr.section("fuzz: examples per op and outcome")
    tr.write_line(f"{'op':24s} {'examples':>8s} " + " ".join(f"{o:>8s}" for o in OUTCOMES))
    for op in sorted(ops):
        c = ops[op]
        total = sum(c[o] for o in OUTCOMES)
        tr.write_line(f"{op:24s} {total:8d} " + " ".join(f"{c[o]:8d}" for o in OUTCOMES))
        for key, n in sorted(c.items()):
            if ":" in key:
                tr.write_line(f"    {n:5d} x {key}")
