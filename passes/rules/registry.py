"""Rules keyed by what a node calls: a torch function, an operator, or a tensor method name.

    FLOW = Registry("flow")

    @FLOW.register(torch.cat, "cat")           # torch.cat(...) and a method spelled .cat(...)
    def _cat(node, ctx): ...

`lookup` finds the rule of a node by its target. In-place spellings share their rule with the
out-of-place one (`x.mul_(y)` is `x.mul(y)`, `operator.iadd` is `operator.add`), and any op PyTorch
tags `pointwise` (`torch.Tag.pointwise` on its aten overloads: `erf`, `rsqrt`, `x.pow(2)`, `lerp`,
...) gets the registry's pointwise rule, so a spelling nobody listed is still known by what it does.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import torch
from torch.fx import Node

__all__ = ["Registry", "aten_name", "is_pointwise", "target_name"]

_INPLACE_OPERATORS = {
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv,
    operator.ipow: operator.pow,
}


class Registry:
    """Rules of one analysis, by node target; see the module docstring."""

    def __init__(self, name: str):
        self.name = name
        self._functions: dict[object, Callable] = {}
        self._methods: dict[str, Callable] = {}
        self.pointwise: Callable | None = None

    def register(self, *targets):
        """Decorator: the rule for each target (a callable, or a method name as a string)."""

        def add(rule):
            for t in dict.fromkeys(targets):  # aliases (F.linear is torch._C._nn.linear) count once
                table = self._methods if isinstance(t, str) else self._functions
                if table.get(t, rule) is not rule:
                    raise ValueError(f"{self.name} rule for {t!r} registered twice")
                table[t] = rule
            return rule

        return add

    def register_pointwise(self, rule):
        """Decorator: the rule for every op tagged pointwise that has no rule of its own."""
        self.pointwise = rule
        return rule

    def lookup(self, node: Node) -> Callable | None:
        if node.op == "call_method":
            name = node.target
            rule = self._methods.get(name) or self._methods.get(_out_of_place(name))
            return rule or (self.pointwise if is_pointwise(_out_of_place(name)) else None)
        if node.op != "call_function":
            return None
        target = _INPLACE_OPERATORS.get(node.target, node.target)
        rule = self._functions.get(target)
        if rule is None and self.pointwise is not None and is_pointwise(aten_name(target)):
            return self.pointwise
        return rule


def _out_of_place(name: str) -> str:
    """`mul_` -> `mul`, `__iadd__` -> `add`, `__mul__` -> `mul`."""
    if name.startswith("__i") and name.endswith("__"):
        return name[3:-2]
    if name.startswith("__") and name.endswith("__"):
        return name[2:-2]
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


def target_name(node: Node) -> str:
    """`torch.cat`, `.view()`, `operator.add`: how a node's target reads in a reason."""
    if node.op == "call_method":
        return f".{node.target}()"
    t = node.target
    module = getattr(t, "__module__", None) or ""
    name = getattr(t, "__name__", str(t))
    return f"{module.replace('torch._C._nn', 'F').replace('torch.nn.functional', 'F')}.{name}".lstrip(".")


def aten_name(target) -> str | None:
    """The aten op name a torch-level function would lower to, by name (`torch.erf` -> `erf`)."""
    name = getattr(target, "__name__", None)
    module = getattr(target, "__module__", None) or ""
    if name is None or not (module.startswith("torch") or module in ("_operator", "operator", "math")):
        return None
    return _out_of_place(name)


@functools.cache
def is_pointwise(name: str | None) -> bool:
    """Whether aten op `name` is tagged pointwise (elementwise, with broadcasting)."""
    op = getattr(torch.ops.aten, name, None) if name else None
    if op is None or not isinstance(op, torch._ops.OpOverloadPacket):
        return False
    return any(torch.Tag.pointwise in getattr(op, o).tags for o in op.overloads())
