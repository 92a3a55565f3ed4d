"""Flow layers. Every transform maps data to latent in ``forward`` and back in ``inverse``, and
both return the output together with ``log|det J|`` of the map they apply, from one call
(zuko's ``call_and_ladj`` style):

    z, ladj = t(x, context)        # ladj = log|det dz/dx|, shape (batch,)
    x, ladj_inv = t.inverse(z)     # ladj_inv = log|det dx/dz| = -ladj

Vector layers take (batch, features); image layers take (batch, channels, height, width).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from gencore.flows._checks import CLAMPS
from gencore.flows.ops import affine_coupling

__all__ = [
    "MLP",
    "ActNorm",
    "AffineCoupling",
    "ConvNet",
    "FlowSequential",
    "Invertible1x1Conv",
    "LULinear",
    "LogitTransform",
    "Permutation",
    "ResNet",
    "Reverse",
    "Squeeze",
    "Transform",
]


def _zeros_like_batch(x: torch.Tensor) -> torch.Tensor:
    return x.new_zeros(x.shape[0])


class Transform(nn.Module):
    """Base class: ``forward(x, context=None) -> (y, ladj)``, ``inverse(y, context=None) -> (x, ladj)``."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):  # pragma: no cover
        raise NotImplementedError

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None):  # pragma: no cover
        raise NotImplementedError


class FlowSequential(Transform):
    """Composition; ``forward`` applies the transforms in order, ``inverse`` in reverse.

    Example:
        >>> import torch
        >>> t = FlowSequential(Reverse(), ActNorm(3))
        >>> z, ladj = t(torch.randn(5, 3))
        >>> z.shape, ladj.shape
        (torch.Size([5, 3]), torch.Size([5]))
    """

    def __init__(self, *transforms: Transform):
        super().__init__()
        if len(transforms) == 1 and isinstance(transforms[0], (list, tuple)):
            transforms = tuple(transforms[0])
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x, context=None):
        total = _zeros_like_batch(x)
        for t in self.transforms:
            x, ladj = t(x, context)
            total = total + ladj
        return x, total

    def inverse(self, y, context=None):
        total = _zeros_like_batch(y)
        for t in reversed(self.transforms):
            y, ladj = t.inverse(y, context)
            total = total + ladj
        return y, total


# ---- conditioners -----------------------------------------------------------------------

class MLP(nn.Sequential):
    """``in -> hidden... -> out`` with ReLU; the last layer starts at zero (identity coupling).

    Args:
        in_features, out_features: widths.
        hidden: hidden widths, e.g. ``(64, 64)``.
        zero_init: start the output layer at zero.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (64, 64),
                 zero_init: bool = True):
        layers: list[nn.Module] = []
        widths = [in_features, *hidden]
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(widths[-1], out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        super().__init__(*layers)


class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.net(x)


class ResNet(nn.Sequential):
    """Residual MLP conditioner: ``Linear -> blocks x (ReLU, Linear, ReLU, Linear) -> Linear``."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, blocks: int = 2,
                 zero_init: bool = True):
        last = nn.Linear(hidden, out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        super().__init__(nn.Linear(in_features, hidden), *[_ResBlock(hidden) for _ in range(blocks)],
                         nn.ReLU(), last)


class ConvNet(nn.Sequential):
    """Image conditioner: ``conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3`` (last at zero)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, zero_init: bool = True):
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        super().__init__(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last)


# ---- coupling ---------------------------------------------------------------------------

class AffineCoupling(Transform):
    """Affine coupling layer (RealNVP): ``y_a = x_a``, ``y_b = x_b * exp(s) + t`` with
    ``(t, log_scale) = conditioner([x_a, context])`` and ``s = squash(log_scale)``, on the fused
    :func:`gencore.flows.affine_coupling` op.

    The split is along dimension 1 (features or channels): ``mask`` (bool, ``True`` = passed
    through and conditioned on) or, by default, the first ``features // 2`` entries
    (``swap=True`` conditions on the second half instead).

    Args:
        features: size of dimension 1.
        mask: optional bool tensor (features,).
        swap: with the default split, transform the first half instead of the second.
        conditioner: module mapping (batch, n_a + context, *rest) to (batch, 2 * n_b, *rest),
            shift first then log-scale; default: :class:`MLP` for vectors, or :class:`ResNet`
            (``net="resnet"``), or :class:`ConvNet` (``image=True``).
        hidden: hidden widths of the default conditioner.
        context: number of context features (0 for an unconditional layer); for images the
            context vector is broadcast over the pixels.
        clamp, clamp_value: the soft clamp of the log-scale (see the op).
        net: ``"mlp"`` or ``"resnet"`` for the default vector conditioner.
        image: inputs are (batch, channels, height, width).

    Example:
        >>> import torch
        >>> layer = AffineCoupling(4, hidden=(16,), clamp="atan")
        >>> x = torch.randn(8, 4)
        >>> z, ladj = layer(x)
        >>> x2, ladj2 = layer.inverse(z)
        >>> bool(torch.allclose(x, x2, atol=1e-6)), bool(torch.allclose(ladj, -ladj2))
        (True, True)
    """

    def __init__(self, features: int, *, mask: torch.Tensor | None = None, swap: bool = False,
                 conditioner: nn.Module | None = None, hidden: Sequence[int] | int = (64, 64),
                 context: int = 0, clamp: str | None = "atan", clamp_value: float = 2.0,
                 net: str = "mlp", image: bool = False):
        super().__init__()
        if features < 2:
            raise ValueError(f"features must be at least 2 for a coupling layer, got {features}")
        if mask is None:
            mask = torch.arange(features) < features // 2
            if swap:
                mask = ~mask
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (features,):
            raise ValueError(f"mask must have shape ({features},), got {tuple(mask.shape)}")
        n_a = int(mask.sum())
        n_b = features - n_a
        if n_a == 0 or n_b == 0:
            raise ValueError("mask must keep and transform at least one feature each")
        # Validate the clamp once (the op checks again at every call).
        if clamp not in CLAMPS:
            raise ValueError(f"clamp must be one of [None, 'atan', 'tanh', 'sigmoid'], got {clamp!r}")
        if not (isinstance(clamp_value, (int, float)) and math.isfinite(clamp_value) and clamp_value > 0):
            raise ValueError(f"clamp_value must be positive and finite, got {clamp_value}")
        if context < 0:
            raise ValueError(f"context must be non-negative, got {context}")
        self.features, self.context, self.image = features, int(context), bool(image)
        self.clamp, self.clamp_value = clamp, float(clamp_value)
        idx_a = mask.nonzero().squeeze(-1)
        idx_b = (~mask).nonzero().squeeze(-1)
        # Contiguous halves are sliced (zero-copy); other masks gather and scatter.
        self._slices = None
        if torch.equal(idx_a, torch.arange(n_a)):
            self._slices = (slice(0, n_a), slice(n_a, features), False)
        elif torch.equal(idx_b, torch.arange(n_b)):
            self._slices = (slice(n_b, features), slice(0, n_b), True)
        self.register_buffer("mask", mask)
        self.register_buffer("idx_a", idx_a)
        self.register_buffer("idx_b", idx_b)
        self.register_buffer("perm_inv", torch.argsort(torch.cat([idx_a, idx_b])))
        self.n_a, self.n_b = n_a, n_b
        if conditioner is None:
            if image:
                width = hidden if isinstance(hidden, int) else hidden[0]
                conditioner = ConvNet(n_a + context, 2 * n_b, width)
            elif net == "mlp":
                conditioner = MLP(n_a + context, 2 * n_b, (hidden,) if isinstance(hidden, int) else hidden)
            elif net == "resnet":
                width = hidden if isinstance(hidden, int) else hidden[0]
                conditioner = ResNet(n_a + context, 2 * n_b, width)
            else:
                raise ValueError(f"net must be 'mlp' or 'resnet', got {net!r}")
        self.conditioner = conditioner

    def _split(self, x):
        if self._slices is not None:
            sa, sb, _ = self._slices
            return x[:, sa], x[:, sb]
        return x.index_select(1, self.idx_a), x.index_select(1, self.idx_b)

    def _merge(self, a, b):
        if self._slices is not None:
            return torch.cat([b, a] if self._slices[2] else [a, b], 1)
        return torch.cat([a, b], 1).index_select(1, self.perm_inv)

    def _params(self, a, context):
        h = a
        if self.context:
            if context is None:
                raise ValueError(f"context is required: this layer has {self.context} context features")
            if context.dim() != 2 or context.shape[1] != self.context:
                raise ValueError(
                    f"context must have shape (batch, {self.context}), got {tuple(context.shape)}")
            if context.shape[0] != a.shape[0]:
                raise ValueError(
                    f"context has {context.shape[0]} rows but the input has batch {a.shape[0]}")
            c = context.to(a.dtype)
            if self.image:
                c = c[:, :, None, None].expand(-1, -1, *a.shape[2:])
            h = torch.cat([a, c], 1)
        p = self.conditioner(h)
        return p[:, : self.n_b], p[:, self.n_b:]

    def _couple(self, x, context, inverse):
        if x.dim() < 2 or x.shape[1] != self.features:
            raise ValueError(f"x must have {self.features} features in dimension 1, got shape {tuple(x.shape)}")
        a, b = self._split(x)
        shift, log_scale = self._params(a, context)
        yb, ladj = affine_coupling(b, shift, log_scale, clamp=self.clamp, clamp_value=self.clamp_value,
                                   inverse=inverse)
        return self._merge(a, yb), ladj

    def forward(self, x, context=None):
        return self._couple(x, context, False)

    def inverse(self, y, context=None):
        return self._couple(y, context, True)


# ---- normalisation and linear maps ----------------------------------------------------------

def _spatial(x: torch.Tensor) -> int:
    n = 1
    for d in x.shape[2:]:
        n *= d
    return n


def _per_feature(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return p.reshape((1, -1) + (1,) * (x.dim() - 2))


class ActNorm(Transform):
    """Per-feature (per-channel) affine map ``y = (x - loc) * exp(-log_scale)`` with data-dependent
    initialisation (Glow): the first batch seen in training mode sets ``loc`` to its mean and
    ``log_scale`` to the log of its standard deviation, so that the output is standardised.

    Args:
        features: size of dimension 1.
        eps: added to the standard deviation at initialisation.

    Example:
        >>> import torch
        >>> an = ActNorm(2)
        >>> z, _ = an(torch.randn(100, 2) * 3 + 1)
        >>> bool(z.mean(0).abs().max() < 1e-5)
        True
    """

    def __init__(self, features: int, eps: float = 1e-6):
        super().__init__()
        self.features, self.eps = features, eps
        self.loc = nn.Parameter(torch.zeros(features))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _init(self, x):
        dims = [0, *list(range(2, x.dim()))]
        self.loc.copy_(x.mean(dims))
        self.log_scale.copy_(torch.log(x.std(dims, unbiased=False) + self.eps))
        self.initialized.fill_(True)

    def _check(self, x):
        if x.dim() < 2 or x.shape[1] != self.features:
            raise ValueError(f"x must have {self.features} features in dimension 1, got shape {tuple(x.shape)}")

    def forward(self, x, context=None):
        self._check(x)
        if not bool(self.initialized) and self.training and x.shape[0] > 1:
            self._init(x)
        y = (x - _per_feature(self.loc, x)) * torch.exp(-_per_feature(self.log_scale, x))
        return y, (-self.log_scale.sum() * _spatial(x)).expand(x.shape[0])

    def inverse(self, y, context=None):
        self._check(y)
        x = y * torch.exp(_per_feature(self.log_scale, y)) + _per_feature(self.loc, y)
        return x, (self.log_scale.sum() * _spatial(y)).expand(y.shape[0])


class Permutation(Transform):
    """Fixed permutation of dimension 1 (``log|det| = 0``); random from ``seed`` by default."""

    def __init__(self, features: int, perm: torch.Tensor | None = None, seed: int = 0):
        super().__init__()
        if perm is None:
            g = torch.Generator().manual_seed(seed)
            perm = torch.randperm(features, generator=g)
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.shape != (features,) or not torch.equal(perm.sort().values, torch.arange(features)):
            raise ValueError(f"perm must be a permutation of range({features})")
        self.features = features
        self.register_buffer("perm", perm)
        self.register_buffer("perm_inv", torch.argsort(perm))

    def forward(self, x, context=None):
        return x.index_select(1, self.perm), _zeros_like_batch(x)

    def inverse(self, y, context=None):
        return y.index_select(1, self.perm_inv), _zeros_like_batch(y)


class Reverse(Transform):
    """Reverses dimension 1 (``log|det| = 0``)."""

    def forward(self, x, context=None):
        return x.flip(1), _zeros_like_batch(x)

    def inverse(self, y, context=None):
        return y.flip(1), _zeros_like_batch(y)


class LULinear(Transform):
    """Invertible linear map ``y = W x + b`` with ``W = P L U`` (Glow's LU parametrisation):
    ``P`` a fixed permutation, ``L`` unit lower triangular, ``U`` upper triangular with diagonal
    ``sign * exp(log_diag)``; ``log|det W| = sum(log_diag)``. Starts at a random rotation.

    Example:
        >>> import torch
        >>> lin = LULinear(3)
        >>> x = torch.randn(4, 3, dtype=torch.float64)
        >>> y, ladj = lin.double()(x)
        >>> bool(torch.allclose(lin.inverse(y)[0], x))
        True
    """

    def __init__(self, features: int, bias: bool = True, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        w = torch.linalg.qr(torch.randn(features, features, generator=g, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w)
        diag = torch.diagonal(upper)
        self.features = features
        self.register_buffer("p", p.float())
        self.register_buffer("sign", torch.sign(diag).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(features, features), -1))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_diag = nn.Parameter(torch.log(diag.abs()).float())
        self.bias = nn.Parameter(torch.zeros(features)) if bias else None

    def _factors(self):
        eye = torch.eye(self.features, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_diag))
        return lower, upper

    def weight(self) -> torch.Tensor:
        """The (features, features) matrix ``W``."""
        lower, upper = self._factors()
        return self.p @ lower @ upper

    def _lin(self, x, w):
        return x @ w.T

    def _ladj(self, x):
        return self.log_diag.sum().expand(x.shape[0])

    def forward(self, x, context=None):
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"x must have shape (batch, {self.features}), got {tuple(x.shape)}")
        y = self._lin(x, self.weight())
        if self.bias is not None:
            y = y + self.bias
        return y, self._ladj(x)

    def _solve(self, y):
        # y (N, F) rows; W x = y  =>  x = U^-1 L^-1 P^T y
        lower, upper = self._factors()
        r = (y @ self.p)  # (P^T y^T)^T
        r = torch.linalg.solve_triangular(lower, r.T, upper=False, unitriangular=True)
        r = torch.linalg.solve_triangular(upper, r, upper=True)
        return r.T

    def inverse(self, y, context=None):
        if y.dim() != 2 or y.shape[1] != self.features:
            raise ValueError(f"y must have shape (batch, {self.features}), got {tuple(y.shape)}")
        if self.bias is not None:
            y = y - self.bias
        return self._solve(y), -self._ladj(y)


class Invertible1x1Conv(LULinear):
    """Glow's invertible 1x1 convolution with the LU parametrisation: :class:`LULinear` applied
    to the channels of every pixel; ``log|det| = height * width * sum(log_diag)``.

    Example:
        >>> import torch
        >>> conv = Invertible1x1Conv(4)
        >>> z, ladj = conv(torch.randn(2, 4, 3, 3))
        >>> z.shape
        torch.Size([2, 4, 3, 3])
    """

    def __init__(self, channels: int, seed: int = 0):
        super().__init__(channels, bias=False, seed=seed)

    def _check(self, x, name):
        if x.dim() != 4 or x.shape[1] != self.features:
            raise ValueError(
                f"{name} must have shape (batch, {self.features}, height, width), got {tuple(x.shape)}")

    def forward(self, x, context=None):
        self._check(x, "x")
        y = torch.nn.functional.conv2d(x, self.weight()[:, :, None, None])
        return y, (self.log_diag.sum() * _spatial(x)).expand(x.shape[0])

    def inverse(self, y, context=None):
        self._check(y, "y")
        b, c, h, w = y.shape
        flat = y.permute(0, 2, 3, 1).reshape(-1, c)
        x = self._solve(flat).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return x, (-self.log_diag.sum() * _spatial(y)).expand(b)


class Squeeze(Transform):
    """Space-to-depth: (B, C, H, W) -> (B, 4C, H/2, W/2) (``log|det| = 0``), as in RealNVP/Glow."""

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"x must have even height and width, got {h}x{w}")
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, 4 * c, h // 2, w // 2), _zeros_like_batch(x)

    def inverse(self, y, context=None):
        b, c4, h, w = y.shape
        c = c4 // 4
        y = y.reshape(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(b, c, 2 * h, 2 * w), _zeros_like_batch(y)


class LogitTransform(Transform):
    """Maps data in (0, 1) to logits: ``y = logit(alpha + (1 - 2 alpha) x)`` (RealNVP's
    preprocessing) and counts its Jacobian: ``log|det| = sum(log(1 - 2 alpha) - log p - log(1 - p))``
    with ``p = alpha + (1 - 2 alpha) x``.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x, context=None):
        p = self.alpha + (1 - 2 * self.alpha) * x
        y = torch.log(p) - torch.log1p(-p)
        ladj = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return y, ladj

    def inverse(self, y, context=None):
        p = torch.sigmoid(y)
        x = (p - self.alpha) / (1 - 2 * self.alpha)
        ladj = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return x, -ladj
