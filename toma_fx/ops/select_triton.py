"""Triton kernel for greedy facility location: one program per tile, the S x S similarity on chip.

The specification is `facility_location_reference` in `select.py`; this kernel computes the same
picks (up to fp32 summation order on near-ties) in one launch instead of ~6 small kernels per greedy
step.

Cost per tile, S tokens of C channels, K picks:
    read  S*C elements once (the only HBM traffic besides K int64 indices written)
    Gram  2*S*S*C FLOPs, then K greedy steps of ~3*S*S register ops
Flux at 1024x1024 with 4x4 tiles (G = 256 tiles, S = 16, C = 3072, bf16): 25 MB read, 0.4 GFLOP:
about 10 us of memory time on an H100, where the torch loop launches ~6*K kernels (~50 at K = 8).
The similarity of a tile lives in registers, which bounds S: tiles of up to 128 tokens (e.g. 8x16)
run here, larger tiles fall back to the torch reference.

Imported lazily: `import toma_fx` never imports Triton. On a CPU tensor the kernel runs only under
Triton's interpreter (`TRITON_INTERPRET=1` set before this module is imported), which the tests use.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

MAX_TILE = 128


@triton.jit
def _facility_location_kernel(
    # pointers
    x_ptr,  # (G, S, C) metric, any float dtype
    out_ptr,  # (G, K) int64 picks, ascending
    kept_ptr,  # (G, K) int64 kept picks, copied instead when the flag is set (if HAS_KEPT)
    reuse_ptr,  # () bool flag (if HAS_KEPT)
    scale_ptr,  # (G, K, S) fp32 gain scales (if HAS_SCALE)
    # sizes
    S,
    C,
    K,
    # strides
    stride_xg,
    stride_xs,
    stride_xc,
    stride_og,
    stride_ok,
    stride_kg,
    stride_kk,
    stride_sg,
    stride_sk,
    stride_ss,
    # meta-parameters
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
    HAS_KEPT: tl.constexpr,
    HAS_SCALE: tl.constexpr,
):
    g = tl.program_id(0)
    offs_s = tl.arange(0, BLOCK_S)
    reuse = False
    if HAS_KEPT:
        reuse = tl.load(reuse_ptr) != 0
    if reuse:  # the kept picks: the flag is read here, so the host never waits on it
        picks = tl.load(kept_ptr + g * stride_kg + offs_s * stride_kk, mask=offs_s < K)
        tl.store(out_ptr + g * stride_og + offs_s * stride_ok, picks, mask=offs_s < K)
    else:
        _select_tile(x_ptr, out_ptr, scale_ptr, g, S, C, K, stride_xg, stride_xs, stride_xc, stride_og,
                     stride_ok, stride_sg, stride_sk, stride_ss, BLOCK_S, BLOCK_C, HAS_SCALE)  # fmt: skip


@triton.jit
def _select_tile(
    x_ptr, out_ptr, scale_ptr, g, S, C, K, stride_xg, stride_xs, stride_xc, stride_og, stride_ok,
    stride_sg, stride_sk, stride_ss, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr, HAS_SCALE: tl.constexpr,
):  # fmt: skip
    """Greedy facility location on tile `g`, its picks written ascending; with HAS_SCALE, pick `t`
    maximises the gains times `scale[g, t]`."""
    offs_s = tl.arange(0, BLOCK_S)
    valid = offs_s < S

    # Gram matrix and squared norms of the tile, accumulated over channel blocks.
    gram = tl.zeros((BLOCK_S, BLOCK_S), dtype=tl.float32)
    sq = tl.zeros((BLOCK_S,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        ptrs = x_ptr + g * stride_xg + offs_s[:, None] * stride_xs + offs_c[None, :] * stride_xc
        a = tl.load(ptrs, mask=valid[:, None] & (offs_c[None, :] < C), other=0.0).to(
            tl.float32
        )  # [BLOCK_S, BLOCK_C]
        gram += tl.dot(a, tl.trans(a), input_precision="ieee")
        sq += tl.sum(a * a, axis=1)
    inv = 1.0 / tl.maximum(tl.sqrt(sq), 1e-12)  # as F.normalize
    sim = gram * inv[:, None] * inv[None, :]  # [BLOCK_S, BLOCK_S] cosine
    # Padding columns at -1 (the initial coverage) contribute no gain.
    sim = tl.where(valid[None, :], sim, -1.0)

    cover = tl.full((BLOCK_S,), -1.0, dtype=tl.float32)
    taken = offs_s < 0
    for t in range(K):
        gain = tl.sum(tl.maximum(sim - cover[None, :], 0.0), axis=1)  # [BLOCK_S]
        if HAS_SCALE:
            scale_ptrs = scale_ptr + g * stride_sg + t * stride_sk + offs_s * stride_ss
            gain *= tl.load(scale_ptrs, mask=valid, other=1.0)
        gain = tl.where(taken | ~valid, -1.0, gain)
        best = tl.argmax(gain, axis=0)  # first index on ties, as torch.argmax
        hit = offs_s == best
        taken = taken | hit
        cover = tl.maximum(cover, tl.max(tl.where(hit[:, None], sim, -1.0), axis=0))

    # Write picks in ascending order: a taken token's slot is the number of taken tokens before it.
    slot = tl.cumsum(taken.to(tl.int32), axis=0) - 1
    tl.store(out_ptr + g * stride_og + slot * stride_ok, offs_s.to(tl.int64), mask=taken)


def facility_location_triton(
    metric: torch.Tensor,
    k: int,
    kept: torch.Tensor | None = None,
    reuse: torch.Tensor | None = None,
    gain_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """`(G, S, C), k -> (G, k)` int64, as `facility_location_reference` (with `gain_scale` `(G, k, S)`
    fp32 too); with `kept` `(G, k)` and a 0-dim bool `reuse` on the same device, as
    `select.facility_location`."""
    # check
    G, S, C = metric.shape
    if not 1 <= k <= S:
        raise ValueError(f"k must be in [1, {S}] for tiles of {S} tokens, got {k}")
    if metric.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("the Triton selection kernel runs on CPU tensors only with TRITON_INTERPRET=1")
    if S > MAX_TILE:
        raise ValueError(f"the Triton selection kernel takes tiles of at most {MAX_TILE} tokens, got {S}")
    # allocate
    out = torch.empty((G, k), dtype=torch.int64, device=metric.device)
    # launch
    BLOCK_S = max(16, triton.next_power_of_2(S))
    BLOCK_C = max(16, min(128, 4096 // BLOCK_S))
    has_kept = kept is not None
    has_scale = gain_scale is not None
    _facility_location_kernel[(G,)](
        metric,
        out,
        kept if has_kept else out,
        reuse if has_kept else out,
        gain_scale if has_scale else out,
        S,
        C,
        k,
        *metric.stride(),
        *out.stride(),
        *(kept.stride() if has_kept else out.stride()),
        *(gain_scale.stride() if has_scale else (0, 0, 0)),
        BLOCK_S=BLOCK_S,
        BLOCK_C=BLOCK_C,
        HAS_KEPT=has_kept,
        HAS_SCALE=has_scale,
        num_warps=4 if BLOCK_S <= 32 else 8,
    )
    return out
