"""Multilayer perceptrons: a plain MLP and a time/class-conditioned denoiser for vectors."""

from __future__ import annotations

import torch
from torch import nn

from gencore.models.embeddings import ClassEmbedding, TimeEmbedding, as_time

__all__ = ["MLP", "MLPDenoiser"]


class MLP(nn.Sequential):
    """``Linear -> act -> ... -> Linear`` with ``hidden`` widths.

    Example:
        >>> import torch
        >>> from gencore.models import MLP
        >>> MLP(2, 3, hidden=(16, 16))(torch.randn(5, 2)).shape
        torch.Size([5, 3])
    """

    def __init__(self, in_features: int, out_features: int, hidden: tuple[int, ...] = (128, 128),
                 act: type[nn.Module] = nn.SiLU) -> None:
        layers: list[nn.Module] = []
        d = in_features
        for h in hidden:
            layers += [nn.Linear(d, h), act()]
            d = h
        layers.append(nn.Linear(d, out_features))
        super().__init__(*layers)


class MLPDenoiser(nn.Module):
    """``model(x_t, t, cond) -> prediction`` for vectors ``(n, dim)`` (latents, 2-D points).

    Residual MLP blocks conditioned on a time embedding plus a class embedding with a null
    class (``num_classes=0``: unconditional), the vector counterpart of :class:`UNet`.

    Example:
        >>> import torch
        >>> from gencore.models import MLPDenoiser
        >>> MLPDenoiser(8, num_classes=10)(torch.randn(3, 8), 5, torch.tensor([0, 1, 10])).shape
        torch.Size([3, 8])
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, num_classes: int = 0,
                 time_scale: float = 1.0) -> None:
        super().__init__()
        self.dim = dim
        self.num_classes = int(num_classes)
        self.conditional = self.num_classes > 0
        self.time = TimeEmbedding(hidden, time_scale)
        self.label = ClassEmbedding(self.num_classes, hidden) if self.conditional else None
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, 2 * hidden), nn.SiLU(),
                          nn.Linear(2 * hidden, hidden))
            for _ in range(depth)
        )
        self.emb = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor | int | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        n = x.shape[0]
        emb = self.time(as_time(t, n, x.device))
        if self.label is not None:
            emb = emb + self.label(cond, n, x.device)
        elif cond is not None:
            raise ValueError("cond must be None for an unconditional model (num_classes=0)")
        h = self.inp(x)
        for blk, proj in zip(self.blocks, self.emb):
            h = h + blk(h + proj(emb))
        return self.out(h)
