"""The model zoo: every model family trained, sampled and measured through one API.

``train(name, data=...)`` builds a model from :data:`MODELS`, trains it with the shared
:class:`~gencore.models.trainer.Trainer` (or fits it, for naive Bayes) on the embedded digits
or a 2-D toy, measures it and returns ``(model, metrics, config)``; ``sample(model, n, y=...)``
draws from it; ``save``/``load`` write and read it as a safetensors checkpoint plus JSON.
Runs are reproducible given the seed: initialisation under ``torch.manual_seed(seed)``,
batch order from ``(seed, epoch)``, all training noise from gencore's counter-based
generator keyed by ``(seed, step)``.

Families (data they accept; metric):

==================  ============  =========================================================
name                data          metrics
==================  ============  =========================================================
naive_bayes         digits        test accuracy (and scikit-learn's), samples' class accuracy
gan, cgan           digits, toys  digits FD (+ class accuracy) / sliced Wasserstein, MMD
vae, cvae           digits, toys  test ELBO and IWAE bound (nats, bits/dim), digits FD
dae                 digits        denoising MSE per noise level vs the noisy input
diffusion           digits        class accuracy under guidance, digits FD per sampler
latent_diffusion    digits        the same, diffusion in a VAE's latent space
flow_matching       digits        the same, rectified flow with its Euler sampler
realnvp, glow       digits, toys  test NLL (nats, bits/dim), digits FD / sliced Wasserstein
==================  ============  =========================================================
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gencore.data.digits import NUM_CLASSES, check_finite, check_labels, load_digits
from gencore.models.trainer import Trainer

__all__ = [
    "DATA",
    "MODELS",
    "Dataset",
    "ZooModel",
    "evaluate",
    "load",
    "load_data",
    "sample",
    "save",
    "train",
]

log = logging.getLogger(__name__)

DIGITS = "digits"


# ============================================================================ data
def _toy_names() -> tuple[str, ...]:
    try:
        from gencore.data import toys
    except ImportError:
        return ()
    return tuple(toys.TOYS)


def _data_names() -> tuple[str, ...]:
    return (DIGITS,) + _toy_names()


class _DataNames:
    """The data names :func:`train` accepts (digits and the 2-D toys of gencore.data.toys)."""

    def __iter__(self):
        return iter(_data_names())

    def __contains__(self, item) -> bool:
        return item in _data_names()

    def __repr__(self) -> str:
        return repr(_data_names())


DATA = _DataNames()


@dataclass
class Dataset:
    """Train/validation/test tensors of one dataset, scaled for one model family.

    Attributes:
        name: ``"digits"`` or a toy name.
        x_train, y_train, x_val, y_val, x_test, y_test: samples ``(n, *shape)`` and labels
            ``(n,)`` (zeros for toys without labels).
        shape: event shape, ``(1, 8, 8)`` or ``(2,)``.
        num_classes: 10 for digits, the toy's class count or 0.
        scale: ``"unit"`` / ``"symmetric"`` for digits, ``"raw"`` for toys.
        dequantize: whether ``train_epoch`` re-draws dequantisation noise per epoch.
        seed: data seed.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    shape: tuple[int, ...]
    num_classes: int
    scale: str
    dequantize: bool = False
    seed: int = 0

    @property
    def is_digits(self) -> bool:
        return self.name == DIGITS

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def train_epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training tensors of one epoch (fresh dequantisation noise per epoch)."""
        if self.dequantize and epoch > 0:
            x, y = load_digits("train", scale=self.scale, dequantize=True, seed=self.seed, stream=epoch)
            return x, y
        return self.x_train, self.y_train


def _toy(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from gencore.data.toys import make_toy

    x = make_toy(name, n, seed=seed)
    return x.float(), torch.zeros(n, dtype=torch.long)


def load_data(data: str, *, scale: str = "symmetric", dequantize: bool = False, seed: int = 0,
              toy_size: int = 4000) -> Dataset:
    """Loads ``data`` (``"digits"`` or a toy name) as a :class:`Dataset`.

    Args:
        data: dataset name.
        scale: digits scaling (``"unit"`` or ``"symmetric"``).
        dequantize: uniform dequantisation of the digits (likelihood models).
        seed: dequantisation / toy sampling seed.
        toy_size: training set size of a toy (validation and test are a quarter each).

    Example:
        >>> from gencore.zoo import load_data
        >>> ds = load_data("digits")
        >>> tuple(ds.x_train.shape), ds.num_classes
        ((1258, 1, 8, 8), 10)
    """
    if not isinstance(data, str) or data not in DATA:
        raise ValueError(f"data must be one of {list(DATA)}, got {data!r}")
    if data == DIGITS:
        parts = {}
        for split in ("train", "val", "test"):
            parts[split] = load_digits(split, scale=scale, dequantize=dequantize, seed=seed)
        return Dataset(DIGITS, *parts["train"], *parts["val"], *parts["test"], shape=(1, 8, 8),
                       num_classes=NUM_CLASSES, scale=scale, dequantize=dequantize, seed=seed)
    # toys: train/val/test are disjoint sample ranges of the same seeded generator
    xs, ys = _toy(data, toy_size * 3 // 2, seed)
    n_val = toy_size // 4
    ncls = int(ys.max()) + 1 if bool((ys > 0).any()) else 0
    return Dataset(data, xs[:toy_size], ys[:toy_size], xs[toy_size:toy_size + n_val],
                   ys[toy_size:toy_size + n_val], xs[toy_size + n_val:], ys[toy_size + n_val:],
                   shape=(xs.shape[1],), num_classes=ncls, scale="raw", seed=seed)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _to_symmetric(x: torch.Tensor, scale: str) -> torch.Tensor:
    """Digits images of ``scale`` to [-1, 1] ``(n, 1, 8, 8)`` (the metrics' convention)."""
    x = x.reshape(-1, 1, 8, 8)
    if scale == "unit":
        x = 2 * x - 1
    return x.clamp(-1, 1)


def _class_labels(n: int, num_classes: int) -> torch.Tensor:
    return torch.arange(n) % num_classes


# ============================================================================ families
class ZooModel(nn.Module):
    """Base class of the zoo's families.

    Subclasses set ``name``, ``data_kinds`` (``"digits"``, ``"toy"``), ``scale``,
    ``dequantize``, ``defaults`` (hyper-parameters incl. ``steps``, ``batch_size``, ``lr``),
    build their networks from a config, and implement ``param_groups``, ``objectives`` (see
    :class:`~gencore.models.trainer.Trainer`), ``generate`` and ``evaluate``.
    """

    name: ClassVar[str] = ""
    data_kinds: ClassVar[tuple[str, ...]] = ("digits",)
    scale: ClassVar[str] = "symmetric"
    dequantize: ClassVar[bool] = False
    conditional_family: ClassVar[bool] = False
    guidance: ClassVar[bool] = False  # accepts guidance_scale when sampling
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.shape = tuple(config["shape"])
        self.num_classes = int(config["num_classes"]) if self.conditional_family else 0
        self.data_name = config["data"]

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": list(self.parameters())}

    def objectives(self, batch, *, step: int, seed: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        return _sample_metrics(self, ds, seed=seed)

    def to_output(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space samples to the user's convention: digits in [0, 1] ``(n, 1, 8, 8)``."""
        if self.data_name == DIGITS:
            return (_to_symmetric(x, self.scale) + 1) / 2
        return x.reshape(x.shape[0], *self.shape)


def _sample_metrics(model: ZooModel, ds: Dataset, *, seed: int = 0, **kw) -> dict[str, Any]:
    """Sample quality: digits FD (+ class accuracy) or sliced Wasserstein and MMD (toys)."""
    from gencore import metrics

    n = int(model.config.get("eval_samples", 1000))
    out: dict[str, Any] = {}
    if ds.is_digits:
        y = _class_labels(n, NUM_CLASSES) if model.conditional else None
        x = _to_symmetric(model.generate(n, y, seed=seed + 1, **kw), model.scale)
        out["digits_fd"] = metrics.digits_fd(x)
        if y is not None:
            out["class_accuracy"] = metrics.class_accuracy(x, y)
    else:
        y = ds.y_test[:n] if model.conditional else None
        x = model.generate(min(n, ds.x_test.shape[0]) if y is not None else n, y, seed=seed + 1, **kw)
        ref = ds.x_test
        out["sliced_wasserstein"] = metrics.sliced_wasserstein(_flat(x), _flat(ref), seed=seed)
        out["mmd"] = metrics.mmd(_flat(x)[:2000], _flat(ref)[:2000])
    return out


# ---------------------------------------------------------------------------- GAN
class GANFamily(ZooModel):
    """GAN (Goodfellow et al. 2014) with the non-saturating generator loss, on vectors."""

    name = "gan"
    data_kinds = ("digits", "toy")
    defaults = {"steps": 4000, "batch_size": 128, "lr": 2e-4, "latent_dim": 32, "hidden": 256,
                "loss": "nonsaturating", "betas": (0.5, 0.999)}

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        from gencore.gan import GAN

        digits = self.data_name == DIGITS
        self.gan = GAN(self.dim, latent_dim=config["latent_dim"], num_classes=self.num_classes,
                       hidden=config["hidden"], output="tanh" if digits else "linear", loss=config["loss"])

    def param_groups(self):
        return {"discriminator": list(self.gan.discriminator.parameters()),
                "generator": list(self.gan.generator.parameters())}

    def _z(self, n: int, seed: int, stream: int, like: torch.Tensor | None = None) -> torch.Tensor:
        from gencore.rng import randn

        return randn(n, self.gan.latent_dim, seed=seed, stream=stream)

    def objectives(self, batch, *, step: int, seed: int):
        from gencore.gan import discriminator_loss, generator_loss

        x, y = batch
        x = _flat(x)
        y = y if self.conditional else None
        n = x.shape[0]
        z_d, z_g = self._z(n, seed, 2 * step), self._z(n, seed, 2 * step + 1)

        def d_loss():
            fake = self.gan.generate(z_d, y).detach()
            return discriminator_loss(self.gan.discriminate(x, y), self.gan.discriminate(fake, y))

        def g_loss():
            return generator_loss(self.gan.discriminate(self.gan.generate(z_g, y), y), self.gan.loss_kind)

        return [("discriminator", d_loss), ("generator", g_loss)]

    @torch.no_grad()
    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw) -> torch.Tensor:
        from gencore.rng import randn

        z = randn(n, self.gan.latent_dim, seed=seed, stream=2**31)
        return self.gan.generate(z, y)


class CGANFamily(GANFamily):
    """Conditional GAN (Mirza and Osindero 2014): the label goes into G and D."""

    name = "cgan"
    conditional_family = True


# ---------------------------------------------------------------------------- VAE
class VAEFamily(ZooModel):
    """VAE with a Gaussian decoder on dequantised digits in [0, 1] (or raw toy coordinates)."""

    name = "vae"
    data_kinds = ("digits", "toy")
    scale = "unit"
    dequantize = True
    defaults = {"steps": 3000, "batch_size": 128, "lr": 1e-3, "latent_dim": 16, "hidden": 128,
                "iwae_k": 256, "warmup": 0}

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        from gencore.models.vae import VAE

        digits = self.data_name == DIGITS
        self.vae = VAE(self.dim, latent_dim=config["latent_dim"], hidden=config["hidden"],
                       num_classes=self.num_classes, output="sigmoid" if digits else "linear")

    def objectives(self, batch, *, step: int, seed: int):
        x, y = batch
        x = _flat(x)
        y = y if self.conditional else None
        return [("main", lambda: -self.vae.elbo(x, y, seed=seed, stream=step).mean())]

    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw) -> torch.Tensor:
        return self.vae.sample(n, y, seed=seed)

    @torch.no_grad()
    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        from gencore.metrics import bits_per_dim

        x = _flat(ds.x_test)
        y = ds.y_test if self.conditional else None
        elbo = float(self.vae.elbo(x, y, seed=seed, stream=2**31).mean())
        iw = float(self.vae.iwae(x, y, k=int(self.config["iwae_k"]), seed=seed, stream=2**31 + 1).mean())
        out = {"test_elbo_nats": elbo, f"test_iwae{self.config['iwae_k']}_nats": iw}
        if ds.is_digits:
            out["test_elbo_bits_per_dim"] = bits_per_dim(-elbo, self.dim, bin_width=1 / 17)
            out["test_iwae_bits_per_dim"] = bits_per_dim(-iw, self.dim, bin_width=1 / 17)
        out.update(_sample_metrics(self, ds, seed=seed))
        return out


class CVAEFamily(VAEFamily):
    """Conditional VAE (Sohn et al. 2015): the label goes into encoder and decoder."""

    name = "cvae"
    conditional_family = True


# ---------------------------------------------------------------------------- DAE
class DAEFamily(ZooModel):
    """Denoising autoencoder trained on ``q_sample`` noise at several levels."""

    name = "dae"
    defaults = {"steps": 4000, "batch_size": 128, "lr": 1e-3, "hidden": 256, "bottleneck": 32,
                "levels": (50, 150, 300, 500), "chain_steps": 5}

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        from gencore.diffusion import make_schedule
        from gencore.models.vae import DenoisingAutoencoder

        self.schedule = make_schedule("linear")
        self.levels = tuple(int(t) for t in config["levels"])
        self.net = DenoisingAutoencoder(self.dim, hidden=config["hidden"], bottleneck=config["bottleneck"])

    def _levels(self, n: int, seed: int, stream: int) -> torch.Tensor:
        from gencore.rng import rand

        u = rand(n, seed=seed, stream=stream, dtype=torch.float64)
        idx = (u * len(self.levels)).long().clamp_max(len(self.levels) - 1)
        return torch.tensor(self.levels)[idx]

    def objectives(self, batch, *, step: int, seed: int):
        from gencore.diffusion import q_sample

        x = _flat(batch[0])

        def loss():
            t = self._levels(x.shape[0], seed, 2 * step + 1)
            x_t, _ = q_sample(x, t, self.schedule, seed=seed, stream=2 * step)
            return (self.net(x_t) - x).pow(2).mean()

        return [("main", loss)]

    @torch.no_grad()
    def denoise(self, x_t: torch.Tensor) -> torch.Tensor:
        """Reconstructs clean data from noised ``x_t`` ``(n, dim)``."""
        return self.net(_flat(x_t))

    @torch.no_grad()
    def generate(self, n: int, y: torch.Tensor | None, *, seed: int, **kw) -> torch.Tensor:
        """A denoise/re-noise Markov chain (Bengio et al. 2013, "Generalized denoising
        auto-encoders as generative models"): start from ``N(0, I)``, then alternately denoise
        and re-noise at the levels from the largest to the smallest, ending denoised."""
        from gencore.diffusion import q_sample
        from gencore.rng import randn

        x = randn(n, self.dim, seed=seed)
        stream = 1
        for level in sorted(self.levels, reverse=True):
            for _ in range(int(self.config["chain_steps"])):
                x = self.net(q_sample(x, torch.full((n,), level), self.schedule, seed=seed, stream=stream)[0])
                stream += 1
        return x

    @torch.no_grad()
    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        from gencore.diffusion import q_sample

        x = _flat(ds.x_test)
        out: dict[str, Any] = {}
        for i, level in enumerate(self.levels):
            x_t, _ = q_sample(x, torch.full((x.shape[0],), level), self.schedule, seed=seed, stream=10_000 + i)
            a = self.schedule.alpha_prod(level) ** 0.5
            out[f"mse_t{level}"] = float((self.net(x_t) - x).pow(2).mean())
            out[f"noisy_mse_t{level}"] = float((x_t / a - x).pow(2).mean())
        out.update(_sample_metrics(self, ds, seed=seed))
        return out


# ---------------------------------------------------------------------------- diffusion
from gencore.diffusion.sampling import SAMPLERS


class DiffusionFamily(ZooModel):
    """Class-conditional DDPM on digits: UNet, noise prediction, CFG label dropout."""

    name = "diffusion"
    conditional_family = True
    guidance = True
    _group = "main"
    defaults = {"steps": 1500, "batch_size": 128, "lr": 2e-3, "channels": 16, "p_uncond": 0.1,
                "schedule": "linear", "ema_decay": 0.995, "warmup": 100, "sampler": "dpmpp_2m",
                "sample_steps": 20, "guidance_scale": 3.0, "grad_clip": 1.0,
                "eval_samplers": (("ddim", 50), ("dpmpp_2m", 10), ("dpmpp_2m", 20))}

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        from gencore.diffusion import make_schedule

        self.schedule = make_schedule(config["schedule"])
        self.net = self._make_net(config)

    def _make_net(self, config: dict) -> nn.Module:
        from gencore.models.unet import UNet

        return UNet(self.shape[0], channels=config["channels"], num_classes=self.num_classes)

    def _x0(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch[0], batch[1]

    def objectives(self, batch, *, step: int, seed: int):
        from gencore.diffusion.training import diffusion_loss

        x, y = self._x0(batch)
        null = self.num_classes

        def loss():
            return diffusion_loss(self.net, x, self.schedule, cond=y, p_uncond=float(self.config["p_uncond"]),
                                  null_label=null, seed=seed, stream=step)

        return [(self._group, loss)]

    def _sample_space(self, n: int, y, *, seed: int, sampler: str | None = None, steps: int | None = None,
                      guidance_scale: float | None = None, progress: bool = False) -> torch.Tensor:
        from gencore.diffusion import sample as diffusion_sample

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
        return self.shape

    def generate(self, n: int, y, *, seed: int, **kw) -> torch.Tensor:
        return self._sample_space(n, y, seed=seed, **kw)

    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        from gencore import metrics

        n = int(self.config.get("eval_samples", 1000))
        y = _class_labels(n, NUM_CLASSES)
        out: dict[str, Any] = {}
        for sampler, steps in self.config["eval_samplers"]:
            t0 = time.perf_counter()
            x = _to_symmetric(self.generate(n, y, seed=seed + 1, sampler=sampler, steps=int(steps)), self.scale)
            key = f"{sampler}_{steps}"
            out[f"digits_fd_{key}"] = metrics.digits_fd(x)
            out[f"class_accuracy_{key}"] = metrics.class_accuracy(x, y)
            out[f"sample_seconds_{key}"] = time.perf_counter() - t0
        s, st = self.config["sampler"], int(self.config["sample_steps"])
        x = _to_symmetric(self.generate(n, y, seed=seed + 1, sampler=s, steps=st, guidance_scale=1.0), self.scale)
        out[f"class_accuracy_{s}_{st}_unguided"] = metrics.class_accuracy(x, y)
        out[f"digits_fd_{s}_{st}_unguided"] = metrics.digits_fd(x)
        return out


class LatentDiffusionFamily(DiffusionFamily):
    """Latent diffusion (Rombach et al. 2022): a VAE first, then diffusion on its latents."""

    name = "latent_diffusion"
    scale = "unit"
    _group = "denoiser"
    defaults = {"steps": 6000, "vae_steps": 3000, "batch_size": 128, "lr": 1e-3, "latent_dim": 8,
                "hidden": 256, "den_hidden": 256, "den_depth": 3, "p_uncond": 0.1, "schedule": "linear",
                "ema_decay": 0.995, "warmup": 0, "sampler": "dpmpp_2m", "sample_steps": 20,
                "guidance_scale": 3.0, "grad_clip": 1.0, "kl_weight": 1.0,
                "eval_samplers": (("ddim", 50), ("dpmpp_2m", 10), ("dpmpp_2m", 20))}

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        from gencore.models.vae import VAE

        self.vae = VAE(self.dim, latent_dim=config["latent_dim"], hidden=config["hidden"])
        self.register_buffer("latent_mean", torch.zeros(config["latent_dim"]))
        self.register_buffer("latent_std", torch.ones(config["latent_dim"]))
        self.register_buffer("latent_ready", torch.zeros((), dtype=torch.bool))

    def _make_net(self, config: dict) -> nn.Module:
        from gencore.models.mlp import MLPDenoiser

        return MLPDenoiser(config["latent_dim"], hidden=config["den_hidden"], depth=config["den_depth"],
                           num_classes=self.num_classes)

    def latent_shape(self) -> tuple[int, ...]:
        return (int(self.config["latent_dim"]),)

    def param_groups(self):
        return {"vae": list(self.vae.parameters()), "denoiser": list(self.net.parameters())}

    @torch.no_grad()
    def _fit_latent_stats(self, x: torch.Tensor) -> None:
        mu, _ = self.vae.encode(_flat(x))
        self.latent_mean.copy_(mu.mean(0))
        self.latent_std.copy_(mu.std(0).clamp_min(1e-3))
        self.latent_ready.fill_(True)

    def _x0(self, batch):
        x, y = batch
        with torch.no_grad():
            mu, _ = self.vae.encode(_flat(x))
        return (mu - self.latent_mean) / self.latent_std, y

    def objectives(self, batch, *, step: int, seed: int):
        x = batch[0]
        if step < int(self.config["vae_steps"]):
            beta = float(self.config["kl_weight"])
            return [("vae", lambda: -self.vae.elbo(_flat(x), seed=seed, stream=step, beta=beta).mean())]
        if not bool(self.latent_ready):
            # statistics of the whole training set's latents, once, at the switch
            self._fit_latent_stats(self._train_x)
        return super().objectives(batch, step=step, seed=seed)

    def generate(self, n: int, y, *, seed: int, **kw) -> torch.Tensor:
        z = self._sample_space(n, y, seed=seed, **kw)
        with torch.no_grad():
            return self.vae.decode(z * self.latent_std + self.latent_mean)


class FlowMatchingFamily(DiffusionFamily):
    """Rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023) with a UNet.

    Path ``x_s = (1 - s) x_0 + s eps``, velocity target ``u = eps - x_0``, ``s ~ U(0, 1)``;
    sampled from ``s = 1`` to 0 with :func:`gencore.diffusion.flow_match_euler_step`.
    """

    name = "flow_matching"
    defaults = {"steps": 1500, "batch_size": 128, "lr": 2e-3, "channels": 16, "p_uncond": 0.1,
                "ema_decay": 0.995, "warmup": 100, "sample_steps": 20, "guidance_scale": 3.0,
                "grad_clip": 1.0, "schedule": "linear", "sampler": "flow_match_euler",
                "eval_samplers": (("flow_match_euler", 10), ("flow_match_euler", 20), ("flow_match_euler", 50))}

    def _make_net(self, config: dict) -> nn.Module:
        from gencore.models.unet import UNet

        return UNet(self.shape[0], channels=config["channels"], num_classes=self.num_classes, time_scale=1000.0)

    def objectives(self, batch, *, step: int, seed: int):
        from gencore.rng import rand, randn

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
        from tqdm.auto import tqdm

        from gencore.diffusion import flow_match_euler_step
        from gencore.rng import randn

        if sampler not in (None, "flow_match_euler"):
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


# ---------------------------------------------------------------------------- naive Bayes
class NaiveBayesFamily(ZooModel):
    """Gaussian naive Bayes (fitted, not trained by gradient)."""

    name = "naive_bayes"
    scale = "unit"
    conditional_family = True
    defaults = {"steps": 1, "batch_size": 1, "lr": 0.0, "var_smoothing": 1e-9}
    _state_keys = ("theta_", "var_", "class_prior_", "class_count_", "classes_")

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        from gencore.naive_bayes import GaussianNB

        self.nb = GaussianNB(var_smoothing=float(config["var_smoothing"]))

    def fit(self, ds: Dataset) -> None:
        self.nb.fit(_flat(ds.x_train).double(), ds.y_train)

    def state_dict(self, *args, **kwargs):  # the fitted statistics
        out = {k: getattr(self.nb, k) for k in self._state_keys if getattr(self.nb, "classes_", None) is not None}
        if out:
            out["epsilon_"] = torch.tensor(float(self.nb.epsilon_), dtype=torch.float64)
        return out

    def load_state_dict(self, state, strict: bool = True):
        for k in self._state_keys:
            setattr(self.nb, k, state[k].clone())
        self.nb.epsilon_ = float(state["epsilon_"])
        self.nb.n_features_in_ = int(state["theta_"].shape[1])

    def generate(self, n: int, y, *, seed: int, **kw) -> torch.Tensor:
        x, _ = self.nb.sample(n, y=y, seed=seed)
        return x.float().clamp(0, 1)

    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        from sklearn.naive_bayes import GaussianNB as SkNB

        xt, yt = _flat(ds.x_test).double(), ds.y_test
        sk = SkNB(var_smoothing=float(self.config["var_smoothing"])).fit(_flat(ds.x_train).double().numpy(),
                                                                          ds.y_train.numpy())
        out = {"test_accuracy": self.nb.score(xt, yt),
               "sklearn_test_accuracy": float(sk.score(xt.numpy(), yt.numpy())),
               "max_abs_proba_diff_vs_sklearn": float(
                   (self.nb.predict_proba(xt) - torch.from_numpy(sk.predict_proba(xt.numpy()))).abs().max())}
        out.update(_sample_metrics(self, ds, seed=seed))
        return out


# ---------------------------------------------------------------------------- flows
class FlowFamily(ZooModel):
    """Normalizing flows from :mod:`gencore.flows`, trained by maximum likelihood."""

    name = "realnvp"
    data_kinds = ("digits", "toy")
    scale = "unit"
    dequantize = True
    defaults = {"steps": 1500, "batch_size": 128, "lr": 1e-3, "transforms": 8, "hidden": 64,
                "grad_clip": 5.0}

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.flow = self._make_flow(config)

    def _make_flow(self, config: dict) -> nn.Module:
        from gencore.flows import RealNVP

        h = int(config["hidden"])
        return RealNVP(self.dim, transforms=int(config["transforms"]), hidden=(h, h), actnorm=True)

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return _flat(x)

    def objectives(self, batch, *, step: int, seed: int):
        x = self._x(batch[0])
        return [("main", lambda: -self.flow.log_prob(x).mean())]

    @torch.no_grad()
    def generate(self, n: int, y, *, seed: int, **kw) -> torch.Tensor:
        x = self.flow.sample(n, seed=seed)
        return x.reshape(n, -1)

    @torch.no_grad()
    def evaluate(self, ds: Dataset, *, seed: int = 0) -> dict[str, Any]:
        x = self._x(ds.x_test)
        out: dict[str, Any] = {"test_nll_nats": float(-self.flow.log_prob(x).mean())}
        if ds.is_digits:  # dequantised 17-level pixels: the discrete bound (gencore.flows)
            out["test_bits_per_dim"] = float(self.flow.bits_per_dim(x, levels=17).mean())
        out.update(_sample_metrics(self, ds, seed=seed))
        return out


class GlowFamily(FlowFamily):
    """Multi-scale Glow-style flow on 8x8 digit images."""

    name = "glow"
    data_kinds = ("digits",)
    defaults = {"steps": 2000, "batch_size": 128, "lr": 1e-3, "levels": 2, "flow_steps": 4, "hidden": 64,
                "grad_clip": 5.0}

    def _make_flow(self, config: dict) -> nn.Module:
        from gencore.flows import GlowFlow

        return GlowFlow(self.shape, levels=int(config["levels"]), steps=int(config["flow_steps"]),
                        hidden=int(config["hidden"]))

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def objectives(self, batch, *, step: int, seed: int):
        x = self._x(batch[0])
        return [("main", lambda: -self.flow.log_prob(x).mean())]

    @torch.no_grad()
    def generate(self, n: int, y, *, seed: int, **kw) -> torch.Tensor:
        return _flat(self.flow.sample(n, seed=seed)).clamp(0, 1)


MODELS: dict[str, type[ZooModel]] = {
    cls.name: cls
    for cls in (NaiveBayesFamily, GANFamily, CGANFamily, VAEFamily, CVAEFamily, DAEFamily, DiffusionFamily,
                LatentDiffusionFamily, FlowMatchingFamily, FlowFamily, GlowFamily)
}


# ============================================================================ API
def _family(name: object) -> type[ZooModel]:
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name]


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def make_config(name: str, data: str = DIGITS, *, seed: int = 0, **overrides: Any) -> dict:
    """The full config of a run: the family's defaults, ``overrides``, data shape and classes."""
    cls = _family(name)
    if not isinstance(data, str) or data not in DATA:
        raise ValueError(f"data must be one of {list(DATA)}, got {data!r}")
    kind = "digits" if data == DIGITS else "toy"
    if kind not in cls.data_kinds:
        raise ValueError(f"data={data!r}: model {name!r} trains on {', '.join(cls.data_kinds)} data only")
    unknown = sorted(set(overrides) - set(cls.defaults) - {"eval_samples", "checkpoint_every"})
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; options: {sorted(cls.defaults)}")
    cfg = dict(cls.defaults)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("steps", "batch_size"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "steps" else 1):
            raise ValueError(f"{key} must be a {'non-negative' if key == 'steps' else 'positive'} integer, got {v!r}")
    if kind == "digits":
        shape, ncls = [1, 8, 8], NUM_CLASSES
    else:
        ds = load_data(data, seed=seed, toy_size=64)
        shape, ncls = list(ds.shape), ds.num_classes
        if cls.conditional_family and ncls == 0:
            raise ValueError(f"data={data!r} has no class labels; model {name!r} is class-conditional")
    cfg.update({"kind": name, "data": data, "seed": int(seed), "shape": shape, "num_classes": ncls})
    return _jsonable(cfg)


def build(config: dict) -> ZooModel:
    """Builds the (untrained) model a config describes, initialised under ``config["seed"]``."""
    cls = _family(config.get("kind"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.get("seed", 0)))
        return cls(config)


def train(name: str, data: str = DIGITS, *, steps: int | None = None, seed: int = 0, progress: bool = False,
          out: str | Path | None = None, resume: bool = False, checkpoint_every: int = 0,
          evaluate_model: bool = True, threads: int | None = None,
          **overrides: Any) -> tuple[ZooModel, dict, dict]:
    """Trains one model of the zoo and measures it.

    Args:
        name: a key of :data:`MODELS`.
        data: ``"digits"`` or a 2-D toy name (see :data:`DATA`).
        steps: optimisation steps (default: the family's full-quality setting).
        seed: seeds initialisation, batch order and all training noise.
        progress: tqdm progress bar.
        out: directory to write ``model.safetensors`` + ``model.json`` (the final model),
            ``train_state.safetensors`` (resumable training state) and ``metrics.json``.
        resume: continue from ``out/train_state`` when it exists.
        checkpoint_every: write the training state every this many steps (needs ``out``).
        evaluate_model: compute the metrics (False: only ``train_seconds``).
        threads: torch CPU threads for this call (restored afterwards; None: unchanged). On a
            machine whose cores are busy with other work, 1 thread avoids OpenMP contention.
        **overrides: family hyper-parameters (see ``MODELS[name].defaults``).

    Returns:
        ``(model, metrics, config)``.

    Example:
        >>> from gencore import zoo
        >>> model, metrics, config = zoo.train("naive_bayes")
        >>> metrics["test_accuracy"] == metrics["sklearn_test_accuracy"]
        True
    """
    if checkpoint_every and out is None:
        raise ValueError("checkpoint_every needs out (a directory for the checkpoints)")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return train(name, data, steps=steps, seed=seed, progress=progress, out=out, resume=resume,
                         checkpoint_every=checkpoint_every, evaluate_model=evaluate_model, **overrides)
        finally:
            torch.set_num_threads(old)
    config = make_config(name, data, seed=seed, steps=steps, **overrides)
    cls = MODELS[name]
    ds = load_data(data, scale=cls.scale, dequantize=cls.dequantize, seed=seed)
    for split in ("x_train", "x_test"):
        check_finite(getattr(ds, split), "data")
    model = build(config)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        _check_writable(out_dir)
    t0 = time.perf_counter()
    if isinstance(model, NaiveBayesFamily):
        model.fit(ds)
        seconds = time.perf_counter() - t0
        history: list[dict] = []
    else:
        if isinstance(model, LatentDiffusionFamily):
            model._train_x = ds.x_train
        trainer = Trainer(
            model, ds.train_epoch, steps=int(config["steps"]), batch_size=int(config["batch_size"]),
            lr=float(config["lr"]), seed=seed, ema_decay=config.get("ema_decay"),
            grad_clip=config.get("grad_clip"), warmup=int(config.get("warmup", 0)),
            betas=tuple(config.get("betas", (0.9, 0.999))), progress=progress,
            checkpoint=(out_dir / "train_state") if out_dir is not None else None,
            checkpoint_every=int(checkpoint_every), config=config)
        trainer.run(resume=resume)
        seconds = trainer.seconds
        history = trainer.history
    model.eval()
    metrics: dict[str, Any] = {"train_seconds": seconds}
    if history:
        metrics["final_losses"] = {k: v for k, v in history[-1].items() if k != "step"}
    if evaluate_model:
        t1 = time.perf_counter()
        metrics.update(model.evaluate(ds, seed=seed))
        metrics["eval_seconds"] = time.perf_counter() - t1
    if out_dir is not None:
        save(model, out_dir / "model")
        from gencore.checkpoint import atomic_write_text

        atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return model, metrics, config


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out={str(path)!r} cannot be created: {exc}") from None
    probe = path / ".gencore-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"out={str(path)!r} is not writable: {exc}") from None


def _check_model(model: object) -> ZooModel:
    if not isinstance(model, ZooModel):
        raise TypeError(f"model must be a model returned by gencore.zoo.train or load, got {type(model).__name__}")
    return model


def sample(model: ZooModel, n: int, y: Any = None, *, seed: int = 0, sampler: str | None = None,
           steps: int | None = None, guidance_scale: float | None = None,
           progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draws ``n`` samples from a zoo model.

    Args:
        model: from :func:`train` or :func:`load`.
        n: number of samples.
        y: class labels for conditional models (one int or ``(n,)``); required for them and
            rejected for unconditional ones.
        seed: noise seed.
        sampler, steps: diffusion sampler and step count (diffusion families only).
        guidance_scale: classifier-free guidance scale (guided diffusion families only).
        progress: tqdm progress bar (diffusion families).

    Returns:
        ``(x, y)``: digits as images in [0, 1] ``(n, 1, 8, 8)``, toys as ``(n, 2)``; the labels
        used (or None).

    Example:
        >>> from gencore import zoo
        >>> model, _, _ = zoo.train("naive_bayes", evaluate_model=False)
        >>> x, y = zoo.sample(model, 4, y=3, seed=0)
        >>> tuple(x.shape), y.tolist()
        ((4, 1, 8, 8), [3, 3, 3, 3])
    """
    model = _check_model(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    from gencore._validate import check_seed

    seed = check_seed(seed)
    if model.conditional:
        if y is None:
            raise ValueError(f"y is required: model {model.name!r} is class-conditional "
                             f"(labels in [0, {model.num_classes}))")
        y = check_labels(y, model.num_classes, "y", n=n)
    elif y is not None:
        raise ValueError(f"y must be None: model {model.name!r} is unconditional")
    kw: dict[str, Any] = {}
    if guidance_scale is not None:
        if not model.guidance:
            raise ValueError(f"guidance_scale is only for guided diffusion models, not {model.name!r}")
        if not isinstance(guidance_scale, (int, float)) or isinstance(guidance_scale, bool) \
                or not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale!r}")
        kw["guidance_scale"] = float(guidance_scale)
    if sampler is not None or steps is not None:
        if not isinstance(model, DiffusionFamily):
            raise ValueError(f"sampler and steps are only for diffusion models, not {model.name!r}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if sampler is not None:
            allowed = ("flow_match_euler",) if isinstance(model, FlowMatchingFamily) else SAMPLERS
            if sampler not in allowed:
                raise ValueError(f"sampler must be one of {list(allowed)}, got {sampler!r}")
        kw.update(sampler=sampler, steps=steps)
    if progress and isinstance(model, DiffusionFamily):
        kw["progress"] = True
    if n == 0:
        return torch.zeros(0, *model.shape), y
    x = model.generate(n, y, seed=seed, **kw)
    return model.to_output(x), y


def evaluate(model: ZooModel, *, seed: int = 0) -> dict[str, Any]:
    """Re-measures a model on its dataset (test split)."""
    model = _check_model(model)
    cls = type(model)
    ds = load_data(model.data_name, scale=cls.scale, dequantize=cls.dequantize, seed=int(model.config["seed"]))
    return model.evaluate(ds, seed=seed)


def save(model: ZooModel, path: str | Path) -> Path:
    """Writes ``path.safetensors`` + ``path.json`` (weights and config), atomically."""
    from gencore.checkpoint import save_checkpoint

    model = _check_model(model)
    return save_checkpoint(path, model.state_dict(), dict(model.config))


def load(path: str | Path) -> ZooModel:
    """Reads a model written by :func:`save` (or the model checkpoint of :func:`train`)."""
    from gencore.checkpoint import CheckpointError, load_checkpoint

    tensors, config = load_checkpoint(path)
    if config.get("kind") not in MODELS:
        raise CheckpointError(f"checkpoint {path} holds {config.get('kind')!r}, not a zoo model")
    model = build(config)
    if isinstance(model, NaiveBayesFamily):
        model.load_state_dict(tensors)
    else:
        try:
            model.load_state_dict(tensors)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint {path} does not fit model {config['kind']!r}: {exc}") from None
    model.eval()
    return model


def copy_model(model: ZooModel) -> ZooModel:
    """A deep copy of a zoo model."""
    return copy.deepcopy(_check_model(model))
