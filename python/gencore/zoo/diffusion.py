"""Class-conditional diffusion family of the zoo (the base of latent diffusion and flow matching)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch
from torch import nn

from gencore import metrics
from gencore.data.digits import NUM_CLASSES
from gencore.diffusion import make_schedule
from gencore.diffusion import sample as diffusion_sample
from gencore.diffusion.sampling import SAMPLERS
from gencore.diffusion.training import diffusion_loss
from gencore.models.trainer import Objective
from gencore.models.unet import UNet
from gencore.zoo.base import ZooModel
from gencore.zoo.data import Dataset, class_labels, to_symmetric

__all__ = ["DiffusionFamily"]


class DiffusionFamily(ZooModel):
    """Class-conditional DDPM on digits: UNet, noise prediction, CFG label dropout.

    Subclasses change the network (``_make_net``), the space diffusion runs in
    (``latent_shape``, ``_x0``) or the sampling loop (``_sample_space``).
    """

    name = "diffusion"
    conditional_family = True
    guidance = True
    samplers = SAMPLERS
    _group = "main"
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500, "batch_size": 128, "lr": 2e-3, "channels": 16, "p_uncond": 0.1, "schedule": "linear",
        "ema_decay": 0.995, "warmup": 100, "sampler": "dpmpp_2m", "sample_steps": 20, "guidance_scale": 3.0,
        "grad_clip": 1.0, "eval_samplers": (("ddim", 50), ("dpmpp_2m", 10), ("dpmpp_2m", 20)),
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.schedule = make_schedule(config["schedule"])
        self.net = self._make_net(config)

    def _make_net(self, config: dict) -> nn.Module:
        return UNet(self.shape[0], channels=config["channels"], num_classes=self.num_classes)

    def _x0(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[0], batch[1]

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x, y = self._x0(batch)
        null = self.num_classes

        def loss():
            return diffusion_loss(self.net, x, self.schedule, cond=y, p_uncond=float(self.config["p_uncond"]),
                                  null_label=null, seed=seed, stream=step)

        return [(self._group, loss)]

    def _sample_space(self, n: int, y, *, seed: int, sampler: str | None = None, steps: int | None = None,
                      guidance_scale: float | None = None, progress: bool = False) -> torch.Tensor:
        s = float(self.config["guidance_scale"] if guidance_scale is None else guidance_scale)
        sampler = sampler or self.config["sampler"]
        steps = int(steps or self.config["sample_steps"])
        shape = (n, *self.latent_shape())
        cond = y
        uncond = torch.full((n,), self.num_classes, dtype=torch.long) if s != 1.0 else None
        extra = {"eta": 1.0} if sampler == "euler_ancestral" else {}
        with torch.no_grad():
            return diffusion_sample(self.net, shape, sampler=sampler, steps=steps, schedule=self.schedule,
                                    guidance_scale=s, cond=cond, uncond=uncond, seed=seed, progress=progress,
                                    **extra)

    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one sample in the space diffusion runs in."""
        return self.shape

    def generate(self, n: int, y, *, seed: int, **kw: Any) -> torch.Tensor:
        return self._sample_space(n, y, seed=seed, **kw)

    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        """Digits FD, class accuracy and sampling time per ``eval_samplers`` entry, and unguided."""
        n = int(self.config.get("eval_samples", 1000))
        y = class_labels(n, NUM_CLASSES)
        out: dict[str, Any] = {}
        for sampler, steps in self.config["eval_samplers"]:
            t0 = time.perf_counter()
            x = to_symmetric(self.generate(n, y, seed=seed + 1, sampler=sampler, steps=int(steps)), self.scale)
            key = f"{sampler}_{steps}"
            out[f"digits_fd_{key}"] = metrics.digits_fd(x)
            out[f"class_accuracy_{key}"] = metrics.class_accuracy(x, y)
            out[f"sample_seconds_{key}"] = time.perf_counter() - t0
        s, st = self.config["sampler"], int(self.config["sample_steps"])
        x = to_symmetric(self.generate(n, y, seed=seed + 1, sampler=s, steps=st, guidance_scale=1.0), self.scale)
        out[f"class_accuracy_{s}_{st}_unguided"] = metrics.class_accuracy(x, y)
        out[f"digits_fd_{s}_{st}_unguided"] = metrics.digits_fd(x)
        return out
