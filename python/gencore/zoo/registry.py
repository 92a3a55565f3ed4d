"""The registry of the zoo: family name to the :class:`~gencore.zoo.base.ZooModel` that implements it."""

from __future__ import annotations

from gencore.zoo.base import ZooModel
from gencore.zoo.dae import DAEFamily
from gencore.zoo.diffusion import DiffusionFamily
from gencore.zoo.flow_matching import FlowMatchingFamily
from gencore.zoo.flows import FlowFamily, GlowFamily
from gencore.zoo.gan import CGANFamily, GANFamily
from gencore.zoo.latent_diffusion import LatentDiffusionFamily
from gencore.zoo.naive_bayes import NaiveBayesFamily
from gencore.zoo.vae import CVAEFamily, VAEFamily

__all__ = ["MODELS", "family"]

MODELS: dict[str, type[ZooModel]] = {
    cls.name: cls
    for cls in (NaiveBayesFamily, GANFamily, CGANFamily, VAEFamily, CVAEFamily, DAEFamily, DiffusionFamily,
                LatentDiffusionFamily, FlowMatchingFamily, FlowFamily, GlowFamily)
}
"""Every family of the zoo by name, in the order of :mod:`gencore.zoo`'s table."""


def family(name: object) -> type[ZooModel]:
    """The family registered as ``name``.

    Raises:
        ValueError: ``name`` is not a key of :data:`MODELS`.
    """
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"name must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name]
