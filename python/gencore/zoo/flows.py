"""Normalizing-flow families of the zoo: RealNVP on vectors, Glow on digit images."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from gencore.flows import GlowFlow, RealNVP
from gencore.models.trainer import Objective
from gencore.zoo.base import ZooModel, sample_metrics
from gencore.zoo.data import Dataset, flat

__all__ = ["FlowFamily", "GlowFamily"]


class FlowFamily(ZooModel):
    """Normalizing flows from :mod:`gencore.flows`, trained by maximum likelihood.

    Subclasses change the flow (``_make_flow``), its input layout (``_x``) and ``generate``.
    """

    name = "realnvp"
    data_kinds = ("digits", "toy")
    scale = "unit"
    dequantize = True
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500, "batch_size": 128, "lr": 1e-3, "transforms": 8, "hidden": 64, "grad_clip": 5.0,
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.flow = self._make_flow(config)

    def _make_flow(self, config: dict) -> nn.Module:
        h = int(config["hidden"])
        return RealNVP(self.dim, transforms=int(config["transforms"]), hidden=(h, h), actnorm=True)

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return flat(x)

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x = self._x(batch[0])
        return [("main", lambda: -self.flow.log_prob(x).mean())]

    @torch.no_grad()
    def generate(self, n: int, y, *, seed: int, **kw: Any) -> torch.Tensor:
        x = self.flow.sample(n, seed=seed)
        return x.reshape(n, -1)

    @torch.no_grad()
    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        """Test NLL in nats (and bits per dimension on digits), and sample metrics."""
        x = self._x(ds.x_test)
        out: dict[str, Any] = {"test_nll_nats": float(-self.flow.log_prob(x).mean())}
        if ds.is_digits:  # dequantised 17-level pixels: the discrete bound (gencore.flows)
            out["test_bits_per_dim"] = float(self.flow.bits_per_dim(x, levels=17).mean())
        out.update(sample_metrics(self, ds, seed=seed))
        return out


class GlowFamily(FlowFamily):
    """Multi-scale Glow-style flow on 8x8 digit images."""

    name = "glow"
    data_kinds = ("digits",)
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 2000, "batch_size": 128, "lr": 1e-3, "levels": 2, "flow_steps": 4, "hidden": 64,
        "grad_clip": 5.0,
    }

    def _make_flow(self, config: dict) -> nn.Module:
        return GlowFlow(self.shape, levels=int(config["levels"]), steps=int(config["flow_steps"]),
                        hidden=int(config["hidden"]))

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    @torch.no_grad()
    def generate(self, n: int, y, *, seed: int, **kw: Any) -> torch.Tensor:
        return flat(self.flow.sample(n, seed=seed)).clamp(0, 1)
