"""Variational autoencoders (plain and conditional) and a denoising autoencoder, for vectors.

The VAE uses gencore's fused reparameterisation and KL ops (:mod:`gencore.vae`); its decoder
is a Gaussian with a learned per-dimension variance, so the ELBO is a bound on a proper
density of (dequantised) data, in nats, comparable with a flow's log-likelihood.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gencore.models.mlp import MLP
from gencore.rng import randn
from gencore.vae import reparameterize, reparameterize_kl

__all__ = ["VAE", "DenoisingAutoencoder"]

_LOG2PI = math.log(2 * math.pi)


class VAE(nn.Module):
    """Gaussian VAE ``q(z | x[, y]) = N(mu, diag exp(logvar))``, ``p(x | z[, y]) = N(dec(z), diag s^2)``.

    Conditional (Sohn et al., "Learning structured output representation using deep
    conditional generative models", 2015) when ``num_classes > 0``: the one-hot label is fed to
    encoder and decoder, the prior stays ``N(0, I)``.

    Args:
        data_dim: dimension of ``x`` (64 for digits).
        latent_dim: dimension of ``z``.
        hidden: hidden width of encoder and decoder.
        num_classes: 0 for an unconditional VAE.
        output: ``"sigmoid"`` (data in [0, 1]) or ``"linear"`` decoder mean.

    Example:
        >>> import torch
        >>> from gencore.models import VAE
        >>> vae = VAE(4, latent_dim=2, hidden=16)
        >>> vae.elbo(torch.rand(3, 4), seed=0).shape
        torch.Size([3])
    """

    def __init__(self, data_dim: int, latent_dim: int = 8, hidden: int = 256, num_classes: int = 0,
                 output: str = "sigmoid") -> None:
        super().__init__()
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")
        self.data_dim, self.latent_dim, self.num_classes = data_dim, latent_dim, int(num_classes)
        self.output = output
        c = self.num_classes
        self.encoder = MLP(data_dim + c, 2 * latent_dim, hidden=(hidden, hidden))
        self.decoder = MLP(latent_dim + c, data_dim, hidden=(hidden, hidden))
        self.dec_logvar = nn.Parameter(torch.full((data_dim,), -3.0))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _cat(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            if y is not None:
                raise ValueError("y must be None for an unconditional VAE")
            return h
        if y is None:
            raise ValueError("y is required for a conditional VAE (class labels)")
        return torch.cat([h, nn.functional.one_hot(y.long(), self.num_classes).to(h.dtype)], 1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z | x, y)``, each ``(n, latent_dim)``."""
        mu, logvar = self.encoder(self._cat(x, y)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of ``p(x | z, y)``: ``(n, data_dim)``."""
        out = self.decoder(self._cat(z, y))
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def log_px(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """``log N(x; mean, diag s^2)`` summed over dimensions: ``(n,)`` (or ``(..., n)``)."""
        lv = self.dec_logvar.clamp(-9.0, 2.0)
        return -0.5 * (((x - mean) ** 2) * torch.exp(-lv) + lv + _LOG2PI).sum(-1)

    def _noise(self, n: int, k: int, seed: int, stream: int, like: torch.Tensor) -> torch.Tensor:
        return randn(n, k * self.latent_dim, seed=seed, stream=stream, dtype=like.dtype,
                     device=like.device).reshape(n, k, self.latent_dim)

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None, *, seed: int = 0, stream: int = 0,
             beta: float = 1.0) -> torch.Tensor:
        """Per-sample ELBO ``E_q log p(x | z) - beta KL(q(z | x) || N(0, I))`` (one sample of z), in nats.

        Uses :func:`gencore.vae.reparameterize_kl` (fused ``z = mu + exp(logvar / 2) eps`` and the
        closed-form KL) with ``eps`` from gencore's noise (``seed``, ``stream``).

        References:
            Kingma and Welling, "Auto-encoding variational Bayes" (2014), Eq. 10.
        """
        mu, logvar = self.encode(x, y)
        z, kl = reparameterize_kl(mu, logvar, seed=seed, stream=stream)  # eps drawn in the kernel
        return self.log_px(x, self.decode(z, y)) - beta * kl

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, y: torch.Tensor | None = None, *, k: int = 64, seed: int = 0,
             stream: int = 0) -> torch.Tensor:
        """Importance-weighted bound ``log (1/K) sum_k p(x, z_k) / q(z_k | x)`` per sample, in nats.

        A lower bound on ``log p(x)`` that tightens as ``K`` grows (K = 1 is the ELBO).

        References:
            Burda, Grosse and Salakhutdinov, "Importance weighted autoencoders" (2016), Eq. 8.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        n = x.shape[0]
        mu, logvar = self.encode(x, y)
        eps = self._noise(n, k, seed, stream, mu)  # (n, k, d)
        mu_k = mu[:, None].expand(n, k, -1).reshape(n * k, -1)
        lv_k = logvar[:, None].expand(n, k, -1).reshape(n * k, -1)
        z = reparameterize(mu_k, lv_k, noise=eps.reshape(n * k, -1))
        y_k = None if y is None else y[:, None].expand(n, k).reshape(-1)
        log_px = self.log_px(x[:, None].expand(n, k, -1).reshape(n * k, -1), self.decode(z, y_k))
        log_pz = -0.5 * (z ** 2 + _LOG2PI).sum(-1)
        log_qz = -0.5 * (eps.reshape(n * k, -1) ** 2 + lv_k + _LOG2PI).sum(-1)
        log_w = (log_px + log_pz - log_qz).reshape(n, k)
        return torch.logsumexp(log_w, dim=1) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, *, seed: int = 0) -> torch.Tensor:
        """Decoder means of ``z ~ N(0, I)``: ``(n, data_dim)``."""
        p = next(self.parameters())
        z = randn(n, self.latent_dim, seed=seed, dtype=p.dtype, device=p.device)
        return self.decode(z, y)


class DenoisingAutoencoder(nn.Module):
    """An autoencoder ``x_0 ~ D(E(x_t))`` trained on inputs noised by the forward process.

    Vincent et al., "Extracting and composing robust features with denoising autoencoders"
    (2008): corrupt, then reconstruct the clean input. Here the corruption is the diffusion
    forward process ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` at a few fixed noise
    levels (:func:`gencore.diffusion.q_sample`), and the network does not see the level:
    unlike a diffusion model it has one bottlenecked network for all levels.

    Example:
        >>> import torch
        >>> from gencore.models import DenoisingAutoencoder
        >>> DenoisingAutoencoder(4, hidden=8, bottleneck=2)(torch.randn(3, 4)).shape
        torch.Size([3, 4])
    """

    def __init__(self, data_dim: int, hidden: int = 256, bottleneck: int = 32) -> None:
        super().__init__()
        self.encoder = MLP(data_dim, bottleneck, hidden=(hidden,))
        self.decoder = MLP(bottleneck, data_dim, hidden=(hidden,))

    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(nn.functional.silu(self.encoder(x_t))))
