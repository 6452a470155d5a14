"""Video DiTs of one token stream: LTX, LTX-2, CogVideoX, ConsisID, Mochi, Latte, Allegro, EasyAnimate, Cosmos
and Sana-Video (text by cross-attention, or concatenated with the video tokens in joint attention)."""

from __future__ import annotations

import torch

from toma_fx.zoo import Denoiser, register
from toma_fx.zoo.video import device, latent_size, patch_of, prompt_mask, steps, video, zeros

# ------------------------------------------------------------------------------------------------------- LTX


def _ltx_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`LTXPipeline`: packed `(B, F*H*W, C)` tokens (patch 1 on the 32x / 8x VAE latent) plus the grid."""
    config = model.config
    frames, height, width = grid
    return {
        "hidden_states": rand(batch, frames * height * width, config.in_channels),
        "encoder_hidden_states": rand(batch, text_tokens, config.caption_channels),
        "timestep": steps(model, batch),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
        "num_frames": frames,
        "height": height,
        "width": width,
        "rope_interpolation_scale": (8 / 25, 32, 32),  # (VAE temporal ratio / frame rate, spatial, spatial)
    }


def _ltx2_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`LTX2Pipeline`: the video tokens of `_ltx_inputs` plus the soundtrack's audio tokens (24 fps video,
    `audio_sampling_rate / audio_hop_length / audio_scale_factor` audio latents per second)."""
    config = model.config
    frames, height, width = grid
    fps = 24.0
    audio_per_second = config.audio_sampling_rate / config.audio_hop_length / config.audio_scale_factor
    audio_frames = round(((frames - 1) * 8 + 1) / fps * audio_per_second)
    timestep = steps(model, batch)
    mask = prompt_mask(model, batch, text_tokens)
    return {
        "hidden_states": rand(batch, frames * height * width, config.in_channels),
        "audio_hidden_states": rand(batch, audio_frames, config.audio_in_channels),
        "encoder_hidden_states": rand(batch, text_tokens, config.caption_channels),
        "audio_encoder_hidden_states": rand(batch, text_tokens, config.caption_channels),
        "timestep": timestep,
        "sigma": timestep,  # LTX-2.3 prompt modulation; LTX-2.0 ignores it
        "encoder_attention_mask": mask,
        "audio_encoder_attention_mask": mask,
        "num_frames": frames,
        "height": height,
        "width": width,
        "fps": fps,
        "audio_num_frames": audio_frames,
    }


register(
    Denoiser(
        name="ltx",
        cls="LTXVideoTransformer3DModel",
        tiny={
            "in_channels": 4,
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 8,
            "cross_attention_dim": 16,
            "num_layers": 2,
            "caption_channels": 16,
        },
        published={},
        patch=(1, 1, 1),
        make_inputs=_ltx_inputs,
        published_grid=(16, 16, 24),  # 768x512, 121 frames: VAE 32x spatial, 8x temporal, patch 1
        notes="LTX-Video 2B at 768x512, 121 frames. Tokens come in packed (B, F*H*W, C); RoPE from the grid "
        "arguments (num_frames/height/width) scaled by rope_interpolation_scale; text by cross-attention.",
    )
)
register(
    Denoiser(
        name="ltx2",
        cls="LTX2VideoTransformer3DModel",
        tiny={
            "in_channels": 4,
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 8,
            "cross_attention_dim": 16,
            "audio_in_channels": 4,
            "audio_out_channels": 4,
            "audio_num_attention_heads": 2,
            "audio_attention_head_dim": 4,
            "audio_cross_attention_dim": 8,
            "num_layers": 2,
            "caption_channels": 16,
            "rope_type": "split",
        },
        published={"rope_type": "split"},
        patch=(1, 1, 1),
        make_inputs=_ltx2_inputs,
        published_grid=(16, 16, 24),  # 768x512, 121 frames
        notes="LTX-2 (2.0, 19B audio-video) at 768x512, 121 frames. Packed video tokens and a separate audio "
        "stream; each block runs video/audio self-attention, text cross-attention and audio<->video "
        "cross-attention.",
    )
)


# ------------------------------------------------------------------------------------------------- CogVideoX


def _cogvideox_rope(model, grid) -> tuple[torch.Tensor, torch.Tensor]:
    """`CogVideoXPipeline._prepare_rotary_positional_embeddings` for a token grid."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    config = model.config
    frames, height, width = grid
    base_height, base_width = (
        config.sample_height // config.patch_size,
        config.sample_width // config.patch_size,
    )
    if config.get("patch_size_t") is None:  # CogVideoX 1.0 and ConsisID: grid resized into the base grid
        crops = get_resize_crop_region_for_grid((height, width), base_width, base_height)
        return get_3d_rotary_pos_embed(
            config.attention_head_dim, crops, (height, width), frames, device=device(model)
        )
    return get_3d_rotary_pos_embed(  # CogVideoX 1.5: positions sliced out of the base grid
        config.attention_head_dim,
        None,
        (height, width),
        frames,
        grid_type="slice",
        max_size=(base_height, base_width),
        device=device(model),
    )


def _cogvideox_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`CogVideoXPipeline`: `(B, F, C, H, W)` latents, text, and the RoPE the pipeline computes."""
    config = model.config
    return {
        "hidden_states": video(rand, batch, config.in_channels, grid, patch_of(config), frames_first=True),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_embed_dim),
        "timestep": steps(model, batch),
        "image_rotary_emb": _cogvideox_rope(model, grid),
    }


CLIP_FACE_TOKENS = 5
"""EVA-CLIP rows of the tiny face inputs (577 in the pipeline)."""


def _consisid_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`ConsisIDPipeline`: CogVideoX I2V inputs plus the face identity (ArcFace + CLIP `id_cond`, and one
    EVA-CLIP hidden state per `LFE_num_scale`)."""
    config = model.config
    faces = [rand(batch, CLIP_FACE_TOKENS, config.LFE_vit_dim) for _ in range(config.LFE_num_scale)]
    return {
        **_cogvideox_inputs(model, grid, batch, text_tokens, rand),
        "id_cond": rand(batch, config.LFE_id_dim),
        "id_vit_hidden": faces,
    }


_COGVIDEOX_TINY = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,  # 3-D RoPE splits it 4 / 6 / 6 over (t, h, w)
    "in_channels": 4,
    "out_channels": 4,
    "time_embed_dim": 8,
    "text_embed_dim": 8,
    "num_layers": 2,
    "sample_width": 64,  # base grid of the RoPE: 32 x 32 tokens
    "sample_height": 64,
    "use_rotary_positional_embeddings": True,
}
_COGVIDEOX_5B = {"num_layers": 42, "num_attention_heads": 48, "use_rotary_positional_embeddings": True}

register(
    Denoiser(
        name="cogvideox",
        cls="CogVideoXTransformer3DModel",
        tiny=_COGVIDEOX_TINY,
        published=_COGVIDEOX_5B,
        patch=(1, 2, 2),
        make_inputs=_cogvideox_inputs,
        published_grid=(13, 30, 45),  # 720x480, 49 frames
        text_order="text-image",
        notes="CogVideoX 5B at 720x480, 49 frames. Frames folded into the batch for a per-frame Conv2d "
        "patchify; text rows are prepended and attend jointly; 3-D RoPE (from the pipeline) on the video "
        "rows only.",
    )
)
register(
    Denoiser(
        name="cogvideox1.5",
        cls="CogVideoXTransformer3DModel",
        tiny={**_COGVIDEOX_TINY, "patch_size_t": 2, "patch_bias": False},
        published={
            **_COGVIDEOX_5B,
            "patch_size_t": 2,
            "patch_bias": False,
            "sample_height": 300,
            "sample_width": 300,
            "sample_frames": 81,
        },
        patch=(2, 2, 2),
        make_inputs=_cogvideox_inputs,
        published_grid=(11, 48, 85),  # 1360x768, 81 frames: 21 latent frames padded to 22
        text_order="text-image",
        notes="CogVideoX 1.5 5B at 1360x768, 81 frames: 2x2x2 patches by reshape + Linear (latent frames "
        "padded to even by the pipeline); RoPE positions sliced from a 150x150 base grid.",
    )
)
register(
    Denoiser(
        name="consisid",
        cls="ConsisIDTransformer3DModel",
        tiny={
            **_COGVIDEOX_TINY,
            "num_attention_heads": 3,  # the face cross-attention's K/V width is 2/3 of the inner width (48)
            "in_channels": 8,  # noisy latent and image latent
            "is_train_face": True,
            "cross_attn_interval": 1,
            "cross_attn_dim_head": 8,
            "cross_attn_num_heads": 2,
            "LFE_id_dim": 8,
            "LFE_vit_dim": 8,
            "LFE_depth": 2,
            "LFE_dim_head": 8,
            "LFE_num_heads": 2,
            "LFE_num_id_token": 2,
            "LFE_num_querie": 4,
            "LFE_output_dim": 32,
            "LFE_ff_mult": 1,
            "LFE_num_scale": 2,
        },
        published={
            **_COGVIDEOX_5B,
            "in_channels": 32,
            "use_learned_positional_embeddings": True,
            "is_train_face": True,
            "is_kps": False,
        },
        patch=(1, 2, 2),
        make_inputs=_consisid_inputs,
        published_grid=(13, 30, 45),  # 720x480, 49 frames
        text_order="text-image",
        notes="ConsisID (CogVideoX 5B I2V with face identity) at 720x480, 49 frames. Its learned positional "
        "embedding fixes that size, so the tiny model leaves it out; face rows enter by Perceiver "
        "cross-attention after every cross_attn_interval-th block.",
    )
)


# ---------------------------------------------------------------------------------------------------- others


def dit_inputs(model, grid, batch, text_tokens, rand, *, text_dim: str = "caption_channels") -> dict:
    """`(B, C, F, H, W)` latents, a timestep per sample, `text_tokens` prompt rows of `config[text_dim]`."""
    config = model.config
    return {
        "hidden_states": video(rand, batch, config.in_channels, grid, patch_of(config)),
        "timestep": steps(model, batch),
        "encoder_hidden_states": rand(batch, text_tokens, config[text_dim]),
    }


def _mochi_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`MochiPipeline`: latents, T5 rows and their padding mask (attention drops padded rows per sample)."""
    return {
        **dit_inputs(model, grid, batch, text_tokens, rand, text_dim="text_embed_dim"),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
    }


def _latte_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`LattePipeline`: latents and T5 rows; temporal attention on (the pipeline's default)."""
    return {**dit_inputs(model, grid, batch, text_tokens, rand), "enable_temporal_attentions": True}


def _allegro_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`AllegroPipeline`: latents, T5 rows with their mask, and the RoPE tables plus integer positions the
    pipeline's `_prepare_rotary_positional_embeddings` builds."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed_allegro

    config = model.config
    frames, height, width = grid
    freqs = get_3d_rotary_pos_embed_allegro(
        config.attention_head_dim,
        ((0, 0), (height, width)),
        (height, width),
        frames,
        interpolation_scale=(
            config.interpolation_scale_t,
            config.interpolation_scale_h,
            config.interpolation_scale_w,
        ),
        device=device(model),
    )
    positions = torch.cartesian_prod(*(grid_axis.long() for grid_axis in freqs[3:]))
    positions = positions.reshape(-1, 3).transpose(0, 1).reshape(3, 1, -1).contiguous()
    return {
        **dit_inputs(model, grid, batch, text_tokens, rand),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
        "image_rotary_emb": (freqs[:3], tuple(positions)),
    }


def _cosmos_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`Cosmos2VideoToWorldPipeline`: frame 0 is the given (conditioning) frame, marked by `condition_mask`
    and a near-zero timestep; timesteps are per frame `(B, 1, F, 1, 1)`, the padding mask is in pixels."""
    config = model.config
    frames, height, width = latent_size(grid, config.patch_size)
    timestep = steps(model, batch, 1, frames, 1, 1, value=0.5)
    timestep[:, :, 0] = 1e-4
    condition_mask = zeros(model, batch, 1, frames, height, width)
    condition_mask[:, :, 0] = 1
    return {
        "hidden_states": rand(batch, config.out_channels, frames, height, width),
        "timestep": timestep,
        "encoder_hidden_states": rand(batch, text_tokens, config.text_embed_dim),
        "fps": 16,
        "condition_mask": condition_mask,
        "padding_mask": zeros(model, 1, 1, 8 * height, 8 * width),
    }


def _sana_video_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`SanaVideoPipeline`: latents, Gemma rows and their mask."""
    config = model.config
    return {
        "hidden_states": video(rand, batch, config.in_channels, grid, config.patch_size),
        "timestep": steps(model, batch),
        "encoder_hidden_states": rand(batch, text_tokens, config.caption_channels),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
    }


register(
    Denoiser(
        name="mochi",
        cls="MochiTransformer3DModel",
        tiny={
            "num_attention_heads": 2,
            "attention_head_dim": 8,
            "num_layers": 2,
            "pooled_projection_dim": 16,
            "in_channels": 4,
            "text_embed_dim": 16,
            "time_embed_dim": 4,
            "max_sequence_length": 16,
        },
        published={},
        patch=(1, 2, 2),
        make_inputs=_mochi_inputs,
        published_grid=(28, 30, 53),  # 848x480, 163 frames: VAE 8x spatial, 6x temporal
        text_order="image-text",
        notes="Mochi 1 (10B) at 848x480, 163 frames. Frames folded into the batch for a Conv2d patchify; "
        "joint attention over [video, valid text rows], gathered per sample with nonzero and padded back.",
    )
)
register(
    Denoiser(
        name="latte",
        cls="LatteTransformer3DModel",
        tiny={
            "sample_size": 8,
            "num_layers": 1,
            "patch_size": 2,
            "attention_head_dim": 8,
            "num_attention_heads": 2,
            "caption_channels": 8,
            "in_channels": 4,
            "cross_attention_dim": 16,
            "out_channels": 8,
            "attention_bias": True,
            "activation_fn": "gelu-approximate",
            "num_embeds_ada_norm": 1000,
            "norm_type": "ada_norm_single",
            "norm_elementwise_affine": False,
            "norm_eps": 1e-6,
            "video_length": 3,
        },
        published={
            "num_attention_heads": 16,
            "attention_head_dim": 72,
            "in_channels": 4,
            "out_channels": 8,
            "num_layers": 28,
            "cross_attention_dim": 1152,
            "attention_bias": True,
            "patch_size": 2,
            "activation_fn": "gelu-approximate",
            "num_embeds_ada_norm": 1000,
            "norm_type": "ada_norm_single",
            "norm_elementwise_affine": False,
            "norm_eps": 1e-6,
            "caption_channels": 4096,
        },
        patch=(1, 2, 2),
        make_inputs=_latte_inputs,
        published_grid=(16, 32, 32),  # 512x512, 16 frames: SD VAE, no temporal compression
        extra={"frames": (1, 3)},  # the temporal position table has video_length rows: F is 1 or video_length
        notes="Latte-1 at 512x512, 16 frames. Alternating spatial blocks (frames folded into the batch, text "
        "cross-attention) and temporal blocks (pixels folded into the batch, attention along frames).",
    )
)
register(
    Denoiser(
        name="allegro",
        cls="AllegroTransformer3DModel",
        tiny={
            "num_attention_heads": 2,
            "attention_head_dim": 12,  # RoPE splits it 4 / 4 / 4 over (t, h, w)
            "in_channels": 4,
            "out_channels": 4,
            "num_layers": 2,
            "cross_attention_dim": 24,  # the inner width: captions are projected to it
            "sample_width": 8,
            "sample_height": 8,
            "sample_frames": 8,
            "caption_channels": 8,
        },
        published={},
        patch=(1, 2, 2),
        make_inputs=_allegro_inputs,
        published_grid=(22, 45, 80),  # 1280x720, 88 frames
        notes="Allegro at 1280x720, 88 frames. Frames folded into the batch for a Conv2d patchify; 3-D RoPE "
        "gathered from per-axis tables by integer positions; text by cross-attention.",
    )
)
register(
    Denoiser(
        name="easyanimate",
        cls="EasyAnimateTransformer3DModel",
        tiny={
            "attention_head_dim": 16,
            "num_attention_heads": 2,
            "in_channels": 4,
            "out_channels": 4,
            "mmdit_layers": 2,
            "num_layers": 2,
            "patch_size": 2,
            "sample_height": 60,
            "sample_width": 90,
            "text_embed_dim": 16,
            "time_embed_dim": 8,
        },
        published={"in_channels": 16, "out_channels": 16, "patch_size": 2},
        patch=(1, 2, 2),
        make_inputs=lambda *args: dit_inputs(*args, text_dim="text_embed_dim"),
        published_grid=(13, 32, 32),  # 512x512, 49 frames
        text_order="text-image",
        notes="EasyAnimate V5.1 12B at 512x512, 49 frames. Frames folded into the batch for a Conv2d "
        "patchify; MMDiT blocks with text rows prepended in joint attention; RoPE on the video rows by slice "
        "assignment.",
    )
)
register(
    Denoiser(
        name="cosmos-predict2",
        cls="CosmosTransformer3DModel",
        tiny={
            "in_channels": 5,
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 12,
            "num_layers": 2,
            "mlp_ratio": 2,
            "text_embed_dim": 16,
            "adaln_lora_dim": 4,
            "max_size": (8, 64, 64),
            "rope_scale": (1.0, 3.0, 3.0),
            "extra_pos_embed_type": None,
            "concat_padding_mask": False,  # resizing the padding mask needs torchvision (not a dependency)
        },
        published={
            "in_channels": 17,
            "num_attention_heads": 16,
            "rope_scale": (1.0, 3.0, 3.0),
            "extra_pos_embed_type": None,
        },
        patch=(1, 2, 2),
        make_inputs=_cosmos_inputs,
        published_grid=(24, 44, 80),  # 1280x704, 93 frames
        notes="Cosmos-Predict2 2B Video2World at 1280x704, 93 frames: condition and padding masks "
        "concatenated on channels, per-frame timesteps (AdaLN per token); text by cross-attention.",
    )
)
register(
    Denoiser(
        name="sana-video",
        cls="SanaVideoTransformer3DModel",
        tiny={
            "in_channels": 4,
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 12,
            "num_layers": 2,
            "num_cross_attention_heads": 2,
            "cross_attention_head_dim": 12,
            "cross_attention_dim": 24,
            "caption_channels": 16,
            "sample_size": 8,
        },
        published={"mlp_ratio": 3.0},
        patch=(1, 2, 2),
        make_inputs=_sana_video_inputs,
        published_grid=(21, 30, 52),  # 832x480, 81 frames (Wan VAE)
        notes="SANA-Video 2B at 832x480, 81 frames: ReLU linear self-attention with 3-D RoPE, softmax text "
        "cross-attention, and a GLU conv FFN whose temporal conv runs along frames.",
    )
)
