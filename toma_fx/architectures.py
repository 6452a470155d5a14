"""Denoisers built from their configs with random weights, and inputs to call them with.

Nothing is downloaded: latency does not depend on weight values, and tests need models that build in
milliseconds. Each architecture has three sizes:

    tiny   a few blocks and channels, for tests (CPU, seconds)
    mid    a few blocks at real token counts, for CPU benchmarks
    full   the published architecture (SDXL's UNet, Flux-dev, SD3-medium, PixArt-alpha, DiT-XL/2)

`plain-dit` is a DiT written with nothing but `torch.nn.functional` (fused qkv,
`scaled_dot_product_attention`, tanh-GELU MLP): a model no patch has ever seen, which the compiler
pass must accelerate all the same.

    model = build("flux", "tiny")
    out = model(**example_inputs("flux", model, batch=2, latent=(32, 24)))
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHITECTURES", "PlainDiT", "build", "example_inputs", "load"]

_UNET_SDXL = {
    "full": dict(
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
        norm_num_groups=32,
        sample_size=128,
    ),
    "mid": dict(
        block_out_channels=(64, 128, 256),
        layers_per_block=1,
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(1, 2, 4),
        cross_attention_dim=256,
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=32 * 6 + 256,
        norm_num_groups=32,
        sample_size=128,
    ),
    "tiny": dict(
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(2, 2, 4),
        cross_attention_dim=32,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=8 * 6 + 32,
        norm_num_groups=8,
        sample_size=32,
    ),
}
_FLUX = {
    "full": dict(
        in_channels=64,
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    ),
    "mid": dict(
        in_channels=64,
        num_layers=2,
        num_single_layers=4,
        attention_head_dim=64,
        num_attention_heads=4,
        joint_attention_dim=256,
        pooled_projection_dim=64,
        guidance_embeds=False,
        axes_dims_rope=(16, 24, 24),
    ),
    "tiny": dict(
        in_channels=16,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    ),
}
_SD3 = {
    "full": dict(
        sample_size=128,
        patch_size=2,
        in_channels=16,
        num_layers=24,
        attention_head_dim=64,
        num_attention_heads=24,
        joint_attention_dim=4096,
        caption_projection_dim=1536,
        pooled_projection_dim=2048,
        out_channels=16,
        pos_embed_max_size=192,
    ),
    "mid": dict(
        sample_size=128,
        patch_size=2,
        in_channels=16,
        num_layers=4,
        attention_head_dim=64,
        num_attention_heads=4,
        joint_attention_dim=256,
        caption_projection_dim=256,
        pooled_projection_dim=64,
        out_channels=16,
        pos_embed_max_size=96,
    ),
    "tiny": dict(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        caption_projection_dim=16,
        pooled_projection_dim=32,
        out_channels=4,
        pos_embed_max_size=32,
    ),
}
_PIXART = {
    "full": dict(
        num_attention_heads=16, attention_head_dim=72, num_layers=28, sample_size=128, caption_channels=4096
    ),
    "mid": dict(
        num_attention_heads=4, attention_head_dim=64, num_layers=4, sample_size=128, caption_channels=256
    ),
    "tiny": dict(
        num_attention_heads=2, attention_head_dim=8, num_layers=2, sample_size=32, caption_channels=32
    ),
}
_DIT = {
    "full": dict(num_attention_heads=16, attention_head_dim=72, num_layers=28, sample_size=32),
    "mid": dict(num_attention_heads=4, attention_head_dim=64, num_layers=4, sample_size=128),
    "tiny": dict(num_attention_heads=2, attention_head_dim=8, num_layers=2, sample_size=32),
}
_PLAIN_DIT = {
    "full": dict(dim=1152, depth=28, heads=16),
    "mid": dict(dim=256, depth=4, heads=4),
    "tiny": dict(dim=32, depth=2, heads=2),
}
_TEXT_TOKENS = {"full": 512, "mid": 128, "tiny": 8}


class PlainDiT(nn.Module):
    """A DiT from plain torch: patchify, blocks of (LayerNorm, fused-qkv SDPA, tanh-GELU MLP), unpatchify.

    Written the way new research code is (timm-style `qkv` projection split by reshape/permute/unbind),
    with no diffusers class and no attention processor, so only the compiler can find its regions.

    Args:
        in_channels: latent channels. dim: token width. depth: blocks. heads: attention heads.
        patch: patch side in latent pixels.
    """

    def __init__(self, in_channels: int = 4, dim: int = 32, depth: int = 2, heads: int = 2, patch: int = 2):
        super().__init__()
        self.heads, self.patch = heads, patch
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.time = nn.Linear(1, dim)
        self.blocks = nn.ModuleList(_PlainBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, in_channels * patch * patch)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W), (B,) -> (B, C, H, W)`."""
        B, C, H, W = sample.shape
        x = self.embed(sample).flatten(2).transpose(1, 2)  # (B, N, dim)
        x = x + self.time(timestep.to(x.dtype)[:, None] / 1000)[:, None]  # timesteps in [0, 1000)
        for block in self.blocks:
            x = block(x)
        x = self.out(self.norm(x))  # (B, N, C * p * p)
        h, w, p = H // self.patch, W // self.patch, self.patch
        return x.reshape(B, h, w, C, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


class _PlainBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, head_dim)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


def _unet(size: str) -> nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        addition_embed_type="text_time",
        use_linear_projection=True,
        **_UNET_SDXL[size],
    )


def _flux(size: str) -> nn.Module:
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(**_FLUX[size])


def _sd3(size: str) -> nn.Module:
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(**_SD3[size])


def _pixart(size: str) -> nn.Module:
    from diffusers import PixArtTransformer2DModel

    c = _PIXART[size]
    dim = c["num_attention_heads"] * c["attention_head_dim"]
    return PixArtTransformer2DModel(
        in_channels=4, out_channels=8, cross_attention_dim=dim, norm_num_groups=1, **c
    )


def _dit(size: str) -> nn.Module:
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(in_channels=4, out_channels=8, norm_num_groups=1, **_DIT[size])


def _plain_dit(size: str) -> nn.Module:
    return PlainDiT(**_PLAIN_DIT[size])


ARCHITECTURES = {
    "sdxl": _unet,
    "flux": _flux,
    "sd3": _sd3,
    "pixart": _pixart,
    "dit": _dit,
    "plain-dit": _plain_dit,
}
"""Name -> builder taking a size ('tiny', 'mid', 'full')."""

_SIZES = ("tiny", "mid", "full")


def build(
    name: str, size: str = "tiny", *, seed: int = 0, device: str | torch.device = "cpu", dtype=torch.float32
) -> nn.Module:
    """A randomly initialised denoiser in eval mode, created directly on `device` in `dtype`: a
    full-size model never passes through CPU memory or float32 (Flux-dev would take 48 GB)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}")
    if size not in _SIZES:
        raise ValueError(f"size must be one of {_SIZES}, got {size!r}")
    torch.manual_seed(seed)
    with created_on(device, dtype):
        return ARCHITECTURES[name](size).eval()


@contextlib.contextmanager
def created_on(device: str | torch.device, dtype: torch.dtype):
    """Modules created inside get their parameters on `device` in `dtype`, with no copy."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(default)


def load(name: str, path: str) -> nn.Module:
    """A denoiser saved with `save_pretrained` in a local folder (no hub access)."""
    if name == "plain-dit":
        raise ValueError("plain-dit is not a diffusers model and has no from_pretrained")
    cls = type(build(name, "tiny"))
    return cls.from_pretrained(path).eval()


def example_inputs(
    name: str,
    model: nn.Module,
    *,
    batch: int = 1,
    latent: tuple[int, int] = (32, 32),
    text_tokens: int | None = None,
    seed: int = 0,
) -> dict:
    """Keyword arguments for one denoiser call on random latents and text embeddings.

    Args:
        latent: `(h, w)` of the VAE latent, i.e. image pixels / 8 (128 x 128 for 1024 x 1024).
        text_tokens: prompt length; default: the model size's usual length (8 for tiny configs).
    """
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    h, w = latent

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(p.device, p.dtype)

    t = torch.full((batch,), 500.0, device=p.device)
    cfg = getattr(model, "config", {})
    n_text = text_tokens or _TEXT_TOKENS[_size_of(name, model)]
    if name == "sdxl":
        return dict(
            sample=rand(batch, 4, h, w),
            timestep=t,
            encoder_hidden_states=rand(batch, n_text, cfg.cross_attention_dim),
            added_cond_kwargs={
                "text_embeds": rand(
                    batch, cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
                ),
                "time_ids": torch.tensor([[8.0 * h, 8.0 * w, 0, 0, 8.0 * h, 8.0 * w]] * batch).to(
                    p.device, p.dtype
                ),
            },
        )
    if name == "flux":
        gh, gw = h // 2, w // 2  # 2x2 latent patches are packed into one token
        ids = torch.zeros(gh, gw, 3)
        ids[..., 1], ids[..., 2] = torch.arange(gh)[:, None], torch.arange(gw)[None, :]
        kwargs = dict(
            hidden_states=rand(batch, gh * gw, cfg.in_channels),
            encoder_hidden_states=rand(batch, n_text, cfg.joint_attention_dim),
            pooled_projections=rand(batch, cfg.pooled_projection_dim),
            timestep=t / 1000,
            img_ids=ids.reshape(gh * gw, 3).to(p.device, p.dtype),
            txt_ids=torch.zeros(n_text, 3).to(p.device, p.dtype),
        )
        if cfg.guidance_embeds:
            kwargs["guidance"] = torch.full((batch,), 3.5, device=p.device)
        return kwargs
    if name == "sd3":
        return dict(
            hidden_states=rand(batch, cfg.in_channels, h, w),
            encoder_hidden_states=rand(batch, n_text, cfg.joint_attention_dim),
            pooled_projections=rand(batch, cfg.pooled_projection_dim),
            timestep=t,
        )
    if name == "pixart":
        return dict(
            hidden_states=rand(batch, 4, h, w),
            encoder_hidden_states=rand(batch, n_text, cfg.caption_channels),
            timestep=t,
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        )
    if name == "dit":
        return dict(
            hidden_states=rand(batch, 4, h, w), timestep=t, class_labels=torch.zeros(batch, dtype=torch.long)
        )
    if name == "plain-dit":
        return dict(sample=rand(batch, 4, h, w), timestep=t)
    raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {name!r}")


def _size_of(name: str, model: nn.Module) -> str:
    """The size preset a model was built from, by parameter count (for the default prompt length)."""
    n = sum(p.numel() for p in model.parameters())
    return "tiny" if n < 2_000_000 else "mid" if n < 200_000_000 else "full"
