"""A Gaussian mixture whose optimal denoiser is known in closed form.

With data ``x0 ~ sum_k w_k N(mu_k, diag(s_k^2))`` and the forward process
``x_t = a_t x0 + b_t eps``, the marginal of ``x_t`` given component ``k`` is
``N(a_t mu_k, diag(a_t^2 s_k^2 + b_t^2))`` and the posterior mean is

    E[x0 | x_t] = sum_k r_k(x_t) (mu_k + a_t s_k^2 / (a_t^2 s_k^2 + b_t^2) (x_t - a_t mu_k)),

with responsibilities ``r_k`` from Bayes' rule. That posterior mean is the exact minimiser of
the denoising objective, so a sampler driven by it samples the mixture up to its
discretisation error alone: no training noise hides a sampler bug. The same formula gives
the variance-preserving models (``a_t = sqrt(alpha_bar_t)``, ``b_t = sqrt(1 - alpha_bar_t)``),
the variance-exploding denoiser of k-diffusion (``a = 1``, ``b = sigma``) and the
rectified-flow velocity (``a = 1 - s``, ``b = s``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from gencore.diffusion.paths import EPSILON, SAMPLE, V_PREDICTION, prediction
from gencore.diffusion.schedules import make_schedule
from gencore.rng import rand, randn

__all__ = ["GaussianMixture", "GaussianMixtureDenoiser"]

_PREDICTIONS = tuple(p.name for p in (EPSILON, V_PREDICTION, SAMPLE))


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row softmax by max-shift (torch.softmax is slow on tiny float64 tensors on some CPUs)."""
    e = (logits - logits.amax(dim=1, keepdim=True)).exp()
    return e / e.sum(dim=1, keepdim=True)


def _alphas_cumprod(schedule) -> torch.Tensor:
    if schedule is None:
        schedule = make_schedule("linear")
    if isinstance(schedule, torch.Tensor):
        ac = schedule
    elif hasattr(schedule, "alphas_cumprod"):
        ac = schedule.alphas_cumprod
    else:
        raise TypeError("schedule must be a schedule from make_schedule or a tensor of alphas_cumprod, "
                        f"got {type(schedule).__name__}")
    ac = torch.as_tensor(ac).detach().to("cpu", torch.float64)
    if ac.dim() != 1 or ac.numel() < 2:
        raise ValueError(f"schedule's alphas_cumprod must be 1-D with at least 2 entries, got {tuple(ac.shape)}")
    return ac


class GaussianMixture:
    """A diagonal Gaussian mixture ``sum_k w_k N(mu_k, diag(s_k^2))`` in ``D`` dimensions.

    Args:
        means: (K, D) component means.
        stds: (K,) isotropic or (K, D) diagonal standard deviations, all positive.
        weights: (K,) non-negative mixture weights (normalised here).

    Example:
        >>> import torch
        >>> gm = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), torch.tensor([0.5, 0.5]),
        ...                      torch.tensor([0.3, 0.7]))
        >>> gm.sample(4, seed=0).shape
        torch.Size([4, 2])
    """

    def __init__(self, means, stds, weights) -> None:
        means = torch.as_tensor(means).detach().to("cpu", torch.float64)
        stds = torch.as_tensor(stds).detach().to("cpu", torch.float64)
        weights = torch.as_tensor(weights).detach().to("cpu", torch.float64)
        if means.dim() != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
        k, d = means.shape
        if stds.dim() == 1 and stds.shape[0] == k:
            stds = stds[:, None].expand(k, d).clone()
        if stds.shape != (k, d):
            raise ValueError(f"stds must have shape ({k},) or ({k}, {d}), got {tuple(stds.shape)}")
        if not bool((stds > 0).all()):
            raise ValueError("stds must be positive")
        if weights.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(weights.shape)}")
        if not bool((weights >= 0).all()) or not float(weights.sum()) > 0:
            raise ValueError("weights must be non-negative with a positive sum")
        if not (torch.isfinite(means).all() and torch.isfinite(stds).all() and torch.isfinite(weights).all()):
            raise ValueError("means, stds and weights must be finite")
        self.means = means
        self.stds = stds
        self.weights = weights / weights.sum()

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, *, seed: int = 0, sample_offset: int = 0, return_labels: bool = False,
               dtype: torch.dtype = torch.float32, device=None):
        """Exact samples under the noise contract (stream 0: component, stream 1: Gaussian).

        Args:
            n: number of samples.
            seed: noise seed.
            sample_offset: global index of the first sample.
            return_labels: also return the (n,) component index of each sample.

        Returns:
            (n, D) samples, and (n,) int64 labels when ``return_labels``.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        u = rand(n, 1, seed=seed, stream=0, sample_offset=sample_offset, dtype=torch.float64)[:, 0]
        cdf = torch.cumsum(self.weights, 0)
        labels = torch.searchsorted(cdf, u.contiguous(), right=True).clamp_(max=self.num_components - 1)
        z = randn(n, self.dim, seed=seed, stream=1, sample_offset=sample_offset, dtype=torch.float64)
        x = self.means[labels] + self.stds[labels] * z
        x = x.to(device=device, dtype=dtype)
        return (x, labels.to(device)) if return_labels else x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) log-density of (n, D) points."""
        logits = self._log_joint(x.reshape(x.shape[0], -1).double(), 1.0, 0.0)
        return torch.logsumexp(logits, dim=1).to(x.dtype)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) index of the most probable component of each (n, D) point."""
        return self._log_joint(x.reshape(x.shape[0], -1).double(), 1.0, 0.0).argmax(dim=1)

    # -- the closed form -------------------------------------------------------------------

    def _log_joint(self, x: torch.Tensor, a, b, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(n, K) log w_k + log N(x; a mu_k, a^2 s_k^2 + b^2); a, b scalars or (n, 1)."""
        means, stds = self.means.to(x.device), self.stds.to(x.device)
        a = torch.as_tensor(a, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        b = torch.as_tensor(b, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        var = (a * stds) ** 2 + b**2  # (n|1, K, D)
        diff = x[:, None, :] - a * means  # (n, K, D)
        logn = -0.5 * ((diff**2 / var) + torch.log(2 * math.pi * var)).sum(-1)
        out = torch.log(self.weights.to(x.device)) + logn
        if labels is not None:
            keep = labels >= 0
            mask = torch.full_like(out, -math.inf)
            mask.scatter_(1, labels.clamp(min=0)[:, None], 0.0)
            out = out + torch.where(keep[:, None], mask, torch.zeros_like(mask))
        return out

    def posterior_mean(self, x: torch.Tensor, a, b, labels: torch.Tensor | None = None) -> torch.Tensor:
        """E[x0 | x_t = x] for ``x_t = a x0 + b eps``.

        Args:
            x: (n, ...) noisy points with prod(...) = D.
            a, b: scalars or (n,) tensors, the signal and noise scales.
            labels: optional (n,) component index to condition on; -1 means unconditional.

        Returns:
            (n, ...) posterior means in float64.
        """
        shape = x.shape
        xf = x.reshape(shape[0], -1).double()
        if xf.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} elements per sample, got {xf.shape[1]}")
        means, stds = self.means.to(x.device), self.stds.to(x.device)
        a = torch.as_tensor(a, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        b = torch.as_tensor(b, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
        r = _softmax(self._log_joint(xf, a, b, labels))  # (n, K)
        var = (a * stds) ** 2 + b**2
        x0k = means + a * stds**2 / var * (xf[:, None, :] - a * means)  # (n, K, D)
        return (r[:, :, None] * x0k).sum(1).reshape(shape)

    def denoiser(self, schedule=None, prediction_type: str = "epsilon") -> GaussianMixtureDenoiser:
        """The exact optimal ``model(x_t, t, cond) -> prediction`` under a discrete schedule.

        Args:
            schedule: a schedule from :func:`gencore.diffusion.make_schedule` (or a 1-D tensor of
                ``alphas_cumprod``); default ``make_schedule("linear")``.
            prediction_type: ``epsilon``, ``v_prediction`` or ``sample``.
        """
        return GaussianMixtureDenoiser(self, _alphas_cumprod(schedule), prediction_type)

    def classifier(self, schedule=None) -> Callable[..., torch.Tensor]:
        """The exact noisy-data classifier ``classifier(x_t, t) -> (batch, K)`` logits of
        ``p(component | x_t)`` under a discrete schedule (for classifier guidance)."""
        den = self.denoiser(schedule)

        def classifier(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t = torch.as_tensor(t).reshape(-1).expand(x.shape[0])
            a, b = den.coefficients(t)
            xf = x.reshape(x.shape[0], -1).double()
            logits = self._log_joint(xf, a.to(x.device), b.to(x.device))
            return (logits - torch.logsumexp(logits, dim=1, keepdim=True)).to(x.dtype)

        return classifier

    def sigma_denoiser(self) -> Callable[..., torch.Tensor]:
        """The exact k-diffusion denoiser ``model(x, sigma, cond=None) -> E[x0 | x0 + sigma eps = x]``."""

        def model(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
            sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1).expand(x.shape[0])
            return self.posterior_mean(x, torch.ones_like(sigma), sigma, cond).to(x.dtype)

        return model

    def velocity_field(self) -> Callable[..., torch.Tensor]:
        """The exact flow-matching velocity ``model(x, s, cond=None) -> E[eps - x0 | x_s = x]``
        for ``x_s = (1 - s) x0 + s eps``, ``s`` in [0, 1] (diffusers' FlowMatchEuler convention)."""

        def model(x: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
            s = torch.as_tensor(s, dtype=torch.float64, device=x.device).reshape(-1).expand(x.shape[0])
            x0 = self.posterior_mean(x, 1 - s, s, cond)
            sb = s.reshape(-1, *([1] * (x.dim() - 1)))
            eps = torch.where(sb > 0, (x.double() - (1 - sb) * x0) / sb.clamp(min=1e-300), torch.zeros_like(x0))
            return (eps - x0).to(x.dtype)

        return model


class GaussianMixtureDenoiser(torch.nn.Module):
    """Exact ``model(x_t, t, cond=None) -> prediction`` of a :class:`GaussianMixture`.

    ``t`` is a (batch,) float tensor of training timesteps. Integer timesteps use
    ``alphas_cumprod[t]`` directly; fractional ones interpolate ``log sigma`` linearly between
    the neighbouring integers (k-diffusion's ``DiscreteSchedule.t_to_sigma``).
    ``cond`` is an optional (batch,) tensor of component indices; -1 is the null label
    (the unconditional mixture), so the same model serves classifier-free guidance.
    """

    def __init__(self, mixture: GaussianMixture, alphas_cumprod: torch.Tensor, prediction_type: str) -> None:
        super().__init__()
        if prediction_type not in _PREDICTIONS:
            raise ValueError(f"prediction_type must be one of {_PREDICTIONS}, got {prediction_type!r}")
        self.mixture = mixture
        self.prediction_type = prediction_type
        self.register_buffer("alphas_cumprod", alphas_cumprod, persistent=False)
        self.calls = 0

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) = (sqrt(alpha_bar), sqrt(1 - alpha_bar)) at (batch,) float timesteps, float64."""
        ac = self.alphas_cumprod
        n = ac.numel()
        t = torch.as_tensor(t).detach().to("cpu", torch.float64).reshape(-1)
        if bool(((t < 0) | (t > n - 1)).any()):
            raise ValueError(f"t must lie in [0, {n - 1}], got {t.min().item()}..{t.max().item()}")
        low = t.floor().long().clamp(max=n - 1)
        w = t - low
        high = (low + 1).clamp(max=n - 1)
        frac = w > 0
        a_int = ac[low].sqrt()
        b_int = (1 - ac[low]).sqrt()
        log_sigma = torch.log(((1 - ac) / ac).sqrt())
        ls = (1 - w) * log_sigma[low] + w * log_sigma[high]
        sig = ls.exp()
        a_frac = 1 / torch.sqrt(1 + sig**2)
        b_frac = sig * a_frac
        a = torch.where(frac, a_frac, a_int)
        b = torch.where(frac, b_frac, b_int)
        return a, b

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        t = torch.as_tensor(t).reshape(-1)
        if t.numel() == 1 and x.shape[0] != 1:
            t = t.expand(x.shape[0])
        a, b = self.coefficients(t)
        a, b = a.to(x.device), b.to(x.device)
        if cond is not None:
            cond = torch.as_tensor(cond, device=x.device).reshape(-1).long()
        x0 = self.mixture.posterior_mean(x, a, b, cond)
        ab = a.reshape(-1, *([1] * (x.dim() - 1)))
        bb = b.reshape(-1, *([1] * (x.dim() - 1)))
        xd = x.double()
        eps = torch.where(bb > 0, (xd - ab * x0) / bb.clamp(min=1e-300), torch.zeros_like(x0))
        c0, ce = prediction(self.prediction_type).output(ab, bb)
        return (c0 * x0 + ce * eps).to(x.dtype)
