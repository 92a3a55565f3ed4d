"""Denoising autoencoder family of the zoo."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from gencore.diffusion import make_schedule, q_sample
from gencore.models.trainer import Objective
from gencore.models.vae import DenoisingAutoencoder
from gencore.rng import rand, randn
from gencore.zoo.base import ZooModel, sample_metrics
from gencore.zoo.data import Dataset, flat

__all__ = ["DAEFamily"]

EVAL_STREAM = 10_000


class DAEFamily(ZooModel):
    """Denoising autoencoder trained on ``q_sample`` noise at several levels."""

    name = "dae"
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 4000, "batch_size": 128, "lr": 1e-3, "hidden": 256, "bottleneck": 32,
        "levels": (50, 150, 300, 500), "chain_steps": 5,
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.schedule = make_schedule("linear")
        self.levels = tuple(int(t) for t in config["levels"])
        self.net = DenoisingAutoencoder(self.dim, hidden=config["hidden"], bottleneck=config["bottleneck"])

    def _levels(self, n: int, seed: int, stream: int) -> torch.Tensor:
        u = rand(n, seed=seed, stream=stream, dtype=torch.float64)
        idx = (u * len(self.levels)).long().clamp_max(len(self.levels) - 1)
        return torch.tensor(self.levels)[idx]

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x = flat(batch[0])

        def loss():
            t = self._levels(x.shape[0], seed, 2 * step + 1)
            x_t, _ = q_sample(x, t, self.schedule, seed=seed, stream=2 * step)
            return (self.net(x_t) - x).pow(2).mean()

        return [("main", loss)]

    @torch.no_grad()
    def denoise(self, x_t: torch.Tensor) -> torch.Tensor:
        """Reconstructs clean data from noised ``x_t`` ``(n, dim)``."""
        return self.net(flat(x_t))

    @torch.no_grad()
    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw: Any) -> torch.Tensor:
        """A denoise/re-noise Markov chain (Bengio et al. 2013, "Generalized denoising
        auto-encoders as generative models"): start from ``N(0, I)``, then alternately denoise
        and re-noise at the levels from the largest to the smallest, ending denoised."""
        x = randn(n, self.dim, seed=seed)
        stream = 1
        for level in sorted(self.levels, reverse=True):
            for _ in range(int(self.config["chain_steps"])):
                x = self.net(q_sample(x, torch.full((n,), level), self.schedule, seed=seed, stream=stream)[0])
                stream += 1
        return x

    @torch.no_grad()
    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        """Denoising MSE per noise level against the noisy input's, and sample metrics."""
        x = flat(ds.x_test)
        out: dict[str, Any] = {}
        for i, level in enumerate(self.levels):
            x_t, _ = q_sample(x, torch.full((x.shape[0],), level), self.schedule, seed=seed, stream=EVAL_STREAM + i)
            a = self.schedule.alpha_prod(level) ** 0.5
            out[f"mse_t{level}"] = float((self.net(x_t) - x).pow(2).mean())
            out[f"noisy_mse_t{level}"] = float((x_t / a - x).pow(2).mean())
        out.update(sample_metrics(self, ds, seed=seed))
        return out
