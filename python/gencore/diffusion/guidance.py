"""Classifier guidance: steer a diffusion model with the gradient of a noisy-data classifier.

The guided score is ``grad log p(x_t) + s * grad log p(y | x_t)`` (Dhariwal & Nichol, 2021,
"Diffusion Models Beat GANs on Image Synthesis", Algorithm 2 / eq. 14). With the score
``-eps / b_t`` of ``x_t = a_t x0 + b_t eps`` the guided predictions are

    eps' = eps - b_t s g,     x0' = x0 + (b_t^2 / a_t) s g,     v' = v - (b_t / a_t) s g,

with ``g = grad_x log p(y | x_t)`` taken by autograd on the user's classifier. In the
variance-exploding (k-diffusion) parameterisation ``x = x0 + sigma eps`` the guided denoiser
is ``D' = D + sigma^2 s g``. With ``s = 1`` and the exact classifier, the guided model is the
exact class-conditional model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gencore.diffusion.gmm import _alphas_cumprod
from gencore.diffusion.paths import EPSILON, SAMPLE, V_PREDICTION, prediction

__all__ = ["classifier_guided_denoiser", "classifier_guided_model", "classifier_log_prob_grad"]

_PREDICTIONS = tuple(p.name for p in (EPSILON, V_PREDICTION, SAMPLE))


def classifier_log_prob_grad(classifier: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor,
                             y: torch.Tensor) -> torch.Tensor:
    """``grad_x log p(y | x_t)`` by autograd.

    Args:
        classifier: ``classifier(x_t, t) -> (batch, num_classes)`` logits (or log-probabilities).
        x: (batch, ...) noisy samples.
        t: (batch,) timesteps (or sigmas), passed through to the classifier.
        y: (batch,) integer class labels.

    Returns:
        (batch, ...) gradient, same dtype as ``x``; no graph is kept.

    Example:
        >>> import torch
        >>> clf = lambda x, t: torch.stack([-x.sum(1), x.sum(1)], 1)
        >>> classifier_log_prob_grad(clf, torch.zeros(2, 3), torch.zeros(2), torch.tensor([0, 1])).shape
        torch.Size([2, 3])
    """
    y = torch.as_tensor(y, device=x.device).reshape(-1).long()
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one label per sample ({x.shape[0]}), got {y.shape[0]}")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = classifier(xg, t)
        if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"classifier must return (batch, num_classes) logits, got {tuple(logits.shape)}")
        logp = torch.log_softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, 1)
        selected = logp.gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(selected, xg)
    return grad.detach().to(x.dtype)


def _check_scale(scale) -> float:
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise TypeError(f"scale must be a real number, got {type(scale).__name__}")
    return float(scale)


def classifier_guided_model(model: Callable[..., torch.Tensor], classifier: Callable[..., torch.Tensor],
                            scale: float, *, schedule=None, prediction_type: str = "epsilon"
                            ) -> Callable[..., torch.Tensor]:
    """Wraps ``model(x_t, t, cond) -> prediction`` so that it follows ``p(x_t) p(y | x_t)^s``.

    Args:
        model: a diffusion model on the :func:`gencore.diffusion.sample` contract.
        classifier: ``classifier(x_t, t) -> (batch, num_classes)`` logits.
        scale: guidance scale ``s``.
        schedule: the schedule the model was trained with (default linear, 1000 steps).
        prediction_type: ``epsilon``, ``v_prediction`` or ``sample``.

    Returns:
        ``guided(x_t, t, y)`` where ``y`` is the (batch,) target label (also passed to ``model``
        as ``cond`` when the model is conditional; pass ``model_cond=`` through a lambda otherwise).

    Example:
        >>> import torch
        >>> from gencore.diffusion.gmm import GaussianMixture
        >>> gm = GaussianMixture(torch.tensor([[-2.0], [2.0]]), torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]))
        >>> guided = classifier_guided_model(gm.denoiser(), gm.classifier(), 1.0)
        >>> guided(torch.zeros(2, 1), torch.tensor([500.0, 500.0]), torch.tensor([0, 1])).shape
        torch.Size([2, 1])
    """
    scale = _check_scale(scale)
    if prediction_type not in _PREDICTIONS:
        raise ValueError(f"prediction_type must be one of {_PREDICTIONS}, got {prediction_type!r}")
    pred = prediction(prediction_type)
    ac = _alphas_cumprod(schedule)
    n = ac.numel()

    def guided(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, cond=None) -> torch.Tensor:
        if y is None:
            raise ValueError("y (the target class labels) is required for classifier guidance")
        t = torch.as_tensor(t).reshape(-1).expand(x.shape[0])
        out = model(x, t, y if cond is None else cond)
        if scale == 0.0:
            return out
        tc = t.detach().to("cpu", torch.float64)
        if bool(((tc < 0) | (tc > n - 1)).any()):
            raise ValueError(f"t must lie in [0, {n - 1}]")
        # Same interpolation as the Gaussian-mixture denoiser: log sigma linear in t.
        low = tc.floor().long().clamp(max=n - 1)
        high = (low + 1).clamp(max=n - 1)
        w = tc - low
        log_sigma = 0.5 * torch.log((1 - ac) / ac)
        sig = torch.where(w > 0, ((1 - w) * log_sigma[low] + w * log_sigma[high]).exp(),
                          ((1 - ac[low]) / ac[low]).sqrt())
        a = torch.where(w > 0, 1 / torch.sqrt(1 + sig**2), ac[low].sqrt())
        b = torch.where(w > 0, sig * a, (1 - ac[low]).sqrt())
        g = classifier_log_prob_grad(classifier, x, t, y).double()
        shape = (-1,) + (1,) * (x.dim() - 1)
        a = a.to(x.device).reshape(shape)
        b = b.to(x.device).reshape(shape)
        # The score moves by s g: eps by -b s g and x0 by (b^2 / a) s g; the output follows linearly.
        c0, ce = pred.output(a, b)
        return (out.double() + c0 * (b * b / a * scale * g) - ce * (b * scale * g)).to(out.dtype)

    return guided


def classifier_guided_denoiser(denoiser: Callable[..., torch.Tensor], classifier: Callable[..., torch.Tensor],
                               scale: float) -> Callable[..., torch.Tensor]:
    """Wraps a k-diffusion denoiser ``D(x, sigma, **extra)``: ``D' = D + sigma^2 s grad log p(y | x)``.

    Args:
        denoiser: ``denoiser(x, sigma, **extra_args) -> denoised``.
        classifier: ``classifier(x, sigma) -> (batch, num_classes)`` logits on the same ``x``.
        scale: guidance scale ``s``.

    Returns:
        ``guided(x, sigma, y=..., **extra_args)``; use ``extra_args={"y": labels}`` in the loops.
    """
    scale = _check_scale(scale)

    def guided(x: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor | None = None, **extra) -> torch.Tensor:
        if y is None:
            raise ValueError("y (the target class labels) is required for classifier guidance")
        out = denoiser(x, sigma, **extra)
        if scale == 0.0:
            return out
        sigma_b = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(x.shape[0])
        g = classifier_log_prob_grad(classifier, x, sigma_b, y)
        s2 = (sigma_b.double() ** 2).reshape((-1,) + (1,) * (x.dim() - 1))
        return (out.double() + s2 * scale * g.double()).to(out.dtype)

    return guided
