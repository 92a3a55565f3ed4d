"""GAN and conditional GAN on vectors (2-D toys, flattened 8x8 digits)."""

from __future__ import annotations

import torch
from torch import nn

from gencore.gan.losses import discriminator_loss, generator_loss

__all__ = ["GAN"]


class GAN(nn.Module):
    """A generator and a discriminator (MLPs); conditional when ``num_classes > 0``.

    Conditioning follows Mirza and Osindero, "Conditional generative adversarial nets" (2014):
    the one-hot label is concatenated to the generator's noise and to the discriminator's
    input, so ``D(x | y)`` judges image-label pairs and ``G(z | y)`` must produce the class.

    Args:
        data_dim: dimension of a sample (2 for toys, 64 for digits).
        latent_dim: dimension of the noise ``z``.
        num_classes: 0 for an unconditional GAN.
        hidden: width of the hidden layers.
        output: ``"tanh"`` (data in [-1, 1]) or ``"linear"``.
        loss: generator loss, ``"nonsaturating"`` or ``"minimax"``.

    Example:
        >>> import torch
        >>> from gencore.gan import GAN
        >>> g = GAN(2, latent_dim=4, hidden=16)
        >>> g.generate(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(self, data_dim: int, latent_dim: int = 16, num_classes: int = 0, hidden: int = 256,
                 output: str = "tanh", loss: str = "nonsaturating") -> None:
        super().__init__()
        if output not in ("tanh", "linear"):
            raise ValueError(f"output must be 'tanh' or 'linear', got {output!r}")
        if loss not in ("nonsaturating", "minimax"):
            raise ValueError(f"loss must be 'nonsaturating' or 'minimax', got {loss!r}")
        self.data_dim, self.latent_dim, self.num_classes = data_dim, latent_dim, int(num_classes)
        self.loss_kind = loss
        c = self.num_classes
        act = nn.LeakyReLU(0.2)
        g_layers: list[nn.Module] = [nn.Linear(latent_dim + c, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                     nn.SiLU(), nn.Linear(hidden, data_dim)]
        if output == "tanh":
            g_layers.append(nn.Tanh())
        self.generator = nn.Sequential(*g_layers)
        self.discriminator = nn.Sequential(nn.Linear(data_dim + c, hidden), act, nn.Linear(hidden, hidden),
                                           nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _onehot(self, y: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor | None:
        if not self.conditional:
            if y is not None:
                raise ValueError("y must be None for an unconditional GAN")
            return None
        if y is None:
            raise ValueError("y is required for a conditional GAN (class labels)")
        return nn.functional.one_hot(y.long(), self.num_classes).to(like.dtype)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``G(z | y)``: ``z`` ``(n, latent_dim)``, ``y`` ``(n,)`` -> ``(n, data_dim)``."""
        h = self._onehot(y, z.shape[0], z)
        return self.generator(z if h is None else torch.cat([z, h], 1))

    def discriminate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``D(x | y)``: ``(n,)``."""
        h = self._onehot(y, x.shape[0], x)
        return self.discriminator(x if h is None else torch.cat([x, h], 1))[:, 0]

    def losses(self, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(discriminator loss, generator loss)`` on one batch (fakes detached for D)."""
        fake = self.generate(z, y)
        d_loss = discriminator_loss(self.discriminate(x, y), self.discriminate(fake.detach(), y))
        g_loss = generator_loss(self.discriminate(fake, y), self.loss_kind)
        return d_loss, g_loss
