"""Compiling a module's own forward, beneath the diffusers hooks wrapped around it.

diffusers' step caches (`enable_cache(FirstBlockCacheConfig(...))`, TaylorSeer, MagCache) wrap block
forwards in hooks that decide in Python, under `torch.compiler.disable`, whether a block runs at all.
`nn.Module.compile` compiles `_call_impl`, which calls the hooked `forward`, so Dynamo meets the hook and
`fullgraph=True` fails. Here the function compiled is the one the hooks call:

    block.forward                         the hook chain (HookRegistry), or the class's forward
      hook.new_forward / pre, post        run eagerly
        fn_refs[0].original_forward       <- compiled here when hooks are there

and when no hook is there yet, `block.forward` itself is replaced, so hooks registered later wrap the
compiled forward. Either order gives the same calls; `undo` restores the forward wherever it now sits.

Hooks on modules inside a compiled one (Pyramid Attention Broadcast, FasterCache and TaylorSeer hook
attention modules inside blocks) cannot sit in its graph either. Such a module is compiled the same way
on its own and called opaquely (`torch.compiler.disable` around its hook chain) from the graph of the
module around it, which breaks there: the graph breaks are the hooks', and plain `torch.compile` gets
the same ones through `compile_beneath_hooks`. A cache enabled after the compile
(`denoiser.enable_cache`) is seen at the next denoiser call, and the plan is made again (`Replan`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.hooks.hooks import ModelHook

__all__ = ["CompiledForward", "Replan", "compile_beneath_hooks", "compile_forward", "outermost_hooked"]


class CompiledForward:
    """`torch.compile(original, **kwargs)`, remembering `original` to put it back."""

    def __init__(self, original: Callable, **kwargs):
        self.original = original
        self.compiled = torch.compile(original, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.compiled(*args, **kwargs)


def _slots(module: torch.nn.Module) -> list[tuple[object, str]]:
    """Where `module`'s forward can sit: its instance attribute, and each hook's references."""
    registry = getattr(module, "_diffusers_hook", None)
    refs = list(getattr(registry, "_fn_refs", ()))
    return [(module, "forward")] + [(r, a) for r in refs for a in ("forward", "original_forward")]


def compile_forward(module: torch.nn.Module, **kwargs) -> Callable[[], None]:
    """Compile what `module`'s hooks call (its own forward) with `torch.compile(**kwargs)`, in place;
    returns the function that undoes it."""
    refs = getattr(getattr(module, "_diffusers_hook", None), "_fn_refs", None)
    if refs:
        holder = refs[0]  # the hook registered first wraps the module's own forward
        attr = "original_forward" if holder.original_forward is not None else "forward"
    else:
        holder, attr = module, "forward"
    setattr(holder, attr, CompiledForward(getattr(holder, attr), **kwargs))

    def undo():
        for obj, name in _slots(module):
            value = obj.__dict__.get(name)
            if isinstance(value, CompiledForward):
                if obj is module and _is_class_forward(module, value.original):
                    del module.forward  # the class's forward again
                else:
                    setattr(obj, name, value.original)

    return undo


def _is_class_forward(module: torch.nn.Module, fn) -> bool:
    return getattr(fn, "__self__", None) is module and getattr(fn, "__func__", None) is type(module).forward


def outermost_hooked(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """`(name, submodule)` of the submodules inside `module` (not itself) that carry diffusers hooks,
    leaving out those inside another such submodule."""
    found = []
    for name, sub in module.named_modules():
        if name and _hooked(sub) and not any(name.startswith(f"{outer}.") for outer, _ in found):
            found.append((name, sub))
    return found


def _hooked(module: torch.nn.Module) -> bool:
    return bool(getattr(getattr(module, "_diffusers_hook", None), "hooks", None))


class _Opaque:
    """A hook chain run outside the graph of the module that calls it."""

    def __init__(self, chain: Callable):
        self.chain = chain
        self.run = torch.compiler.disable(chain)

    def __call__(self, *args, **kwargs):
        return self.run(*args, **kwargs)


def compile_beneath_hooks(module: torch.nn.Module, *, fullgraph: bool, **kwargs) -> Callable[[], None]:
    """Compile `module`'s own forward (`compile_forward`); each hooked submodule inside it is compiled
    the same way and called opaquely, so `module`'s graph breaks around it (`fullgraph` then holds for
    the hooked submodules' graphs only). Returns the function that undoes it."""
    undos = []
    hooked = outermost_hooked(module)
    for _, sub in hooked:
        undos.append(compile_beneath_hooks(sub, fullgraph=fullgraph, **kwargs))
        sub.forward = _Opaque(sub.forward)
        undos.append(lambda sub=sub: _unwrap_opaque(sub))
    undos.append(compile_forward(module, fullgraph=fullgraph and not hooked, **kwargs))

    def undo():
        for u in reversed(undos):
            u()

    return undo


def _unwrap_opaque(module: torch.nn.Module) -> None:
    value = module.__dict__.get("forward")
    if isinstance(value, _Opaque):
        module.forward = value.chain


class Replan(ModelHook):
    """On a denoiser: before each call, compiles anew (`plan()`, after undoing the last) when the
    denoiser's cache (`enable_cache` / `disable_cache`) changed since the last plan."""

    def __init__(self, plan: Callable[[], Callable[[], None]]):
        super().__init__()
        self._plan = plan
        self._cache = None
        self.undo = lambda: None

    def initialize_hook(self, module):
        self._cache = getattr(module, "_cache_config", None)
        self.undo = self._plan()
        return module

    def pre_forward(self, module, *args, **kwargs):
        cache = getattr(module, "_cache_config", None)
        if cache is not self._cache:
            self.undo()
            self._cache, self.undo = cache, self._plan()
        return args, kwargs
