"""Flow models: a transform from data to a standard normal latent, with exact likelihoods.

``Flow`` wraps any :class:`~gencore.flows.layers.Transform`; :class:`RealNVP` builds the
vector model and :class:`GlowFlow` the multi-scale image model (Glow-style, for 8x8 digits).

Bits per dimension (images): data are continuous values in [0, 1] obtained by uniform
dequantisation of ``levels`` grey levels, ``x = (k + u) / levels`` with ``k`` in
``0..levels-1`` and ``u ~ U(0, 1)`` (scikit-learn's digits have 17 levels, 0..16; the data
module does the dequantisation). Each bin has width ``1 / levels``, so the discrete
log-likelihood is bounded below by ``log p(x) - D log(levels)`` and
``bits/dim = (-log p(x) + D log(levels)) / (D log 2)``. The optional logit preprocessing is part
of the flow (:class:`~gencore.flows.layers.LogitTransform`) and its Jacobian is counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

import gencore
from gencore.flows.layers import (
    ActNorm,
    AffineCoupling,
    FlowSequential,
    Invertible1x1Conv,
    LogitTransform,
    LULinear,
    Squeeze,
    Transform,
)

__all__ = ["Flow", "GlowFlow", "MultiScale", "RealNVP", "standard_normal_log_prob"]

_LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over every non-batch dimension: (batch, *) -> (batch,)."""
    return -0.5 * (z * z + _LOG_2PI).flatten(1).sum(1)


class Flow(nn.Module):
    """A normalizing flow: ``z = transform(x)`` with a standard normal base over ``latent_shape``.

    Args:
        transform: maps data (batch, *shape) to latents (batch, *latent_shape).
        shape: event shape of the data, e.g. ``(2,)`` or ``(1, 8, 8)``.
        latent_shape: event shape of the latent (default: ``shape``).
        context: number of context features the transform expects (0: unconditional).

    Example:
        >>> import torch
        >>> flow = RealNVP(2, transforms=2, hidden=(16,))
        >>> flow.log_prob(torch.randn(5, 2)).shape
        torch.Size([5])
        >>> flow.sample(3, seed=0).shape
        torch.Size([3, 2])
    """

    def __init__(self, transform: Transform, shape: Sequence[int], latent_shape: Sequence[int] | None = None,
                 context: int = 0):
        super().__init__()
        self.transform = transform
        self.shape = tuple(int(s) for s in shape)
        self.latent_shape = self.shape if latent_shape is None else tuple(int(s) for s in latent_shape)
        self.context = int(context)

    # ---- checks ------------------------------------------------------------------------
    def _param(self) -> torch.Tensor:
        for p in self.parameters():
            return p
        for b in self.buffers():
            if b.is_floating_point():
                return b
        return torch.zeros(())

    def _check_x(self, x: torch.Tensor, name: str = "x") -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
        if tuple(x.shape[1:]) != self.shape or x.dim() != len(self.shape) + 1:
            raise ValueError(f"{name} must have shape (batch, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains non-finite values (NaN or inf)")

    def _check_context(self, context: torch.Tensor | None, n: int | None) -> torch.Tensor | None:
        if self.context == 0:
            if context is not None:
                raise ValueError("context was given but this flow is unconditional (context=0)")
            return None
        if context is None:
            raise ValueError(f"context is required: this flow has {self.context} context features")
        if not isinstance(context, torch.Tensor):
            raise TypeError("context must be a torch.Tensor")
        if context.dim() == 1:
            context = context[None]
        if context.dim() != 2 or context.shape[1] != self.context:
            raise ValueError(f"context must have shape (batch, {self.context}), got {tuple(context.shape)}")
        if n is not None and context.shape[0] != n:
            if context.shape[0] != 1:
                raise ValueError(f"context has {context.shape[0]} rows, expected {n} (or 1)")
            context = context.expand(n, -1)
        if not bool(torch.isfinite(context).all()):
            raise ValueError("context contains non-finite values (NaN or inf)")
        return context

    # ---- densities ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """``(z, ladj)``: the latent and ``log|det dz/dx|`` (batch,)."""
        self._check_x(x)
        context = self._check_context(context, x.shape[0])
        return self.transform(x, context)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x | context)`` in nats.

        Args:
            x: (batch, *shape) finite data.
            context: (batch, context) or (context,), when the flow is conditional.

        Returns:
            (batch,) log-densities.
        """
        z, ladj = self.forward(x, context)
        return standard_normal_log_prob(z) + ladj

    def bits_per_dim(self, x: torch.Tensor, context: torch.Tensor | None = None, *,
                     levels: int = 17) -> torch.Tensor:
        """Bits per dimension of dequantised data in [0, 1] with ``levels`` grey levels (see the
        module docstring): ``(-log p(x) + D log(levels)) / (D log 2)``, per sample (batch,)."""
        d = math.prod(self.shape)
        return (-self.log_prob(x, context) + d * math.log(levels)) / (d * math.log(2))

    # ---- sampling ----------------------------------------------------------------------
    def _noise(self, n, context, seed, stream, sample_offset):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        context = self._check_context(context, n)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        p = self._param()
        z = gencore.randn(n, *self.latent_shape, seed=seed, stream=stream, sample_offset=sample_offset,
                          device=p.device, dtype=p.dtype)
        return z, context

    def rsample_and_log_prob(self, n: int, context: torch.Tensor | None = None, *, seed: int | None = None,
                             stream: int = 0, sample_offset: int = 0):
        """Reparameterised samples and their log-densities from one pass.

        The base noise is ``gencore.randn(n, *latent_shape, seed=, stream=, sample_offset=)``
        (the noise contract: sample ``i`` does not depend on ``n``).

        Returns:
            ``(x, log_prob)``: (n, *shape) and (n,).
        """
        z, context = self._noise(n, context, seed, stream, sample_offset)
        x, ladj_inv = self.transform.inverse(z, context)
        return x, standard_normal_log_prob(z) - ladj_inv

    def rsample(self, n: int, context: torch.Tensor | None = None, *, seed: int | None = None,
                stream: int = 0, sample_offset: int = 0) -> torch.Tensor:
        """Samples with gradients to the parameters (n, *shape)."""
        return self.rsample_and_log_prob(n, context, seed=seed, stream=stream, sample_offset=sample_offset)[0]

    @torch.no_grad()
    def sample(self, n: int, context: torch.Tensor | None = None, *, seed: int | None = None,
               stream: int = 0, sample_offset: int = 0) -> torch.Tensor:
        """``n`` samples (n, *shape) without gradients; ``seed=None`` draws a seed from torch's
        global generator, an integer seed makes them reproducible."""
        return self.rsample(n, context, seed=seed, stream=stream, sample_offset=sample_offset)


class RealNVP(Flow):
    """RealNVP for vectors: ``transforms`` affine couplings with alternating checkered masks
    (as zuko's ``RealNVP``) or alternating halves, optional ActNorm and LU layers in between.

    Args:
        features: data dimension (>= 2).
        transforms: number of coupling layers.
        hidden: hidden widths of each conditioner MLP (or the width of the ResNet).
        context: number of context features (0: unconditional).
        clamp, clamp_value: soft clamp of the log-scales (see :func:`affine_coupling`).
        mask: ``"checkered"`` (``arange % 2 == i % 2`` kept) or ``"half"`` (first/second half).
        net: ``"mlp"`` or ``"resnet"``.
        actnorm: insert an ActNorm before every coupling.
        lu: insert an :class:`LULinear` before every coupling (else the masks alternate only).

    Example:
        >>> import torch
        >>> flow = RealNVP(2, transforms=4, hidden=(32, 32))
        >>> x = torch.randn(10, 2)
        >>> z, ladj = flow(x)
        >>> bool(torch.allclose(flow.transform.inverse(z)[0], x, atol=1e-5))
        True
    """

    def __init__(self, features: int, transforms: int = 8, hidden: Sequence[int] | int = (64, 64),
                 context: int = 0, clamp: str | None = "atan", clamp_value: float = 2.0,
                 mask: str = "checkered", net: str = "mlp", actnorm: bool = False, lu: bool = False):
        if not isinstance(features, int) or features < 2:
            raise ValueError(f"features must be an integer >= 2, got {features!r}")
        if not isinstance(transforms, int) or transforms < 1:
            raise ValueError(f"transforms must be a positive integer, got {transforms!r}")
        if mask not in ("checkered", "half"):
            raise ValueError(f"mask must be 'checkered' or 'half', got {mask!r}")
        layers: list[Transform] = []
        for i in range(transforms):
            if actnorm:
                layers.append(ActNorm(features))
            if lu:
                layers.append(LULinear(features, seed=i))
            if mask == "checkered":
                m = torch.arange(features) % 2 == i % 2
                layers.append(AffineCoupling(features, mask=m, hidden=hidden, context=context, clamp=clamp,
                                             clamp_value=clamp_value, net=net))
            else:
                layers.append(AffineCoupling(features, swap=bool(i % 2), hidden=hidden, context=context,
                                             clamp=clamp, clamp_value=clamp_value, net=net))
        super().__init__(FlowSequential(*layers), (features,), context=context)


class MultiScale(Transform):
    """Glow's multi-scale architecture for images (batch, C, H, W) -> latents (batch, C*H*W).

    Per level: squeeze, ``steps`` x (ActNorm, invertible 1x1 conv, affine coupling on channel
    halves with a conv conditioner), then (except at the last level) half of the channels are
    factored out to the latent. Optionally a logit preprocessing first.
    """

    def __init__(self, shape: Sequence[int], levels: int = 2, steps: int = 4, hidden: int = 64,
                 context: int = 0, clamp: str | None = "sigmoid", clamp_value: float = 2.0,
                 logit: bool = True, alpha: float = 0.05):
        super().__init__()
        c, h, w = (int(s) for s in shape)
        if h % (2**levels) or w % (2**levels):
            raise ValueError(f"height and width must be divisible by 2**levels, got {h}x{w}, levels={levels}")
        self.pre = LogitTransform(alpha) if logit else None
        self.levels = nn.ModuleList()
        self.split_channels: list[int] = []
        self.shapes: list[tuple[int, int, int]] = []
        for lev in range(levels):
            c, h, w = c * 4, h // 2, w // 2
            steps_ = [Squeeze()]
            for s in range(steps):
                steps_ += [
                    ActNorm(c),
                    Invertible1x1Conv(c, seed=100 * lev + s),
                    AffineCoupling(c, swap=bool(s % 2), hidden=hidden, context=context, clamp=clamp,
                                   clamp_value=clamp_value, image=True),
                ]
            self.levels.append(FlowSequential(*steps_))
            self.shapes.append((c, h, w))
            if lev < levels - 1:
                self.split_channels.append(c // 2)
                c = c - c // 2
        self.in_shape = tuple(int(s) for s in shape)

    def forward(self, x, context=None):
        ladj = x.new_zeros(x.shape[0])
        if self.pre is not None:
            x, l0 = self.pre(x)
            ladj = ladj + l0
        zs = []
        h = x
        for i, level in enumerate(self.levels):
            h, l1 = level(h, context)
            ladj = ladj + l1
            if i < len(self.split_channels):
                k = self.split_channels[i]
                zs.append(h[:, :k].flatten(1))
                h = h[:, k:]
        zs.append(h.flatten(1))
        return torch.cat(zs, 1), ladj

    def inverse(self, z, context=None):
        ladj = z.new_zeros(z.shape[0])
        # Cut z into the factored-out pieces and the last level's output.
        sizes, pieces = [], []
        for i, (_, h, w) in enumerate(self.shapes):
            if i < len(self.split_channels):
                sizes.append((self.split_channels[i], h, w))
        last = self.shapes[-1]
        off = 0
        for s in sizes:
            n = s[0] * s[1] * s[2]
            pieces.append(z[:, off:off + n].reshape(-1, *s))
            off += n
        h = z[:, off:].reshape(-1, *last)
        for i in range(len(self.levels) - 1, -1, -1):
            if i < len(self.split_channels):
                h = torch.cat([pieces[i], h], 1)
            h, l1 = self.levels[i].inverse(h, context)
            ladj = ladj + l1
        if self.pre is not None:
            h, l0 = self.pre.inverse(h)
            ladj = ladj + l0
        return h, ladj


class GlowFlow(Flow):
    """Multi-scale Glow-style flow for small images (default: 8x8 digits, 1 channel).

    Args:
        shape: (channels, height, width) of the data, in [0, 1] (dequantised).
        levels: number of scales (each squeezes by 2).
        steps: flow steps per level.
        hidden: channels of the conv conditioners.
        context: number of context features (e.g. 10 for one-hot digit classes).
        clamp, clamp_value: soft clamp of the log-scales (Glow's ``"sigmoid"`` by default).
        logit, alpha: logit preprocessing ``logit(alpha + (1 - 2 alpha) x)``, Jacobian counted.

    Example:
        >>> import torch
        >>> flow = GlowFlow((1, 8, 8), levels=2, steps=1, hidden=8)
        >>> x = torch.rand(4, 1, 8, 8)
        >>> flow.bits_per_dim(x).shape
        torch.Size([4])
    """

    def __init__(self, shape: Sequence[int] = (1, 8, 8), levels: int = 2, steps: int = 4, hidden: int = 64,
                 context: int = 0, clamp: str | None = "sigmoid", clamp_value: float = 2.0,
                 logit: bool = True, alpha: float = 0.05):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"shape must be (channels, height, width), got {shape}")
        t = MultiScale(shape, levels, steps, hidden, context, clamp, clamp_value, logit, alpha)
        super().__init__(t, shape, (math.prod(shape),), context=context)

    def _check_x(self, x, name="x"):
        super()._check_x(x, name)
        if self.transform.pre is not None and x.numel() and bool(((x < 0) | (x > 1)).any()):
            raise ValueError(f"{name} must lie in [0, 1] (dequantised data)")
