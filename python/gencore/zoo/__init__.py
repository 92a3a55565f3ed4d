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

Layout: :mod:`~gencore.zoo.data` (datasets and their conventions), :mod:`~gencore.zoo.base`
(:class:`ZooModel`, the interface every family implements), one module per family
(:mod:`~gencore.zoo.naive_bayes`, :mod:`~gencore.zoo.gan`, :mod:`~gencore.zoo.vae`,
:mod:`~gencore.zoo.dae`, :mod:`~gencore.zoo.diffusion`, :mod:`~gencore.zoo.latent_diffusion`,
:mod:`~gencore.zoo.flow_matching`, :mod:`~gencore.zoo.flows`), :mod:`~gencore.zoo.registry`
(:data:`MODELS`) and :mod:`~gencore.zoo.api` (the functions below, which reach a family only
through the interface).
"""

from __future__ import annotations

from gencore.zoo.api import build as build
from gencore.zoo.api import copy_model as copy_model
from gencore.zoo.api import evaluate, load, sample, save, train
from gencore.zoo.api import make_config as make_config
from gencore.zoo.base import ZooModel
from gencore.zoo.dae import DAEFamily as DAEFamily
from gencore.zoo.data import DATA, Dataset, load_data
from gencore.zoo.data import DIGITS as DIGITS
from gencore.zoo.diffusion import DiffusionFamily as DiffusionFamily
from gencore.zoo.flow_matching import FlowMatchingFamily as FlowMatchingFamily
from gencore.zoo.flows import FlowFamily as FlowFamily
from gencore.zoo.flows import GlowFamily as GlowFamily
from gencore.zoo.gan import CGANFamily as CGANFamily
from gencore.zoo.gan import GANFamily as GANFamily
from gencore.zoo.latent_diffusion import LatentDiffusionFamily as LatentDiffusionFamily
from gencore.zoo.naive_bayes import NaiveBayesFamily as NaiveBayesFamily
from gencore.zoo.registry import MODELS
from gencore.zoo.vae import CVAEFamily as CVAEFamily
from gencore.zoo.vae import VAEFamily as VAEFamily

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
