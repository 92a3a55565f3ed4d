"""Flow matching (rectified flow) family of the zoo."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from gencore.diffusion import flow_match_euler_step
from gencore.models.trainer import Objective
from gencore.models.unet import UNet
from gencore.rng import rand, randn
from gencore.zoo.diffusion import DiffusionFamily

__all__ = ["FlowMatchingFamily"]


class FlowMatchingFamily(DiffusionFamily):
    """Rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023) with a UNet.

    Path ``x_s = (1 - s) x_0 + s eps``, velocity target ``u = eps - x_0``, ``s ~ U(0, 1)``;
    sampled from ``s = 1`` to 0 with :func:`gencore.diffusion.flow_match_euler_step`.
    """

    name = "flow_matching"
    samplers = ("flow_match_euler",)
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500, "batch_size": 128, "lr": 2e-3, "channels": 16, "p_uncond": 0.1, "ema_decay": 0.995,
        "warmup": 100, "sample_steps": 20, "guidance_scale": 3.0, "grad_clip": 1.0, "schedule": "linear",
        "sampler": "flow_match_euler",
        "eval_samplers": (("flow_match_euler", 10), ("flow_match_euler", 20), ("flow_match_euler", 50)),
    }

    def _make_net(self, config: dict) -> nn.Module:
        return UNet(self.shape[0], channels=config["channels"], num_classes=self.num_classes, time_scale=1000.0)

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x, y = batch
        n = x.shape[0]

        def loss():
            eps = randn(x.shape, seed=seed, stream=3 * step)
            s = rand(n, seed=seed, stream=3 * step + 1)
            u = rand(n, seed=seed, stream=3 * step + 2)
            cond = torch.where(u < float(self.config["p_uncond"]), torch.full_like(y, self.num_classes), y)
            sb = s.reshape(-1, *([1] * (x.dim() - 1)))
            x_s = (1 - sb) * x + sb * eps
            return (self.net(x_s, s, cond) - (eps - x)).pow(2).mean()

        return [("main", loss)]

    @torch.no_grad()
    def _sample_space(self, n: int, y, *, seed: int, sampler: str | None = None, steps: int | None = None,
                      guidance_scale: float | None = None, progress: bool = False) -> torch.Tensor:
        if sampler not in (None, *self.samplers):
            raise ValueError(f"sampler must be 'flow_match_euler' for flow matching, got {sampler!r}")
        s = float(self.config["guidance_scale"] if guidance_scale is None else guidance_scale)
        steps = int(steps or self.config["sample_steps"])
        x = randn(n, *self.shape, seed=seed)
        sigmas = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
        null = torch.full((n,), self.num_classes, dtype=torch.long)
        for i in tqdm(range(steps), disable=not progress, desc="flow_match_euler", leave=False):
            t = torch.full((n,), sigmas[i])
            if s != 1.0:
                both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([null, y]))
                u_u, u_c = both.chunk(2)
                x, _ = flow_match_euler_step(x, u_c, sigmas[i], sigmas[i + 1], uncond_output=u_u, guidance_scale=s)
            else:
                x, _ = flow_match_euler_step(x, self.net(x, t, y), sigmas[i], sigmas[i + 1])
        return x
