import os

import pytest
import torch

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
