"""2-D toy data: determinism, FFJORD definitions, exact densities, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gencore.data import TOYS, gaussian_mixture, make_toy, toy_entropy, toy_log_prob


@pytest.mark.parametrize("name", TOYS)
def test_deterministic_given_seed(name):
    a = make_toy(name, 501, seed=3)
    b = make_toy(name, 501, seed=3)
    c = make_toy(name, 501, seed=4)
    assert a.shape == (501, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()
    state = np.random.get_state()
    make_toy(name, 10, seed=0)
    assert np.array_equal(np.random.get_state()[1], state[1])  # no global numpy state used
    assert make_toy(name, 0).shape == (0, 2)


def test_checkerboard_support_and_ffjord_definition():
    x = make_toy("checkerboard", 20000, seed=0).double()
    lp = toy_log_prob("checkerboard", x)
    assert torch.isfinite(lp).all() and torch.allclose(lp, torch.full_like(lp, -math.log(32)))
    # Each of the 8 squares holds 1/8 of the mass (binomial tolerance: 5 sigma).
    cells = (torch.floor(x[:, 0] / 2) * 10 + torch.floor(x[:, 1] / 2)).tolist()
    counts = np.unique(np.array(cells), return_counts=True)[1]
    assert len(counts) == 8
    sigma = math.sqrt(20000 * (1 / 8) * (7 / 8))
    assert np.all(np.abs(counts - 2500) < 5 * sigma)
    # Points off the board have zero density.
    assert torch.isinf(toy_log_prob("checkerboard", torch.tensor([[1.0, 3.0], [9.0, 0.0]]))).all()


def test_eight_gaussians_moments():
    x = make_toy("8gaussians", 40000, seed=1).double()
    r = x.norm(dim=1)
    r0, sigma = 4 / 1.414, 0.5 / 1.414
    assert abs(r.mean().item() - (r0 + sigma**2 / (2 * r0))) < 0.01  # Rice mean, large r0 / sigma
    assert abs(x.mean(0)).max() < 0.05


@pytest.mark.parametrize("name", ["moons", "8gaussians", "circles", "swissroll", "25gaussians", "checkerboard"])
def test_density_integrates_to_one(name):
    """Midpoint rule on a 250x250 grid over a box holding all but ~1e-6 of the mass."""
    lim = {"moons": 3.5, "8gaussians": 4.5, "circles": 4.5, "swissroll": 3.5, "25gaussians": 5.0,
           "checkerboard": 4.0}[name]
    m = 250
    g = (torch.arange(m, dtype=torch.float64) + 0.5) / m * 2 * lim - lim
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    p = torch.cat([toy_log_prob(name, c, quadrature=256).exp() for c in pts.split(40000)])
    total = float(p.sum() * (2 * lim / m) ** 2)
    assert abs(total - 1) < 2e-3, total


def test_log_prob_matches_samples_histogram():
    """The 8-Gaussians density against a histogram of its own samples (independent check of
    the sampler against the stated formula)."""
    x = make_toy("8gaussians", 200000, seed=2).double()
    centre = torch.tensor([4 / 1.414, 0.0], dtype=torch.float64)
    inside = ((x - centre).norm(dim=1) < 0.3).double().mean().item()
    # Mass within radius r of one centre: (1/8) * (1 - exp(-r^2 / (2 sigma^2))).
    sigma = 0.5 / 1.414
    expected = (1 / 8) * (1 - math.exp(-0.09 / (2 * sigma**2)))
    assert abs(inside - expected) < 5 * math.sqrt(expected / 200000)


def test_entropy_floors():
    assert toy_entropy("checkerboard") == (math.log(32), 0.0)
    h, se = toy_entropy("8gaussians", n=4000)
    exact = math.log(8) + 1 + math.log(2 * math.pi * (0.5 / 1.414) ** 2)  # separated components
    assert abs(h - exact) < 5 * se


def test_gaussian_mixture():
    x = gaussian_mixture(30000, [[0.0, 0.0], [10.0, 0.0]], [1.0, 0.5], [0.25, 0.75], seed=0).double()
    right = x[:, 0] > 5
    assert abs(right.double().mean().item() - 0.75) < 0.02
    assert abs(x[right, 1].std().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="weights"):
        gaussian_mixture(3, [[0.0, 0.0]], 1.0, [0.5])
    with pytest.raises(ValueError, match="stds"):
        gaussian_mixture(3, [[0.0, 0.0]], -1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="name"):
        make_toy("spiral", 10)
    with pytest.raises(ValueError, match="n"):
        make_toy("moons", -1)
    with pytest.raises(ValueError, match="seed"):
        make_toy("moons", 10, seed=-2)
    with pytest.raises(ValueError, match="name"):
        toy_log_prob("mnist", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="x"):
        toy_log_prob("moons", torch.zeros(3))
    with pytest.raises(ValueError, match="density"):
        toy_log_prob("pinwheel", torch.zeros(1, 2))
