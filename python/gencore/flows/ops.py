"""The fused affine-coupling op: ``y = x * exp(s) + shift`` and the per-sample log-determinant
in one pass, with a native backward.

Registered as ``gencore::affine_coupling`` (``torch.library.custom_op``) with a fake
implementation and autograd, so it works under ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

from typing import Optional

import torch

from gencore import _native
from gencore.flows import reference
from gencore.flows._checks import CLAMPS, check_coupling_args, row_stride

__all__ = ["affine_coupling"]


def _rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``t`` (or a contiguous copy) and the element stride between its samples."""
    s = row_stride(t)
    if s is None:
        t = t.contiguous()
        s = t[0].numel() if t.dim() > 1 else 1
    return t, s


def _sample_numel(x: torch.Tensor) -> int:
    n = 1
    for d in x.shape[1:]:
        n *= d
    return n


@torch.library.custom_op("gencore::affine_coupling", mutates_args=())
def _affine_coupling(x: torch.Tensor, shift: torch.Tensor, log_scale: torch.Tensor,
                     clamp: Optional[str], clamp_value: float,  # noqa: UP045 (schema inference)
                     inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _forward_impl(x, shift, log_scale, clamp, clamp_value, inverse)


def _forward_impl(x, shift, log_scale, clamp, clamp_value, inverse):
    if not _native.use_native(x):
        y, ld = reference._forward(x, shift, log_scale, clamp, clamp_value, inverse)
        return y.contiguous(), ld.contiguous()
    n, D = x.shape[0], _sample_numel(x)
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    logdet = torch.empty((n,), dtype=x.dtype, device=x.device)
    if n == 0:
        return y, logdet
    xr, sx = _rows(x)
    tr, st = _rows(shift)
    vr, sv = _rows(log_scale)
    _native.launch("flows_coupling_forward", x, xr, tr, vr, sx, st, sv, n, D, CLAMPS[clamp], clamp_value, inverse,
                   y, logdet)
    return y, logdet


@_affine_coupling.register_fake
def _(x, shift, log_scale, clamp, clamp_value, inverse):
    return torch.empty_like(x, memory_format=torch.contiguous_format), x.new_empty((x.shape[0],))


@torch.library.custom_op("gencore::affine_coupling_backward", mutates_args=())
def _affine_coupling_backward(grad_y: torch.Tensor, grad_logdet: torch.Tensor, x: torch.Tensor,
                              shift: torch.Tensor, log_scale: torch.Tensor,
                              clamp: Optional[str], clamp_value: float,  # noqa: UP045
                              inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _backward_impl(grad_y, grad_logdet, x, shift, log_scale, clamp, clamp_value, inverse)


def _backward_impl(grad_y, grad_logdet, x, shift, log_scale, clamp, clamp_value, inverse):
    if not _native.use_native(x):
        gx, gv = reference.coupling_backward(grad_y, grad_logdet, x, shift, log_scale, clamp,
                                             clamp_value, inverse)
        return gx.contiguous(), gv.contiguous()
    n, D = x.shape[0], _sample_numel(x)
    gx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    gv = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if n == 0 or D == 0:
        return gx, gv
    gyr, sgy = _rows(grad_y)
    glr = grad_logdet.contiguous()
    xr, sx = _rows(x)
    tr, st = _rows(shift)
    vr, sv = _rows(log_scale)
    _native.launch("flows_coupling_backward", x, gyr, sgy, glr, xr, tr, vr, sx, st, sv, n, D, CLAMPS[clamp],
                   clamp_value, inverse, gx, gv)
    return gx, gv


@_affine_coupling_backward.register_fake
def _(grad_y, grad_logdet, x, shift, log_scale, clamp, clamp_value, inverse):
    return (torch.empty_like(x, memory_format=torch.contiguous_format),
            torch.empty_like(x, memory_format=torch.contiguous_format))


def _setup_context(ctx, inputs, output):
    x, shift, log_scale, clamp, clamp_value, inverse = inputs
    ctx.save_for_backward(x, shift, log_scale)
    ctx.clamp, ctx.clamp_value, ctx.inverse = clamp, clamp_value, inverse


def _backward(ctx, grad_y, grad_logdet):
    x, shift, log_scale = ctx.saved_tensors
    if grad_y is None:
        grad_y = torch.zeros_like(x)
    if grad_logdet is None:
        grad_logdet = x.new_zeros((x.shape[0],))
    gx, gv = _affine_coupling_backward(grad_y, grad_logdet, x, shift, log_scale, ctx.clamp,
                                       ctx.clamp_value, ctx.inverse)
    gshift = -gx if ctx.inverse else grad_y
    return gx, gshift, gv, None, None, None


_affine_coupling.register_autograd(_backward, setup_context=_setup_context)


class _Direct(torch.autograd.Function):
    """The same kernels without the custom-op dispatcher, for eager calls on plain tensors:
    identical results, less per-call overhead on small tensors (2-D flows call the op on
    (batch, 1) halves), and double backward. torch.compile, fake tensors and tensor subclasses
    use the registered op."""

    @staticmethod
    def forward(ctx, x, shift, log_scale, clamp, clamp_value, inverse):
        y, logdet = _forward_impl(x, shift, log_scale, clamp, clamp_value, inverse)
        ctx.save_for_backward(x, shift, log_scale)
        ctx.clamp, ctx.clamp_value, ctx.inverse = clamp, clamp_value, inverse
        return y, logdet

    @staticmethod
    def backward(ctx, grad_y, grad_logdet):
        x, shift, log_scale = ctx.saved_tensors
        # create_graph=True: the closed-form reference gradients, which autograd can
        # differentiate again (double backward); otherwise the native kernel.
        impl = reference.coupling_backward if torch.is_grad_enabled() else _backward_impl
        gx, gv = impl(grad_y, grad_logdet, x, shift, log_scale, ctx.clamp, ctx.clamp_value, ctx.inverse)
        gshift = -gx if ctx.inverse else grad_y
        return gx, gshift, gv, None, None, None


def affine_coupling(x: torch.Tensor, shift: torch.Tensor, log_scale: torch.Tensor, *,
                    clamp: str | None = None, clamp_value: float = 2.0,
                    inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused affine coupling transform with its log-determinant.

    Forward: ``y = x * exp(s) + shift``; inverse: ``y = (x - shift) * exp(-s)``, where
    ``s = squash(log_scale)``. ``logdet[i]`` is the sum of ``s`` over every non-batch element
    of sample ``i`` (negated for the inverse), so ``log p(x) = log p(y) + logdet`` in the
    data-to-latent direction.

    Non-finite inputs propagate (IEEE semantics): a NaN in ``x``/``shift`` of sample ``i``
    makes that sample's ``y`` NaN; a NaN in ``log_scale`` also makes ``logdet[i]`` NaN; other
    samples are unaffected. Flows check their data (``Flow.log_prob``) and raise instead.

    Args:
        x: (batch, *) input.
        shift: (batch, *) shift ``t``, same shape, dtype and device as ``x``.
        log_scale: (batch, *) raw log-scale ``v``, squashed into ``s``.
        clamp: ``None`` (``s = v``), ``"atan"`` (``c * 2/pi * atan(v / c)``, FrEIA),
            ``"tanh"`` (``c * tanh(v / c)``) or ``"sigmoid"`` (``log(sigmoid(v + 2))``, Glow).
        clamp_value: the bound ``c`` of the atan/tanh clamps, positive.
        inverse: apply the inverse transform.

    Returns:
        ``(y, logdet)``: y (batch, *) contiguous, logdet (batch,) in the dtype of ``x``
        (accumulated in float32 for 16-bit and float32 inputs, float64 for float64).

    References:
        Dinh et al., Density estimation using Real NVP (2017), eq. 6-7; Kingma & Dhariwal,
        Glow (2018), table 1; Ardizzone et al., FrEIA (soft clamp).

    Example:
        >>> import torch, gencore.flows as gf
        >>> x = torch.randn(4, 3); t = torch.randn(4, 3); v = torch.randn(4, 3)
        >>> y, ld = gf.affine_coupling(x, t, v, clamp="tanh")
        >>> x2, ld2 = gf.affine_coupling(y, t, v, clamp="tanh", inverse=True)
        >>> bool(torch.allclose(x, x2, atol=1e-5)), bool(torch.allclose(ld, -ld2))
        (True, True)
    """
    clamp_value = check_coupling_args(x, shift, log_scale, clamp, clamp_value)
    if _native.direct_ok(x, shift, log_scale):
        return _Direct.apply(x, shift, log_scale, clamp, clamp_value, bool(inverse))
    return _affine_coupling(x, shift, log_scale, clamp, clamp_value, bool(inverse))
