"""The DDPM training objective: targets, the exact denoiser as its minimiser, label dropout."""

from __future__ import annotations

import math

import pytest
import torch

from gencore.diffusion import GaussianMixture, diffusion_loss, drop_labels, make_schedule
from gencore.diffusion.training import training_target

pytestmark = pytest.mark.usefixtures("one_thread")


def _mixture():
    return GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 1.0]]), torch.tensor([0.5, 0.4]), torch.tensor([0.4, 0.6]))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_a_model_returning_the_target_has_zero_loss(prediction_type):
    sch = make_schedule("linear")
    x0 = torch.randn(64, 3, dtype=torch.float64)
    ac = sch.alphas_cumprod

    def oracle(x_t, t, cond):  # recovers eps from x_t = a x0 + b eps, then forms the target
        a = ac[t.long()].sqrt()[:, None]
        b = (1 - ac[t.long()]).sqrt()[:, None]
        eps = (x_t - a * x0) / b
        return {"epsilon": eps, "sample": x0, "v_prediction": a * eps - b * x0}[prediction_type]

    loss = diffusion_loss(oracle, x0, sch, prediction_type=prediction_type, seed=4)
    assert float(loss) < 1e-20
    assert float(diffusion_loss(lambda x, t, c: torch.zeros_like(x), x0, sch, prediction_type=prediction_type,
                                seed=4)) > 0.01


def test_training_target_v_matches_diffusers_velocity():
    diffusers = pytest.importorskip("diffusers")
    sch = make_schedule("linear", compute_dtype=torch.float32)
    x0, noise = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    t = torch.tensor([0, 5, 100, 400, 600, 800, 950, 999])
    d = diffusers.DDPMScheduler()
    d.alphas_cumprod = d.alphas_cumprod.double()
    torch.testing.assert_close(training_target(x0, noise, t, sch, "v_prediction"), d.get_velocity(x0, noise, t))


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
def test_exact_denoiser_minimises_the_loss(prediction_type):
    """The posterior mean minimises the expected squared error: on a large batch with shared
    (t, noise), the exact model beats perturbed ones."""
    gm = _mixture()
    sch = make_schedule("linear")
    x0 = gm.sample(8000, seed=1, dtype=torch.float64)
    exact = gm.denoiser(sch, prediction_type)
    base = float(diffusion_loss(exact, x0, sch, prediction_type=prediction_type, seed=2))
    for scale in (0.9, 1.1):
        worse = float(diffusion_loss(lambda x, t, c, s=scale: exact(x, t) * s, x0, sch, prediction_type=prediction_type,
                                     seed=2))
        assert worse > base


def test_label_dropout_rate_and_determinism():
    labels = torch.arange(20000) % 7
    out = drop_labels(labels, 0.3, -1, seed=5)
    frac = float((out == -1).double().mean())
    assert abs(frac - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / 20000)
    kept = out != -1
    assert torch.equal(out[kept], labels[kept])
    torch.testing.assert_close(drop_labels(labels[100:200], 0.3, -1, seed=5, sample_offset=100), out[100:200])
    assert torch.equal(drop_labels(labels, 0.0, -1, seed=5), labels)
    assert bool((drop_labels(labels, 1.0, -1, seed=5) == -1).all())


def test_loss_uses_dropped_labels_and_trains():
    """Labels reach the model, a fraction replaced by the null label; gradients reach every parameter."""
    seen = []
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))

    def model(x, t, c):
        seen.append(c.clone())
        return net(torch.cat([x, t[:, None] / 1000], 1))

    x0 = torch.randn(4000, 2)
    labels = torch.ones(4000, dtype=torch.long)
    loss = diffusion_loss(model, x0, cond=labels, p_uncond=0.5, null_label=0, seed=3)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    frac = float((seen[0] == 0).double().mean())
    assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / 4000)
    per = diffusion_loss(model, x0[:8], cond=labels[:8], seed=3, reduction="none")
    assert per.shape == (8,)


def test_bad_arguments():
    x0 = torch.randn(4, 2)
    model = lambda x, t, c: x
    with pytest.raises(ValueError, match="prediction_type"):
        diffusion_loss(model, x0, prediction_type="flow")
    with pytest.raises(ValueError, match="null_label"):
        diffusion_loss(model, x0, cond=torch.zeros(4), p_uncond=0.1)
    with pytest.raises(ValueError, match="t must"):
        diffusion_loss(model, x0, t=torch.full((4,), 1000))
    with pytest.raises(ValueError, match="t must"):
        diffusion_loss(model, x0, t=torch.zeros(4))
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(torch.zeros(3), 1.5, -1)
    with pytest.raises(ValueError, match="reduction"):
        diffusion_loss(model, x0, reduction="sum")
