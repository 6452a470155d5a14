"""Two DiTs written by hand in the style of 2025-26 models, from plain torch: no diffusers class, no
input named like text, nothing the pass was shown. The rules must find their attention and MLPs, the
image rows and their grid, and keep the caption and register rows as they are.

    ImageDiT   pixel-unshuffle patchify, register tokens first and the caption after the image in one
               stream, complex 2-D RoPE built from the grid with `torch.polar`, q/k RMSNorm spelled
               `pow / mean / rsqrt`, adaLN modulation by `chunk`, SwiGLU
    VideoDiT   Conv3d patches, a 3-D cos/sin RoPE applied through an `empty_like` buffer and strided
               slice writes, cross attention to a caption, per-frame modulation, tanh-GELU MLP
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

import toma_fx
from toma_fx.coverage import TINY_CONFIG

from ..compiler.helpers import Recorder, identity_merges

CONFIG = TINY_CONFIG


def rms(x, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rope_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """`(h * w, dim / 2)` complex rotations: half the pairs turn with the row, half with the column."""
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter) / quarter)
    rows = torch.outer(torch.arange(h).float(), freqs)[:, None, :].expand(h, w, quarter)
    cols = torch.outer(torch.arange(w).float(), freqs)[None, :, :].expand(h, w, quarter)
    angles = torch.cat([rows, cols], dim=-1).reshape(h * w, 2 * quarter)
    return torch.polar(torch.ones_like(angles), angles)


def rotate(x, freqs):
    """`x (B, heads, L, d)` rotated by complex `freqs (L, d/2)`."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * freqs).flatten(-2).type_as(x)


class ImageBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.mod = nn.Linear(dim, 6 * dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.gate_up, self.down = nn.Linear(dim, 4 * dim), nn.Linear(2 * dim, dim)

    def forward(self, x, c, freqs, image: slice):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.mod(F.silu(c))[:, None].chunk(6, dim=-1)
        h = rms(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = rms(q), rms(k)
        q_img, k_img = rotate(q[:, :, image], freqs), rotate(k[:, :, image], freqs)
        q = torch.cat([q[:, :, : image.start], q_img, q[:, :, image.stop :]], dim=2)
        k = torch.cat([k[:, :, : image.start], k_img, k[:, :, image.stop :]], dim=2)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        x = x + gate1 * self.out(a)
        up, gate = self.gate_up(rms(x) * (1 + scale2) + shift2).chunk(2, dim=-1)
        return x + gate2 * self.down(F.silu(gate) * up)


class ImageDiT(nn.Module):
    def __init__(self, channels=4, dim=64, heads=2, depth=2, registers=4, caption_dim=24):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.patch_in = nn.Linear(channels * 4, dim)
        self.registers = nn.Parameter(torch.randn(registers, dim) * 0.02)
        self.caption = nn.Linear(caption_dim, dim)
        self.time = nn.Sequential(nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(ImageBlock(dim, heads) for _ in range(depth))
        self.patch_out = nn.Linear(dim, channels * 4)

    def forward(self, x, t, y):
        B, C, H, W = x.shape
        h, w = H // 2, W // 2
        tokens = x.reshape(B, C, h, 2, w, 2).permute(0, 2, 4, 1, 3, 5).reshape(B, h * w, C * 4)
        regs = self.registers.expand(B, -1, -1)
        stream = torch.cat([regs, self.patch_in(tokens), self.caption(y)], dim=1)
        image = slice(regs.shape[1], regs.shape[1] + h * w)
        c = self.time(t[:, None])
        freqs = rope_2d(h, w, self.dim // self.heads)
        for block in self.blocks:
            stream = block(stream, c, freqs, image)
        out = self.patch_out(rms(stream[:, image]))
        return out.reshape(B, h, w, C, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


def rope_3d(f: int, h: int, w: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin `(1, f * h * w, 1, dim)` of rotations by frame, row and column (a third each)."""
    third = dim // 6
    freqs = 1.0 / 10000 ** (torch.arange(third) / third)
    axes = [torch.outer(torch.arange(n).float(), freqs) for n in (f, h, w)]
    grid = torch.cat(
        [
            axes[0][:, None, None].expand(f, h, w, third),
            axes[1][None, :, None].expand(f, h, w, third),
            axes[2][None, None, :].expand(f, h, w, third),
        ],
        dim=-1,
    ).reshape(1, f * h * w, 1, 3 * third)
    angles = grid.repeat_interleave(2, dim=-1)
    return angles.cos(), angles.sin()


def rotate_into(x, cos, sin):
    """`x (B, L, heads, d)` rotated pairwise, written into a new buffer by strided slices."""
    out = torch.empty_like(x)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out[..., 0::2] = x1 * cos[..., 0::2] - x2 * sin[..., 1::2]
    out[..., 1::2] = x1 * sin[..., 0::2] + x2 * cos[..., 1::2]
    return out


class VideoBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim, elementwise_affine=False) for _ in range(3))
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.cq, self.ck, self.cv, self.co = (nn.Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x, text, mod, cos, sin):
        split = lambda t: t.unflatten(-1, (self.heads, -1))  # noqa: E731
        h = self.norm1(x) * (1 + mod)
        q, k, v = (
            rotate_into(split(self.q(h)), cos, sin),
            rotate_into(split(self.k(h)), cos, sin),
            split(self.v(h)),
        )
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + self.o(a.transpose(1, 2).flatten(2))
        h = self.norm2(x)
        cq, ck, cv = (
            split(p(s)).transpose(1, 2) for p, s in ((self.cq, h), (self.ck, text), (self.cv, text))
        )
        x = x + self.co(F.scaled_dot_product_attention(cq, ck, cv).transpose(1, 2).flatten(2))
        return x + self.fc2(F.gelu(self.fc1(self.norm3(x)), approximate="tanh"))


class VideoDiT(nn.Module):
    def __init__(self, channels=4, dim=48, heads=2, depth=2, text_dim=20):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.embed = nn.Conv3d(channels, dim, (1, 2, 2), stride=(1, 2, 2))
        self.text = nn.Linear(text_dim, dim)
        self.frame_time = nn.Linear(1, dim)
        self.blocks = nn.ModuleList(VideoBlock(dim, heads) for _ in range(depth))
        self.out = nn.Linear(dim, channels * 4)

    def forward(self, x, t, y):
        B, C, Fr, H, W = x.shape
        h, w = H // 2, W // 2
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, F*h*w, dim), frame-major
        mod = self.frame_time(t[..., None]).repeat_interleave(h * w, dim=1)  # (B, F*h*w, dim) per frame
        cos, sin = rope_3d(Fr, h, w, self.dim // self.heads)
        text = self.text(y)
        for block in self.blocks:
            tokens = block(tokens, text, mod, cos, sin)
        out = self.out(tokens).reshape(B, Fr, h, w, C, 2, 2)
        return out.permute(0, 4, 1, 2, 5, 3, 6).reshape(B, C, Fr, H, W)


def image_call():
    torch.manual_seed(0)
    return ImageDiT().eval(), (torch.randn(2, 4, 32, 24), torch.rand(2), torch.randn(2, 6, 24))


def video_call():
    torch.manual_seed(0)
    return VideoDiT().eval(), (torch.randn(2, 4, 3, 24, 16), torch.rand(2, 3), torch.randn(2, 7, 20))


def test_the_image_dit_merges_attention_and_mlps_on_the_image_rows_only():
    model, args = image_call()
    report = toma_fx.explain(model, *args, config=CONFIG, fullgraph=True)
    assert report.counts() == {"self": 2, "mlp": 2}, str(report)
    # the 4 register and 6 caption rows are kept; the grid comes through the patchify reshape
    assert {(r.grid, r.tokens, r.text) for r in report.regions} == {("16x12 (graph: x)", 192, 10)}
    assert report.speedup > 1.3


def test_the_video_dit_merges_on_its_3d_grid():
    model, args = video_call()
    report = toma_fx.explain(model, *args, config=CONFIG, fullgraph=True)
    assert report.counts() == {"self": 2, "cross": 2, "mlp": 2}, str(report)
    assert {(r.grid, r.tokens, r.text) for r in report.regions} == {("3x12x8 (graph: x)", 288, 0)}


def run(model, args, backend):
    torch._dynamo.reset()
    with torch.no_grad():
        return torch.compile(model, backend=backend, fullgraph=True)(*args)


def test_both_are_exact_with_every_token_kept_and_run_merged():
    for model, args in (image_call(), video_call()):
        with torch.no_grad():
            expected = model(*args)
        with identity_merges():
            kept = run(model, args, toma_fx.toma_backend.configure(CONFIG, inner=Recorder()))
        torch.testing.assert_close(kept, expected, atol=1e-4, rtol=1e-4)
        merged = run(model, args, toma_fx.toma_backend.configure(CONFIG, inner="aot_eager"))
        assert merged.shape == expected.shape and torch.isfinite(merged).all()
        cosine = F.cosine_similarity(merged.flatten(), expected.flatten(), dim=0)
        assert 0.5 < float(cosine) < 1 - 1e-6, math.nan
