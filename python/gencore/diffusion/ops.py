"""Dispatch of the diffusion ops: native kernels when available, the reference otherwise."""

from __future__ import annotations

from gencore.diffusion import reference

__all__ = ["step_impl"]

_REFERENCE = {
    "ddim": reference.ddim_step,
    "ddpm": reference.ddpm_step,
    "euler": reference.euler_step,
    "euler_ancestral": reference.euler_ancestral_step,
    "heun": reference.heun_step,
    "dpmpp_2m": reference.dpmpp_2m_step,
    "flow_match_euler": reference.flow_match_euler_step,
    "q_sample": reference.q_sample,
}


def step_impl(name: str):
    """The implementation of op ``name`` (same signature as the reference function)."""
    return _REFERENCE[name]
