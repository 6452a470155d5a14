"""What the flow rules pass around: where merged tokens sit in a tensor, and a rule's verdict.

A rule looks at one node whose inputs carry merged tokens and answers `Flow` (the node runs on merged
tokens; here is where they are in its output, and which of its arguments change) or `Stop` (it must
see unmerged tokens: the region unmerges before it, which is always exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch.fx import Node

__all__ = ["Context", "Flow", "Stop", "Tokens", "example"]


@dataclass(frozen=True)
class Tokens:
    """Merged image tokens along `axis` of a tensor of rank `ndim`, batch along `batch`.

    Along `axis` the tensor holds `before` unmerged rows (text, registers), then the image rows (`n`
    in the traced graph, `m` once merged), then `after` unmerged rows. `keys`, when set, is a second
    axis holding the same merged tokens: the key axis of attention scores `q @ k^T` in hand-written
    attention, which only a softmax over it and the product with values may touch.
    """

    axis: int
    before: int
    after: int
    ndim: int
    batch: int = 0
    keys: int | None = None

    def total(self, n: int) -> int:
        return self.before + n + self.after

    def shifted(self, k: int) -> Tokens:
        """The same tokens in a tensor with `k` more leading (broadcast) dims."""
        if not k:
            return self
        keys = None if self.keys is None else self.keys + k
        return replace(self, axis=self.axis + k, ndim=self.ndim + k, batch=self.batch + k, keys=keys)

    def permuted(self, perm: list[int]) -> Tokens:
        """After `x.permute(perm)`."""
        keys = None if self.keys is None else perm.index(self.keys)
        return replace(self, axis=perm.index(self.axis), batch=perm.index(self.batch), keys=keys)

    def with_dims(self, inserted: list[int]) -> Tokens:
        """After inserting size-1 dims at `inserted` (positions in the result)."""
        axes = [self.axis, self.batch, self.keys]
        for d in sorted(inserted):
            axes = [a if a is None else a + (d <= a) for a in axes]
        return replace(self, axis=axes[0], batch=axes[1], keys=axes[2], ndim=self.ndim + len(inserted))

    def without_dim(self, d: int) -> Tokens:
        """After removing dim `d` (not one of ours)."""
        axes = [a if a is None else a - (a > d) for a in (self.axis, self.batch, self.keys)]
        return replace(self, axis=axes[0], batch=axes[1], keys=axes[2], ndim=self.ndim - 1)

    @property
    def ours(self) -> set[int]:
        """Axes a rule may not fold, reduce or index: tokens, batch and keys."""
        return {a for a in (self.axis, self.batch, self.keys) if a is not None}


@dataclass(frozen=True)
class Flow:
    """The node runs on merged tokens.

    `tokens` is where they are in its output: per element for tuple-valued nodes, None where an output
    holds no merged rows (text only, or not a tensor). `args`/`kwargs`, when set, replace the node's own
    (token counts patched). `tables` lists unmerged operands with one row per token that are gathered
    at the destinations (RoPE cos/sin): `(operand, Tokens of the operand as broadcast to the output)`.
    """

    tokens: Tokens | tuple[Tokens | None, ...] | None
    args: tuple | None = None
    kwargs: dict | None = None
    tables: tuple[tuple[Node, Tokens], ...] = ()


@dataclass(frozen=True)
class Stop:
    """The node must see unmerged tokens; `why` says what the rules could not follow."""

    why: str


@dataclass
class Context:
    """What a flow rule knows besides its node.

    Args:
        merged: nodes of this region that carry merged tokens, and where.
        n, m: image tokens before and after merging.
        is_table: whether an unmerged operand with one row per token is a per-position table (it does
            not depend on the token stream) rather than unmerged tokens.
    """

    merged: dict[Node, Tokens | tuple]
    n: int
    m: int
    is_table: Callable[[Node], bool]

    def tokens(self, arg) -> Tokens | None:
        t = self.merged.get(arg) if isinstance(arg, Node) else None
        return t if isinstance(t, Tokens) else None


def example(node) -> torch.Tensor | None:
    """The node's example tensor from tracing, if it produced one."""
    v = node.meta.get("example_value") if isinstance(node, Node) else None
    return v if isinstance(v, torch.Tensor) else None


def aligned_size(t: torch.Tensor, axis: int, ndim: int) -> int:
    """Size of `t` at `axis` of an `ndim`-dim broadcast result (1 where `t` has no such dim)."""
    k = axis - (ndim - t.dim())
    return int(t.shape[k]) if k >= 0 else 1
