"""Latent diffusion family of the zoo: a VAE first, then diffusion on its latents."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gencore.models.mlp import MLPDenoiser
from gencore.models.trainer import Objective
from gencore.models.vae import VAE
from gencore.zoo.data import Dataset, flat
from gencore.zoo.diffusion import DiffusionFamily

__all__ = ["LatentDiffusionFamily"]


class LatentDiffusionFamily(DiffusionFamily):
    """Latent diffusion (Rombach et al. 2022): a VAE first, then diffusion on its latents."""

    name = "latent_diffusion"
    scale = "unit"
    _group = "denoiser"
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 6000, "vae_steps": 3000, "batch_size": 128, "lr": 1e-3, "latent_dim": 8, "hidden": 256,
        "den_hidden": 256, "den_depth": 3, "p_uncond": 0.1, "schedule": "linear", "ema_decay": 0.995,
        "warmup": 0, "sampler": "dpmpp_2m", "sample_steps": 20, "guidance_scale": 3.0, "grad_clip": 1.0,
        "kl_weight": 1.0, "eval_samplers": (("ddim", 50), ("dpmpp_2m", 10), ("dpmpp_2m", 20)),
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.vae = VAE(self.dim, latent_dim=config["latent_dim"], hidden=config["hidden"])
        self.register_buffer("latent_mean", torch.zeros(config["latent_dim"]))
        self.register_buffer("latent_std", torch.ones(config["latent_dim"]))
        self.register_buffer("latent_ready", torch.zeros((), dtype=torch.bool))

    def _make_net(self, config: dict) -> nn.Module:
        return MLPDenoiser(config["latent_dim"], hidden=config["den_hidden"], depth=config["den_depth"],
                           num_classes=self.num_classes)

    def latent_shape(self) -> tuple[int, ...]:
        return (int(self.config["latent_dim"]),)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"vae": list(self.vae.parameters()), "denoiser": list(self.net.parameters())}

    def fit(self, ds: Dataset, *, progress: bool = False, checkpoint: Path | None = None,
            checkpoint_every: int = 0, resume: bool = False) -> tuple[float, list[dict]]:
        """Trains the VAE for ``vae_steps``, then the denoiser on its standardised latents.

        The latents' statistics are those of the whole training split, taken once at the switch.
        Arguments and return value as :meth:`ZooModel.fit <gencore.zoo.base.ZooModel.fit>`.
        """
        self._train_x = ds.x_train
        return super().fit(ds, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                           resume=resume)

    @torch.no_grad()
    def _fit_latent_stats(self, x: torch.Tensor) -> None:
        mu, _ = self.vae.encode(flat(x))
        self.latent_mean.copy_(mu.mean(0))
        self.latent_std.copy_(mu.std(0).clamp_min(1e-3))
        self.latent_ready.fill_(True)

    def _x0(self, batch):
        x, y = batch
        with torch.no_grad():
            mu, _ = self.vae.encode(flat(x))
        return (mu - self.latent_mean) / self.latent_std, y

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x = batch[0]
        if step < int(self.config["vae_steps"]):
            beta = float(self.config["kl_weight"])
            return [("vae", lambda: -self.vae.elbo(flat(x), seed=seed, stream=step, beta=beta).mean())]
        if not bool(self.latent_ready):
            self._fit_latent_stats(self._train_x)
        return super().objectives(batch, step=step, seed=seed)

    def generate(self, n: int, y, *, seed: int, **kw: Any) -> torch.Tensor:
        z = self._sample_space(n, y, seed=seed, **kw)
        with torch.no_grad():
            return self.vae.decode(z * self.latent_std + self.latent_mean)
