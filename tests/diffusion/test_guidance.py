"""Classifier guidance: with the exact noisy-data classifier of a Gaussian mixture and s = 1,
the guided unconditional model equals the exact class-conditional model."""

from __future__ import annotations

import pytest
import torch

from gencore.diffusion import (
    GaussianMixture,
    classifier_guided_denoiser,
    classifier_guided_model,
    classifier_log_prob_grad,
    make_schedule,
    sample,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _mixture():
    g = torch.Generator().manual_seed(2)
    return GaussianMixture(torch.randn(3, 2, generator=g, dtype=torch.float64) * 2,
                           torch.rand(3, 2, generator=g, dtype=torch.float64) + 0.4, torch.tensor([0.2, 0.3, 0.5]))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_guidance_scale_one_gives_the_conditional_model(prediction_type):
    gm = _mixture()
    sch = make_schedule("linear")
    den = gm.denoiser(sch, prediction_type)
    guided = classifier_guided_model(lambda x, t, y: den(x, t), gm.classifier(sch), 1.0, schedule=sch,
                                     prediction_type=prediction_type)
    x = torch.randn(9, 2, dtype=torch.float64) * 2
    t = torch.tensor([5.0, 100.0, 400.0, 700.0, 999.0, 250.5, 10.0, 600.0, 300.0], dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(guided(x, t, y), den(x, t, y), rtol=1e-9, atol=1e-9)
    # s = 0 leaves the model unchanged; s = 2 moves it twice as far as s = 1.
    g0 = classifier_guided_model(lambda x, t, y: den(x, t), gm.classifier(sch), 0.0, schedule=sch,
                                 prediction_type=prediction_type)
    torch.testing.assert_close(g0(x, t, y), den(x, t))
    g2 = classifier_guided_model(lambda x, t, y: den(x, t), gm.classifier(sch), 2.0, schedule=sch,
                                 prediction_type=prediction_type)
    torch.testing.assert_close(g2(x, t, y) - den(x, t), 2 * (den(x, t, y) - den(x, t)), rtol=1e-9, atol=1e-9)


def test_sigma_denoiser_guidance_gives_the_conditional_denoiser():
    gm = _mixture()

    def classifier(x, sigma):  # exact log p(y | x = x0 + sigma eps)
        logits = gm._log_joint(x.double(), torch.ones_like(sigma.double()), sigma.double())
        return logits - logits.logsumexp(1, keepdim=True)

    den = gm.sigma_denoiser()
    guided = classifier_guided_denoiser(den, classifier, 1.0)
    x = torch.randn(6, 2, dtype=torch.float64) * 3
    sigma = torch.tensor([0.1, 0.5, 1.0, 3.0, 10.0, 40.0], dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    torch.testing.assert_close(guided(x, sigma, y=y), den(x, sigma, y), rtol=1e-9, atol=1e-9)


def test_log_prob_grad_of_a_linear_classifier():
    w = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 0])
    g = classifier_log_prob_grad(lambda x, t: x @ w.T, x, torch.zeros(5), y)
    p = torch.softmax(x @ w.T, 1)
    torch.testing.assert_close(g, w[y] - p @ w)
    assert not g.requires_grad


def test_guided_sampling_hits_the_class():
    gm = _mixture()
    sch = make_schedule("linear")
    guided = classifier_guided_model(lambda x, t, y: gm.denoiser(sch)(x, t), gm.classifier(sch), 3.0, schedule=sch)
    y = torch.full((400,), 2)
    x = sample(guided, (400, 2), sampler="ddim", steps=40, cond=y, seed=1, dtype=torch.float64)
    assert (gm.classify(x) == 2).double().mean() > 0.97


def test_bad_arguments():
    gm = _mixture()
    guided = classifier_guided_model(lambda x, t, y: x, gm.classifier(), 1.0)
    with pytest.raises(ValueError, match="y"):
        guided(torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="y"):
        classifier_log_prob_grad(lambda x, t: x, torch.zeros(2, 2), torch.zeros(2), torch.zeros(3).long())
    with pytest.raises(TypeError, match="scale"):
        classifier_guided_model(lambda x, t, y: x, gm.classifier(), "1")
    with pytest.raises(ValueError, match="prediction_type"):
        classifier_guided_model(lambda x, t, y: x, gm.classifier(), 1.0, prediction_type="flow")
    with pytest.raises(ValueError, match="logits"):
        classifier_log_prob_grad(lambda x, t: x.sum(), torch.zeros(2, 2), torch.zeros(2), torch.zeros(2).long())
