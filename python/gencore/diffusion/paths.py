"""Noising paths x = alpha x_0 + sigma eps and what a model's output means on them.

A :class:`Prediction` is what the network outputs (``epsilon``, ``sample`` (x_0),
``v_prediction``, ``flow`` velocity); given the path's (alpha, sigma) at the current noise level
it turns into linear coefficients for x_0 and eps in terms of the sample ``x`` and the output ``m``.
A :class:`Path` maps a solver's noise variable to (alpha, sigma):

- :data:`VP` (variance preserving): Karras sigma s, alpha = 1 / sqrt(1 + s^2), sigma = s alpha
  (diffusers' DDPM sample; ``VP.from_alpha_prod`` takes abar instead);
- :data:`VE` (variance exploding, k-diffusion): alpha = 1, sigma = s;
- :data:`FLOW` (rectified flow): alpha = 1 - s, sigma = s.

Every coefficient is a Python float or a float64 tensor of shape (batch,).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "EPSILON",
    "FLOW",
    "FLOW_VELOCITY",
    "PATHS",
    "PREDICTIONS",
    "SAMPLE",
    "VE",
    "VP",
    "V_PREDICTION",
    "Path",
    "Prediction",
    "path",
    "prediction",
]


def _t(v) -> bool:
    return isinstance(v, torch.Tensor)


def sqrt(v):
    return v.sqrt() if _t(v) else math.sqrt(v)


def log(v):
    return v.log() if _t(v) else math.log(v)


def expm1(v):
    if _t(v):
        return torch.expm1(v)
    try:
        return math.expm1(v)
    except OverflowError:  # past about 709.78, where torch gives inf
        return math.inf


def exp(v):
    if _t(v):
        return torch.exp(v)
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def max0(v):
    return v.clamp_min(0.0) if _t(v) else max(v, 0.0)


class Prediction:
    """What a model predicts, as linear maps of (x, m) on x = alpha x_0 + sigma eps."""

    name: str = ""

    def x0(self, alpha, sigma):
        """(cx, cm) with x_0 = cx x + cm m."""
        raise NotImplementedError

    def eps(self, alpha, sigma):
        """(cx, cm) with eps = cx x + cm m (from the unclipped x_0)."""
        cx, cm = self.x0(alpha, sigma)
        return (1.0 - alpha * cx) / sigma, -alpha * cm / sigma

    def output(self, alpha, sigma):
        """(c0, ce) with the model output m = c0 x_0 + ce eps: the regression target of training,
        and the inverse of :meth:`x0` and :meth:`eps`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Prediction({self.name!r})"


class _Epsilon(Prediction):
    """The noise eps (Ho et al. 2020): x_0 = (x - sigma m) / alpha."""

    name = "epsilon"

    def x0(self, alpha, sigma):
        return 1.0 / alpha, -sigma / alpha

    def eps(self, alpha, sigma):
        return 0.0, 1.0

    def output(self, alpha, sigma):
        return 0.0, 1.0


class _Sample(Prediction):
    """x_0 itself."""

    name = "sample"

    def x0(self, alpha, sigma):
        return 0.0, 1.0

    def output(self, alpha, sigma):
        return 1.0, 0.0


class _V(Prediction):
    """v = alpha eps - sigma x_0 on the variance-preserving sample (Salimans & Ho 2022).

    On a scaled path (alpha^2 + sigma^2 = n2 != 1) the sample is x / sqrt(n2): x_0 = (alpha /
    n2) x - (sigma / sqrt(n2)) m and eps = (sigma / n2) x + (alpha / sqrt(n2)) m, with no division
    by alpha, so a zero-terminal-SNR step (alpha = 0) gives x_0 = -v as diffusers does.
    """

    name = "v_prediction"

    def x0(self, alpha, sigma):
        n2 = alpha * alpha + sigma * sigma
        return alpha / n2, -sigma / sqrt(n2)

    def eps(self, alpha, sigma):
        n2 = alpha * alpha + sigma * sigma
        return sigma / n2, alpha / sqrt(n2)

    def output(self, alpha, sigma):
        n = sqrt(alpha * alpha + sigma * sigma)
        return -sigma / n, alpha / n


class _Flow(Prediction):
    """The rectified-flow velocity u = eps - x_0 (Liu et al. 2023): x_0 = (x - sigma u) / (alpha + sigma)."""

    name = "flow"

    def x0(self, alpha, sigma):
        return 1.0 / (alpha + sigma), -sigma / (alpha + sigma)

    def output(self, alpha, sigma):
        return -1.0, 1.0


EPSILON, SAMPLE, V_PREDICTION, FLOW_VELOCITY = _Epsilon(), _Sample(), _V(), _Flow()
PREDICTIONS = {p.name: p for p in (EPSILON, V_PREDICTION, SAMPLE, FLOW_VELOCITY)}


def prediction(name: str) -> Prediction:
    """The :class:`Prediction` called ``name`` (``ValueError`` naming ``prediction_type`` otherwise)."""
    try:
        return PREDICTIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"prediction_type must be one of {list(PREDICTIONS)}, got {name!r}") from None


class Path:
    """x = alpha(s) x_0 + sigma(s) eps for a solver's noise variable s."""

    name: str = ""

    def alpha_sigma(self, s):
        """(alpha, sigma) at noise level s."""
        raise NotImplementedError

    def x0(self, pred: Prediction, s):
        """(cx, cm) with x_0 = cx x + cm m at noise level s."""
        return pred.x0(*self.alpha_sigma(s))

    def add_noise(self, x0, eps, s):
        """x_s = alpha(s) x_0 + sigma(s) eps (``s`` a float or a tensor broadcastable to x_0)."""
        alpha, sigma = self.alpha_sigma(s)
        return alpha * x0 + sigma * eps

    def log_snr(self, s):
        """lambda = log(alpha / sigma), DPM-Solver's time variable."""
        alpha, sigma = self.alpha_sigma(s)
        return log(alpha) - log(sigma)

    def __repr__(self) -> str:
        return f"Path({self.name!r})"


class _VP(Path):
    name = "vp"

    def alpha_sigma(self, s):
        a = 1.0 / sqrt(s * s + 1.0)
        return a, s * a

    @staticmethod
    def from_alpha_prod(alpha_prod):
        """(alpha, sigma) = (sqrt(abar), sqrt(1 - abar)) of diffusers' alphas_cumprod."""
        return sqrt(alpha_prod), sqrt(1.0 - alpha_prod)


class _VE(Path):
    name = "ve"

    def alpha_sigma(self, s):
        return (torch.ones_like(s) if _t(s) else 1.0), s


class _FlowPath(Path):
    name = "flow"

    def alpha_sigma(self, s):
        return 1.0 - s, s


VP, VE, FLOW = _VP(), _VE(), _FlowPath()
PATHS = {p.name: p for p in (VP, VE, FLOW)}


def path(name: str) -> Path:
    """The :class:`Path` called ``name`` (``ValueError`` naming ``parameterization`` otherwise)."""
    try:
        return PATHS[name]
    except (KeyError, TypeError):
        raise ValueError(f"parameterization must be one of {list(PATHS)}, got {name!r}") from None
