"""Video MMDiTs and text-encoder-block models: HunyuanVideo (1.0, I2V, 1.5, FramePack), Motif-Video,
Kandinsky 5 / 6 and MiniMax-H3."""

from __future__ import annotations

import torch

from toma_fx.zoo import Denoiser, register
from toma_fx.zoo.video import CLIP_TOKENS, device, latent_size, patch_of, prompt_mask, steps, video, zeros

# ---------------------------------------------------------------------------------------------- HunyuanVideo


def _hunyuan_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`HunyuanVideoPipeline`: latents, LLaVA-LLaMA rows with their mask, pooled CLIP, distilled guidance."""
    config = model.config
    kwargs = {
        "hidden_states": video(rand, batch, config.in_channels, grid, patch_of(config)),
        "timestep": steps(model, batch),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_embed_dim),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
        "pooled_projections": rand(batch, config.pooled_projection_dim),
    }
    if config.guidance_embeds:
        kwargs["guidance"] = steps(model, batch, value=6000.0)  # guidance_scale 6, times 1000
    return kwargs


_FRAMEPACK_HISTORY = (1, 2, 16)
"""Latent frames of the 1x, 2x and 4x history (`FramepackSamplingType.INVERTED_ANTI_DRIFTING`)."""


def _framepack_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """The last section of `HunyuanVideoFramepackPipeline` (inverted anti-drifting): the section's latents
    with the clean first frame plus 1x history (patchified 1x), and the 2x and 4x histories, each with the
    frame indices the pipeline splits off `arange`; SigLIP rows of the first frame."""
    config = model.config
    frames, height, width = grid
    one, two, four = _FRAMEPACK_HISTORY
    indices = torch.arange(1 + frames + one + two + four, device=device(model))
    prefix, section, index_1x, index_2x, index_4x = indices.split([1, frames, one, two, four])

    def history(num_frames):
        return video(rand, batch, config.in_channels, (num_frames, height, width), patch_of(config))

    return {
        **_hunyuan_inputs(model, grid, batch, text_tokens, rand),
        "image_embeds": rand(batch, CLIP_TOKENS, config.image_proj_dim),
        "indices_latents": section,
        "latents_clean": history(1 + one),
        "indices_latents_clean": torch.cat([prefix, index_1x]),
        "latents_history_2x": history(two),
        "indices_latents_history_2x": index_2x,
        "latents_history_4x": history(four),
        "indices_latents_history_4x": index_4x,
    }


def _text_to_video_latents(model, grid, batch, rand) -> torch.Tensor:
    """`[noise | condition latent | mask]` channels of an image-to-video model called text-to-video: the
    `out_channels` noise, then zeros up to `in_channels`."""
    config = model.config
    noise = video(rand, batch, config.out_channels, grid, patch_of(config))
    empty = zeros(model, batch, config.in_channels - config.out_channels, *noise.shape[2:])
    return torch.cat([noise, empty], dim=1)


def _hunyuan15_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`HunyuanVideo15Pipeline` (text-to-video): latents with zero condition channels, Qwen2.5-VL rows and
    ByT5 glyph rows with their masks, and all-zero SigLIP rows (which the model reads as "no image")."""
    config = model.config
    glyph_tokens = max(text_tokens // 2, 1)
    return {
        "hidden_states": _text_to_video_latents(model, grid, batch, rand),
        "timestep": steps(model, batch, cast=True),  # its time embedding runs in the timestep's dtype
        "encoder_hidden_states": rand(batch, text_tokens, config.text_embed_dim),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
        "encoder_hidden_states_2": rand(batch, glyph_tokens, config.text_embed_2_dim),
        "encoder_attention_mask_2": prompt_mask(model, batch, glyph_tokens),
        "image_embeds": zeros(model, batch, CLIP_TOKENS, config.image_embed_dim),
    }


def _motif_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`MotifVideoPipeline` (text-to-video): latents with zero condition channels, T5Gemma rows and mask."""
    config = model.config
    return {
        "hidden_states": _text_to_video_latents(model, grid, batch, rand),
        "timestep": steps(model, batch),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_embed_dim),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
    }


_HUNYUAN_TINY = {
    "in_channels": 4,
    "out_channels": 4,
    "num_attention_heads": 2,
    "attention_head_dim": 10,
    "num_layers": 1,
    "num_single_layers": 1,
    "num_refiner_layers": 1,
    "text_embed_dim": 16,
    "pooled_projection_dim": 8,
    "rope_axes_dim": (2, 4, 4),
}

register(
    Denoiser(
        name="hunyuanvideo",
        cls="HunyuanVideoTransformer3DModel",
        tiny=_HUNYUAN_TINY,
        published={},
        patch=(1, 2, 2),
        make_inputs=_hunyuan_inputs,
        published_grid=(33, 45, 80),  # 1280x720, 129 frames
        text_order="image-text",
        notes="HunyuanVideo 13B (cfg-distilled) at 1280x720, 129 frames. Dual-stream then single-stream "
        "blocks over [video, text] with the padded text rows masked; the text passes a token refiner first.",
    )
)
register(
    Denoiser(
        name="hunyuanvideo-i2v",
        cls="HunyuanVideoTransformer3DModel",
        tiny={**_HUNYUAN_TINY, "image_condition_type": "token_replace"},
        published={"image_condition_type": "token_replace"},
        patch=(1, 2, 2),
        make_inputs=_hunyuan_inputs,
        published_grid=(33, 45, 80),  # 1280x720, 129 frames
        text_order="image-text",
        notes="HunyuanVideo-I2V (16-channel, token_replace) at 1280x720, 129 frames: the first latent frame "
        "is the clean image, and its tokens are modulated with the timestep-0 embedding in every block.",
    )
)
register(
    Denoiser(
        name="hunyuanvideo1.5",
        cls="HunyuanVideo15Transformer3DModel",
        tiny={
            "in_channels": 9,  # latent (4) + condition latent (4) + mask (1)
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 8,
            "num_layers": 2,
            "num_refiner_layers": 1,
            "mlp_ratio": 2.0,
            "text_embed_dim": 16,
            "text_embed_2_dim": 8,
            "image_embed_dim": 12,
            "rope_axes_dim": (2, 2, 4),
        },
        published={},
        patch=(1, 1, 1),
        make_inputs=_hunyuan15_inputs,
        published_grid=(31, 30, 53),  # 848x480, 121 frames: VAE 16x spatial, 4x temporal, patch 1
        text_order="image-text",
        notes="HunyuanVideo 1.5 (8.3B, 480p) at 848x480, 121 frames. Image, glyph and text rows are "
        "regrouped per sample with boolean indexing (valid rows first) and attend jointly after the video "
        "rows.",
    )
)
register(
    Denoiser(
        name="framepack",
        cls="HunyuanVideoFramepackTransformer3DModel",
        tiny={
            **_HUNYUAN_TINY,
            "has_image_proj": True,
            "image_proj_dim": 16,
            "has_clean_x_embedder": True,
        },
        published={"has_image_proj": True, "has_clean_x_embedder": True},
        patch=(1, 2, 2),
        make_inputs=_framepack_inputs,
        published_grid=(9, 45, 80),  # one 33-frame section at 1280x720
        text_order="image-text",
        notes="FramePack (HunyuanVideo I2V) for one 9-latent-frame section at 1280x720. Clean and history "
        "tokens (1x, 2x, 4x patches) precede the section's tokens; only the section's tokens reach the "
        "output.",
    )
)
register(
    Denoiser(
        name="motif-video",
        cls="MotifVideoTransformer3DModel",
        tiny={
            "in_channels": 9,
            "out_channels": 4,
            "num_attention_heads": 2,
            "attention_head_dim": 12,
            "num_layers": 1,
            "num_single_layers": 2,
            "num_decoder_layers": 1,
            "text_embed_dim": 32,
            "rope_axes_dim": (4, 4, 4),
            "enable_text_cross_attention_dual": True,
            "enable_text_cross_attention_single": True,
        },
        published={
            "num_layers": 12,
            "num_single_layers": 24,
            "num_decoder_layers": 8,
            "enable_text_cross_attention_dual": True,
            "enable_text_cross_attention_single": True,
        },
        patch=(1, 2, 2),
        make_inputs=_motif_inputs,
        published_grid=(31, 46, 80),  # 1280x736, 121 frames (Wan VAE)
        text_order="image-text",
        notes="Motif-Video 2B at 1280x736, 121 frames: 12 dual + 16 single + 8 decoder blocks (the layer "
        "counts of its docs; widths are the class defaults, unverified). Joint [video, text] attention plus "
        "text cross-attention.",
    )
)


# ------------------------------------------------------------------------------------------------- Kandinsky


def _channels_last(model, grid, batch, rand, *, condition: bool) -> torch.Tensor:
    """Channels-last `(B, F, H, W, C)` latents; with `condition`, zero condition-latent and mask channels
    appended (`[latent | condition | mask]`, as the text-to-video and super-resolution pipelines do)."""
    config = model.config
    shape = (batch, *latent_size(grid, config.patch_size))
    latents = rand(*shape, config.in_visual_dim)
    if not condition:
        return latents
    return torch.cat([latents, zeros(model, *shape, config.in_visual_dim + 1)], dim=-1)


def _kandinsky5_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`Kandinsky5T2VPipeline`: latents, Qwen2.5-VL rows, pooled CLIP, and the positions of both RoPEs."""
    config = model.config
    height, width = grid[1:]
    return {
        "hidden_states": _channels_last(model, grid, batch, rand, condition=config.visual_cond),
        "encoder_hidden_states": rand(batch, text_tokens, config.in_text_dim),
        "timestep": steps(model, batch),
        "pooled_projections": rand(batch, config.in_text_dim2),
        "visual_rope_pos": [torch.arange(n, device=device(model)) for n in grid],
        "text_rope_pos": torch.arange(text_tokens, device=device(model)),
        "scale_factor": (1, 2, 2)
        if 480 <= 16 * height <= 854 and 480 <= 16 * width <= 854
        else (1, 3.16, 3.16),
    }


def _kandinsky6_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`Kandinsky6TI2VAPipeline` (text-to-video with sound): video latents plus the soundtrack's audio latents
    (`ceil(pixel frames / 24 fps * 44100 Hz / 1024 hop)`), Qwen rows with their mask and pooled CLIP."""
    config = model.config
    audio_length = -(-((grid[0] - 1) * 4 + 1) * 44100 // (24 * 1024))
    return {
        "hidden_states": _channels_last(model, grid, batch, rand, condition=config.visual_cond),
        "audio_hidden_states": rand(batch, audio_length, config.in_audio_dim),
        "encoder_hidden_states": rand(batch, text_tokens, config.in_text_dim),
        "pooled_projections": rand(batch, config.in_text_dim2),
        "timestep": steps(model, batch),
        "encoder_attention_mask": prompt_mask(model, batch, text_tokens),
    }


_KANDINSKY_TINY = {
    "in_visual_dim": 4,
    "out_visual_dim": 4,
    "in_text_dim": 16,
    "in_text_dim2": 8,
    "time_dim": 16,
    "patch_size": (1, 2, 2),
    "model_dim": 32,
    "ff_dim": 64,
    "num_text_blocks": 1,
    "num_visual_blocks": 2,
    "axes_dims": (4, 6, 6),  # head dim 16: 2 heads
    "visual_cond": True,
}

register(
    Denoiser(
        name="kandinsky5",
        cls="Kandinsky5Transformer3DModel",
        tiny=_KANDINSKY_TINY,
        published={
            "in_visual_dim": 16,
            "out_visual_dim": 16,
            "model_dim": 1792,
            "ff_dim": 7168,
            "visual_cond": True,
        },
        patch=(1, 2, 2),
        make_inputs=_kandinsky5_inputs,
        published_grid=(31, 32, 48),  # 768x512, 121 frames (HunyuanVideo VAE)
        notes="Kandinsky 5.0 T2V Lite (2B) at 768x512, 121 frames: channels-last (B, F, H, W, C) latents; "
        "text blocks refine the prompt, visual blocks self-attend with 3-D RoPE and cross-attend to it.",
    )
)
register(
    Denoiser(
        name="kandinsky6",
        cls="Kandinsky6Transformer3DModel",
        tiny={**_KANDINSKY_TINY, "in_audio_dim": 4, "out_audio_dim": 4},
        published={},
        patch=(1, 2, 2),
        make_inputs=_kandinsky6_inputs,
        published_grid=(31, 32, 48),  # 768x512, 121 frames
        notes="Kandinsky 6 TI2VA at 768x512, 121 frames (class defaults taken as the checkpoint, "
        "unverified): fused blocks carry a video and an audio stream, each with its own text branch.",
    )
)


# ------------------------------------------------------------------------------------------------ MiniMax-H3


def _minimax_h3_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """The `t2va` call of the MiniMax-H3 modular pipeline: one packed `[text | audio | video]` sequence laid
    out by its `build_packed_sequence` (no keyframes), a 2-channel soundtrack for the clip's length (17 pixel
    frames per 5 latent frames at 24 fps, 40 audio latents a second) and the rows' timesteps from its
    `build_row_timesteps`."""
    from diffusers.modular_pipelines.minimax_h3 import before_denoise, modular_pipeline

    config = model.config
    frames, height, width = grid
    patch = config.patch_size
    audio_latents = modular_pipeline.audio_latent_num_frames(round((frames - 2) * 17 / 5 + 5))
    layout = before_denoise.MiniMaxH3PrepareLayoutStep.build_packed_sequence(
        torch.full((text_tokens,), modular_pipeline.MINIMAX_H3_TEXT_TAG),
        frames,
        height * patch[1],
        width * patch[2],
        audio_latents,
        tuple(patch),
        modular_pipeline.MINIMAX_H3_AUDIO_CHANNELS,
        modular_pipeline.MINIMAX_H3_AUDIO_TAG,
        modular_pipeline.MINIMAX_H3_VIDEO_TAG,
    )
    position_ids, token_tags, video_indices, audio_indices, text_indices = layout[:5]
    timestep, timestep_indices = before_denoise.MiniMaxH3SetTimestepsStep.build_row_timesteps(
        video_indices, audio_indices, 0, 0, text_tokens, 0.7, 0.7, 0.7, 1.0
    )
    on_device = {
        "timestep": timestep,
        "timestep_indices": timestep_indices,
        "token_tags": token_tags,
        "position_ids": position_ids.float(),
        "video_indices": video_indices,
        "audio_indices": audio_indices,
        "text_indices": text_indices,
    }
    return {
        "hidden_states": rand(batch, len(video_indices), config.in_channels * patch[0] * patch[1] * patch[2]),
        "audio_hidden_states": rand(batch, len(audio_indices), config.audio_in_channels),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_dim),
        **{name: tensor.to(device(model)) for name, tensor in on_device.items()},
    }


register(
    Denoiser(
        name="minimax-h3",
        cls="MiniMaxH3Transformer3DModel",
        tiny={
            "num_attention_heads": 2,
            "attention_head_dim": 16,
            "hidden_size": 24,
            "num_layers": 2,
            "num_refiner_layers": 2,
            "ffn_dim": 32,
            "in_channels": 4,
            "audio_in_channels": 6,
            "text_dim": 8,
            "freq_dim": 8,
            "time_embed_hidden_dim": 24,
            "time_embed_dim": 16,
            "rope_freq_dim": 2,
        },
        published={},
        patch=(1, 2, 2),
        make_inputs=_minimax_h3_inputs,
        published_grid=(37, 24, 42),  # 1344x768, 5 s at 24 fps (124 frames): VAE 16x spatial
        text_order="text-image",
        notes="MiniMax-H3 at 1344x768, 5 s: text, audio and video rows packed in one sequence by index "
        "tensors and attended jointly; RoPE and AdaLN rows are looked up per row from position_ids and "
        "timestep_indices.",
    )
)


def _kandinsky6_sr_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`Kandinsky6SRPipeline`, one latent tile: the anchor channels are zero (the released checkpoints are
    anchor-free); no text."""
    return {
        "hidden_states": _channels_last(model, grid, batch, rand, condition=True),
        "timestep": steps(model, batch),
    }


register(
    Denoiser(
        name="kandinsky6-sr",
        cls="Kandinsky6SRTransformer3DModel",
        tiny={
            "in_visual_dim": 4,
            "out_visual_dim": 4,
            "time_dim": 16,
            "model_dim": 32,
            "ff_dim": 64,
            "num_visual_blocks": 1,  # eager flex attention is slow on CPU
            "axes_dims": (4, 6, 6),
        },
        published={"out_visual_dim": 64},  # the default 640 could not step the 64-channel latent
        patch=(1, 1, 1),
        make_inputs=_kandinsky6_sr_inputs,
        published_grid=(31, 32, 48),  # one 512x768 latent tile (K-VAE 16x spatial, 4x temporal), 121 frames
        text_tokens=0,
        extra={"grid_multiple": (1, 8, 8)},  # NABLA groups 8x8 token blocks
        notes="Kandinsky 6 super-resolution, one 768x512 tile: no text; NABLA sparse self-attention (flex "
        "BlockMask from thresholded block scores, 8x8 token blocks), so H and W must be multiples of 8 "
        "tokens.",
    )
)
