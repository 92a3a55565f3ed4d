"""The exact Gaussian-mixture denoiser: checked against Tweedie's formula by autograd, its
prediction types against each other, its sampler against binomial and moment bounds."""

from __future__ import annotations

import math

import pytest
import torch

from gencore.diffusion.gmm import GaussianMixture

pytestmark = pytest.mark.usefixtures("one_thread")


def _mixture(k=3, d=2, diag=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64) * 2
    shape = (k, d) if diag else (k,)
    stds = torch.rand(shape, generator=g, dtype=torch.float64) + 0.3
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    return GaussianMixture(means, stds, weights)


def _linear_alphas_cumprod(n=1000):
    betas = torch.linspace(1e-4, 0.02, n, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


@pytest.mark.parametrize("diag", [True, False])
@pytest.mark.parametrize("ab", [(0.9, 0.3), (0.2, 0.98), (1.0, 2.5)])
def test_posterior_mean_is_tweedie(diag, ab):
    # E[x0 | x_t] = (x_t + b^2 grad log p_t(x_t)) / a, with p_t a mixture of N(a mu_k, a^2 s_k^2 + b^2).
    gm = _mixture(diag=diag)
    a, b = ab
    x = torch.randn(16, gm.dim, dtype=torch.float64) * 3
    pm = gm.posterior_mean(x, a, b)
    pt = GaussianMixture(gm.means * a, (a * a * gm.stds**2 + b * b).sqrt(), gm.weights)
    xx = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(pt.log_prob(xx).sum(), xx)
    torch.testing.assert_close(pm, (x + b * b * g) / a, rtol=1e-10, atol=1e-10)


def test_log_prob_matches_torch_distributions():
    gm = _mixture()
    comp = torch.distributions.Independent(torch.distributions.Normal(gm.means, gm.stds), 1)
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(gm.weights), comp)
    x = torch.randn(32, gm.dim, dtype=torch.float64) * 2
    torch.testing.assert_close(gm.log_prob(x), ref.log_prob(x), rtol=1e-12, atol=1e-12)


def test_prediction_types_agree():
    gm = _mixture()
    ac = _linear_alphas_cumprod()
    t = torch.tensor([0.0, 10.0, 500.0, 999.0], dtype=torch.float64)
    x = torch.randn(4, gm.dim, dtype=torch.float64)
    eps = gm.denoiser(ac, "epsilon")(x, t)
    x0 = gm.denoiser(ac, "sample")(x, t)
    v = gm.denoiser(ac, "v_prediction")(x, t)
    a = ac[t.long()].sqrt()[:, None]
    b = (1 - ac[t.long()]).sqrt()[:, None]
    torch.testing.assert_close(x, a * x0 + b * eps, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(v, a * eps - b * x0, rtol=1e-12, atol=1e-12)


def test_fractional_timesteps_interpolate_log_sigma():
    gm = _mixture()
    den = gm.denoiser(_linear_alphas_cumprod())
    a5, b5 = den.coefficients(torch.tensor([5.0, 6.0, 5.5]))
    s = b5 / a5
    torch.testing.assert_close(s[2], (s[0] * s[1]).sqrt(), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="t must lie"):
        den(torch.zeros(1, gm.dim), torch.tensor([1000.0]))


def test_sigma_denoiser_and_velocity_are_the_same_posterior():
    gm = _mixture()
    ac = _linear_alphas_cumprod()
    t = torch.tensor([3.0, 300.0, 900.0], dtype=torch.float64)
    x = torch.randn(3, gm.dim, dtype=torch.float64)
    a = ac[t.long()].sqrt()
    sigma = ((1 - ac[t.long()]) / ac[t.long()]).sqrt()
    x0_vp = gm.denoiser(ac, "sample")(x, t)
    x0_ve = gm.sigma_denoiser()(x / a[:, None], sigma)
    torch.testing.assert_close(x0_vp, x0_ve, rtol=1e-10, atol=1e-10)
    # Flow matching: x_s = (1 - s) x0 + s eps; v = E[eps - x0 | x_s].
    s = torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)
    v = gm.velocity_field()(x, s)
    x0 = gm.posterior_mean(x, 1 - s, s)
    eps = (x - (1 - s)[:, None] * x0) / s[:, None]
    torch.testing.assert_close(v, eps - x0, rtol=1e-12, atol=1e-12)
    # At s = 0 the velocity is -x (x0 = x, E[eps] -> 0); at s = 1 the posterior mean is the prior mean.
    torch.testing.assert_close(gm.velocity_field()(x, torch.zeros(3)), -x)
    prior_mean = (gm.weights[:, None] * gm.means).sum(0)
    torch.testing.assert_close(gm.posterior_mean(x, 0.0, 1.0), prior_mean.expand_as(x))


def test_conditional_label_is_the_component():
    gm = _mixture()
    ac = _linear_alphas_cumprod()
    den = gm.denoiser(ac)
    x = torch.randn(6, gm.dim, dtype=torch.float64)
    t = torch.full((6,), 400.0)
    labels = torch.tensor([0, 1, 2, -1, 0, -1])
    out = den(x, t, labels)
    for i, k in enumerate(labels.tolist()):
        single = GaussianMixture(gm.means[k:k + 1], gm.stds[k:k + 1], torch.ones(1)) if k >= 0 else gm
        torch.testing.assert_close(out[i], single.denoiser(ac)(x[i:i + 1], t[i:i + 1])[0])


def test_sample_weights_and_moments():
    gm = _mixture(k=3, d=2)
    n = 20000
    x, labels = gm.sample(n, seed=3, return_labels=True, dtype=torch.float64)
    for k in range(3):
        w = float(gm.weights[k])
        frac = float((labels == k).double().mean())
        assert abs(frac - w) <= 4 * math.sqrt(w * (1 - w) / n)
        xk = x[labels == k]
        nk = xk.shape[0]
        # means within 4 standard errors, stds within 4 standard errors of a sample std
        assert ((xk.mean(0) - gm.means[k]).abs() <= 4 * gm.stds[k] / math.sqrt(nk)).all()
        assert ((xk.std(0) - gm.stds[k]).abs() <= 4 * gm.stds[k] / math.sqrt(2 * nk)).all()


def test_sample_follows_the_noise_contract():
    gm = _mixture()
    full = gm.sample(32, seed=7)
    part = gm.sample(8, seed=7, sample_offset=17)
    torch.testing.assert_close(part, full[17:25], rtol=0, atol=0)
    assert not torch.equal(gm.sample(8, seed=8), full[:8])
    assert gm.sample(0, seed=1).shape == (0, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(means=torch.zeros(3), stds=torch.ones(3), weights=torch.ones(3)), "means"),
        (dict(means=torch.zeros(3, 2), stds=torch.ones(2), weights=torch.ones(3)), "stds"),
        (dict(means=torch.zeros(3, 2), stds=-torch.ones(3), weights=torch.ones(3)), "stds"),
        (dict(means=torch.zeros(3, 2), stds=torch.ones(3), weights=torch.ones(2)), "weights"),
        (dict(means=torch.zeros(3, 2), stds=torch.ones(3), weights=-torch.ones(3)), "weights"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_bad_denoiser_arguments():
    gm = _mixture()
    with pytest.raises(ValueError, match="prediction_type"):
        gm.denoiser(_linear_alphas_cumprod(), "flow")
    with pytest.raises(TypeError, match="schedule"):
        gm.denoiser("linear")
    with pytest.raises(ValueError, match="elements per sample"):
        gm.denoiser(_linear_alphas_cumprod())(torch.zeros(2, 5), torch.zeros(2))
