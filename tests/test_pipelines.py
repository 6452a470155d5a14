"""`toma_fx.apply` / `remove` on diffusers pipelines built from configs: batch 2, CFG, non-square."""

import pytest
import torch

from toma_fx import ToMAConfig
from toma_fx.pipelines import PIPELINES, apply, build_pipeline, load_pipeline, prompt_inputs, remove
from toma_fx.video_pipelines import VIDEO_DEFAULTS

IMAGE_PIPELINES = sorted(set(PIPELINES) - set(VIDEO_DEFAULTS))

SMALL = ToMAConfig(min_tokens=16, select_every=2)


def applied_config(pipe) -> ToMAConfig:
    return pipe.transformer._toma_fx[2]


def generate(pipe, inputs, steps=4, size=(128, 96)) -> torch.Tensor:
    h, w = size
    with torch.no_grad():
        out = pipe(
            **inputs, height=h, width=w, num_inference_steps=steps, guidance_scale=5.0, output_type="pt",
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    return out.images


@pytest.mark.parametrize("name", IMAGE_PIPELINES)
def test_apply_then_remove(name):
    """Two generations in a row (batch 2, CFG, 128x96): no recompile after the first, the same images
    both times, merged (different from the untouched pipeline), and untouched again after `remove`."""
    pipe = build_pipeline(name)
    inputs = prompt_inputs(name, pipe, batch=2)
    untouched = generate(pipe, inputs)
    apply(pipe, SMALL, inner="aot_eager")
    first = generate(pipe, inputs)
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = generate(pipe, inputs)
    assert first.shape == untouched.shape == (2, 3, 128, 96)
    assert torch.equal(first, second)
    assert not torch.allclose(first, untouched, atol=1e-3)
    remove(pipe)
    assert torch.equal(generate(pipe, inputs), untouched)


def test_whole_model_compile():
    pipe = build_pipeline("flux")
    inputs = prompt_inputs("flux", pipe, batch=2)
    untouched = generate(pipe, inputs)
    apply(pipe, SMALL, regional=False, inner="aot_eager")
    merged = generate(pipe, inputs)
    assert merged.shape == untouched.shape and not torch.allclose(merged, untouched, atol=1e-3)


def test_ratio_zero_is_plain_torch_compile():
    """`apply` at ratio 0 hands the compiler the traced graphs as they are (with aot_eager here; the
    Inductor case is `tests/compiler/test_backend.py`)."""
    pipe = build_pipeline("flux")
    inputs = prompt_inputs("flux", pipe, batch=2)
    pipe.transformer.compile_repeated_blocks(backend="aot_eager", fullgraph=True, dynamic=False)
    plain = generate(pipe, inputs, steps=2)
    for block in [*pipe.transformer.transformer_blocks, *pipe.transformer.single_transformer_blocks]:
        block._compiled_call_impl = None
    torch._dynamo.reset()
    apply(pipe, ToMAConfig(ratio=0), inner="aot_eager")
    assert torch.equal(generate(pipe, inputs, steps=2), plain)


def test_from_a_local_folder(tmp_path):
    build_pipeline("pixart").save_pretrained(tmp_path)
    pipe = load_pipeline(tmp_path)
    assert pipe.text_encoder is None
    apply(pipe, SMALL, inner="aot_eager")
    assert generate(pipe, prompt_inputs("pixart", pipe)).shape == (1, 3, 128, 96)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: build_pipeline("unet"),
            r"pipeline must be one of \[.*'flux'.*'sdxl'.*\], got 'unet'",
        ),
        (
            lambda: load_pipeline("/nonexistent"),
            r"model path '/nonexistent' is not a diffusers pipeline folder",
        ),
        (lambda: apply(build_pipeline("sd3"), {"ratio": 0.5}), r"config must be a ToMAConfig, got dict"),
        (lambda: apply(build_pipeline("sd3"), ratio=1.5), r"ratio must be a number in \[0, 1\), got 1.5"),
        (lambda: apply(build_pipeline("sd3"), ratios=0.5), r"unknown ToMAConfig fields \['ratios'\]"),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_fields_as_keywords_are_the_config():
    """`apply(pipe, ratio=...)` as tomesd users write it; with a config, the keywords change its fields."""
    pipe = build_pipeline("sd3")
    apply(pipe, ToMAConfig(tile=(2, 2)), ratio=0.25, inner="aot_eager")
    assert applied_config(pipe) == ToMAConfig(tile=(2, 2), ratio=0.25)
    apply(pipe, ratio=0.75, inner="aot_eager")
    assert applied_config(pipe) == ToMAConfig(ratio=0.75)


@pytest.mark.parametrize("name", ["flux", "sdxl"])
def test_a_transposed_resolution_gets_its_own_grid(name):
    """Regression (issue: grid baked into block graphs): 128x96 then 96x128 have the same token counts,
    so Dynamo reuses the block graphs; the second size must still be tiled on its own grid: the same
    images as a fresh `apply` at 96x128, and a third call of either size compiles nothing."""
    pipe = build_pipeline(name)
    inputs = prompt_inputs(name, pipe, batch=1)
    apply(pipe, SMALL, inner="aot_eager")
    generate(pipe, inputs, steps=2, size=(128, 96))
    transposed = generate(pipe, inputs, steps=2, size=(96, 128))
    fresh = build_pipeline(name)
    apply(fresh, SMALL, inner="aot_eager")
    torch.testing.assert_close(
        transposed, generate(fresh, inputs, steps=2, size=(96, 128)), rtol=0, atol=1e-6
    )
    with torch._dynamo.config.patch(error_on_recompile=True):
        generate(pipe, inputs, steps=2, size=(128, 96))
        assert torch.equal(generate(pipe, inputs, steps=2, size=(96, 128)), transposed)


class _Turns:
    """Makes threads take turns, one denoiser call each: a forward pre-hook waits for the caller's turn,
    the forward hook hands it to the next thread."""

    def __init__(self, n: int):
        import threading

        self.n, self.turn, self.done = n, 0, set()
        self.changed = threading.Condition()

    def hook(self, denoiser, me: int):
        def wait(*_):
            with self.changed:
                self.changed.wait_for(lambda: self.turn == me)

        def pass_on(*_):
            self.give_up(me)

        denoiser.register_forward_pre_hook(wait)
        denoiser.register_forward_hook(pass_on)

    def give_up(self, me: int, finished: bool = False) -> None:
        with self.changed:
            if finished:
                self.done.add(me)
            others = [i for i in range(1, self.n + 1) if (me + i) % self.n not in self.done]
            self.turn = (me + others[0]) % self.n if others else -1
            self.changed.notify_all()


def test_two_pipelines_called_in_turn_match_each_run_alone():
    """What each pipeline keeps (destinations reused every other step, step clocks) is its own: two Flux
    pipelines of different weights, their denoiser calls (cond and uncond) interleaved one by one, give
    the images each gives alone, and `remove` leaves no kept state behind."""
    import threading

    pipes = [apply(build_pipeline("flux", seed=seed), SMALL, inner="aot_eager") for seed in (0, 1)]
    inputs = [prompt_inputs("flux", pipe, seed=seed) for seed, pipe in enumerate(pipes)]
    alone = [generate(pipe, call) for pipe, call in zip(pipes, inputs)]

    turns = _Turns(len(pipes))
    together = {}

    def run(me: int):
        try:
            together[me] = generate(pipes[me], inputs[me])
        finally:
            turns.give_up(me, finished=True)

    for me, pipe in enumerate(pipes):
        turns.hook(pipe.transformer, me)
    threads = [threading.Thread(target=run, args=(me,)) for me in range(len(pipes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not torch.equal(alone[0], alone[1])
    for me, pipe in enumerate(pipes):
        assert torch.equal(together[me], alone[me]), me
        tracker = pipe.transformer._toma_fx[0]
        assert len(tracker.state) > 0
        remove(pipe)
        assert len(tracker.state) == 0
