"""Sampling loops on the exact Gaussian-mixture denoiser: the samples follow the mixture, the
deterministic solvers converge at their orders, guidance batches one model call, noise follows
the noise contract, bad input is rejected."""

from __future__ import annotations

import math

import pytest
import torch

from gencore.bench.convergence import convergence_errors, default_mixture, empirical_order
from gencore.diffusion import GaussianMixture, make_schedule, sample
from gencore.metrics import sliced_wasserstein

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLERS = ("ddpm", "ddim", "euler", "euler_ancestral", "heun", "dpmpp_2m")
N = 1500


def _mixture():
    return GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]), torch.tensor([0.4, 0.3, 0.5]),
                           torch.tensor([0.2, 0.3, 0.5]))


@pytest.fixture(scope="module")
def exact():
    """Two independent exact sample sets, the SWD noise floor, and the classifier's exact label rates."""
    gm = _mixture()
    a = gm.sample(N, seed=101)
    big = gm.sample(100_000, seed=303)
    rates = torch.bincount(gm.classify(big), minlength=3).double() / big.shape[0]
    # The estimator's noise floor: mean SWD between independent exact sets of N points.
    floor = sum(sliced_wasserstein(gm.sample(N, seed=s), a, p=1, seed=5) for s in (202, 203, 204)) / 3
    return gm, a, floor, rates


# Steps per sampler: enough that the discretisation error is below the sampling noise floor.
STEPS = {"ddpm": 200, "ddim": 50, "euler": 50, "euler_ancestral": 200, "heun": 25, "dpmpp_2m": 25}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samples_follow_the_mixture(sampler, exact):
    """SWD bound: two independent exact sets of N points are ``floor`` apart (the estimator's own
    noise, O(N^-1/2)); a sampler whose law is the mixture lands at the same distance in
    expectation. 2 x floor leaves room for the estimate's fluctuation and a discretisation error
    of at most one floor; the power check below shows a 0.5 shift of one mean fails it.
    Component rates: within 4 binomial standard errors of the exact rates."""
    gm, ref, floor, rates = exact
    eta = 1.0 if sampler == "euler_ancestral" else 0.0
    x = sample(gm.denoiser(make_schedule("linear")), (N, 2), sampler=sampler, steps=STEPS[sampler], seed=7, eta=eta)
    assert torch.isfinite(x).all()
    swd = sliced_wasserstein(x, ref, p=1, seed=5)
    assert swd < 2 * floor, f"{sampler}: SWD {swd:.4f} vs floor {floor:.4f}"
    got = torch.bincount(gm.classify(x), minlength=3).double() / N
    tol = 4 * torch.sqrt(rates * (1 - rates) / N)
    assert ((got - rates).abs() <= tol).all(), f"{sampler}: rates {got.tolist()} vs {rates.tolist()}"


def test_swd_bound_has_power(exact):
    gm, ref, floor, _ = exact
    shifted = GaussianMixture(gm.means + torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.5]], dtype=torch.float64),
                              gm.stds, gm.weights)
    assert sliced_wasserstein(shifted.sample(N, seed=9), ref, p=1, seed=5) > 2 * floor
    # ... and so does a sampler fed the wrong parameterisation.
    x = sample(gm.denoiser(make_schedule("linear"), "v_prediction"), (N, 2), sampler="ddim", steps=50, seed=7)
    assert sliced_wasserstein(x, ref, p=1, seed=5) > 2 * floor


def test_convergence_orders():
    """Trailing spacing, step counts dividing 1000, against a 1000-step DPM-Solver++(2M) solution."""
    res = convergence_errors(steps=(10, 20, 25, 40, 50), n=64, check_reference=False)
    orders = {s: empirical_order(res["steps"], e) for s, e in res["errors"].items()}
    assert 0.85 <= orders["ddim"] <= 1.15, orders
    assert 0.85 <= orders["euler"] <= 1.15, orders
    assert 1.6 <= orders["dpmpp_2m"] <= 2.4, orders
    assert 1.6 <= orders["heun"] <= 2.4, orders
    # DDIM is Euler's method in x / sqrt(abar): the same numbers.
    torch.testing.assert_close(torch.tensor(res["errors"]["ddim"]), torch.tensor(res["errors"]["euler"]),
                               rtol=1e-3, atol=0)


def test_guided_call_batches_uncond_and_cond_in_one_model_call():
    gm = _mixture()
    den = gm.denoiser(make_schedule("linear"))
    calls = []

    def model(x, t, c):
        calls.append((x.shape[0], t.shape, None if c is None else c.tolist()))
        return den(x, t, c)

    n = 4
    cond = torch.tensor([0, 1, 2, 0])
    uncond = torch.full((n,), -1)
    sample(model, (n, 2), sampler="dpmpp_2m", steps=5, guidance_scale=3.0, cond=cond, uncond=uncond, seed=0)
    assert len(calls) == 5
    assert all(c[0] == 2 * n and c[1] == (2 * n,) for c in calls)
    assert calls[0][2] == uncond.tolist() + cond.tolist()


@pytest.mark.parametrize("sampler, steps", [("ddim", 100), ("dpmpp_2m", 40)])
def test_guidance_scale_one_with_labels_samples_the_component(sampler, steps):
    """With the exact conditional model, s = 1 gives the class-conditional distribution; s > 1
    concentrates it further (the guided score of p(x) p(y|x)^s)."""
    gm = _mixture()
    den = gm.denoiser(make_schedule("linear"))
    k, n = 1, 1000
    cond = torch.full((n,), k)
    uncond = torch.full((n,), -1)
    x = sample(den, (n, 2), sampler=sampler, steps=steps, guidance_scale=1.0, cond=cond, uncond=uncond, seed=3)
    single = GaussianMixture(gm.means[k:k + 1], gm.stds[k:k + 1], torch.ones(1))
    ref, ref2 = single.sample(n, seed=11), single.sample(n, seed=12)
    floor = sliced_wasserstein(ref, ref2, p=1, seed=1)
    assert sliced_wasserstein(x, ref, p=1, seed=1) < 2 * floor
    xg = sample(den, (n, 2), sampler=sampler, steps=steps, guidance_scale=4.0, cond=cond, uncond=uncond, seed=3)
    assert (gm.classify(xg) == k).double().mean() >= (gm.classify(x) == k).double().mean()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "euler_ancestral"])
def test_noise_contract_batch_invariance(sampler):
    """Sample i depends only on (seed, sample_offset + i): a sub-batch reproduces a slice."""
    gm = _mixture()
    den = gm.denoiser(make_schedule("linear"))
    eta = 1.0 if sampler != "ddpm" else 0.0
    full = sample(den, (12, 2), sampler=sampler, steps=8, seed=21, eta=eta)
    part = sample(den, (4, 2), sampler=sampler, steps=8, seed=21, eta=eta, sample_offset=5)
    torch.testing.assert_close(part, full[5:9], rtol=1e-6, atol=1e-6)
    other = sample(den, (4, 2), sampler=sampler, steps=8, seed=22, eta=eta, sample_offset=5)
    assert not torch.allclose(other, part)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_init_noise_and_dtypes(sampler):
    gm = _mixture()
    den = gm.denoiser(make_schedule("linear"))
    noise = torch.randn(3, 2, dtype=torch.float64)
    eta = 1.0 if sampler == "euler_ancestral" else 0.0
    x64 = sample(den, (3, 2), sampler=sampler, steps=6, init_noise=noise, eta=eta)
    x32 = sample(den, (3, 2), sampler=sampler, steps=6, init_noise=noise.float(), eta=eta)
    assert x64.dtype == torch.float64 and x32.dtype == torch.float32
    torch.testing.assert_close(x32.double(), x64, rtol=1e-4, atol=1e-4)
    assert sample(den, (0, 2), sampler=sampler, steps=3).shape == (0, 2)


def test_progress_bar_can_be_enabled(capsys):
    gm = _mixture()
    sample(gm.denoiser(), (2, 2), steps=3, progress=True)
    assert "ddim" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(sampler="plms"), ValueError, "sampler"),
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=1001), ValueError, "steps"),
        (dict(steps=2.5), TypeError, "steps"),
        (dict(prediction_type="flow"), ValueError, "prediction_type"),
        (dict(timestep_spacing="karras"), ValueError, "timestep_spacing"),
        (dict(guidance_scale=3.0, cond=torch.zeros(2)), ValueError, "uncond"),
        (dict(eta=-1.0), ValueError, "eta"),
        (dict(eta=0.5, sampler="euler"), ValueError, "eta"),
        (dict(schedule="linear"), TypeError, "schedule"),
        (dict(init_noise=torch.zeros(3, 2)), ValueError, "init_noise"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    gm = _mixture()
    with pytest.raises(exc, match=match):
        sample(gm.denoiser(), (2, 2), **kwargs)


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        sample(_mixture().denoiser(), (2, -1))


def test_default_mixture_is_valid():
    gm = default_mixture()
    assert gm.num_components == 3 and math.isclose(float(gm.weights.sum()), 1.0)
