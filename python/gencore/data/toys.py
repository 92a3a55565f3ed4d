"""2-D toy distributions made by code, following FFJORD's ``lib/toy_data.py`` definitions
(Grathwohl et al., 2019), deterministic given a seed (``numpy.random.default_rng(seed)``, no
global state), with their exact log-densities where they have a closed form or a 1-D integral,
so that a model's held-out NLL can be put next to the entropy floor.

Definitions (as in FFJORD; ``N`` standard normal, ``U`` uniform):

* ``"moons"``: scikit-learn's two moons with noise 0.1, then ``2 x + (-1, -0.2)``. The curve
  parameter is uniform on [0, pi] here (scikit-learn spaces it evenly; same distribution as n grows).
* ``"8gaussians"``: centres ``4 (cos k pi/4, sin k pi/4)``, noise ``0.5 N``, all divided by 1.414.
* ``"checkerboard"``: ``x1 ~ U(-2, 2)``, ``x2 ~ U(0, 1) - 2 B + (floor(x1) mod 2)`` with ``B`` a fair
  bit, times 2: uniform on 8 squares of area 4 (entropy ``ln 32``).
* ``"swissroll"``: scikit-learn's swiss roll with noise 1.0, coordinates (x, z), divided by 5.
* ``"circles"``: scikit-learn's circles (factor 0.5, noise 0.08), times 3.
* ``"2spirals"``, ``"pinwheel"``: as in FFJORD (no closed-form density here).
* ``"25gaussians"``: a 5x5 grid of Gaussians with centres ``2 (i, j)``, ``i, j in -2..2``,
  standard deviation 0.1 (a common mode-coverage benchmark; not in FFJORD's file).

:func:`gaussian_mixture` draws any isotropic Gaussian mixture.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["TOYS", "gaussian_mixture", "make_toy", "toy_entropy", "toy_log_prob"]

TOYS = ("moons", "8gaussians", "checkerboard", "swissroll", "circles", "2spirals", "pinwheel", "25gaussians")

_S2 = 1.0 / math.sqrt(2.0)
_EIGHT = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (_S2, _S2), (_S2, -_S2), (-_S2, _S2), (-_S2, -_S2)])
_GRID = np.array([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)])


def _check_name(name: object) -> str:
    if name not in TOYS:
        raise ValueError(f"name must be one of {list(TOYS)}, got {name!r}")
    return name  # type: ignore[return-value]


def _check_n(n: object) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n)


def _mixture(rng: np.random.Generator, n: int, means: np.ndarray, std: float,
             weights: np.ndarray | None = None) -> np.ndarray:
    idx = rng.choice(len(means), size=n, p=weights)
    return means[idx] + std * rng.standard_normal((n, 2))


def gaussian_mixture(n: int, means, stds, weights=None, *, seed: int = 0,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Samples (n, d) from ``sum_k w_k N(means[k], stds[k]^2 I)``.

    Args:
        n: number of samples.
        means: (K, d) component means.
        stds: scalar or (K,) standard deviations.
        weights: (K,) probabilities (uniform by default).
        seed: seed of ``numpy.random.default_rng``.

    Example:
        >>> x = gaussian_mixture(4, [[0.0, 0.0], [5.0, 5.0]], 0.1, seed=0)
        >>> tuple(x.shape)
        (4, 2)
    """
    n = _check_n(n)
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"means must have shape (K, d), got {means.shape}")
    stds = np.broadcast_to(np.asarray(stds, dtype=np.float64), (len(means),))
    if not np.all(stds > 0):
        raise ValueError("stds must be positive")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(means),) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ValueError("weights must be K non-negative numbers summing to 1")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(means), size=n, p=weights)
    x = means[idx] + stds[idx, None] * rng.standard_normal((n, means.shape[1]))
    return torch.from_numpy(x).to(dtype)


def _moons(rng, n):
    n_out = n // 2
    t = rng.uniform(0.0, math.pi, n)
    outer = np.stack([np.cos(t), np.sin(t)], 1)
    inner = np.stack([1 - np.cos(t), 1 - np.sin(t) - 0.5], 1)
    x = np.where((np.arange(n) < n_out)[:, None], outer, inner)
    x = x + 0.1 * rng.standard_normal((n, 2))
    x = x[rng.permutation(n)]
    return 2 * x + np.array([-1.0, -0.2])


def _checkerboard(rng, n):
    x1 = rng.uniform(0, 1, n) * 4 - 2
    x2_ = rng.uniform(0, 1, n) - rng.integers(0, 2, n) * 2
    x2 = x2_ + (np.floor(x1) % 2)
    return np.stack([x1, x2], 1) * 2


def _swissroll(rng, n):
    t = 1.5 * math.pi * (1 + 2 * rng.uniform(0, 1, n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) + 1.0 * rng.standard_normal((n, 2))
    return x / 5


def _circles(rng, n):
    n_out = n // 2
    t = rng.uniform(0, 2 * math.pi, n)
    r = np.where(np.arange(n) < n_out, 1.0, 0.5)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1) + 0.08 * rng.standard_normal((n, 2))
    return 3 * x[rng.permutation(n)]


def _spirals(rng, n):
    h = n // 2
    m = np.sqrt(rng.uniform(0, 1, (h, 1))) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(m) * m + rng.uniform(0, 1, (h, 1)) * 0.5
    d1y = np.sin(m) * m + rng.uniform(0, 1, (h, 1)) * 0.5
    x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
    x = x + rng.standard_normal(x.shape) * 0.1
    if len(x) < n:  # odd n: one more point from the first spiral's definition
        extra = _spirals(rng, 2)[:1]
        x = np.vstack([x, extra])
    return x[rng.permutation(n)]


def _pinwheel(rng, n):
    radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = np.arange(n) % num_classes
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rotations = np.reshape(rotations.T, (-1, 2, 2))
    return 2 * rng.permutation(np.einsum("ti,tij->tj", features, rotations))


def make_toy(name: str, n: int, seed: int = 0, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` samples (n, 2) of a named 2-D toy distribution (see the module docstring).

    Args:
        name: one of :data:`TOYS`.
        n: number of samples.
        seed: seed of ``numpy.random.default_rng``; the same (name, n, seed) gives the same data.
        dtype: floating dtype of the result.

    Example:
        >>> from gencore.data.toys import make_toy
        >>> x = make_toy("checkerboard", 1000, seed=0)
        >>> tuple(x.shape), bool(x.abs().max() <= 4)
        ((1000, 2), True)
    """
    name = _check_name(name)
    n = _check_n(n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    if n == 0:
        return torch.zeros(0, 2, dtype=dtype)
    if name == "moons":
        x = _moons(rng, n)
    elif name == "8gaussians":
        x = _mixture(rng, n, 4 * _EIGHT, 0.5) / 1.414
    elif name == "checkerboard":
        x = _checkerboard(rng, n)
    elif name == "swissroll":
        x = _swissroll(rng, n)
    elif name == "circles":
        x = _circles(rng, n)
    elif name == "2spirals":
        x = _spirals(rng, n)
    elif name == "pinwheel":
        x = _pinwheel(rng, n)
    else:  # 25gaussians
        x = _mixture(rng, n, _GRID, 0.1)
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


# ---- exact densities ------------------------------------------------------------------------

def _normal_curve_log_prob(x: torch.Tensor, curves: list[torch.Tensor], weights: list[float],
                           std: float) -> torch.Tensor:
    """log of sum_k w_k * mean_t N(x; curve_k(t), std^2 I) (uniform t: midpoint quadrature)."""
    terms = []
    for c, w in zip(curves, weights):
        d2 = torch.cdist(x, c).square()  # (n, m)
        lp = -d2 / (2 * std * std) - math.log(2 * math.pi * std * std)
        terms.append(torch.logsumexp(lp, 1) - math.log(c.shape[0]) + math.log(w))
    return torch.logsumexp(torch.stack(terms, 1), 1)


def toy_log_prob(name: str, x: torch.Tensor, *, quadrature: int = 1024) -> torch.Tensor:
    """Exact log-density of a toy distribution at ``x`` (n, 2), in float64.

    Mixtures and the checkerboard are closed forms; moons, circles and the swiss roll integrate
    a Gaussian along their curve with the midpoint rule over ``quadrature`` nodes (the integrand
    is smooth and periodic-like, so the error is far below 1e-6 nats at 1024 nodes: node spacing is under 0.04
    standard deviations).
    ``"2spirals"`` and ``"pinwheel"`` have no density here (ValueError).
    """
    name = _check_name(name)
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {tuple(x.shape)}")
    m = quadrature
    mid = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    if name == "checkerboard":
        u = x / 2
        inside = (u[:, 0] >= -2) & (u[:, 0] < 2) & (u[:, 1] >= -2) & (u[:, 1] < 2)
        a = torch.floor(u[:, 0]) % 2
        y = u[:, 1] - a  # in [0, 1) or [-2, -1)
        ok = inside & (((y >= 0) & (y < 1)) | ((y >= -2) & (y < -1)))
        return torch.where(ok, torch.full_like(u[:, 0], -math.log(32.0)), torch.full_like(u[:, 0], -math.inf))
    if name in ("8gaussians", "25gaussians"):
        means = torch.from_numpy(4 * _EIGHT / 1.414 if name == "8gaussians" else _GRID)
        std = 0.5 / 1.414 if name == "8gaussians" else 0.1
        return _normal_curve_log_prob(x, [means], [1.0], std)
    if name == "moons":
        t = math.pi * mid
        outer = torch.stack([torch.cos(t), torch.sin(t)], 1) * 2 + torch.tensor([-1.0, -0.2], dtype=torch.float64)
        inner = torch.stack([1 - torch.cos(t), 1 - torch.sin(t) - 0.5], 1) * 2 + torch.tensor(
            [-1.0, -0.2], dtype=torch.float64)
        return _normal_curve_log_prob(x, [outer, inner], [0.5, 0.5], 0.2)
    if name == "circles":
        t = 2 * math.pi * mid
        unit = torch.stack([torch.cos(t), torch.sin(t)], 1)
        return _normal_curve_log_prob(x, [3 * unit, 1.5 * unit], [0.5, 0.5], 0.24)
    if name == "swissroll":
        t = 1.5 * math.pi * (1 + 2 * mid)
        curve = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 5
        return _normal_curve_log_prob(x, [curve], [1.0], 0.2)
    raise ValueError(f"name {name!r} has no closed-form density here")


def toy_entropy(name: str, n: int = 20000, seed: int = 12345) -> tuple[float, float]:
    """Differential entropy ``H = -E log p(x)`` in nats (the NLL floor of a perfect model).

    Exact for ``"checkerboard"`` (``ln 32``); otherwise a Monte Carlo mean over ``n`` fresh
    samples of the exact log-density.

    Returns:
        ``(entropy, standard_error)``.

    Example:
        >>> h, se = toy_entropy("checkerboard")
        >>> round(h, 3), se
        (3.466, 0.0)
    """
    name = _check_name(name)
    if name == "checkerboard":
        return math.log(32.0), 0.0
    x = make_toy(name, n, seed=seed, dtype=torch.float64)
    lp = torch.cat([toy_log_prob(name, c) for c in x.split(2048)])
    return float(-lp.mean()), float(lp.std() / math.sqrt(n))
