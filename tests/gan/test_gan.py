from __future__ import annotations

import math

import pytest
import torch

from gencore.gan import (
    GAN,
    discriminator_loss,
    gan_value,
    generator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
)
from gencore.models.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64


def test_losses_match_the_definition():
    r, f = torch.randn(7, dtype=D), torch.randn(5, dtype=D)
    d_r, d_f = torch.sigmoid(r), torch.sigmoid(f)
    v = torch.log(d_r).mean() + torch.log(1 - d_f).mean()  # Goodfellow et al. 2014, Eq. 1
    torch.testing.assert_close(gan_value(r, f), v)
    torch.testing.assert_close(discriminator_loss(r, f), -v)
    torch.testing.assert_close(minimax_generator_loss(f), torch.log(1 - d_f).mean())
    torch.testing.assert_close(nonsaturating_generator_loss(f), -torch.log(d_f).mean())
    assert float(gan_value(torch.zeros(3), torch.zeros(3))) == pytest.approx(-math.log(4))
    # finite for extreme logits where the naive formula overflows
    assert torch.isfinite(gan_value(torch.tensor([-200.0]), torch.tensor([200.0])))


def test_minimax_saturates_and_nonsaturating_does_not():
    # D confidently rejects the fake: logit -10
    f = torch.tensor([-10.0], dtype=D, requires_grad=True)
    (g1,) = torch.autograd.grad(minimax_generator_loss(f), f)
    (g2,) = torch.autograd.grad(nonsaturating_generator_loss(f), f)
    assert abs(float(g1)) < 1e-4 and abs(float(g2)) > 0.99


def test_generator_loss_by_name_and_bad_input():
    f = torch.randn(4)
    torch.testing.assert_close(generator_loss(f, "minimax"), minimax_generator_loss(f))
    with pytest.raises(ValueError, match="kind"):
        generator_loss(f, "wasserstein")
    with pytest.raises(TypeError, match="fake_logits"):
        nonsaturating_generator_loss(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="output"):
        GAN(2, output="relu")
    with pytest.raises(ValueError, match="y is required"):
        GAN(2, num_classes=3).generate(torch.randn(2, 16))
    with pytest.raises(ValueError, match="y must be None"):
        GAN(2).generate(torch.randn(2, 16), torch.tensor([0, 1]))


class _GaussianGAN(torch.nn.Module):
    """A conditional GAN on two labelled Gaussian blobs, trained with the shared Trainer."""

    def __init__(self):
        super().__init__()
        self.gan = GAN(2, latent_dim=4, num_classes=2, hidden=32, output="linear")

    def param_groups(self):
        return {"d": list(self.gan.discriminator.parameters()), "g": list(self.gan.generator.parameters())}

    def objectives(self, batch, *, step, seed):
        from gencore.rng import randn

        x, y = batch
        z = randn(x.shape[0], 4, seed=seed, stream=step)

        def d():
            fake = self.gan.generate(z, y).detach()
            return discriminator_loss(self.gan.discriminate(x, y), self.gan.discriminate(fake, y))

        def g():
            return nonsaturating_generator_loss(self.gan.discriminate(self.gan.generate(z, y), y))

        return [("d", d), ("g", g)]


def test_conditional_gan_learns_class_means():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2000) % 2
    centers = torch.tensor([[2.0, 0.0], [-2.0, 1.0]])
    x = centers[y] + 0.3 * torch.randn(2000, 2, generator=g)
    torch.manual_seed(0)
    model = _GaussianGAN()
    Trainer(model, (x, y), steps=600, batch_size=100, lr=1e-3, betas=(0.5, 0.999)).run()
    with torch.no_grad():
        for c in (0, 1):
            s = model.gan.generate(torch.randn(1000, 4), torch.full((1000,), c))
            m = s.mean(0)
            assert torch.allclose(m, centers[c], atol=0.5), (c, m)
            assert (m - centers[c]).norm() < (m - centers[1 - c]).norm() / 4
