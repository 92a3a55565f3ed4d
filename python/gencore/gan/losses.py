"""GAN objectives from the definition (Goodfellow et al., 2014), written on discriminator logits.

With ``D(x) = sigmoid(l(x))`` the value function of the two-player minimax game (Goodfellow
et al., "Generative adversarial nets", NeurIPS 2014, Eq. 1) is

    V(D, G) = E_x log D(x) + E_z log(1 - D(G(z))),

which D maximises and G minimises. Using ``log sigmoid(l) = -softplus(-l)`` and
``log(1 - sigmoid(l)) = -softplus(l)`` keeps every term finite for any logit. The
discriminator minimises ``-V``; the generator either minimises ``V`` directly (the minimax
loss, whose gradient vanishes when D confidently rejects fakes) or, as the paper recommends
(Sec. 3), maximises ``log D(G(z))`` (the non-saturating loss).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "discriminator_loss",
    "gan_value",
    "generator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
]


def _check(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of discriminator logits")


def gan_value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``V(D, G) = mean log D(x) + mean log(1 - D(G(z)))`` (Goodfellow et al. 2014, Eq. 1).

    Args:
        real_logits: discriminator logits on real data ``(n,)`` or ``(n, 1)``.
        fake_logits: discriminator logits on generated data ``(m,)`` or ``(m, 1)``.

    Returns:
        scalar tensor; at the equilibrium ``D = 1/2`` it equals ``-log 4``.

    Example:
        >>> import torch, math
        >>> from gencore.gan import gan_value
        >>> abs(float(gan_value(torch.zeros(3), torch.zeros(5))) + math.log(4)) < 1e-6
        True
    """
    _check("real_logits", real_logits)
    _check("fake_logits", fake_logits)
    return -F.softplus(-real_logits).mean() - F.softplus(fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-V(D, G)``: binary cross-entropy of real (label 1) against fake (label 0); D minimises it
    (Goodfellow et al. 2014, Algorithm 1, the ascent on V)."""
    return -gan_value(real_logits, fake_logits)


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``mean log(1 - D(G(z)))``: the generator's side of the minimax game (Goodfellow et al.
    2014, Eq. 1 and Algorithm 1). Saturates (tiny gradients) when D rejects fakes confidently.

    Example:
        >>> import torch
        >>> from gencore.gan import minimax_generator_loss
        >>> float(minimax_generator_loss(torch.tensor([-30.0]))) > -1e-9
        True
    """
    _check("fake_logits", fake_logits)
    return -F.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``-mean log D(G(z))``: the non-saturating generator loss (Goodfellow et al. 2014, Sec. 3:
    "train G to maximize log D(G(z))"), same fixed point, strong gradients early in training.

    Example:
        >>> import torch
        >>> from gencore.gan import nonsaturating_generator_loss
        >>> round(float(nonsaturating_generator_loss(torch.tensor([-30.0]))), 3)
        30.0
    """
    _check("fake_logits", fake_logits)
    return F.softplus(-fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator loss by name: ``"nonsaturating"`` or ``"minimax"``."""
    if kind == "nonsaturating":
        return nonsaturating_generator_loss(fake_logits)
    if kind == "minimax":
        return minimax_generator_loss(fake_logits)
    raise ValueError(f"kind must be 'nonsaturating' or 'minimax', got {kind!r}")
