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
