"""Tiny randomly initialised diffusers pipelines, built locally (no hub access), for tests and
benchmarks of the scheduler adapters. Needs diffusers and transformers."""

from __future__ import annotations

import torch

__all__ = ["prompt_embeds", "tiny_sd3_pipeline", "tiny_sd_components", "tiny_sd_pipeline", "tiny_unet2d"]


def tiny_unet2d(sample_size: int = 8):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))


def tiny_sd_components(latent_size: int = 8):
    """UNet2DConditionModel, AutoencoderKL and CLIPTextModel with a few thousand parameters each."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=latent_size, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32), norm_num_groups=8, cross_attention_dim=16,
                                attention_head_dim=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), norm_num_groups=4,
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=latent_size * 2)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=16, projection_dim=16))
    return unet.eval(), vae.eval(), text.eval()


def tiny_sd_pipeline(scheduler, latent_size: int = 8):
    from diffusers import StableDiffusionPipeline

    unet, vae, text = tiny_sd_components(latent_size)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=None, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_embeds(text_encoder, batch: int = 1, seed: int = 0):
    """Embeddings of fixed token ids (a prompt and the empty prompt) from the tiny text encoder."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 99, (batch, 8), generator=g)
    empty = torch.zeros(batch, 8, dtype=torch.long)
    with torch.no_grad():
        return text_encoder(ids)[0], text_encoder(empty)[0]


def tiny_sd3_pipeline(scheduler, latent_size: int = 8):
    """A StableDiffusion3Pipeline (flow matching) with a one-layer transformer; text encoders are
    omitted: prompt embeddings are passed directly."""
    from diffusers import AutoencoderKL, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=latent_size, patch_size=2, in_channels=4, out_channels=4,
                                        num_layers=1, attention_head_dim=8, num_attention_heads=2,
                                        joint_attention_dim=16, caption_projection_dim=16, pooled_projection_dim=16,
                                        pos_embed_max_size=latent_size)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), norm_num_groups=4,
                        layers_per_block=1, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), shift_factor=0.0)
    pipe = StableDiffusion3Pipeline(transformer=transformer.eval(), scheduler=scheduler, vae=vae.eval(),
                                    text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                    text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe
