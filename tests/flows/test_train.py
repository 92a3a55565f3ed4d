"""Short training runs (seconds): the flows learn their data."""

from __future__ import annotations

import math

import torch

from gencore.data import make_toy
from gencore.flows.train import fit_digits, fit_toy


def test_realnvp_learns_two_moons():
    """A few seconds of training beat the best Gaussian fit (3.30 nats) by a wide margin; the
    entropy floor is 2.39 nats."""
    x = make_toy("moons", 20000, seed=7).double()
    gaussian_nll = 0.5 * float(torch.logdet(2 * math.pi * math.e * torch.cov(x.T)))
    r = fit_toy("moons", transforms=4, hidden=(32, 32), steps=200, lr=5e-3, n_train=5000, n_test=2000,
                entropy_samples=500, threads=1)
    m = r.metrics
    assert m["steps"] == 200 and math.isfinite(m["test_nll"])
    assert m["test_nll"] < gaussian_nll - 0.4, (m["test_nll"], gaussian_nll)
    assert m["test_nll"] > m["floor"] - 5 * (m["floor_se"] + m["test_nll_se"])  # no model beats the floor
    s = r.model.sample(1000, seed=0)
    assert torch.isfinite(s).all()


def test_glow_learns_digits():
    """Two epochs of a small multi-scale flow beat the uniform density over the 17 grey levels
    (log2(17) = 4.09 bits/dim)."""
    r = fit_digits(levels=2, steps=1, hidden=16, epochs=2, batch_size=128, lr=3e-3)
    m = r.metrics
    assert m["epochs"] == 2
    assert m["test_bpd"] < math.log2(17) - 0.5, m
    x = r.model.sample(4, seed=0)
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
