"""Flow quality on embedded data: RealNVP on 2-D toys (held-out NLL next to the entropy
floor) and the Glow-style flow on scikit-learn's digits (test bits/dim), with sample plots.

``run(quick=False, device="cpu", out_dir=None)`` returns the benchmark sections; with
``out_dir`` it also writes ``flows_<toy>.png``, ``flows_digits.png`` and ``flows_quality.json``.
"""

from __future__ import annotations

import logging
import os

import torch

from gencore.bench.common import Section, write_json
from gencore.data.toys import make_toy
from gencore.flows.train import TOY_DEFAULTS, fit_digits, fit_toy

__all__ = ["TOY_NAMES", "plot_digits", "plot_toy", "run"]

log = logging.getLogger(__name__)

TOY_NAMES = ("moons", "8gaussians", "checkerboard")


def plot_toy(flow, data: torch.Tensor, path: str, title: str = "") -> None:
    """Data, flow samples and the flow's density side by side (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = flow.sample(len(data), seed=0).float()
    lim = float(data.abs().max()) * 1.1
    g = torch.linspace(-lim, lim, 200)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    with torch.no_grad():
        dens = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(200, 200)
    fig, ax = plt.subplots(1, 3, figsize=(12, 4))
    ax[0].scatter(data[:, 0], data[:, 1], s=1, alpha=0.3)
    ax[0].set_title("data")
    ax[1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3, color="C1")
    ax[1].set_title("flow samples")
    ax[2].imshow(dens.numpy(), origin="lower", extent=(-lim, lim, -lim, lim), cmap="magma")
    ax[2].set_title("flow density")
    for a in ax:
        a.set_xlim(-lim, lim)
        a.set_ylim(-lim, lim)
        a.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_digits(flow, path: str, n: int = 64, title: str = "", context=None) -> None:
    """A grid of samples (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = flow.sample(n, context, seed=0).clamp(0, 1)
    rows = int(n**0.5)
    fig, ax = plt.subplots(rows, (n + rows - 1) // rows, figsize=(8, 8))
    for i, a in enumerate(ax.flat):
        a.axis("off")
        if i < n:
            a.imshow(x[i, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(quick: bool = False, device: str = "cpu", out_dir: str | None = None,
        toys: tuple[str, ...] = TOY_NAMES, digits: bool = True, toy_steps: int | None = None,
        digits_epochs: int | None = None, threads: int | None = 1) -> list[Section]:
    """Trains and measures; see the module docstring. ``quick`` shortens training ~20x."""
    if device != "cpu":
        log.warning("flows_quality trains on the CPU; device=%s ignored", device)
    steps = toy_steps or (200 if quick else TOY_DEFAULTS["steps"])
    sec = Section("Flows: RealNVP held-out NLL on 2-D toys (nats)",
                  ["toy", "test NLL", "+-", "entropy floor", "+-", "gap", "train s", "steps"])
    results = {}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    for name in toys:
        r = fit_toy(name, steps=steps, threads=threads, entropy_samples=4000 if quick else 100_000)
        m = r.metrics
        results[name] = m
        sec.add(name, m["test_nll"], m["test_nll_se"], m["floor"], m["floor_se"], m["gap"], m["seconds"],
                m["steps"])
        if out_dir:
            plot_toy(r.model, make_toy(name, 5000, seed=7), os.path.join(out_dir, f"flows_{name}.png"),
                     f"RealNVP on {name}: test NLL {m['test_nll']:.3f} nats (floor {m['floor']:.3f})")
    cfg = dict(TOY_DEFAULTS, steps=steps)
    sec.notes.append(f"RealNVP config: {cfg}; goal: gap <= 0.15 nats.")
    sections = [sec]
    if digits:
        epochs = digits_epochs or (3 if quick else 60)
        r = fit_digits(epochs=epochs, threads=None)
        m = r.metrics
        results["digits"] = m
        d = Section("Flows: Glow-style flow on digits (bits/dim, 17 levels, uniform dequantisation)",
                    ["split", "bits/dim"])
        for k in ("train", "val", "test"):
            d.add(k, m[f"{k}_bpd"])
        d.notes.append(f"levels={m['levels']} steps={m['steps']} hidden={m['hidden']} "
                       f"parameters={m['parameters']} epochs={m['epochs']} train time {m['seconds']:.0f} s")
        sections.append(d)
        if out_dir:
            plot_digits(r.model, os.path.join(out_dir, "flows_digits.png"),
                        title=f"GlowFlow samples, test {m['test_bpd']:.3f} bits/dim")
    if out_dir:
        write_json(os.path.join(out_dir, "flows_quality.json"), results)
    return sections
