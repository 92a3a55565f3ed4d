"""Networks for the model zoo: a small UNet and MLP denoisers with time and class embeddings."""

from __future__ import annotations

from gencore.models.embeddings import ClassEmbedding, TimeEmbedding, timestep_embedding
from gencore.models.mlp import MLP, MLPDenoiser
from gencore.models.unet import UNet

__all__ = ["MLP", "ClassEmbedding", "MLPDenoiser", "TimeEmbedding", "UNet", "timestep_embedding"]
