"""Time and class embeddings shared by the denoising networks."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ClassEmbedding", "TimeEmbedding", "as_time", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(n, dim)`` of (possibly fractional) times ``t`` ``(n,)``.

    References:
        Vaswani et al. (2017), Sec. 3.5; Ho et al., "Denoising diffusion probabilistic models"
        (2020), Appendix B.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


def as_time(t: torch.Tensor | float, n: int, device: torch.device) -> torch.Tensor:
    """Broadcasts a scalar or ``(n,)`` time to a float tensor ``(n,)``."""
    if not isinstance(t, torch.Tensor):
        t = torch.tensor(float(t))
    t = t.to(device=device, dtype=torch.float32)
    if t.dim() == 0 or t.numel() == 1:
        return t.reshape(1).expand(n)
    if t.shape != (n,):
        raise ValueError(f"t must be a scalar or have shape ({n},), got {tuple(t.shape)}")
    return t


class TimeEmbedding(nn.Module):
    """Sinusoidal features of ``t * time_scale`` followed by a two-layer MLP: ``(n,) -> (n, dim)``."""

    def __init__(self, dim: int, time_scale: float = 1.0) -> None:
        super().__init__()
        self.dim = dim
        self.time_scale = float(time_scale)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t * self.time_scale, self.dim))


class ClassEmbedding(nn.Module):
    """Label embedding with an extra *null* class (index ``num_classes``) for classifier-free
    guidance: ``cond=None`` or a label equal to ``null`` means "unconditional"."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.null = self.num_classes
        self.embed = nn.Embedding(self.num_classes + 1, dim)

    def labels(self, cond: torch.Tensor | int | None, n: int, device: torch.device) -> torch.Tensor:
        if cond is None:
            return torch.full((n,), self.null, dtype=torch.long, device=device)
        if isinstance(cond, int) and not isinstance(cond, bool):
            cond = torch.full((n,), cond, dtype=torch.long, device=device)
        if not isinstance(cond, torch.Tensor) or cond.is_floating_point() or cond.dtype == torch.bool:
            raise TypeError("cond must be None, an int or an integer tensor of class labels")
        cond = cond.to(device=device, dtype=torch.long).reshape(-1)
        if cond.numel() == 1 and n != 1:
            cond = cond.expand(n)
        if cond.shape != (n,):
            raise ValueError(f"cond must hold {n} labels, got {cond.numel()}")
        if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) > self.null):
            raise ValueError(f"cond must hold labels in [0, {self.num_classes}] ({self.num_classes} = null), "
                             f"got values in [{int(cond.min())}, {int(cond.max())}]")
        return cond

    def forward(self, cond: torch.Tensor | int | None, n: int, device: torch.device) -> torch.Tensor:
        return self.embed(self.labels(cond, n, device))
