"""One module per solver: a short function from the step's scalars to a
:class:`~gencore.diffusion.Coef` and the public step that checks its arguments and runs the fused
op (:func:`gencore.diffusion.affine_step`).

Every step shares one calling convention:

- ``sample``: x_t, shape (batch, ...) (the first dimension indexes samples);
- ``model_output``: the network's prediction at x_t, shape of ``sample``; with
  ``uncond_output`` (same shape) and ``guidance_scale`` s the step uses the guided output
  ``uncond + s * (cond - uncond)`` (Ho & Salimans 2022), computed in the same pass;
- ``prediction_type``: what the model predicts, ``epsilon`` (noise), ``v_prediction``
  (v = alpha eps - sigma x_0 on the variance-preserving sample, Salimans & Ho 2022),
  ``sample`` (x_0) or ``flow`` (the velocity eps - x_0 of rectified flow)
  (:mod:`gencore.diffusion.paths`);
- coefficients (``alpha_prod_t``, ``sigma``, ...): Python floats computed on the host from a
  float64 :class:`~gencore.diffusion.Schedule` (no ``.item()``, no device synchronisation, so
  a loop can be captured in a CUDA graph), or float tensors of shape (batch,) for per-sample
  timesteps;
- noise (stochastic steps): explicit ``noise=`` (shape of ``sample``) or drawn inside the
  kernel under the noise contract from ``seed``/``stream``/``sample_offset``: element j of
  sample i equals ``gencore.randn(sample.shape, seed=seed, stream=stream,
  sample_offset=sample_offset, dtype=D)[i].flatten()[j]`` with D = float64 for float64
  samples and float32 otherwise (use ``stream`` = step index in a loop);
- ``clip_sample``: ``None`` (default, no clipping) or a range r: x_0 is clamped to [-r, r]
  (``True`` means 1.0, as diffusers' ``clip_sample_range``);
- ``out``: optional preallocated outputs (a tuple of contiguous tensors shaped and typed like
  ``sample``, one per returned tensor), written and returned; ``out[0]`` may be ``sample``
  itself (in-place update). A loop that reuses its buffers avoids allocating (and, on the CPU,
  page-faulting) fresh outputs every step.

Arithmetic runs in float32 for float16/bfloat16/float32 tensors and in float64 for float64;
outputs have the sample's dtype. Sampler steps are not differentiable (sampling runs under
``torch.no_grad()``). The math equals diffusers' schedulers ``.step`` and k-diffusion's samplers
(checked in the tests).

Adding a sampler: a module here with its ``coef`` function and its public step, exported below.
"""

from __future__ import annotations

from gencore.diffusion.solvers.ddim import ddim_step
from gencore.diffusion.solvers.ddpm import ddpm_step, ddpm_variance
from gencore.diffusion.solvers.dpmpp_2m import dpmpp_2m_lower_order, dpmpp_2m_step
from gencore.diffusion.solvers.dpmpp_2m_sde import dpmpp_2m_sde_step
from gencore.diffusion.solvers.euler import churn_gamma, euler_step
from gencore.diffusion.solvers.euler_ancestral import ancestral_sigmas, euler_ancestral_step
from gencore.diffusion.solvers.flow_match_euler import flow_match_euler_step
from gencore.diffusion.solvers.heun import heun_step

__all__ = [
    "ancestral_sigmas",
    "churn_gamma",
    "ddim_step",
    "ddpm_step",
    "ddpm_variance",
    "dpmpp_2m_lower_order",
    "dpmpp_2m_sde_step",
    "dpmpp_2m_step",
    "euler_ancestral_step",
    "euler_step",
    "flow_match_euler_step",
    "heun_step",
]
