import pytest
import torch


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Every test traces from scratch: no cache entries, recompile counts or dynamic shapes carried over."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
