import os
import shutil

# Triton runs kernels on CPU tensors only in its interpreter, and reads the switch when torch's Inductor
# first imports it: so it is set before anything imports torch. (No NVIDIA driver: no GPU to run on.)
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch._inductor.config  # noqa: E402

from toma_fx.backend import toma_backend  # noqa: E402
from toma_fx.steps import reset_steps  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_compile_state():
    """Every test traces from scratch: no cache entries, recompile counts or dynamic shapes carried over,
    and no steps or selections kept from another test (pipelines and configured backends keep their own;
    the default backend is shared)."""
    torch._dynamo.reset()
    toma_backend.state.clear()
    reset_steps()
    yield
    torch._dynamo.reset()
    toma_backend.state.clear()
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
