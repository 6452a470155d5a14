"""`toma-fx bench dispatch` at tiny size: the per-block-call cost of toma-fx's Python, on a stub compiler."""

from toma_fx.bench import dispatch


def test_block_calls_are_timed_plain_and_merged():
    r = dispatch.run("flux", steps=2, repeats=1)
    assert r["blocks_per_denoiser_call"] == 57  # Flux-dev's 19 double and 38 single blocks
    assert r["block_calls"] == 57 * 2 * 2  # two steps, cond and uncond
    assert r["plain_us"] > 0 and r["toma_us"] > 0
    assert abs(r["toma_extra_us"] - (r["toma_us"] - r["plain_us"])) <= 0.15  # each figure is rounded
