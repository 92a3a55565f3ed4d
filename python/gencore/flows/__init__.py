"""Normalizing flows: the fused affine-coupling op, flow layers and RealNVP/Glow-style models.

Every transform returns its output and ``log|det J|`` from one call, in both directions;
flows expose ``log_prob``, ``sample``, ``rsample_and_log_prob`` and ``bits_per_dim``.

Example:
    >>> import torch, gencore.flows as gf
    >>> flow = gf.RealNVP(2, transforms=2, hidden=(16,))
    >>> x, lp = flow.rsample_and_log_prob(4, seed=0)
    >>> bool(torch.allclose(flow.log_prob(x), lp, atol=1e-4))
    True
"""

from __future__ import annotations

from gencore.flows import reference
from gencore.flows.layers import (
    MLP,
    ActNorm,
    AffineCoupling,
    ConvNet,
    FlowSequential,
    Invertible1x1Conv,
    LogitTransform,
    LULinear,
    Permutation,
    ResNet,
    Reverse,
    Squeeze,
    Transform,
)
from gencore.flows.models import Flow, GlowFlow, MultiScale, RealNVP, standard_normal_log_prob
from gencore.flows.ops import affine_coupling

__all__ = [
    "MLP",
    "ActNorm",
    "AffineCoupling",
    "ConvNet",
    "Flow",
    "FlowSequential",
    "GlowFlow",
    "Invertible1x1Conv",
    "LULinear",
    "LogitTransform",
    "MultiScale",
    "Permutation",
    "RealNVP",
    "ResNet",
    "Reverse",
    "Squeeze",
    "Transform",
    "affine_coupling",
    "reference",
    "standard_normal_log_prob",
]
