"""Shape-check a graph on fake tensors, refreshing each node's `example_value`, and count its FLOPs.

After a rewrite the graph is run once on fake copies of the example inputs (no data, no kernels). This
proves every inserted node and patched argument fits, gives Inductor's pre-grad passes example values
that match the rewritten shapes, and yields per-node FLOPs for `toma_fx.explain`.
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import GraphModule, Interpreter, Node

__all__ = ["propagate"]


def propagate(gm: GraphModule, example_inputs: list, *, count_flops: bool = False) -> dict[str, int]:
    """Run `gm` on fakes of `example_inputs`; return `{node name: FLOPs}` (empty unless `count_flops`).

    Raises whatever the first ill-shaped node raises.
    """
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fakes = [mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in example_inputs]
    runner = _FakeRunner(gm, count_flops)
    with mode, torch.no_grad():
        runner.run(*fakes)
    return runner.flops


class _FakeRunner(Interpreter):
    def __init__(self, gm: GraphModule, count_flops: bool):
        super().__init__(gm)
        self.count_flops = count_flops
        self.flops: dict[str, int] = {}

    def run_node(self, n: Node):
        if not self.count_flops or n.op in ("placeholder", "output"):
            out = super().run_node(n)
        else:
            from torch.utils.flop_counter import FlopCounterMode  # imports Triton: only when counting

            with FlopCounterMode(display=False) as counter:
                out = super().run_node(n)
            self.flops[n.name] = counter.get_total_flops()
        if n.op != "output":
            n.meta["example_value"] = out
        return out
