"""Pure-PyTorch affine coupling: the specification of :func:`gencore.flows.affine_coupling`
and the fallback when the native kernels are unavailable.

Same signature and semantics as the fused op; computed in the input dtype with ordinary
torch operations (autograd provides the backward), except that the soft clamp of float16 and
bfloat16 log-scales is evaluated in float32, as the kernels do, so that a ``clamp_value``
beyond the dtype's range does not round to inf and squash every scale to zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gencore.flows._checks import check_coupling_args

__all__ = ["affine_coupling", "coupling_backward", "squash", "squash_and_grad"]

_TWO_OVER_PI = 2.0 / math.pi


_LOW = (torch.float16, torch.bfloat16)


def squash(log_scale: torch.Tensor, clamp: str | None, clamp_value: float) -> torch.Tensor:
    """The soft clamp applied to the raw log-scale.

    ``None``: identity; ``"atan"``: ``c * 2/pi * atan(v / c)`` (FrEIA); ``"tanh"``:
    ``c * tanh(v / c)``; ``"sigmoid"``: ``log(sigmoid(v + 2))`` (Glow, ``c`` unused).
    float16 and bfloat16 log-scales are squashed in float32 and the result rounded back.
    """
    if clamp is not None and log_scale.dtype in _LOW:
        return squash(log_scale.float(), clamp, clamp_value).to(log_scale.dtype)
    if clamp is None:
        return log_scale
    if clamp == "atan":
        return clamp_value * _TWO_OVER_PI * torch.atan(log_scale / clamp_value)
    if clamp == "tanh":
        return clamp_value * torch.tanh(log_scale / clamp_value)
    if clamp == "sigmoid":
        return F.logsigmoid(log_scale + 2.0)
    raise ValueError(f"clamp must be one of [None, 'atan', 'tanh', 'sigmoid'], got {clamp!r}")


def squash_and_grad(log_scale: torch.Tensor, clamp: str | None,
                    clamp_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, ds/dv)`` of :func:`squash` in closed form (in float32 for float16 and bfloat16)."""
    if clamp is not None and log_scale.dtype in _LOW:
        s, ds = squash_and_grad(log_scale.float(), clamp, clamp_value)
        return s.to(log_scale.dtype), ds.to(log_scale.dtype)
    if clamp is None:
        return log_scale, torch.ones_like(log_scale)
    if clamp == "atan":
        q = log_scale / clamp_value
        return clamp_value * _TWO_OVER_PI * torch.atan(q), _TWO_OVER_PI / (1 + q * q)
    if clamp == "tanh":
        th = torch.tanh(log_scale / clamp_value)
        return clamp_value * th, 1 - th * th
    if clamp == "sigmoid":
        z = log_scale + 2.0
        return F.logsigmoid(z), torch.sigmoid(-z)
    raise ValueError(f"clamp must be one of [None, 'atan', 'tanh', 'sigmoid'], got {clamp!r}")


def _forward(x, shift, log_scale, clamp, clamp_value, inverse):
    s = squash(log_scale, clamp, clamp_value)
    if inverse:
        y = (x - shift) * torch.exp(-s)
        logdet = -s.reshape(s.shape[0], math.prod(s.shape[1:])).sum(1)
    else:
        y = x * torch.exp(s) + shift
        logdet = s.reshape(s.shape[0], math.prod(s.shape[1:])).sum(1)
    return y, logdet


def affine_coupling(x: torch.Tensor, shift: torch.Tensor, log_scale: torch.Tensor, *,
                    clamp: str | None = None, clamp_value: float = 2.0,
                    inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference affine coupling; see :func:`gencore.flows.affine_coupling`.

    Example:
        >>> import torch
        >>> from gencore.flows import reference
        >>> y, ld = reference.affine_coupling(torch.ones(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))
        >>> y.shape, ld.tolist()
        (torch.Size([2, 3]), [0.0, 0.0])
    """
    clamp_value = check_coupling_args(x, shift, log_scale, clamp, clamp_value)
    return _forward(x, shift, log_scale, clamp, clamp_value, bool(inverse))


def coupling_backward(grad_y: torch.Tensor, grad_logdet: torch.Tensor, x: torch.Tensor,
                      shift: torch.Tensor, log_scale: torch.Tensor, clamp: str | None,
                      clamp_value: float, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ``(dL/dx, dL/dlog_scale)``; ``dL/dshift`` is ``grad_y`` (forward) or
    ``-dL/dx`` (inverse)."""
    s, ds = squash_and_grad(log_scale, clamp, clamp_value)
    gl = grad_logdet.reshape((-1,) + (1,) * (x.dim() - 1))
    if inverse:
        e = torch.exp(-s)
        gx = grad_y * e
        gv = (-(grad_y * (x - shift) * e) - gl) * ds
    else:
        e = torch.exp(s)
        gx = grad_y * e
        gv = (grad_y * x * e + gl) * ds
    return gx, gv
