"""ToDo-style token downsampling (Smith et al. 2024, "ToDo: Token Downsampling for Efficient Generation
of High-Resolution Images"), as a baseline for the fidelity benchmark.

ToDo keeps every query and attends to a spatially downsampled set of keys and values: the image tokens
of a `H x W` grid are subsampled by `(fy, fx)` with nearest-exact interpolation (its reference code's
default). At the same kept-token budget as a merge ratio r, the factor keeps `1 - r` of the keys:
`ops.baselines.CELLS`, (2, 1) at 0.5 and (2, 2) at 0.75. Text rows (`text` of them, before the image
rows) are kept whole.

It applies to every `scaled_dot_product_attention` whose keys are the image grid (with its text rows)
and whose queries are the same rows, that is self- and joint attention at that grid; cross-attention
and other levels are left alone. Two ways, with one `downsample`:

    KVDownsampling   a `TorchFunctionMode`: no patch of the model, eager mode (the fidelity benchmark)
    ToDoBackend      a `torch.compile` backend that inserts `downsample` before those attention nodes
                     of each traced graph, then compiles it with Inductor: ToDo's speed beside plain
                     `torch.compile` and ToMA's (`toma-fx bench --todo`)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch._dynamo.backends.registry import lookup_backend
from torch.fx import GraphModule
from torch.fx.operator_schemas import normalize_function
from torch.overrides import TorchFunctionMode

from toma_fx.passes.rules import SDPA, example

__all__ = ["KVDownsampling", "ToDoBackend", "downsample"]

_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def downsample(t: torch.Tensor, grid: tuple[int, int], factor: tuple[int, int], text: int) -> torch.Tensor:
    """Keys or values `(..., text + H * W, D)` -> `(..., text + H * W / (fy * fx), D)`: the image rows
    subsampled by nearest-exact interpolation, the `text` rows before them kept."""
    H, W = grid
    fy, fx = factor
    lead, D = t.shape[:-2], t.shape[-1]
    image = t[..., text:, :].reshape(-1, H, W, D).permute(0, 3, 1, 2)
    small = F.interpolate(image, size=(H // fy, W // fx), mode="nearest-exact")
    small = small.permute(0, 2, 3, 1).reshape(*lead, -1, D)
    return torch.cat([t[..., :text, :], small], dim=-2)


def _check(grid: tuple[int, int], factor: tuple[int, int]) -> None:
    if grid[0] % factor[0] or grid[1] % factor[1]:
        raise ValueError(f"factor {factor} must divide the grid {grid}")


def _text_rows(queries: int, keys: int, grid: tuple[int, int], text: int | None) -> int | None:
    """The text rows before the image in an attention of `queries` x `keys` rows, if it is attention
    over the grid (with `text` rows, or with `text` None any fewer rows than the image has), else None."""
    image = grid[0] * grid[1]
    rows = keys - image
    if queries != keys or not (rows == text if text is not None else 0 <= rows < image):
        return None
    return rows


class KVDownsampling(TorchFunctionMode):
    """Within it, attention over the `grid` image tokens (after `text` text rows; with `text` None,
    after whatever fewer rows precede them, as a joint attention's prompt does) sees keys and values
    downsampled by `factor`; counts the attention calls it changed in `.applied`."""

    def __init__(self, grid: tuple[int, int], factor: tuple[int, int], text: int | None = 0):
        super().__init__()
        _check(grid, factor)
        self.grid, self.factor, self.text, self.applied = grid, factor, text, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            named = dict(zip(_SDPA_ARGS, args), **kwargs)  # diffusers passes them by name, or not
            text = _text_rows(named["query"].shape[-2], named["key"].shape[-2], self.grid, self.text)
            if text is not None and named.get("attn_mask") is None:
                self.applied += 1
                for name in ("key", "value"):
                    named[name] = downsample(named[name], self.grid, self.factor, text)
                return func(**named)
        return func(*args, **kwargs)


class ToDoBackend:
    """`torch.compile(model, backend=ToDoBackend(grid, factor, text))`: ToDo inside the compiled graph.

    Each traced graph's attention nodes over the `text + H * W` rows of `grid` (queries and keys alike,
    no mask; `text` None as for `KVDownsampling`) get their keys and values through `downsample`; the
    graph then goes to `inner` (Inductor, or "aot_eager" to check numerics). `.applied` counts the
    attention nodes rewritten over every graph compiled so far (the benchmark refuses a ToDo that
    matches nothing earlier, on its FLOP count: `bench.methods.todo`)."""

    def __init__(
        self, grid: tuple[int, int], factor: tuple[int, int], text: int | None = 0, inner: str = "inductor"
    ):
        _check(grid, factor)
        self.grid, self.factor, self.text, self.inner, self.applied = grid, factor, text, inner, 0

    def __call__(self, gm: GraphModule, example_inputs: list):
        for node in gm.graph.find_nodes(op="call_function", target=SDPA):
            named = normalize_function(SDPA, node.args, node.kwargs, normalize_to_only_use_kwargs=True).kwargs
            q, k = example(named["query"]), example(named["key"])
            if q is None or k is None or named.get("attn_mask") is not None:
                continue
            text = _text_rows(q.shape[-2], k.shape[-2], self.grid, self.text)
            if text is None:
                continue
            with gm.graph.inserting_before(node):
                for name in ("key", "value"):
                    named[name] = gm.graph.call_function(
                        downsample, (named[name], self.grid, self.factor, text)
                    )
            node.args, node.kwargs = (), named
            self.applied += 1
        gm.recompile()
        return lookup_backend(self.inner)(gm, example_inputs)
