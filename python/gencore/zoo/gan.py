"""GAN and conditional GAN families of the zoo."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from gencore.gan import GAN, discriminator_loss, generator_loss
from gencore.models.trainer import Objective
from gencore.rng import randn
from gencore.zoo.base import ZooModel
from gencore.zoo.data import DIGITS, flat

__all__ = ["CGANFamily", "GANFamily"]

SAMPLE_STREAM = 2**31


class GANFamily(ZooModel):
    """GAN (Goodfellow et al. 2014) with the non-saturating generator loss, on vectors."""

    name = "gan"
    data_kinds = ("digits", "toy")
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 4000, "batch_size": 128, "lr": 2e-4, "latent_dim": 32, "hidden": 256, "loss": "nonsaturating",
        "betas": (0.5, 0.999),
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        digits = self.data_name == DIGITS
        self.gan = GAN(self.dim, latent_dim=config["latent_dim"], num_classes=self.num_classes,
                       hidden=config["hidden"], output="tanh" if digits else "linear", loss=config["loss"])

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"discriminator": list(self.gan.discriminator.parameters()),
                "generator": list(self.gan.generator.parameters())}

    def _z(self, n: int, seed: int, stream: int) -> torch.Tensor:
        return randn(n, self.gan.latent_dim, seed=seed, stream=stream)

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x, y = batch
        x = flat(x)
        y = y if self.conditional else None
        n = x.shape[0]
        z_d, z_g = self._z(n, seed, 2 * step), self._z(n, seed, 2 * step + 1)

        def d_loss():
            fake = self.gan.generate(z_d, y).detach()
            return discriminator_loss(self.gan.discriminate(x, y), self.gan.discriminate(fake, y))

        def g_loss():
            return generator_loss(self.gan.discriminate(self.gan.generate(z_g, y), y), self.gan.loss_kind)

        return [("discriminator", d_loss), ("generator", g_loss)]

    @torch.no_grad()
    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw: Any) -> torch.Tensor:
        return self.gan.generate(self._z(n, seed, SAMPLE_STREAM), y)


class CGANFamily(GANFamily):
    """Conditional GAN (Mirza and Osindero 2014): the label goes into G and D."""

    name = "cgan"
    conditional_family = True
