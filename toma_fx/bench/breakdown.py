"""Where a merged step's time goes: selection, merge and unmerge as shares of the denoiser's time,
from the torch profiler.

`PartitionedInductor` is an inner compiler for `toma_backend`: it cuts the rewritten graph where ToMA's
nodes begin and end (torch.fx `split_module`), compiles each piece with Inductor on its own, and runs
each inside a `record_function` named after its part:

    selection  nodes.select        the greedy facility-location destinations
    weights    nodes.weights       the merge weights (similarity to destinations, softmax)
    merge      nodes.merge         the merge matmul (nodes.merge_sdpa in the SDPA form)
    gather     nodes.gather        positional tables (RoPE) at the destinations
    unmerge    nodes.unmerge       the unmerge matmul (nodes.unmerge_sdpa)
    model      everything else

`profile_parts` runs a generation under the profiler and sums each part's time: on CPU its wall time,
on a GPU the device time of the kernels launched inside it. Shares are of the time inside denoiser
calls. Cutting the graph stops Inductor fusing across the cuts, so the cut step runs somewhat slower
than the real one; its step time is reported beside the shares for that reason.
"""

from __future__ import annotations

import operator
from collections import Counter

import torch
from torch.fx import GraphModule
from torch.fx.node import map_arg
from torch.fx.passes.split_module import split_module
from torch.profiler import ProfilerActivity, profile, record_function

from toma_fx.ops import nodes

__all__ = ["PARTS", "PartitionedInductor", "profile_parts"]

_PART_OF_TARGET = {
    nodes.select: "selection",
    nodes.weights: "weights",
    nodes.merge: "merge",
    nodes.gather: "gather",
    nodes.unmerge: "unmerge",
    nodes.merge_sdpa: "merge",
    nodes.unmerge_sdpa: "unmerge",
}
PARTS = (*dict.fromkeys(_PART_OF_TARGET.values()), "model")
_PREFIX = "toma_fx::"


class PartitionedInductor:
    """`inner` for `toma_backend`: Inductor, one piece per part, each piece labelled for the profiler."""

    def __init__(self):
        self.cut_graphs = 0

    def __call__(self, gm: GraphModule, example_inputs: list):
        from torch._inductor.compile_fx import compile_fx

        _unpack_weights(gm)
        labels, part_of = _partition(gm)
        if set(labels) == {"model"}:
            return compile_fx(gm, example_inputs)
        split = split_module(gm, None, lambda n: part_of.get(n, 0), keep_original_order=True)
        pieces = _example_inputs_of_pieces(split, example_inputs)
        for name, args in pieces.items():
            compiled = compile_fx(getattr(split, name), args)
            setattr(split, name, _Labelled(compiled, _PREFIX + labels[int(name.removeprefix("submod_"))]))
        self.cut_graphs += 1
        return split


def profile_parts(run, denoiser: torch.nn.Module, device: torch.device) -> dict:
    """Profile `run()` (e.g. one generation) and return the time of each part as a share of the time
    inside `denoiser` calls: `{"shares": {part: fraction}, "denoiser_ms": per call, "calls": n}`."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    handles = _label_calls(denoiser, _PREFIX + "denoiser")
    try:
        with profile(activities=activities) as prof:
            run()
    finally:
        for h in handles:
            h.remove()
    times, counts = Counter(), Counter()
    for event in prof.key_averages():
        if event.key.startswith(_PREFIX):
            part = event.key.removeprefix(_PREFIX)
            times[part] += event.device_time_total if cuda else event.cpu_time_total  # us
            counts[part] += event.count
    total = times.pop("denoiser", 0.0)
    calls = counts["denoiser"]
    if not total or not any(times[p] for p in PARTS if p != "model"):
        return {"shares": None, "denoiser_ms": None, "calls": calls}
    return {
        "shares": {p: times[p] / total for p in PARTS},
        "denoiser_ms": total / calls / 1e3,
        "calls": calls,
    }


def _unpack_weights(gm: GraphModule) -> None:
    """Give the users of each merge-weights list its tensors one by one, so no piece returns a list
    (Inductor compiles graphs whose outputs are tensors)."""
    for node in gm.graph.find_nodes(op="call_function", target=nodes.weights):
        count = len(nodes.tile_layout(node.args[2]).blocks)
        users, items, anchor = list(node.users), [], node
        for i in range(count):
            with gm.graph.inserting_after(anchor):
                anchor = gm.graph.call_function(operator.getitem, (node, i))
            items.append(anchor)

        def unpacked(a, node=node, items=items):
            return items if a is node else a

        for user in users:
            user.args, user.kwargs = map_arg(user.args, unpacked), map_arg(user.kwargs, unpacked)
    gm.recompile()


def _partition(gm: GraphModule) -> tuple[list[str], dict]:
    """Runs of consecutive nodes of one part, in graph order: their labels, and each node's run. Runs
    follow the topological order, so every run depends only on earlier ones."""
    labels, part_of = [], {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        part = _PART_OF_TARGET.get(node.target)
        if part is None and node.target is operator.getitem and node.args[0] in part_of:
            part = labels[part_of[node.args[0]]]  # unpacking a part's output belongs to it
        part = part or "model"
        if not labels or labels[-1] != part:
            labels.append(part)
        part_of[node] = len(labels) - 1
    return labels, part_of


def _example_inputs_of_pieces(split: GraphModule, example_inputs: list) -> dict[str, list]:
    """Each piece's arguments, found by running the split graph on the (fake) example inputs."""
    from torch._guards import detect_fake_mode
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    seen = {}

    class Recorder(torch.fx.Interpreter):
        def call_module(self, target, args, kwargs):
            seen[target] = list(args)
            return super().call_module(target, args, kwargs)

    fake_mode = detect_fake_mode(example_inputs) or FakeTensorMode()
    fake = [
        fake_mode.from_tensor(x) if isinstance(x, torch.Tensor) and not isinstance(x, FakeTensor) else x
        for x in example_inputs
    ]
    with fake_mode:
        Recorder(split).run(*fake)
    return seen


class _Labelled(torch.nn.Module):
    def __init__(self, fn, label: str):
        super().__init__()
        self.fn, self.label = fn, label

    def forward(self, *args):
        with record_function(self.label):
            return self.fn(*args)


def _label_calls(module: torch.nn.Module, label: str) -> list:
    """Hooks that open a profiler range around every call of `module`."""
    ranges = []

    def enter(module, args, kwargs):
        ranges.append(record_function(label).__enter__())

    def leave(module, args, kwargs, output):
        ranges.pop().__exit__(None, None, None)

    return [
        module.register_forward_pre_hook(enter, with_kwargs=True),
        module.register_forward_hook(leave, with_kwargs=True),
    ]
