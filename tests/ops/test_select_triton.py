"""The Triton selection kernel against the torch reference (Triton's interpreter on CPU)."""

import pytest
import torch

from tests.ops.selection_cases import tie_free
from toma_fx.ops import facility_location, facility_location_reference

pytest.importorskip("triton", reason="the Triton kernel needs the triton package (extra 'triton')")
from toma_fx.ops.select_triton import MAX_TILE, facility_location_triton  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


# (S, C, k): Flux-like 4x4 tile, 8x8 tile, S no power of two, C below one channel block,
# C not a multiple of the channel block, the largest tile on chip
@pytest.mark.parametrize(
    "S, C, k", [(16, 64, 8), (64, 40, 32), (12, 20, 5), (16, 3, 4), (16, 200, 4), (MAX_TILE, 16, 32)]
)
def test_matches_reference(S, C, k):
    x = tie_free(3, S, C, k).to(DEVICE)
    assert torch.equal(facility_location_triton(x, k).cpu(), facility_location_reference(x, k).cpu())


@pytest.mark.parametrize(
    "x",
    [torch.ones(2, 16, 8), torch.zeros(2, 16, 8), torch.randn(4, 8).repeat(2, 4, 1)],
    ids=["identical", "zeros", "repeated"],
)
def test_ties_break_to_the_first_token_as_in_torch(x):
    x = x.to(DEVICE)
    assert torch.equal(facility_location_triton(x, 6).cpu(), facility_location_reference(x, 6).cpu())


def test_strided_and_half_precision_inputs():
    x = tie_free(2, 16, 32, 8).to(DEVICE)
    strided = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert not strided.is_contiguous()
    assert torch.equal(facility_location_triton(strided, 8), facility_location_triton(x, 8))
    expected = facility_location_reference(x.bfloat16(), 8)
    assert torch.equal(facility_location_triton(x.bfloat16(), 8), expected)


@pytest.mark.parametrize("reuse", [True, False])
def test_kept_picks_are_copied_when_the_flag_says_reuse(reuse):
    """With kept picks, the flag (read inside the kernel) chooses them or fresh ones."""
    x = tie_free(3, 16, 32, 8).to(DEVICE)
    kept = torch.arange(8, 16, device=DEVICE).expand(3, 8).contiguous()
    flag = torch.tensor(reuse, device=DEVICE)
    expected = kept if reuse else facility_location_reference(x, 8)
    assert torch.equal(facility_location_triton(x, 8, kept, flag), expected)


@pytest.mark.parametrize("S, C, k", [(16, 64, 8), (12, 20, 5), (MAX_TILE, 16, 32)])
def test_gain_scales_match_the_reference(S, C, k):
    """Scaled gains pick as the reference does, and the scales are strong enough to change picks."""
    x = tie_free(3, S, C, k).to(DEVICE)
    scale = torch.exp(2.0 * torch.randn(3, k, S, generator=torch.Generator().manual_seed(S))).to(DEVICE)
    got = facility_location_triton(x, k, gain_scale=scale)
    assert torch.equal(got.cpu(), facility_location_reference(x, k, scale).cpu())
    assert not torch.equal(got.cpu(), facility_location_reference(x, k).cpu())


_BUILD_FOR_HOPPER = """
from triton import compile
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from toma_fx.ops.select_triton import MAX_TILE, _facility_location_kernel as kernel

pointers = {"x_ptr": "*bf16", "out_ptr": "*i64", "kept_ptr": "*i64", "reuse_ptr": "*i1", "scale_ptr": "*fp32"}
for block_s, has_kept, has_scale in [(16, False, False), (MAX_TILE, True, False), (16, True, True)]:
    meta = {"BLOCK_S": block_s, "BLOCK_C": max(16, min(128, 4096 // block_s)), "HAS_KEPT": has_kept,
            "HAS_SCALE": has_scale}
    signature = {n: pointers.get(n, "constexpr" if n in meta else "i32") for n in kernel.arg_names}
    cubin = compile(ASTSource(kernel, signature, meta), target=GPUTarget("cuda", 90, 32)).asm["cubin"]
    assert cubin[:4] == b"\\x7fELF", cubin[:4]
    print(block_s, has_kept, has_scale, len(cubin))
"""


def test_kernel_builds_for_hopper():
    """The kernel compiles to sm_90 cubins (what an H100 runs), with and without kept picks and gain
    scales, at the smallest and the largest tile: what the interpreter never checks. Run apart, because the
    interpreter (set for this process) replaces the kernel by a Python function."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _BUILD_FOR_HOPPER], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 3


def test_tiles_too_large_for_the_kernel_are_refused():
    """The kernel never falls back on its own: the op chooses (the reference for such tiles, below)."""
    x = tie_free(1, MAX_TILE + 16, 8, 4).to(DEVICE)
    with pytest.raises(ValueError, match=f"tiles of at most {MAX_TILE} tokens, got {MAX_TILE + 16}"):
        facility_location_triton(x, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the op dispatches to Triton on CUDA tensors only")
def test_op_runs_the_kernel_on_cuda():
    """The op's CUDA kernel is the Triton one (spied on), except for tiles too large for it."""
    from unittest import mock

    from toma_fx.ops import select_triton

    with mock.patch.object(
        select_triton, "facility_location_triton", wraps=select_triton.facility_location_triton
    ) as kernel:
        x = tie_free(8, 16, 64, 8).cuda()
        assert torch.equal(facility_location(x, 8), facility_location_reference(x, 8))
        assert kernel.call_count == 1
        large = tie_free(1, MAX_TILE + 16, 8, 4).cuda()
        assert torch.equal(facility_location(large, 4), facility_location_reference(large, 4))
        assert kernel.call_count == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the op dispatches to Triton on CUDA tensors only")
def test_a_compiled_graph_selects_with_the_kernel():
    """Under `toma_backend` and Inductor on CUDA, the graph's selection runs the Triton kernel."""
    from unittest import mock

    from tests.compiler.helpers import small, tiny
    from toma_fx.ops import select_triton

    model, inputs = tiny("plain-dit", batch=1)
    model = model.cuda()
    inputs = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    with mock.patch.object(
        select_triton, "facility_location_triton", wraps=select_triton.facility_location_triton
    ) as kernel:
        with torch.no_grad():
            torch.compile(model, backend=small(), fullgraph=True)(**inputs)
    assert kernel.call_count >= 1
