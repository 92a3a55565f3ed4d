"""Pure-PyTorch twins of the fused diffusion ops: the kernels' specification and the fallback.

:func:`affine_step` is ``step_element`` of ``csrc/diffusion/diffusion_math.h`` line for line
(and gives the kernels' bits); :func:`q_sample` is the forward-noising map.
Arithmetic runs in float32 for float16/bfloat16/float32 inputs and in float64 for float64
inputs; outputs have the sample's dtype. Noise drawn here is the noise contract's
``gencore.randn`` in the arithmetic dtype, the values the kernels draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gencore.diffusion.coef import Coef
from gencore.rng import randn

__all__ = ["acc_dtype", "affine_step", "draw_noise", "guided", "q_sample"]


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _bc(v, ref: torch.Tensor):
    """A coefficient ready to multiply ``ref`` (batch, ...): floats as they are, tensors as
    (batch, 1, ..., 1) in ref's dtype."""
    if isinstance(v, torch.Tensor):
        return v.to(ref.dtype).reshape(-1, *([1] * (ref.dim() - 1)))
    return v


def guided(model_output: torch.Tensor, uncond_output: torch.Tensor | None, guidance_scale: float,
           acc: torch.dtype) -> torch.Tensor:
    """``uncond + s * (cond - uncond)`` in the arithmetic dtype (the model output when unguided)."""
    m = model_output.to(acc)
    if uncond_output is None:
        return m
    u = uncond_output.to(acc)
    return u + guidance_scale * (m - u)


def draw_noise(like: torch.Tensor, noise: torch.Tensor | None, seed: int | None, stream: int,
               sample_offset: int, acc: torch.dtype) -> torch.Tensor:
    """Explicit noise in the arithmetic dtype, or the noise-contract draw the kernels make."""
    if noise is not None:
        return noise.to(acc)
    return randn(like.shape, seed=int(seed), stream=int(stream), sample_offset=int(sample_offset), dtype=acc,
                 device=like.device)


def affine_step(coef: Coef, sample: torch.Tensor, model_output: torch.Tensor, *,
                uncond_output: torch.Tensor | None = None, guidance_scale: float = 1.0,
                history: Sequence[torch.Tensor] = (), noise: torch.Tensor | None = None, seed: int | None = None,
                stream: int = 0, sample_offset: int = 0, clip: float | None = None,
                want_aux: bool = False) -> tuple[torch.Tensor, ...]:
    """Reference of :func:`gencore.diffusion.affine_step` (arguments arrive validated): the terms of
    ``step_element`` in its order, each coefficient multiplying its input even when it is 0 (so a
    non-finite input gives what the kernel gives); terms of absent inputs (no noise, fewer history
    inputs) are left out, where the kernel adds 0."""
    acc = acc_dtype(sample.dtype)
    x = sample.to(acc)
    c = {name: _bc(v, x) for name, v in coef._asdict().items()}
    m = guided(model_output, uncond_output, guidance_scale, acc)
    z = None
    if noise is not None or seed is not None:
        z = draw_noise(x, noise, seed, stream, sample_offset, acc)
    xs = x if z is None else x + c["kpre"] * z
    x0 = c["ax"] * xs + c["am"] * m
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    d = c["ex"] * xs + c["em"] * m + c["e0"] * x0
    prev = c["px"] * xs + c["p0"] * x0 + c["pd"] * d
    if z is not None:
        prev = prev + c["pz"] * z
    for name, h in zip(("p1", "p2", "p3", "p4"), history):
        prev = prev + c[name] * h.to(acc)
    out = (prev.to(sample.dtype), x0.to(sample.dtype))
    if not want_aux:
        return out
    aux = c["qd"] * d
    if history:
        aux = aux + c["q1"] * history[0].to(acc)
    return (*out, aux.to(sample.dtype))


def q_sample(x0: torch.Tensor, ab: torch.Tensor, *, noise: torch.Tensor | None = None, seed: int | None = None,
             stream: int = 0, sample_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference forward noising x_t = ab[:, 0] x_0 + ab[:, 1] eps (Ho et al. 2020, eq. 4);
    ``ab`` (batch, 2) float64 holds sqrt(abar_t) and sqrt(1 - abar_t) per sample."""
    acc = acc_dtype(x0.dtype)
    z = draw_noise(x0, noise, seed, stream, sample_offset, acc)
    xt = _bc(ab[:, 0], z) * x0.to(acc) + _bc(ab[:, 1], z) * z
    return xt.to(x0.dtype), z.to(x0.dtype)
