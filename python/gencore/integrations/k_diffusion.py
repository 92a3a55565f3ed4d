"""k-diffusion's sampling API on gencore's fused steps: change the import, keep the code.

``from gencore.integrations.k_diffusion import sample_dpmpp_2m, get_sigmas_karras`` gives the
functions of ``k_diffusion.sampling`` with the same signatures and the same outputs under the
same global seed (noise is drawn with ``torch.randn_like`` in k-diffusion's order unless
``seed=`` asks for gencore's counter-based noise). k-diffusion itself is not needed.

Example:
    >>> import torch
    >>> from gencore.integrations.k_diffusion import get_sigmas_karras, sample_euler
    >>> sigmas = get_sigmas_karras(4, 0.1, 10.0)
    >>> x = sample_euler(lambda x, sigma: torch.zeros_like(x), torch.randn(2, 3) * 10.0, sigmas, disable=True)
    >>> x.shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch

from gencore.diffusion.k_sampling import (
    get_sigmas_karras,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_euler,
    sample_euler_ancestral,
    sample_flow_match_euler,
    sample_heun,
)

__all__ = [
    "append_zero",
    "get_sigmas_karras",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_flow_match_euler",
    "sample_heun",
]


def append_zero(x: torch.Tensor) -> torch.Tensor:
    """Appends a trailing 0 (k-diffusion's helper)."""
    return torch.cat([x, x.new_zeros([1])])
