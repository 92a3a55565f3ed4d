"""Model-zoo benchmark: one full-quality training per family, its metric and training time,
the diffusion samplers compared on digits, and the zoo's quality goals checked.

Run with ``python benchmarks/bench_zoo.py [--quick] [--json PATH]`` or ``gencore bench zoo``.
Training uses ``GENCORE_BENCH_THREADS`` torch threads (default 1: the networks are small, and
one thread is the fastest on a machine whose cores other work also uses).
"""

from __future__ import annotations

import logging
import os
import time

import torch

from gencore import metrics, zoo
from gencore.bench.common import Section, reference_mode
from gencore.data.digits import load_digits
from gencore.diffusion.sampling import SAMPLERS

__all__ = ["QUICK_STEPS", "RUNS", "run"]

log = logging.getLogger(__name__)

# (model, data, overrides): the family's full-quality defaults unless overridden.
RUNS: list[tuple[str, str, dict]] = [
    ("naive_bayes", "digits", {}),
    ("gan", "digits", {}),
    ("gan", "8gaussians", {"steps": 3000, "hidden": 128, "lr": 1e-3}),
    ("cgan", "digits", {}),
    ("vae", "digits", {}),
    ("cvae", "digits", {}),
    ("dae", "digits", {}),
    ("diffusion", "digits", {}),
    ("latent_diffusion", "digits", {}),
    ("flow_matching", "digits", {}),
    ("realnvp", "digits", {}),
    ("realnvp", "moons", {"steps": 3000, "hidden": 128}),
    ("glow", "digits", {}),
]

QUICK_STEPS = 20

# The headline metric of each family (first key present wins).
_HEADLINE = (
    "test_accuracy", "class_accuracy_dpmpp_2m_20", "class_accuracy_flow_match_euler_20", "test_bits_per_dim",
    "test_elbo_nats", "class_accuracy", "digits_fd", "sliced_wasserstein", "test_nll_nats",
)


def _headline(name: str, metrics: dict) -> tuple[str, float]:
    if name == "dae":
        key = max((k for k in metrics if k.startswith("mse_t")), key=lambda k: int(k[5:]))
        return key, metrics[key]
    for k in _HEADLINE:
        if k in metrics:
            return k, metrics[k]
    return "", float("nan")


def _fmt_metrics(metrics: dict, skip: str) -> str:
    keep = []
    for k, v in metrics.items():
        if k in (skip, "train_seconds", "eval_seconds", "final_losses") or k.startswith("sample_seconds"):
            continue
        if isinstance(v, float):
            keep.append(f"{k}={v:.4g}")
    return ", ".join(keep)


def _sampler_section(model, n: int, steps_list: tuple[int, ...], quick: bool) -> tuple[Section, dict]:
    sec = Section(
        "Diffusion samplers on digits (class-conditional UNet, guidance 3, "
        f"{n} samples, 10 per class; fused steps vs the reference path)",
        ["sampler", "steps", "digits FD", "class accuracy", "fused s", "reference s", "reference/fused"],
    )
    y = torch.arange(n) % 10
    results: dict = {}
    for sampler in SAMPLERS:
        for steps in steps_list:
            t0 = time.perf_counter()
            x, _ = zoo.sample(model, n, y=y, sampler=sampler, steps=steps, guidance_scale=3.0, seed=1)
            fused = time.perf_counter() - t0
            t_ref = float("nan")
            if not quick and steps == steps_list[0]:
                with reference_mode():
                    t0 = time.perf_counter()
                    zoo.sample(model, n, y=y, sampler=sampler, steps=steps, guidance_scale=3.0, seed=1)
                    t_ref = time.perf_counter() - t0
            xs = x * 2 - 1
            fd, acc = metrics.digits_fd(xs), metrics.class_accuracy(xs, y)
            results[(sampler, steps)] = {"fd": fd, "acc": acc, "seconds": fused}
            sec.add(sampler, steps, fd, acc, fused, t_ref, t_ref / fused)
    sec.notes.append("Sampling time is dominated by the UNet evaluations (2 per step with guidance, "
                     "Heun 2 per step); the step ops are a small share, so fused and reference differ little here.")
    return sec, results


def run(quick: bool = False, device: str = "cpu") -> list[Section]:
    """Trains every family of the zoo and measures it (see the module docstring)."""
    if device != "cpu":
        log.warning("the zoo benchmark trains on the CPU; device=%s ignored", device)
    threads = int(os.environ.get("GENCORE_BENCH_THREADS", "1"))
    families = Section(
        f"Model zoo: one {'smoke-test' if quick else 'full-quality'} training per family "
        f"(torch threads: {threads})",
        ["model", "data", "steps", "train s", "metric", "value", "other metrics"],
    )
    trained: dict = {}
    for name, data, over in RUNS:
        kw = dict(over)
        if quick:
            kw["steps"] = QUICK_STEPS if name != "naive_bayes" else None
            kw["eval_samples"] = 100
            if name in ("diffusion", "flow_matching", "latent_diffusion"):
                kw["eval_samplers"] = [["flow_match_euler", 5]] if name == "flow_matching" else [["ddim", 5]]
                kw["sample_steps"] = 5
            if name == "latent_diffusion":
                kw["vae_steps"] = QUICK_STEPS // 2
            if name in ("vae", "cvae"):
                kw["iwae_k"] = 8
        kw = {k: v for k, v in kw.items() if v is not None}
        log.info("training %s on %s", name, data)
        model, m, config = zoo.train(name, data=data, seed=0, threads=threads, **kw)
        trained[(name, data)] = (model, m)
        key, value = _headline(name, m)
        families.add(name, data, config["steps"], m["train_seconds"], key, value, _fmt_metrics(m, key))

    xv, _ = load_digits("val", scale="symmetric")
    families.notes.append(f"digits FD of the real validation split against the test split: "
                          f"{metrics.digits_fd(xv):.3f} (the floor of the metric for 270 images).")
    families.notes.append("Bits per dimension of likelihood models count the 17 pixel levels as bins "
                          "(dequantised data, bin width 1/17).")

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        diff_model, diff_m = trained[("diffusion", "digits")]
        n = 100 if quick else 500
        samplers, res = _sampler_section(diff_model, n, (5,) if quick else (10, 20, 50), quick)
    finally:
        torch.set_num_threads(old)

    goals = Section("Quality goals", ["goal", "target", "measured", "met"])
    acc = diff_m.get("class_accuracy_dpmpp_2m_20", float("nan"))
    goals.add("guided diffusion samples classified as the requested digit (DPM-Solver++ 20 steps, s=3)",
              ">= 0.90", acc, bool(acc >= 0.9))
    if not quick:
        fd_dpm, fd_ddim = res[("dpmpp_2m", 10)]["fd"], res[("ddim", 50)]["fd"]
        goals.add("digits FD: DPM-Solver++ 10 steps vs DDIM 50 steps", "<= 1.10 x",
                  f"{fd_dpm:.3f} vs {fd_ddim:.3f} ({fd_dpm / fd_ddim:.3f} x)", bool(fd_dpm <= 1.1 * fd_ddim))
    nb = trained[("naive_bayes", "digits")][1]
    goals.add("Gaussian naive Bayes test accuracy equals scikit-learn's", "equal",
              f"{nb['test_accuracy']:.4f} vs {nb['sklearn_test_accuracy']:.4f}",
              nb["test_accuracy"] == nb["sklearn_test_accuracy"])
    return [families, samplers, goals]
