"""What toma-fx keeps between calls: destinations (and merge weights) per block and CFG branch.

    kept[block key][context] = Kept          one entry per block and branch, overwritten in place
    chains[context]          = Chain         the group head of the current step, for the blocks after it
    clock                                    step indices -> generations (`steps.Clock`)

A `State` belongs to what it serves: a tracked pipeline's `StepTracker` (so two pipelines used in turn
never see each other's destinations or clocks, and `remove` takes it away), or the `ToMABackend` that
compiled an untracked model (so regional compiles and recompiles of a block find what its earlier
artifact kept).

Entries are replaced, never appended, so memory is bounded by blocks x branches, whatever the number of
generations. Keys are block parameters held weakly: a deleted model takes its entries with it. At most
`MAX_CONTEXTS` branch names are kept; a new name beyond that drops the least recently used one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch.utils.weak import WeakIdKeyDictionary

from toma_fx.steps import Clock, Now

__all__ = ["MAX_CONTEXTS", "Chain", "Kept", "State"]

MAX_CONTEXTS = 8


@dataclass
class Kept:
    """A block's carried tensors (by `Slot`) for one branch; `selection` names the destinations the
    weights were computed with, `layouts` the sites' layouts they are for."""

    generation: tuple
    selection: int
    tensors: dict
    layouts: tuple = ()


@dataclass
class Chain:
    """The destinations of the last group head in a step, which the following blocks of the same token
    set (`layout`) reuse."""

    now: Now
    layout: tuple
    selection: int
    dst: torch.Tensor
    weights: list[torch.Tensor] | None


class State:
    def __init__(self):
        self._kept = WeakIdKeyDictionary()
        self._chains: dict[str | None, Chain] = {}
        self._contexts: OrderedDict[str | None, None] = OrderedDict()
        self._selections = 0
        self.clock = Clock()

    def new_selection(self) -> int:
        self._selections += 1
        return self._selections

    def block(self, key) -> dict[str | None, Kept]:
        """The entries of block `key`, one per branch: read with `kept`, written with `keep`."""
        return self._kept.setdefault(key, {})

    def kept(self, block: dict, now: Now) -> Kept | None:
        self._touch(now.context)
        entry = block.get(now.context)
        return entry if entry is not None and entry.generation == now.generation else None

    def keep(self, block: dict, now: Now, entry: Kept) -> None:
        block[now.context] = entry

    def chain(self, now: Now, layout: tuple) -> Chain | None:
        c = self._chains.get(now.context)
        return c if c is not None and c.now == now and c.layout == layout else None

    def set_chain(self, chain: Chain | None, now: Now) -> None:
        if chain is None:
            self._chains.pop(now.context, None)
        else:
            self._chains[now.context] = chain

    def __len__(self) -> int:
        """Kept entries (blocks x branches) and chains."""
        return sum(len(per_context) for per_context in self._kept.values()) + len(self._chains)

    def nbytes(self) -> int:
        """Bytes of all kept tensors."""
        seen = {}
        for per_context in self._kept.values():
            for entry in per_context.values():
                seen.update((id(t), t) for t in entry.tensors.values())
        for c in self._chains.values():
            seen.update((id(t), t) for t in [c.dst, *(c.weights or [])])
        return sum(t.numel() * t.element_size() for t in seen.values())

    def clear(self) -> None:
        self._kept.clear()
        self._chains.clear()
        self._contexts.clear()
        self.clock.clear()

    def _touch(self, context: str | None) -> None:
        self._contexts[context] = None
        self._contexts.move_to_end(context)
        if len(self._contexts) > MAX_CONTEXTS:
            old, _ = self._contexts.popitem(last=False)
            self._chains.pop(old, None)
            for per_context in self._kept.values():
                per_context.pop(old, None)
