"""A small UNet for 8x8 images with time and class conditioning (null class for CFG)."""

from __future__ import annotations

import torch
from torch import nn

from gencore.models.embeddings import ClassEmbedding, TimeEmbedding, as_time

__all__ = ["ResBlock", "UNet"]


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the embedding added as a per-channel shift."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.n1, self.c1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.n2, self.c2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(nn.functional.silu(self.n1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.c2(nn.functional.silu(self.n2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """UNet ``model(x_t, t, cond) -> prediction`` for ``(n, C, 8, 8)`` images.

    Two resolutions (8x8 and 4x4, ``channels`` and ``2 * channels``), a residual block per
    level and skip connections; the sum of a sinusoidal time embedding and a class embedding
    conditions every block. Class ``num_classes`` is the null class (classifier-free
    guidance); ``cond=None`` uses it. ``num_classes=0`` makes an unconditional model.

    Args:
        in_channels: image channels.
        channels: base width.
        num_classes: number of classes (0: unconditional).
        time_scale: the time fed to the sinusoidal embedding is ``t * time_scale`` (1 for
            integer diffusion timesteps, ~1000 for continuous times in [0, 1]).

    Shapes:
        x: ``(n, in_channels, H, W)`` with H, W even; t: scalar or ``(n,)``; cond: None, int or
        ``(n,)`` labels in ``[0, num_classes]``. Output: like ``x``.

    Example:
        >>> import torch
        >>> from gencore.models import UNet
        >>> net = UNet(channels=16, num_classes=10)
        >>> net(torch.randn(4, 1, 8, 8), torch.tensor([1, 10, 100, 999]), torch.tensor([0, 1, 2, 10])).shape
        torch.Size([4, 1, 8, 8])
    """

    def __init__(self, in_channels: int = 1, channels: int = 32, num_classes: int = 10,
                 time_scale: float = 1.0) -> None:
        super().__init__()
        c, e = channels, 4 * channels
        self.in_channels = in_channels
        self.num_classes = int(num_classes)
        self.conditional = self.num_classes > 0
        self.time = TimeEmbedding(e, time_scale)
        self.label = ClassEmbedding(self.num_classes, e) if self.conditional else None
        self.inp = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down1 = ResBlock(c, c, e)
        self.pool = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, e)
        self.mid = ResBlock(2 * c, 2 * c, e)
        self.up2 = ResBlock(4 * c, 2 * c, e)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.up1 = ResBlock(3 * c, c, e)
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor | int | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (n, {self.in_channels}, H, W), got {tuple(x.shape)}")
        n = x.shape[0]
        emb = self.time(as_time(t, n, x.device))
        if self.label is not None:
            emb = emb + self.label(cond, n, x.device)
        elif cond is not None:
            raise ValueError("cond must be None for an unconditional UNet (num_classes=0)")
        emb = emb.to(x.dtype)
        h0 = self.inp(x)
        h1 = self.down1(h0, emb)
        h2 = self.down2(self.pool(h1), emb)
        m = self.mid(h2, emb)
        u2 = self.up2(torch.cat([m, h2], 1), emb)
        u1 = self.up1(torch.cat([self.upsample(u2), h1], 1), emb)
        return self.out(u1)
