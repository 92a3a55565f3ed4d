"""VAE and conditional VAE families of the zoo."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from gencore.metrics import bits_per_dim
from gencore.models.trainer import Objective
from gencore.models.vae import VAE
from gencore.zoo.base import ZooModel, sample_metrics
from gencore.zoo.data import DIGITS, Dataset, flat

__all__ = ["CVAEFamily", "VAEFamily"]

EVAL_STREAM = 2**31


class VAEFamily(ZooModel):
    """VAE with a Gaussian decoder on dequantised digits in [0, 1] (or raw toy coordinates)."""

    name = "vae"
    data_kinds = ("digits", "toy")
    scale = "unit"
    dequantize = True
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 3000, "batch_size": 128, "lr": 1e-3, "latent_dim": 16, "hidden": 128, "iwae_k": 256,
        "warmup": 0,
    }

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        digits = self.data_name == DIGITS
        self.vae = VAE(self.dim, latent_dim=config["latent_dim"], hidden=config["hidden"],
                       num_classes=self.num_classes, output="sigmoid" if digits else "linear")

    def objectives(self, batch, *, step: int, seed: int) -> list[Objective]:
        x, y = batch
        x = flat(x)
        y = y if self.conditional else None
        return [("main", lambda: -self.vae.elbo(x, y, seed=seed, stream=step).mean())]

    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw: Any) -> torch.Tensor:
        return self.vae.sample(n, y, seed=seed)

    @torch.no_grad()
    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        """Test ELBO and IWAE bound in nats (and bits per dimension on digits), sample metrics."""
        x = flat(ds.x_test)
        y = ds.y_test if self.conditional else None
        k = self.config["iwae_k"]
        elbo = float(self.vae.elbo(x, y, seed=seed, stream=EVAL_STREAM).mean())
        iw = float(self.vae.iwae(x, y, k=int(k), seed=seed, stream=EVAL_STREAM + 1).mean())
        out = {"test_elbo_nats": elbo, f"test_iwae{k}_nats": iw}
        if ds.is_digits:
            out["test_elbo_bits_per_dim"] = bits_per_dim(-elbo, self.dim, bin_width=1 / 17)
            out["test_iwae_bits_per_dim"] = bits_per_dim(-iw, self.dim, bin_width=1 / 17)
        out.update(sample_metrics(self, ds, seed=seed))
        return out


class CVAEFamily(VAEFamily):
    """Conditional VAE (Sohn et al. 2015): the label goes into encoder and decoder."""

    name = "cvae"
    conditional_family = True
