"""The proxy denoisers: a Flux-architecture DiT and an SDXL-architecture UNet, small enough to train on a
CPU, large enough (1024 image tokens at the largest level) that ToMA merges them with its defaults.

Both work in pixel space on `(B, 3, 64, 64)` images in [-1, 1] and are conditioned on learned prompts
(`Prompts`: one per training photograph, and a null prompt). Timesteps are on diffusers' 0..1000 scale:

    flux  rectified flow: x_t = (1 - s) x0 + s e with s = t / 1000; predicts e - x0 (FlowMatchEuler).
    sdxl  v-prediction on a cosine noise schedule (DDIM, trailing spacing).

A `Proxy` knows its diffusers class and config, how its denoiser is called, the training target, and its
sampler; `PROXIES` is the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["PROXIES", "Prompts", "Proxy"]

SIZE = 64
PROMPT_TOKENS = 8


class Prompts(nn.Module):
    """Learned prompt embeddings: `embeds (P + 1, L, D)` and `pooled (P + 1, Dp)`; index P is the null
    prompt (trained by dropping the prompt, as for classifier-free guidance)."""

    def __init__(self, prompts: int, dim: int, pooled_dim: int, tokens: int = PROMPT_TOKENS):
        super().__init__()
        self.embeds = nn.Parameter(torch.randn(prompts + 1, tokens, dim) * 0.5)
        self.pooled = nn.Parameter(torch.randn(prompts + 1, pooled_dim) * 0.5)

    @property
    def null(self) -> int:
        return self.embeds.shape[0] - 1

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`labels (B,)` -> `(embeds (B, L, D), pooled (B, Dp))`."""
        return self.embeds[labels], self.pooled[labels]


@dataclass(frozen=True)
class Proxy:
    """One proxy architecture.

    Args:
        name: registry key.
        cls: the diffusers model class name.
        config: its constructor kwargs.
        text_dim / pooled_dim: widths of the prompt embeddings the model takes.
        prediction: "flow" (e - x0) or "v" (v-prediction).
        call: `(x (B, 3, S, S), t (B,), cond) -> the model's keyword arguments` (the architecture's call).
        unpack: `(model output, x) -> prediction (B, 3, S, S)`.
        scheduler: `(diffusers scheduler class name, kwargs)` used for sampling (and, for "v", noising).
    """

    name: str
    cls: str
    config: dict
    text_dim: int
    pooled_dim: int
    prediction: str
    call: Callable[..., dict]
    unpack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scheduler: tuple[str, dict] = field(default=("FlowMatchEulerDiscreteScheduler", {}))

    def build(self) -> nn.Module:
        return self.model_class()(**self.config)

    def model_class(self) -> type:
        import diffusers

        return getattr(diffusers, self.cls)

    def prompts(self, count: int) -> Prompts:
        return Prompts(count, self.text_dim, self.pooled_dim)

    def make_scheduler(self):
        import diffusers

        name, kwargs = self.scheduler
        return getattr(diffusers, name)(**kwargs)

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, scheduler=None):
        """`(x_t, target)` for clean images `x0`, noise `e` and timesteps `t (B,)` in [0, 1000)."""
        if self.prediction == "flow":
            s = (t.float() / 1000).view(-1, 1, 1, 1)
            return (1 - s) * x0 + s * noise, noise - x0
        scheduler = scheduler or self.make_scheduler()
        t = t.long()
        return scheduler.add_noise(x0, noise, t), scheduler.get_velocity(x0, noise, t)

    def predict(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor, cond) -> torch.Tensor:
        """The model's prediction `(B, 3, S, S)` for images `x` at timesteps `t`, prompts `cond`."""
        return self.unpack(model(**self.call(x, t, cond))[0], x)

    def sample(
        self, model: nn.Module, cond, *, steps: int, generator: torch.Generator, step_context=None
    ) -> torch.Tensor:
        """Images `(B, 3, 64, 64)` in [-1, 1] from seeded noise; `step_context(i)` (for example
        `toma_fx.step`) wraps the denoiser call of step `i`."""
        scheduler = self.make_scheduler()
        scheduler.set_timesteps(steps)
        B = cond[0].shape[0]
        x = torch.randn(B, 3, SIZE, SIZE, generator=generator).to(cond[0])
        for i, t in enumerate(scheduler.timesteps):
            with step_context(i) if step_context else contextlib.nullcontext():
                pred = self.predict(model, x, t.expand(B).to(x.device), cond)
            x = scheduler.step(pred, t, x, return_dict=False)[0]
        return x.clamp(-1, 1)


def _flux_call(x: torch.Tensor, t: torch.Tensor, cond) -> dict:
    """Flux's call: 2x2 pixels per token (`(B, H/2 * W/2, 12)`), position ids, timestep in [0, 1]."""
    embeds, pooled = cond
    B, C, H, W = x.shape
    return {
        "hidden_states": x.reshape(B, C, H // 2, 2, W // 2, 2)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(B, -1, C * 4),
        "encoder_hidden_states": embeds,
        "pooled_projections": pooled,
        "timestep": t.to(x.dtype) / 1000,
        "img_ids": _image_ids(H // 2, W // 2, x.device, x.dtype),
        "txt_ids": torch.zeros(embeds.shape[1], 3, device=x.device, dtype=x.dtype),
        "return_dict": False,
    }


def _flux_unpack(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Flux's `(B, H/2 * W/2, 12)` tokens back to `(B, 3, H, W)` pixels."""
    B, C, H, W = x.shape
    return out.reshape(B, H // 2, W // 2, C, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


def _unet_call(x: torch.Tensor, t: torch.Tensor, cond) -> dict:
    return {"sample": x, "timestep": t, "encoder_hidden_states": cond[0], "return_dict": False}


def _image_ids(h: int, w: int, device, dtype) -> torch.Tensor:
    """Flux's `(h * w, 3)` position ids (0, row, column) of a token grid."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3).to(device, dtype)


_COSINE_V = {
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "timestep_spacing": "trailing",
}

PROXIES: dict[str, Proxy] = {
    "flux": Proxy(
        "flux",
        "FluxTransformer2DModel",
        {
            "patch_size": 1,
            "in_channels": 12,  # 2x2 RGB pixels per token: 32 x 32 = 1024 tokens at 64 x 64
            "num_layers": 2,
            "num_single_layers": 4,
            "attention_head_dim": 32,
            "num_attention_heads": 4,
            "joint_attention_dim": 64,
            "pooled_projection_dim": 64,
            "guidance_embeds": False,
            "axes_dims_rope": (8, 12, 12),
        },
        text_dim=64,
        pooled_dim=64,
        prediction="flow",
        call=_flux_call,
        unpack=_flux_unpack,
    ),
    "sdxl": Proxy(
        "sdxl",
        "UNet2DConditionModel",
        {
            "sample_size": SIZE,
            "in_channels": 3,
            "out_channels": 3,
            # SDXL's layout, shortened: no attention at full resolution, self- and cross-attention with
            # GEGLU feed-forwards from the next level down (32 x 32 = 1024 tokens) and in the mid block.
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "block_out_channels": (32, 64),
            "layers_per_block": 1,
            "attention_head_dim": 2,  # heads (of 32 channels), as diffusers' UNet names it
            "cross_attention_dim": 64,
            "use_linear_projection": True,
            "norm_num_groups": 8,
        },
        text_dim=64,
        pooled_dim=1,
        prediction="v",
        call=_unet_call,
        unpack=lambda out, x: out,
        scheduler=("DDIMScheduler", _COSINE_V),
    ),
}
