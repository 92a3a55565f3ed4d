"""VAE building blocks: fused reparameterized sampling and the Gaussian KL to N(0, I).

``reparameterize(mu, logvar, seed=... | noise=...) -> z``, ``gaussian_kl(mu, logvar) -> (batch,)``
and ``reparameterize_kl(...) -> (z, kl)``, each one pass of a native kernel (CPU and CUDA),
forward and backward, with a pure-PyTorch twin in :mod:`gencore.vae.reference`.
"""

from __future__ import annotations

from gencore.vae import reference
from gencore.vae.ops import gaussian_kl, reparameterize, reparameterize_kl

__all__ = ["gaussian_kl", "reference", "reparameterize", "reparameterize_kl"]
