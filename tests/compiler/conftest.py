import pytest
import torch

from toma_fx.state import STATE
from toma_fx.steps import reset_steps


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Every test traces from scratch: no cache entries, recompile counts or dynamic shapes carried over,
    and no steps or selections kept from another test."""
    torch._dynamo.reset()
    STATE.clear()
    reset_steps()
    yield
    torch._dynamo.reset()
    STATE.clear()
    reset_steps()
