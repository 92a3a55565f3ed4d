"""The fused diffusion ops: ``gencore::affine_step`` (every sampler step) and ``gencore::q_sample``.

A solver (:mod:`gencore.diffusion.solvers`) turns a step's scalars into a :class:`Coef`;
:func:`affine_step` applies it in one pass over the tensors, on the native kernels (C++ or CUDA)
when the extension supports the tensors, else on the PyTorch twin
(:func:`gencore.diffusion.reference.affine_step`). Under ``torch.compile`` the registered custom
ops run (schema from the signature, fake impl next to it); eager calls on plain tensors run the
same implementation without the dispatcher (tens of microseconds on small tensors).
``q_sample`` has an autograd formula (grad_x0 = sqrt(abar_t) g, grad_noise = sqrt(1 - abar_t) g).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gencore import _native
from gencore.diffusion import reference
from gencore.diffusion.checks import check_noise, check_out, check_out_overlap, check_step_tensors
from gencore.diffusion.coef import MAX_HISTORY, Coef, pack
from gencore.rng import from_signed64, to_signed64

__all__ = ["affine_step", "affine_step_op", "q_sample_op", "run_q_sample", "run_step"]

_NO_NOISE, _EXPLICIT, _PHILOX = 0, 1, 2


# ---------------------------------------------------------------- native calls

def _native_step(sample, model_output, uncond, noise, history, rows, coef, guidance, clip, noise_mode, want_aux,
                 seed, stream, sample_offset, out=None):
    """The kernel call; returns (prev, x0, aux or None), written into ``out`` when given."""
    x = sample.contiguous()
    if out is None:
        prev = torch.empty_like(x, memory_format=torch.contiguous_format)
        x0 = torch.empty_like(prev)
        aux = torch.empty_like(prev) if want_aux else None
    else:
        prev, x0 = out[0], out[1]
        aux = out[2] if want_aux else None
    n = x.shape[0]
    if x.numel() == 0:
        return prev, x0, aux
    c, u, z, r = (None if t is None else t.contiguous() for t in (model_output, uncond, noise, rows))
    _native.launch("diffusion_step", x, x, c, u, z, [h.contiguous() for h in history], prev, x0, aux, r, coef,
                   guidance, clip, noise_mode, n, x.numel() // n, from_signed64(seed), stream,
                   from_signed64(sample_offset))
    return prev, x0, aux


@torch.library.custom_op("gencore::affine_step", mutates_args=())
def affine_step_op(
    sample: torch.Tensor,
    model_output: torch.Tensor,
    uncond: torch.Tensor | None,
    noise: torch.Tensor | None,
    history: list[torch.Tensor],
    rows: torch.Tensor | None,
    coef: list[float],
    guidance: float,
    clip: float,
    noise_mode: int,
    want_aux: bool,
    seed: int,
    stream: int,
    sample_offset: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused step kernel: (prev_sample, pred_original_sample, aux) for the 16 affine
    coefficients ``coef`` or per-sample ``rows`` (batch, 16) float64; ``aux`` is empty unless
    ``want_aux``."""
    prev, x0, aux = _native_step(sample, model_output, uncond, noise, history, rows, coef, guidance, clip,
                                 noise_mode, want_aux, seed, stream, sample_offset)
    return prev, x0, (aux if want_aux else sample.new_empty((0,)))


@affine_step_op.register_fake
def _(sample, model_output, uncond, noise, history, rows, coef, guidance, clip, noise_mode, want_aux, seed, stream,
      sample_offset):
    prev = torch.empty_like(sample, memory_format=torch.contiguous_format)
    aux = torch.empty_like(prev) if want_aux else sample.new_empty((0,))
    return prev, torch.empty_like(prev), aux


def _native_q_sample(x0, ab, noise, seed, stream, sample_offset):
    x = x0.contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    z_out = torch.empty_like(out) if noise is None else x.new_empty((0,))
    if x.numel() == 0:
        return out, z_out
    z = None if noise is None else noise.contiguous()
    n = x.shape[0]
    _native.launch("diffusion_q_sample", x, x, z, ab.contiguous(), out, z_out if noise is None else None, n,
                   x.numel() // n, from_signed64(seed), stream, from_signed64(sample_offset))
    return out, z_out


@torch.library.custom_op("gencore::q_sample", mutates_args=())
def q_sample_op(x0: torch.Tensor, ab: torch.Tensor, noise: torch.Tensor | None, seed: int, stream: int,
                sample_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = ab[:, 0] x0 + ab[:, 1] z per sample; returns (x_t, z) where z is the drawn noise
    (an empty tensor when ``noise`` is given)."""
    return _native_q_sample(x0, ab, noise, seed, stream, sample_offset)


@q_sample_op.register_fake
def _(x0, ab, noise, seed, stream, sample_offset):
    out = torch.empty_like(x0, memory_format=torch.contiguous_format)
    return out, (torch.empty_like(out) if noise is None else x0.new_empty((0,)))


def _q_setup(ctx, inputs, output):
    x0, ab, noise = inputs[0], inputs[1], inputs[2]
    ctx.save_for_backward(ab)
    ctx.has_noise = noise is not None
    ctx.x0_dtype = x0.dtype
    ctx.noise_dtype = None if noise is None else noise.dtype


def _q_backward(ctx, g_out, g_z):
    (ab,) = ctx.saved_tensors
    acc = reference.acc_dtype(g_out.dtype)
    shape = (-1,) + (1,) * (g_out.dim() - 1)
    g = g_out.to(acc)
    grad_x0 = (g * ab[:, 0].to(acc).reshape(shape)).to(ctx.x0_dtype)
    grad_noise = (g * ab[:, 1].to(acc).reshape(shape)).to(ctx.noise_dtype) if ctx.has_noise else None
    return grad_x0, None, grad_noise, None, None, None


q_sample_op.register_autograd(_q_backward, setup_context=_q_setup)


# ---------------------------------------------------------------- dispatch

def _into(out, res):
    """``res``, copied into the preallocated ``out`` when given."""
    if out is None:
        return res
    for o, r in zip(out, res):
        o.copy_(r)
    return out


def _nonzero(v) -> bool:
    """A coefficient that may be nonzero (any tensor: reading it would synchronise)."""
    return isinstance(v, torch.Tensor) or v != 0.0


def run_step(coef: Coef, sample: torch.Tensor, model_output: torch.Tensor, *,
             uncond_output: torch.Tensor | None = None, guidance_scale: float = 1.0,
             history: Sequence[torch.Tensor] = (), noise: torch.Tensor | None = None, seed: int | None = None,
             stream: int = 0, sample_offset: int = 0, clip: float | None = None, want_aux: bool = False,
             out: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`affine_step` on validated arguments: native kernels or the reference twin."""
    g = float(guidance_scale) if uncond_output is not None else 1.0
    if out is not None and not torch.compiler.is_compiling():  # compiled: fresh outputs, then copied
        check_out_overlap(out, {"sample": sample, "model_output": model_output, "uncond_output": uncond_output,
                                "noise": noise, **{f"history[{i}]": h for i, h in enumerate(history)}})
    if not _native.use_native(sample):
        return _into(out, reference.affine_step(coef, sample, model_output, uncond_output=uncond_output,
                                                guidance_scale=g, history=history, noise=noise, seed=seed,
                                                stream=stream, sample_offset=sample_offset, clip=clip,
                                                want_aux=want_aux))
    rows, floats = pack(coef, sample.shape[0], sample.device)
    if noise is not None:
        mode, seed64 = _EXPLICIT, 0
    elif seed is not None:
        mode, seed64 = _PHILOX, to_signed64(int(seed))
    else:
        mode, seed64 = _NO_NOISE, 0
    args = (sample, model_output, uncond_output, noise, list(history), rows, floats, g,
            0.0 if clip is None else float(clip), mode, want_aux, seed64, int(stream), to_signed64(int(sample_offset)))
    if not _native.direct_ok(sample, model_output, uncond_output, noise, *history):
        res = affine_step_op(*args)
        return _into(out, res if want_aux else res[:2])
    prev, x0, aux = _native_step(*args, out=out)
    return (prev, x0, aux) if want_aux else (prev, x0)


def run_q_sample(x0: torch.Tensor, ab: torch.Tensor, *, noise: torch.Tensor | None, seed: int | None, stream: int,
                 sample_offset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward noising on validated arguments; ``ab`` (batch, 2) float64 on x0's device."""
    if not _native.use_native(x0):
        return reference.q_sample(x0, ab, noise=noise, seed=seed, stream=stream, sample_offset=sample_offset)
    args = (x0, ab, noise, to_signed64(int(seed)) if noise is None else 0, int(stream),
            to_signed64(int(sample_offset)))
    needs_grad = torch.is_grad_enabled() and (x0.requires_grad or (noise is not None and noise.requires_grad))
    if needs_grad or not _native.direct_ok(x0, noise):
        xt, z = q_sample_op(*args)
    else:
        xt, z = _native_q_sample(*args)
    return xt, (noise if noise is not None else z)


def affine_step(coef: Coef, sample: torch.Tensor, model_output: torch.Tensor, *,
                uncond_output: torch.Tensor | None = None, guidance_scale: float = 1.0,
                history: Sequence[torch.Tensor] = (), noise: torch.Tensor | None = None, seed: int | None = None,
                stream: int = 0, sample_offset: int = 0, clip: float | None = None, want_aux: bool = False,
                out: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ...]:
    """One fused sampler step: the affine map of ``coef`` (see :class:`~gencore.diffusion.Coef`)
    over the sample, the (guided) model output, the noise and up to four history inputs.

    Args:
        coef: the step's 16 coefficients (floats, or float64 (batch,) tensors per sample).
        sample: x, (batch, ...).
        model_output: the model's output at x, (batch, ...) (the conditional one when guided).
        uncond_output: the unconditional output for classifier-free guidance
            ``uncond + guidance_scale (cond - uncond)``, or None.
        guidance_scale: the guidance scale (1.0 without ``uncond_output``).
        history: up to four tensors shaped like ``sample`` (previous x_0 predictions, a
            derivative, a stage's start sample), weighted by p1..p4 (and h1 by q1 in aux).
        noise: explicit noise z shaped like ``sample``; or ``seed`` (with ``stream`` and
            ``sample_offset``) draws it in the kernel under the noise contract; neither: z = 0.
        clip: clamp x_0 to [-clip, clip], or None.
        want_aux: also return aux = qd d + q1 h1.
        out: preallocated outputs (2 or 3 contiguous tensors like ``sample``; ``out[0]`` may be
            ``sample``).

    Returns:
        (prev, x0) or (prev, x0, aux), shaped and typed like ``sample``.

    Example:
        >>> import torch
        >>> from gencore.diffusion import Coef, affine_step
        >>> x, m = torch.ones(2, 3), torch.full((2, 3), 0.5)
        >>> prev, x0 = affine_step(Coef(am=1.0, px=0.5, p0=0.5), x, m)  # x0 = m, prev = (x + x0) / 2
        >>> prev[0].tolist()
        [0.75, 0.75, 0.75]
    """
    if not isinstance(coef, Coef):
        raise TypeError(f"coef must be a gencore.diffusion.Coef, got {type(coef).__name__}")
    if not isinstance(history, (tuple, list)) or len(history) > MAX_HISTORY:
        raise ValueError(f"history must be a sequence of at most {MAX_HISTORY} tensors")
    for i, h in enumerate(history):
        if not isinstance(h, torch.Tensor):
            raise TypeError(f"history[{i}] must be a tensor shaped like sample, got {type(h).__name__}")
    g = check_step_tensors(sample, model_output, uncond_output, guidance_scale, noise=noise,
                           **{f"history[{i}]": h for i, h in enumerate(history)})
    for name, v in coef._asdict().items():
        if isinstance(v, torch.Tensor):
            if not v.is_floating_point() or v.shape not in ((sample.shape[0],), ()) or v.device != sample.device:
                raise ValueError(f"coef.{name} must be a float or a floating-point tensor of shape (batch,) on "
                                 f"the sample's device, got {v.dtype} {tuple(v.shape)} on {v.device}")
        elif not isinstance(v, (int, float)) or isinstance(v, bool):
            raise TypeError(f"coef.{name} must be a float or a tensor, got {type(v).__name__}")
    seed, stream, sample_offset = check_noise(False, noise, seed, stream, sample_offset, "affine_step")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip}")
    out = check_out(out, sample, 3 if want_aux else 2)
    if not torch.compiler.is_compiling():
        # Terms of absent inputs are absent: the kernel reads z = 0 without noise and h1 = 0 without
        # history, so their coefficients are zeroed (an infinite one would give 0 * inf = NaN there,
        # where the reference leaves the term out). The solvers never set them.
        if noise is None and seed is None and (_nonzero(coef.kpre) or _nonzero(coef.pz)):
            coef = coef._replace(kpre=0.0, pz=0.0)
        if not history and _nonzero(coef.q1):
            coef = coef._replace(q1=0.0)
    return run_step(coef, sample, model_output, uncond_output=uncond_output, guidance_scale=g, history=history,
                    noise=noise, seed=seed, stream=stream, sample_offset=sample_offset, clip=clip,
                    want_aux=want_aux, out=out)
