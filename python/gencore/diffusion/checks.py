"""Argument checks shared by the fused step ops and the solvers: all run before any kernel and
raise ``ValueError``/``TypeError`` naming the argument."""

from __future__ import annotations

import math
import numbers

import torch

from gencore._validate import check_float_tensor, check_index, check_same_device, check_seed
from gencore.diffusion.paths import prediction

__all__ = [
    "check_alpha_prods",
    "check_clip",
    "check_noise",
    "check_out",
    "check_out_overlap",
    "check_real",
    "check_sigmas",
    "check_step_args",
    "check_step_tensors",
    "coef_arg",
    "in_range",
    "noise_kwargs",
]


def check_step_tensors(sample, model_output, uncond_output, guidance_scale, **others) -> float:
    """``sample`` has a batch dimension and every other tensor its shape, dtype and device; returns
    the guidance scale as a float (which needs ``uncond_output`` unless it is 1)."""
    check_float_tensor(sample, "sample")
    if sample.dim() < 1:
        raise ValueError("sample must have a batch dimension (shape (batch, ...)), got a 0-d tensor")
    named = {"model_output": model_output, "uncond_output": uncond_output, **others}
    for name, t in named.items():
        if t is None:
            continue
        check_float_tensor(t, name)
        if t.shape != sample.shape:
            raise ValueError(f"{name} must have the shape of sample {tuple(sample.shape)}, got {tuple(t.shape)}")
        check_same_device(sample, t, "sample", name)
        if t.dtype != sample.dtype:
            raise TypeError(f"{name} must have the dtype of sample ({sample.dtype}), got {t.dtype}")
    if not isinstance(guidance_scale, numbers.Real) or isinstance(guidance_scale, bool):
        raise TypeError(f"guidance_scale must be a real number, got {type(guidance_scale).__name__}")
    if uncond_output is None and guidance_scale != 1.0:
        raise ValueError(
            f"guidance_scale={guidance_scale} needs uncond_output (the unconditional model output); "
            "without it the step uses model_output as is"
        )
    return float(guidance_scale)


def check_clip(clip_sample) -> float | None:
    """``clip_sample`` as a clamp range: None (no clipping), True (1.0) or a positive number."""
    if clip_sample is None or clip_sample is False:
        return None
    if clip_sample is True:
        return 1.0
    if not isinstance(clip_sample, numbers.Real):
        raise TypeError(f"clip_sample must be None, a bool or a positive number, got {type(clip_sample).__name__}")
    if not clip_sample > 0:
        raise ValueError(f"clip_sample must be positive, got {clip_sample}")
    return float(clip_sample)


def check_step_args(sample, model_output, uncond_output, guidance_scale, prediction_type, clip_sample, **others):
    """The checks every step shares: tensors, guidance, prediction type and clipping; returns
    (guidance scale, clip threshold or None, the :class:`~gencore.diffusion.paths.Prediction`)."""
    g = check_step_tensors(sample, model_output, uncond_output, guidance_scale, **others)
    pred = prediction(prediction_type)
    return g, check_clip(clip_sample), pred


def check_alpha_prods(alpha_prod_t, alpha_prod_t_prev, sample, pred, *, increasing: bool):
    """alpha_prod_t in [0, 1) (> 0 where the prediction type needs it to recover x_0) and
    alpha_prod_t_prev in (0, 1], as floats or float64 (batch,) tensors; with ``increasing``,
    alpha_prod_t_prev >= alpha_prod_t (a step towards less noise)."""
    a_t = coef_arg(alpha_prod_t, "alpha_prod_t", sample)
    a_p = coef_arg(alpha_prod_t_prev, "alpha_prod_t_prev", sample)
    in_range(a_t, "alpha_prod_t", 0.0, 1.0, hi_open=True)
    in_range(a_p, "alpha_prod_t_prev", 0.0, 1.0, lo_open=True)
    if isinstance(a_t, float) and a_t == 0.0 and pred.name in ("epsilon", "flow"):
        raise ValueError(f"prediction_type={pred.name!r} needs alpha_prod_t > 0 (x_0 is not identifiable at "
                         "alpha_prod_t = 0)")
    if increasing and isinstance(a_t, float) and isinstance(a_p, float) and a_p < a_t:
        raise ValueError(f"alpha_prod_t_prev ({a_p}) must be >= alpha_prod_t ({a_t}) here: the step goes "
                         "towards less noise")
    return a_t, a_p


def check_sigmas(sigma, sigma_next, sample, hi: float = math.inf, hi_open: bool = False,
                 next_lo_open: bool = False):
    """sigma in (0, hi] and sigma_next in [0, hi] (open at hi with ``hi_open``, and always below an
    infinite ``hi``; sigma_next > 0 with ``next_lo_open``), as floats or float64 (batch,) tensors."""
    hi_open = hi_open or hi == math.inf
    sg = coef_arg(sigma, "sigma", sample)
    sn = coef_arg(sigma_next, "sigma_next", sample)
    in_range(sg, "sigma", 0.0, hi, lo_open=True, hi_open=hi_open)
    in_range(sn, "sigma_next", 0.0, hi, lo_open=next_lo_open, hi_open=hi_open)
    return sg, sn


def coef_arg(v, name: str, sample: torch.Tensor):
    """A Python float, or a float64 tensor (batch,) on the sample's device."""
    if isinstance(v, torch.Tensor):
        if not v.is_floating_point():
            raise TypeError(f"{name} must be a float or a floating-point tensor of shape (batch,), got {v.dtype}")
        if v.device != sample.device:
            raise ValueError(f"{name} is on {v.device} but sample is on {sample.device}")
        batch = sample.shape[0]
        if v.dim() == 0:
            v = v.reshape(1).expand(batch)
        if v.shape != (batch,):
            raise ValueError(f"{name} must be a float or a tensor of shape (batch,) = ({batch},), got {tuple(v.shape)}")
        return v.to(torch.float64)
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        v = float(v)
        if math.isnan(v):
            raise ValueError(f"{name} must not be NaN")
        return v
    raise TypeError(f"{name} must be a float or a tensor of shape (batch,), got {type(v).__name__}")


def check_real(v, name: str, lo: float | None = None) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if math.isnan(v) or (lo is not None and v < lo):
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def check_noise(needed: bool, noise, seed, stream, sample_offset, step: str):
    if noise is not None and seed is not None:
        raise ValueError("pass either noise (an explicit tensor) or seed (in-kernel noise), not both")
    if needed and noise is None and seed is None:
        raise ValueError(f"{step} draws noise here: pass noise= (a tensor shaped like sample) or seed= "
                         "(in-kernel counter-based noise)")
    if seed is not None:
        seed = check_seed(seed)
    if not (type(stream) is int and 0 <= stream < 2**32):
        stream = check_index(stream, "stream", 2**32)
    if not (type(sample_offset) is int and 0 <= sample_offset < 2**63):
        sample_offset = check_index(sample_offset, "sample_offset", 2**63)
    return seed, stream, sample_offset


def in_range(v, name: str, lo: float, hi: float, *, lo_open=False, hi_open=False) -> None:
    """Range check for host floats (tensor coefficients are the caller's responsibility:
    checking them would synchronise with the device)."""
    if isinstance(v, float):
        bad_lo = v <= lo if lo_open else v < lo
        bad_hi = v >= hi if hi_open else v > hi
        if bad_lo or bad_hi:
            lb = "(" if lo_open else "["
            rb = ")" if hi_open else "]"
            raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {v}")


def check_out(out, sample: torch.Tensor, n: int):
    """Preallocated outputs: a tuple of n contiguous tensors shaped and typed like sample, sharing
    no memory with each other (the first may be ``sample`` itself: the kernels are element-wise,
    so in place is safe)."""
    if out is None:
        return None
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise TypeError(f"out must be a tuple of {n} tensors (the step's outputs), got {type(out).__name__}")
    for i, t in enumerate(out):
        name = f"out[{i}]"
        check_float_tensor(t, name)
        if t.shape != sample.shape or t.dtype != sample.dtype:
            raise ValueError(f"{name} must have the shape and dtype of sample {tuple(sample.shape)} {sample.dtype}, "
                             f"got {tuple(t.shape)} {t.dtype}")
        check_same_device(sample, t, "sample", name)
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    if torch.compiler.is_compiling():  # compiled calls write fresh outputs, then copy into out
        if len({t.data_ptr() for t in out}) != n:
            raise ValueError("out tensors must be distinct")
        return tuple(out)
    for i in range(n):
        for j in range(i):
            if out[i] is out[j] or _overlap(out[i], out[j]):
                raise ValueError(f"out[{j}] and out[{i}] share memory; the out tensors must be distinct, "
                                 "non-overlapping buffers")
    return tuple(out)


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two contiguous tensors on one device share any byte (empty tensors share none)."""
    if a.numel() == 0 or b.numel() == 0:
        return False
    a_lo, b_lo = a.data_ptr(), b.data_ptr()
    return a_lo < b_lo + b.numel() * b.element_size() and b_lo < a_lo + a.numel() * a.element_size()


def check_out_overlap(out, inputs: dict) -> None:
    """An output may be one of the inputs exactly (the kernels read every input of an element
    before writing it) but must not partially overlap one: that would read overwritten values.
    Non-contiguous inputs are copied before the kernel runs, so only contiguous ones count."""
    for i, o in enumerate(out):
        o_lo = o.data_ptr()
        o_hi = o_lo + o.numel() * o.element_size()
        for name, t in inputs.items():
            if t is None or not t.is_contiguous() or t.device != o.device:
                continue
            lo = t.data_ptr()
            hi = lo + t.numel() * t.element_size()
            if lo < o_hi and o_lo < hi and not (lo == o_lo and hi == o_hi):
                raise ValueError(f"out[{i}] partially overlaps {name}; pass a distinct buffer or {name} itself")


def noise_kwargs(needed: bool, noise, seed, stream, sample_offset, step: str) -> dict:
    """Checks a step's noise arguments; returns the keywords of the fused op: no noise unless
    ``needed``, else the explicit ``noise`` or the noise contract's (seed, stream, sample_offset)."""
    seed, stream, sample_offset = check_noise(needed, noise, seed, stream, sample_offset, step)
    if not needed:
        return {}
    return {"noise": noise, "seed": seed, "stream": stream, "sample_offset": sample_offset}
