"""Generative adversarial networks: the minimax objective, the non-saturating generator loss
(Goodfellow et al., 2014) and conditional GANs (Mirza and Osindero, 2014)."""

from __future__ import annotations

from gencore.gan.losses import (
    discriminator_loss,
    gan_value,
    generator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
)
from gencore.gan.models import GAN

__all__ = [
    "GAN",
    "discriminator_loss",
    "gan_value",
    "generator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
]
