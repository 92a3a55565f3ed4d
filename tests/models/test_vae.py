from __future__ import annotations

import math

import pytest
import torch

from gencore import zoo
from gencore.models import VAE

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomized_vae(**kw):
    torch.manual_seed(0)
    vae = VAE(6, latent_dim=3, hidden=16, **kw).double()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return vae


def test_elbo_matches_an_explicit_single_sample_computation():
    vae = _randomized_vae()
    x = torch.rand(5, 6, dtype=torch.float64)
    from gencore.rng import randn

    mu, logvar = vae.encode(x)
    eps = randn(5, 3, seed=4, stream=2, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    mean = vae.decode(z)
    s2 = vae.dec_logvar.clamp(-9, 2).exp()
    log_px = (-0.5 * ((x - mean) ** 2 / s2 + s2.log() + math.log(2 * math.pi))).sum(1)
    torch.testing.assert_close(vae.elbo(x, seed=4, stream=2), log_px - kl)


@torch.no_grad()
def test_iwae_bound_is_tighter_than_the_elbo_and_k1_matches_it_on_average():
    vae = _randomized_vae()
    x = torch.rand(400, 6, dtype=torch.float64)
    elbo = torch.stack([vae.elbo(x, seed=s).mean() for s in range(20)]).mean()
    iw1 = torch.stack([vae.iwae(x, k=1, seed=s).mean() for s in range(20)]).mean()
    iw64 = vae.iwae(x, k=64, seed=0).mean()
    assert abs(float(iw1 - elbo)) < 0.05 * abs(float(elbo)) + 0.05
    assert float(iw64) > float(elbo)
    assert float(vae.iwae(x, k=256, seed=1).mean()) >= float(iw64) - 0.02


def test_conditional_vae_needs_labels():
    cvae = _randomized_vae(num_classes=3)
    x = torch.rand(4, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    assert cvae.elbo(x, y).shape == (4,)
    assert cvae.sample(4, y).shape == (4, 6)
    with pytest.raises(ValueError, match="y is required"):
        cvae.elbo(x)
    with pytest.raises(ValueError, match="k must"):
        cvae.iwae(x, y, k=0)


@pytest.mark.parametrize("name", ["vae", "cvae"])
def test_zoo_vae_families_report_elbo_and_iwae(name):
    _, m, _ = zoo.train(name, steps=150, iwae_k=16, eval_samples=50)
    assert m["test_iwae16_nats"] >= m["test_elbo_nats"] - 1.0
    assert m["test_elbo_bits_per_dim"] > 0 and math.isfinite(m["digits_fd"])
    if name == "cvae":
        assert 0 <= m["class_accuracy"] <= 1


def test_latent_diffusion_trains_vae_then_denoiser():
    model, m, _ = zoo.train("latent_diffusion", steps=12, vae_steps=6, eval_samples=20,
                            eval_samplers=[["ddim", 2]], sample_steps=2, den_hidden=16)
    assert bool(model.latent_ready) and (model.latent_std > 0).all()
    x, _ = zoo.sample(model, 3, y=[1, 2, 3], sampler="dpmpp_2m", steps=2, guidance_scale=2.0)
    assert x.shape == (3, 1, 8, 8) and "digits_fd_ddim_2" in m
