"""ToDo, the key/value downsampling baseline: in eager mode and inside a compiled graph."""

import pytest
import torch

from toma_fx.architectures import build, example_inputs
from toma_fx.bench.todo import KVDownsampling, ToDoBackend, downsample


def test_todo_downsamples_image_keys_only_where_queries_are_the_grid():
    q = torch.randn(1, 2, 4 + 16, 8)
    kv = torch.randn(1, 2, 4 + 16, 8)
    mode = KVDownsampling((4, 4), (2, 2), text=4)
    with mode:
        torch.nn.functional.scaled_dot_product_attention(q, kv, kv)
        torch.nn.functional.scaled_dot_product_attention(q, kv[:, :, :4], kv[:, :, :4])  # cross-attention
    assert mode.applied == 1
    small = downsample(kv, (4, 4), (2, 2), 4)
    assert small.shape == (1, 2, 4 + 4, 8) and torch.equal(small[:, :, :4], kv[:, :, :4])
    image = kv[:, :, 4:].reshape(1, 2, 4, 4, 8)
    # nearest-exact keeps the token nearest each cell's centre: rows and columns 1 and 3
    torch.testing.assert_close(small[:, :, 4:], image[:, :, 1::2, 1::2].reshape(1, 2, 4, 8))
    any_text = KVDownsampling((4, 4), (2, 2), text=None)  # whatever fewer rows precede the image
    with any_text:
        for rows in (16, 4 + 16, 16 + 16, 8):  # image only, a prompt before it; too many, too few rows
            x = torch.randn(1, 2, rows, 8)
            torch.nn.functional.scaled_dot_product_attention(x, x, x)
    assert any_text.applied == 2
    for make in (KVDownsampling, ToDoBackend):
        with pytest.raises(ValueError, match="must divide the grid"):
            make((5, 4), (2, 2))


@pytest.mark.parametrize("inner", ["aot_eager", "inductor"])
def test_the_compiled_todo_matches_the_eager_one(inner):
    """`ToDoBackend` rewrites the joint attention of every Flux block, and computes what
    `KVDownsampling` does in eager mode."""
    model = build("flux", "tiny")
    inputs = example_inputs("flux", model, batch=1, latent=(16, 16))
    text = inputs["encoder_hidden_states"].shape[1]
    blocks = len(model.transformer_blocks) + len(model.single_transformer_blocks)
    with torch.no_grad():
        mode = KVDownsampling((8, 8), (2, 1), text=text)
        with mode:
            expected = model(**inputs)[0]
        backend = ToDoBackend((8, 8), (2, 1), text=text, inner=inner)
        torch._dynamo.reset()
        got = torch.compile(model, backend=backend, fullgraph=True)(**inputs)[0]
        plain = model(**inputs)[0]
    assert mode.applied == backend.applied == blocks
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)  # it did downsample
