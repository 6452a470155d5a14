import os

import pytest
import torch
import torch._inductor.config

from toma_fx.state import STATE
from toma_fx.steps import reset_steps

# Triton runs kernels on CPU tensors only in its interpreter, which is chosen when a kernel is defined,
# so it has to be set before any test imports one.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def fresh_compile_state():
    """Every test traces from scratch: no cache entries, recompile counts or dynamic shapes carried over,
    and no steps or selections kept from another test."""
    torch._dynamo.reset()
    STATE.clear()
    reset_steps()
    yield
    torch._dynamo.reset()
    STATE.clear()
    reset_steps()


@pytest.fixture(autouse=True)
def compiler_config_untouched():
    """No test (and nothing toma-fx does) leaves Dynamo's or Inductor's config changed, or an option
    gone: set options with `torch._dynamo.config.patch(...)`, never by assignment or monkeypatch."""
    before = {m: m.get_config_copy() for m in (torch._dynamo.config, torch._inductor.config)}
    yield
    for module, options in before.items():
        now = module.get_config_copy()
        changed = sorted(
            k for k in options.keys() | now.keys() if options.get(k, "<gone>") != now.get(k, "<gone>")
        )
        assert not changed, f"{module.__name__} changed by the test: {changed}"
