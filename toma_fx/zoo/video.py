"""The video (3-D) transformer denoisers of diffusers, registered into `toma_fx.zoo`.

This module holds the helpers every video entry shares and the Wan family (Wan 2.1 / 2.2 and the models built
on its blocks); the other families sit in `video_*.py` next to it and are imported at the bottom. Each
`make_inputs` builds what the class's pipeline passes to one denoiser call, for a grid of `(F, H, W)` tokens.

Where a class takes only some grids, `Denoiser.extra` says which: `min_frames` (the fewest latent frames),
`frames` (the only frame counts allowed) or `grid_multiple` (what each grid axis must be a multiple of).
"""

from __future__ import annotations

import math

import torch

from toma_fx.zoo import Denoiser, register

WAN_TEXT_TOKENS = 512
"""Wan's image-conditioned cross-attention splits its keys at `len - 512` (the umT5 prompt length is
hard-coded in `WanAttnProcessor`), so classes with `added_kv_proj_dim` need exactly 512 text rows."""

CLIP_TOKENS = 4
"""Image-encoder rows of the tiny inputs (257 CLIP rows in the published pipelines)."""


def device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def zeros(model: torch.nn.Module, *shape: int) -> torch.Tensor:
    """Zeros of `shape` on the model's device and in its dtype (masks and empty conditions)."""
    parameter = next(model.parameters())
    return torch.zeros(shape, device=parameter.device, dtype=parameter.dtype)


def steps(model: torch.nn.Module, *shape: int, value: float = 500.0, cast: bool = False) -> torch.Tensor:
    """A float32 timestep tensor of `shape` (one value per sample, frame or token) on the model's device; in
    the model's dtype with `cast`, for pipelines that cast it to the latents' dtype."""
    timestep = torch.full(shape, value, device=device(model))
    return timestep.to(next(model.parameters()).dtype) if cast else timestep


def prompt_mask(model: torch.nn.Module, batch: int, tokens: int) -> torch.Tensor:
    """Boolean padding mask `(B, tokens)`: the prompts fill 3/4 and 1/2 of the rows, alternating over the
    batch, as a tokenizer pads prompts of different lengths (valid rows first)."""
    valid = torch.tensor([tokens - (i % 2 + 1) * (tokens // 4) for i in range(batch)], device=device(model))
    return torch.arange(tokens, device=device(model)) < valid[:, None]


def latent_size(grid: tuple[int, ...], patch: tuple[int, ...]) -> tuple[int, ...]:
    """Latent `(frames, height, width)` of a token grid."""
    return tuple(g * p for g, p in zip(grid, patch))


def patch_of(config) -> tuple[int, int, int]:
    """A class's `(t, h, w)` patch: its `patch_size` triple, or its `patch_size` and `patch_size_t`."""
    if isinstance(config.patch_size, int):
        return (config.get("patch_size_t") or 1, config.patch_size, config.patch_size)
    return tuple(config.patch_size)


def video(rand, batch: int, channels: int, grid, patch, *, frames_first: bool = False) -> torch.Tensor:
    """A random latent `(B, C, F, H, W)`, or `(B, F, C, H, W)` with `frames_first`."""
    frames, height, width = latent_size(grid, patch)
    if frames_first:
        return rand(batch, frames, channels, height, width)
    return rand(batch, channels, frames, height, width)


# ------------------------------------------------------------------------------------------------------- Wan


_WAN_TINY = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 2,
    "attention_head_dim": 12,  # RoPE splits it 4 / 4 / 4 over (t, h, w)
    "in_channels": 4,
    "out_channels": 4,
    "text_dim": 16,
    "freq_dim": 32,
    "ffn_dim": 32,
    "num_layers": 2,
}
_WAN_I2V_TINY = {**_WAN_TINY, "in_channels": 12, "image_dim": 16, "added_kv_proj_dim": 24}
"""Wan i2v: latent (4) + first-frame mask (4) + encoded first frame (4) channels, own K/V for CLIP rows."""

_WAN_1_3B = {"num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30}
_WAN_I2V_14B = {"in_channels": 36, "image_dim": 1280, "added_kv_proj_dim": 5120}
_WAN_GRID_480P = (21, 30, 52)  # 832x480, 81 frames: VAE 8x spatial, 4x temporal, then 2x2 patches


def wan_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """The call of `WanPipeline`, or `WanImageToVideoPipeline` with CLIP rows where `image_dim` is set."""
    config = model.config
    kwargs = {
        "hidden_states": video(rand, batch, config.in_channels, grid, config.patch_size),
        "timestep": steps(model, batch),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_dim),
    }
    if config.image_dim is not None:
        kwargs["encoder_hidden_states_image"] = rand(batch, CLIP_TOKENS, config.image_dim)
    return kwargs


def _wan22_ti2v_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """Wan 2.2 TI2V (`expand_timesteps`): one timestep per token, 0 on the first (clean, given) frame."""
    timestep = steps(model, batch, *grid)
    timestep[:, 0] = 0
    return {**wan_inputs(model, grid, batch, text_tokens, rand), "timestep": timestep.flatten(1)}


def _wan_vace_inputs(model, grid, batch, text_tokens, rand) -> dict:
    config = model.config
    control = video(rand, batch, config.vace_in_channels, grid, config.patch_size)
    return {**wan_inputs(model, grid, batch, text_tokens, rand), "control_hidden_states": control}


def _wan_animate_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """Frame 0 is the reference character; the pose latents and the face video drive frames 1..F-1.

    The face encoder halves the face frames twice (causal stride-2 convolutions), so `F - 1` latent frames
    take `4 (F - 1) - 3` face frames (77 per 21-frame segment in the pipeline).
    """
    config = model.config
    frames, height, width = grid
    patch, face_size = config.patch_size, config.motion_encoder_size
    return {
        **wan_inputs(model, grid, batch, text_tokens, rand),
        "pose_hidden_states": video(rand, batch, config.latent_channels, (frames - 1, height, width), patch),
        "face_pixel_values": rand(batch, 3, 4 * (frames - 1) - 3, face_size, face_size),
    }


def _skyreels_df_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """Diffusion forcing (`SkyReelsV2DiffusionForcingPipeline`): one timestep per latent frame.

    The 14B checkpoints have no fps embedding (`inject_sample_info=False`); the 1.3B one has, and its
    `fps_projection(...).repeat(frames, 1, 1)` only broadcasts for batch 1.
    """
    return {
        **wan_inputs(model, grid, batch, text_tokens, rand),
        "timestep": steps(model, batch, grid[0]),
        "enable_diffusion_forcing": True,
    }


_HELIOS_HISTORY = (16, 2, 1)
"""Latent frames of the long, mid and 1x history (`HeliosPipeline(history_sizes=[16, 2, 1])`)."""


def _helios_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """One Helios chunk with its three histories, indexed as `HeliosPipeline` does with `keep_first_frame`.

    The histories are patchified at 1x (the first frame plus the last frame: 2 frames), 2x and 4x coarser and
    placed before the chunk's own tokens: `[long, mid, short, chunk]`.
    """
    config = model.config
    frames, height, width = grid
    long, mid, short = _HELIOS_HISTORY
    indices = torch.arange(1 + long + mid + short + frames, device=device(model)).unsqueeze(0)
    prefix, i_long, i_mid, i_short, i_chunk = indices.split([1, long, mid, short, frames], dim=1)
    history = {
        name: video(rand, batch, config.in_channels, (n, height, width), config.patch_size)
        for name, n in (("long", long), ("mid", mid), ("short", 1 + short))
    }
    return {
        "hidden_states": video(rand, batch, config.in_channels, grid, config.patch_size),
        "timestep": steps(model, batch),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_dim),
        "indices_hidden_states": i_chunk,
        "indices_latents_history_short": torch.cat([prefix, i_short], dim=1),
        "indices_latents_history_mid": i_mid,
        "indices_latents_history_long": i_long,
        **{f"latents_history_{name}": latents for name, latents in history.items()},
    }


def _anyflow_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`AnyFlowPipeline`: `(B, F, C, H, W)` latents, source and target flow-map times per latent frame."""
    config = model.config
    return {
        "hidden_states": video(rand, batch, config.in_channels, grid, config.patch_size, frames_first=True),
        "timestep": steps(model, batch, grid[0]),
        "r_timestep": steps(model, batch, grid[0], value=250.0),
        "encoder_hidden_states": rand(batch, text_tokens, config.text_dim),
    }


def _anyflow_far_inputs(model, grid, batch, text_tokens, rand) -> dict:
    """`AnyFlowFARPipeline`'s call for chunk `full_chunk_limit + 1` (each chunk `F` latent frames).

    Its KV cache, sized as the pipeline allocates it (random here; the pipeline's cache passes write it),
    holds the first chunk patchified 4x coarser (`compressed_patch_size`) and the `full_chunk_limit - 1`
    chunks before this one at full resolution.
    """
    config = model.config
    frames, height, width = grid
    limit, chunks = config.full_chunk_limit, [frames] * (config.full_chunk_limit + 1)
    full_tokens = frames * height * width
    compressed_tokens = full_tokens * math.prod(config.patch_size) // math.prod(config.compressed_patch_size)
    heads, head_dim = config.num_attention_heads, config.attention_head_dim
    kv_cache = {
        layer: {
            "full_cache": rand(2, batch, heads, limit * full_tokens, head_dim),
            "compressed_cache": rand(
                2, batch, heads, (len(chunks) - limit + 1) * compressed_tokens, head_dim
            ),
        }
        for layer in range(config.num_layers)
    }
    return {
        **_anyflow_inputs(model, grid, batch, text_tokens, rand),
        "chunk_partition": chunks,
        "kv_cache": kv_cache,
        "kv_cache_flag": {"num_cached_chunks": len(chunks) - 1, "is_cache_step": False},
    }


register(
    Denoiser(
        name="wan2.1",
        cls="WanTransformer3DModel",
        tiny=_WAN_TINY,
        published=_WAN_1_3B,
        mid={"num_attention_heads": 8, "attention_head_dim": 64, "ffn_dim": 2048, "num_layers": 4},
        patch=(1, 2, 2),
        make_inputs=wan_inputs,
        published_grid=_WAN_GRID_480P,
        notes="Wan 2.1 T2V 1.3B at 832x480, 81 frames. Text enters by cross-attention only; 3-D RoPE from "
        "the latent shape as cos/sin, applied with an empty_like buffer and strided slice assignment.",
    )
)
register(
    Denoiser(
        name="wan2.1-i2v",
        cls="WanTransformer3DModel",
        tiny=_WAN_I2V_TINY,
        published=_WAN_I2V_14B,
        patch=(1, 2, 2),
        make_inputs=wan_inputs,
        published_grid=_WAN_GRID_480P,
        text_tokens=WAN_TEXT_TOKENS,
        notes="Wan 2.1 I2V 14B at 832x480, 81 frames: first-frame mask and latent concatenated on channels, "
        "CLIP rows prepended to the 512 text rows and attended with their own K/V (add_k_proj) in every "
        "cross-attention.",
    )
)
register(
    Denoiser(
        name="wan2.2",
        cls="WanTransformer3DModel",
        tiny=_WAN_TINY,
        published={
            "in_channels": 48,
            "out_channels": 48,
            "num_attention_heads": 24,
            "ffn_dim": 14336,
            "num_layers": 30,
        },
        patch=(1, 2, 2),
        make_inputs=_wan22_ti2v_inputs,
        published_grid=(31, 22, 40),  # 1280x704, 121 frames: Wan 2.2 VAE 16x spatial, 4x temporal
        notes="Wan 2.2 TI2V 5B at 1280x704, 121 frames, image-to-video: the first latent frame is the clean "
        "image, marked by per-token timesteps (0 there), so AdaLN shift/scale/gate are per token.",
    )
)
register(
    Denoiser(
        name="wan2.1-vace",
        cls="WanVACETransformer3DModel",
        tiny={**_WAN_TINY, "num_layers": 4, "vace_layers": [0, 2], "vace_in_channels": 12},
        published={**_WAN_1_3B, "vace_layers": list(range(0, 30, 2))},
        patch=(1, 2, 2),
        make_inputs=_wan_vace_inputs,
        published_grid=_WAN_GRID_480P,
        notes="Wan 2.1 VACE 1.3B at 832x480, 81 frames. VACE blocks run first on the control video's own "
        "tokens (same grid) and their hints are added after every vace_layers block of the main stack.",
    )
)
register(
    Denoiser(
        name="wan2.2-animate",
        cls="WanAnimateTransformer3DModel",
        tiny={
            **_WAN_I2V_TINY,
            "latent_channels": 4,
            "motion_encoder_channel_sizes": {"4": 16, "8": 16, "16": 16},
            "motion_encoder_size": 16,
            "motion_style_dim": 8,
            "motion_dim": 4,
            "motion_encoder_dim": 16,
            "face_encoder_hidden_dim": 16,
            "face_encoder_num_heads": 2,
            "inject_face_latents_blocks": 2,
        },
        published={"added_kv_proj_dim": 5120},
        patch=(1, 2, 2),
        make_inputs=_wan_animate_inputs,
        published_grid=(
            21,
            45,
            80,
        ),  # 1280x720: a 77-frame segment (20 latent frames) plus the reference frame
        text_tokens=WAN_TEXT_TOKENS,
        extra={"min_frames": 2},  # the reference frame and at least one driven frame
        notes="Wan 2.2 Animate 14B, one 77-frame 1280x720 segment. Pose tokens are added to frames 1..F-1; a "
        "face adapter after every 5th block cross-attends each frame's tokens to that frame's face-motion "
        "rows.",
    )
)
register(
    Denoiser(
        name="skyreels-v2",
        cls="SkyReelsV2Transformer3DModel",
        tiny=_WAN_TINY,
        published={"num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40},
        patch=(1, 2, 2),
        make_inputs=_skyreels_df_inputs,
        published_grid=(25, 34, 60),  # 960x544, 97 frames
        notes="SkyReels-V2 DF 14B at 960x544, 97 frames, diffusion forcing: per-frame timesteps, so AdaLN is "
        "per token. With num_frame_per_block > 1 (causal_block_size) self-attention gets a block-causal "
        "boolean mask.",
    )
)
register(
    Denoiser(
        name="chronoedit",
        cls="ChronoEditTransformer3DModel",
        tiny=_WAN_I2V_TINY,
        published=_WAN_I2V_14B,
        patch=(1, 2, 2),
        make_inputs=wan_inputs,
        published_grid=(2, 30, 52),  # 832x480, 5 frames: the input image and the edited one
        text_tokens=WAN_TEXT_TOKENS,
        notes="ChronoEdit 14B (Wan 2.1 I2V) editing at 832x480: two latent frames, whose temporal RoPE "
        "positions are 0 and rope_temporal_skip_len - 1 instead of 0 and 1.",
    )
)
register(
    Denoiser(
        name="helios",
        cls="HeliosTransformer3DModel",
        tiny={**_WAN_TINY, "rope_dim": (4, 4, 4)},
        published={},
        patch=(1, 2, 2),
        make_inputs=_helios_inputs,
        published_grid=(9, 24, 40),  # one 33-frame chunk at 640x384
        notes="Helios 14B, one 9-latent-frame chunk at 640x384. History tokens (1x, 2x, 4x patches) precede "
        "the chunk in self-attention at timestep 0; cross-attention and the output see only the chunk's "
        "tokens.",
    )
)
register(
    Denoiser(
        name="anyflow",
        cls="AnyFlowTransformer3DModel",
        tiny=_WAN_TINY,
        published=_WAN_1_3B,
        patch=(1, 2, 2),
        make_inputs=_anyflow_inputs,
        published_grid=_WAN_GRID_480P,
        notes="AnyFlow (Wan 2.1 T2V 1.3B flow map) at 832x480, 81 frames: (B, F, C, H, W) latents, per-frame "
        "t and r timesteps, complex RoPE (view_as_complex in float64).",
    )
)
register(
    Denoiser(
        name="anyflow-far",
        cls="AnyFlowFARTransformer3DModel",
        # flex attention pads heads narrower than 16; one block, as eager flex attention is slow on CPU
        tiny={**_WAN_TINY, "attention_head_dim": 16, "num_layers": 1},
        published=_WAN_1_3B,
        patch=(1, 2, 2),
        make_inputs=_anyflow_far_inputs,
        published_grid=(3, 30, 52),  # one 3-latent-frame chunk of the 832x480, 81-frame schedule
        notes="AnyFlow FAR (Wan 2.1 1.3B), chunk-autoregressive: one chunk's tokens attend (flex backend, no "
        "mask) to themselves plus cached K/V of earlier chunks, the oldest ones at 4x coarser patches.",
    )
)


from toma_fx.zoo import video_dit, video_mmdit  # noqa: E402,F401  (the other families, registered after Wan)
