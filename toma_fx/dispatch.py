"""The function the backend returns for a merged graph: each call runs the variant its step asks for.

Per call, in plain Python outside the compiled code (no guard sees the step, so nothing recompiles):

    state, now = the block's owner and step      a tracked pipeline's, else the backend's; the step
                                                 is read once per denoiser call
    schedule.decide(config, now.index)           off | select | reuse
      off                        the unmerged graph
      after a group head         its destinations: `select` flagged to reuse them (or `keep` with
                                 shared/kept weights)
      reuse, kept destinations   the same, from the block's own kept destinations
      otherwise                  `select`, which returns fresh destinations to keep; with step noise
                                 (`select_noise`) its salt inputs hold the step index

Carried tensors are cloned as they leave a compiled call only under CUDA graphs (`clone=True`): their
outputs live in the graph's memory pool, and a later replay would overwrite them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from toma_fx.config import ToMAConfig
from toma_fx.passes.pipeline import Result
from toma_fx.passes.variants import Slot, Variant, block_key, build, looks_like_one_block
from toma_fx.schedule import Decision, decide
from toma_fx.state import Chain, Kept, State
from toma_fx.steps import source_of, tracker_of

__all__ = ["Compiled", "Dispatcher", "compile_merged", "needed_variants"]


def compile_merged(
    result: Result,
    traced,
    example_inputs: list,
    config: ToMAConfig,
    compile_fn: Callable,
    off: Callable,
    *,
    state: State,
    clone: bool,
):
    """The callable for a merged graph: the compiled rewrite alone when every call selects and no other
    block follows it, else a `Dispatcher` over the variants the config can use, each compiled once by
    `compile_fn(gm, example_inputs)`. `off()` gives the compiled traced graph, for unmerged steps;
    `state` is kept for calls of untracked models; `clone` copies carried outputs (CUDA graphs)."""
    chains = config.share_destinations and looks_like_one_block(result)
    if not config.scheduled and not chains:
        return compile_fn(result.gm, example_inputs)
    names = needed_variants(config, chains)
    emit = emits_weights(config, chains)
    variants = {}
    for name in names:
        if name != "off":
            v = build(result, example_inputs, name, emit_weights=emit)
            variants[name] = Compiled(compile_fn(v.gm, v.example_inputs), v)
    lead = min((rw.site for rw in result.rewrites), key=lambda s: s.index)
    group = (lead.index, lead.layout) if chains else None
    layouts = tuple(rw.site.layout for rw in result.rewrites)
    off_fn = off() if "off" in names else None
    return Dispatcher(config, variants, off_fn, block_key(result), group, layouts, state=state, clone=clone)


def needed_variants(config: ToMAConfig, chains: bool) -> list[str]:
    """The variants a dispatcher with `config` can call (`chains`: its graph holds one block). `select`
    serves reuse steps too; `keep` is for steps that take kept merge weights as well."""
    reuses = config.select_every > config.merge_every  # else every merged step selects
    names = ["select"]
    if (reuses and config.reuse_weights) or (chains and config.share_weights):
        names.append("keep")
    if config.warmup_steps or config.merge_every > 1:
        names.append("off")
    return names


def emits_weights(config: ToMAConfig, chains: bool) -> bool:
    """Whether computed merge weights must leave the graph to be kept or passed on."""
    return config.reuse_weights or (chains and config.share_weights)


@dataclass
class Compiled:
    fn: Callable
    variant: Variant
    expected: list[tuple[Slot, torch.Size, torch.dtype]] = field(init=False)

    def __post_init__(self):
        self.expected = [(s, like.shape, like.dtype) for s, like in self.variant.carried_examples.items()]

    def fits(self, given: dict) -> bool:
        """`given` holds a tensor of the traced shape and dtype for every extra input."""
        for slot, shape, dtype in self.expected:
            t = given.get(slot)
            if t is None or t.shape != shape or t.dtype != dtype:
                return False
        return True


class Dispatcher:
    """Calls the compiled variants of one merged graph by the schedule.

    Args:
        config: the schedule and sharing knobs.
        variants: compiled "select", and "keep" when `needed_variants` lists it.
        off: the compiled unmerged graph, when the schedule has unmerged steps.
        key_index: the input that identifies the block (`variants.block_key`), or None.
        group: `(leader site, layout)` of the graph's one selection group when its calls pass
            destinations on to the next block of the same token set within a step (a block graph under
            regional compilation), else None.
        layouts: the layouts of the graph's sites: what is kept is reused only by the same layouts (a
            transposed resolution compiles its own graph, whose destinations have the same shape).
        state: what is kept for calls of models no pipeline tracks (the backend's).
        clone: copy carried outputs as they leave a call (CUDA graphs reuse output memory).
    """

    def __init__(self, config, variants: dict[str, Compiled], off, key_index, group, layouts: tuple, *,
                 state: State, clone: bool):  # fmt: skip
        self.config = config
        self.variants = variants
        self.off = off
        self.key_index = key_index
        self.group = group
        self.layouts = layouts
        self.state = state
        self.clone = clone
        # `select`'s extra inputs are each leader's destinations, reuse flag and (with step noise) salt; its
        # examples (zeros, False) are what a fresh selection passes, with the step as salt.
        self._fresh = variants["select"].variant.carried_examples
        self._reusing = {s: torch.ones_like(t) for s, t in self._fresh.items() if s.part == "reuse"}
        self._reusing.update((s, t) for s, t in self._fresh.items() if s.part == "salt")
        self._salts = [s for s in self._fresh if s.part == "salt"]
        self._salt: tuple[int, torch.Tensor] | None = None  # (step, its salt): made once per step
        # With `select_avoid`, a fresh selection gets the block's last destinations, or these (-1: none yet).
        dst = [s for s in self._fresh if s.part == "dst"] if config.select_avoid != 1.0 else []
        self._no_last = {s: torch.full_like(self._fresh[s], -1) for s in dst}

    def __call__(self, *args):
        key = args[self.key_index] if self.key_index is not None else self
        tracker = tracker_of(key)
        state = tracker.state if tracker is not None else self.state
        now = state.clock.now(key, source_of(tracker))
        decision = decide(self.config, now.index)
        if decision is Decision.OFF:
            return self.off(*args)
        block = state.block(key)
        own = state.kept(block, now)
        own = own if own is not None and own.layouts == self.layouts else None
        chain = state.chain(now, self.group[1]) if self.group is not None else None
        name, given, selection = self._plan(decision, now, own, chain, state)
        head = chain is None
        compiled = self.variants.get(name)
        if compiled is None or not compiled.fits(given):
            name, given, selection, head = "select", self._fresh_inputs(now, own), state.new_selection(), True
            compiled = self.variants["select"]
        variant = compiled.variant
        out = compiled.fn(*args, *[given[s] for s in variant.inputs])
        n = variant.num_outputs
        carried = [t.clone() for t in out[n:]] if self.clone else out[n:]
        tensors = {s: t for s, t in given.items() if s.part in ("dst", "weights")}
        tensors.update(zip(variant.outputs, carried))
        state.keep(block, now, Kept(now.generation, selection, tensors, self.layouts))
        if head:
            state.set_chain(self._chain_from(now, selection, tensors), now)
        return out[:n]

    def _plan(
        self, decision, now, own: Kept | None, chain: Chain | None, state: State
    ) -> tuple[str, dict, int]:
        """(variant, carried inputs, selection id) for a call."""
        cfg = self.config
        if chain is not None:  # a block after the group head of this step
            dst = {Slot(self.group[0], "dst"): chain.dst}
            if cfg.share_weights and chain.weights is not None:
                weights = {Slot(self.group[0], "weights", j): w for j, w in enumerate(chain.weights)}
                return "keep", {**dst, **weights}, chain.selection
            if cfg.reuse_weights and own is not None and own.selection == chain.selection:
                weights = {s: t for s, t in own.tensors.items() if s.part == "weights"}
                return "keep", {**dst, **weights}, chain.selection
            return "select", {**dst, **self._reusing}, chain.selection
        if decision is Decision.REUSE and own is not None:
            if cfg.reuse_weights:
                return "keep", own.tensors, own.selection
            dst = {s: t for s, t in own.tensors.items() if s.part == "dst"}
            return "select", {**dst, **self._reusing}, own.selection
        return "select", self._fresh_inputs(now, own), state.new_selection()

    def _fresh_inputs(self, now, own: Kept | None) -> dict:
        """`select`'s inputs for a fresh selection at step `now`: the examples, with the step as salt and,
        with `select_avoid`, the block's last destinations (`own`'s) as the ones to avoid."""
        given = self._fresh
        if self._salts:
            if self._salt is None or self._salt[0] != now.index:
                device = self._fresh[self._salts[0]].device
                self._salt = (now.index, torch.tensor(now.index, dtype=torch.int64, device=device))
            given = {**given, **dict.fromkeys(self._salts, self._salt[1])}
        if self._no_last:
            kept = own.tensors if own is not None else {}
            # only last destinations of this graph's shapes (another batch size compiles its own graph)
            last = {s: t for s, t in kept.items() if s in self._no_last and t.shape == self._no_last[s].shape}
            given = {**given, **self._no_last, **last}
        return given

    def _chain_from(self, now, selection: int, tensors: dict) -> Chain | None:
        if self.group is None:
            return None  # a graph of several groups ends any chain
        leader, layout = self.group
        slots = sorted((s for s in tensors if s.site == leader and s.part == "weights"), key=lambda s: s.item)
        weights = [tensors[s] for s in slots]
        return Chain(now, layout, selection, tensors[Slot(leader, "dst")], weights or None)
