"""Networks for the model zoo: a small UNet and MLP denoisers with time and class embeddings,
VAEs and a denoising autoencoder, and the training loop every family shares."""

from __future__ import annotations

from gencore.models.embeddings import ClassEmbedding, TimeEmbedding, timestep_embedding
from gencore.models.mlp import MLP, MLPDenoiser
from gencore.models.trainer import Trainer
from gencore.models.unet import UNet
from gencore.models.vae import VAE, DenoisingAutoencoder

__all__ = [
           "MLP",
           "VAE",
           "ClassEmbedding",
           "DenoisingAutoencoder",
           "MLPDenoiser",
           "TimeEmbedding",
           "Trainer",
           "UNet",
           "timestep_embedding",
]
