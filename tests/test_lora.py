"""LoRA (through peft) under `toma_fx.apply`: loaded from a local folder, unfused and fused.

An unfused LoRA projection is `base(x) + up(down(x)) * scale`, one linear map of `x`, so the regions
are the same as without it (`passes/discover.py`) and the merged output is the fused LoRA's.
"""

import pytest
import torch

from tests.compiler.helpers import Recorder, merges_per_graph
from toma_fx import ToMAConfig
from toma_fx.pipelines import apply, build_pipeline, prompt_inputs, remove

peft = pytest.importorskip("peft")

SMALL = ToMAConfig(ratio=0.5, min_tokens=16, tile=(4, 4))
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "proj_mlp", "proj_out", "ff.net.0.proj"]


def generate(pipe, inputs, steps=2) -> torch.Tensor:
    with torch.no_grad():
        out = pipe(
            **inputs, height=128, width=128, num_inference_steps=steps, output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    return out.images


@pytest.fixture(scope="module")
def lora_folder(tmp_path_factory):
    """A random rank-4 LoRA of the tiny Flux transformer, saved as diffusers saves LoRAs."""
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict

    transformer = build_pipeline("flux", seed=0).transformer
    config = peft.LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, init_lora_weights=False)
    torch.manual_seed(1)
    transformer.add_adapter(config, adapter_name="made")
    folder = tmp_path_factory.mktemp("lora")
    layers = get_peft_model_state_dict(transformer, adapter_name="made")
    FluxPipeline.save_lora_weights(folder, transformer_lora_layers=layers)
    return folder


def with_lora(folder):
    pipe = build_pipeline("flux", seed=0)
    pipe.load_lora_weights(folder, adapter_name="style")
    return pipe, prompt_inputs("flux", pipe, true_cfg=False)


def test_unfused_lora_is_merged_like_the_fused_one(lora_folder):
    """Every block graph of the unfused LoRA is rewritten with as many merges as without LoRA, a new
    adapter scale recompiles each once, and the images are the fused LoRA's, merged the same way."""
    plain_rec = Recorder()
    pipe = build_pipeline("flux", seed=0)
    apply(pipe, SMALL, inner=plain_rec)
    generate(pipe, prompt_inputs("flux", pipe, true_cfg=False))

    pipe, inputs = with_lora(lora_folder)
    eager = generate(pipe, inputs)
    rec = Recorder()
    stats = torch._dynamo.utils.counters["stats"]  # process-wide: count the differences
    start = stats["unique_graphs"]
    apply(pipe, SMALL, inner=rec)
    unfused = generate(pipe, inputs)
    blocks = stats["unique_graphs"] - start
    assert merges_per_graph(rec) == merges_per_graph(plain_rec) and all(merges_per_graph(rec))

    # peft keeps the scale as a Python float, which Dynamo guards: a new scale recompiles each block
    # graph once, as under plain torch.compile, and toma-fx compiles nothing more.
    before = stats["unique_graphs"]
    pipe.set_adapters(["style"], [0.5])
    generate(pipe, inputs, steps=1)
    generate(pipe, inputs, steps=1)
    assert stats["unique_graphs"] - before == blocks
    pipe.set_adapters(["style"], [1.0])
    remove(pipe)
    pipe.fuse_lora()
    fused_rec = Recorder()
    torch._dynamo.reset()
    apply(pipe, SMALL, inner=fused_rec)
    fused = generate(pipe, inputs)
    assert merges_per_graph(fused_rec) == merges_per_graph(plain_rec)
    # Fused and unfused sums differ by ~1e-6; the near-hard merge weights (tau 1000 on cosine
    # similarity) scale that up a thousandfold, still well under what merging itself changes.
    torch.testing.assert_close(unfused, fused, atol=1e-2, rtol=0)
    assert (unfused - eager).abs().max() > 3e-2  # merged
