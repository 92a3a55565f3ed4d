"""The affine coefficients of one sampler step: the value a solver produces and the fused op consumes.

Every step gencore runs is, per element, the affine map of ``csrc/diffusion/diffusion_math.h``
(``step_element``); with ``m`` the (guided) model output, ``z`` the noise and ``h1..h4`` the
history inputs:

    xs   = x + kpre z
    x0   = clamp(ax xs + am m, -r, r)
    d    = ex xs + em m + e0 x0
    prev = px xs + p0 x0 + pd d + pz z + p1 h1 + p2 h2 + p3 h3 + p4 h4
    aux  = qd d + q1 h1

A coefficient is a Python float (computed in float64 on the host) or a float64 tensor of shape
(batch,) on the sample's device (per-sample timesteps). Fields left out are 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["MAX_HISTORY", "Coef", "Scalar", "pack"]

Scalar = float | torch.Tensor
MAX_HISTORY = 4
_HOST_TYPES = frozenset((float, int))


class Coef(NamedTuple):
    """The 16 coefficients of one step, in the kernel's order (``CoefIndex``).

    Example:
        >>> from gencore.diffusion import Coef
        >>> Coef(p0=1.0).p0, Coef(p0=1.0).px
        (1.0, 0.0)
    """

    kpre: Scalar = 0.0
    ax: Scalar = 0.0
    am: Scalar = 0.0
    ex: Scalar = 0.0
    em: Scalar = 0.0
    e0: Scalar = 0.0
    px: Scalar = 0.0
    p0: Scalar = 0.0
    pd: Scalar = 0.0
    pz: Scalar = 0.0
    p1: Scalar = 0.0
    p2: Scalar = 0.0
    p3: Scalar = 0.0
    p4: Scalar = 0.0
    qd: Scalar = 0.0
    q1: Scalar = 0.0

    @property
    def history(self) -> tuple[Scalar, ...]:
        """(p1, p2, p3, p4): the weights of the history inputs."""
        return self.p1, self.p2, self.p3, self.p4


def pack(coef: Coef, batch: int, device: torch.device) -> tuple[torch.Tensor | None, list[float]]:
    """(rows, floats): per-sample rows (batch, 16) float64 when any coefficient is a tensor (then
    ``floats`` is all zeros), else ``None`` and the 16 floats."""
    if _HOST_TYPES.issuperset(map(type, coef)):
        return None, list(coef)
    cols = [v.to(torch.float64).expand(batch) if isinstance(v, torch.Tensor)
            else torch.full((batch,), float(v), dtype=torch.float64, device=device) for v in coef]
    return torch.stack(cols, dim=1).contiguous(), [0.0] * len(coef)
