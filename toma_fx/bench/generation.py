"""One timed generation of a diffusers pipeline: its images, per-step and end-to-end latency, peak
memory, and the denoiser output the scheduler received at every step.

Step latency comes from the device's clock: CUDA events recorded at each step's end callback (no
synchronisation inside the loop), `time.perf_counter` on CPU. The first step's interval also holds the
pipeline's set-up (prompt encoding, latents, timesteps), so it is left out of the per-step times.
Peak memory is the CUDA caching allocator's peak on a GPU and the process's peak resident set on CPU
(Linux `/proc/self/clear_refs`), each reset just before the call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Generation", "generate"]


@dataclass
class Generation:
    images: torch.Tensor
    """`(B, 3, H, W)` float32 in [0, 1], on CPU; a video pipeline's `(B, F, 3, H, W)` frames as
    `(B * F, 3, H, W)`, so every image score reads a clip frame by frame."""
    step_ms: list[float]
    """Latency of steps 1.. (step 0 holds the pipeline's set-up)."""
    total_s: float
    """End to end: prompt handling, every step, VAE decode."""
    outputs: list[torch.Tensor]
    """Per step, the denoiser output after guidance, as the scheduler received it (float32, CPU)."""
    peak_memory_bytes: int | None
    """None where the platform cannot tell."""


def generate(pipe, inputs: dict, *, resolution: tuple[int, int], steps: int, seed: int = 0) -> Generation:
    """Run `pipe(**inputs)` once at `resolution` `(H, W)` for `steps` steps from `seed`."""
    device = pipe._execution_device
    cuda = device.type == "cuda"
    outputs, marks = [], []
    scheduler_step = pipe.scheduler.step

    def keep_output(model_output, *args, **kwargs):
        # A copy on the device: moving it to the CPU here would synchronise every step.
        outputs.append(model_output.detach().to(torch.float32, copy=True))
        return scheduler_step(model_output, *args, **kwargs)

    def mark(pipe, i, t, callback_kwargs):
        marks.append(_mark(cuda))
        return callback_kwargs

    pipe.scheduler.step = keep_output
    memory = _PeakMemory(device)
    h, w = resolution
    start = time.perf_counter()
    first = _mark(cuda)
    try:
        with torch.no_grad():
            output = pipe(
                **inputs, height=h, width=w, num_inference_steps=steps, output_type="pt",
                generator=torch.Generator().manual_seed(seed), callback_on_step_end=mark,
            )  # fmt: skip
    finally:
        del pipe.scheduler.step
    images = output.frames.flatten(0, 1) if hasattr(output, "frames") else output.images
    if cuda:
        torch.cuda.synchronize(device)
    total = time.perf_counter() - start
    times = _intervals_ms([first, *marks], cuda)[1:]
    return Generation(
        images=images.float().cpu(),
        step_ms=times or [total * 1e3],
        total_s=total,
        outputs=[o.cpu() for o in outputs],
        peak_memory_bytes=memory.peak(),
    )


def _mark(cuda: bool):
    if cuda:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def _intervals_ms(marks: list, cuda: bool) -> list[float]:
    if cuda:
        return [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
    return [(b - a) * 1e3 for a, b in zip(marks, marks[1:])]


class _PeakMemory:
    """Peak memory from construction to `peak()`: CUDA allocator peak, or the process's peak RSS."""

    _CLEAR_REFS, _STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.ok = True
        else:
            try:
                self._CLEAR_REFS.write_text("5")  # 5: reset the peak RSS to the current RSS (Linux >= 4.0)
                self.ok = True
            except OSError:
                self.ok = False

    def peak(self) -> int | None:
        if not self.ok:
            return None
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        for line in self._STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
        return None
