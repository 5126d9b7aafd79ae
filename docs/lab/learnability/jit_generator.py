"""Is a frozen TorchScript trace of the generator faster than eager? (lab; repo root; ~1 min)

Times the shipped generator's residual (the U-Net: all of its convolutions) on a batch of 8 at
128 px, one thread, eager against ``torch.jit.freeze(torch.jit.trace(...))``, interleaved REPS
times (median of 10 calls each), and checks the outputs agree. KEEP=1 applies
``xmark_core.allocator.keep_large_blocks`` first, as the CLI and the benchmark do.

    KEEP=0 PYTHONPATH=. python docs/lab/learnability/jit_generator.py
    KEEP=1 PYTHONPATH=. python docs/lab/learnability/jit_generator.py
"""
import os
import time
import warnings

import numpy as np
import torch

from xmark_core.allocator import keep_large_blocks
from xmark_core.generator.model import load_marker

torch.set_num_threads(1)
if os.environ.get("KEEP", "1") != "0":
    keep_large_blocks()
gen = load_marker("models/surrogate.pt", "models/generator.pt", device="cpu").generator.eval()
x, s = torch.rand(8, 1, 128, 128), torch.rand(8, 1, 128, 128)
c = gen.carrier(x)


class Residual(torch.nn.Module):
    def __init__(self, g: torch.nn.Module) -> None:
        super().__init__()
        self.g = g

    def forward(self, x: torch.Tensor, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.g.residual(x, s, c)


def ms_per_image(fn) -> tuple[torch.Tensor, float]:
    for _ in range(3):
        out = fn()
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times)) * 1000 / len(x)


with torch.no_grad(), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # jit's deprecation and tracer warnings
    frozen = torch.jit.freeze(torch.jit.trace(Residual(gen).eval(), (x, s, c)))
    for _ in range(int(os.environ.get("REPS", 3))):
        a, t_eager = ms_per_image(lambda: gen.residual(x, s, c))
        b, t_frozen = ms_per_image(lambda: frozen(x, s, c))
        print(f"KEEP={os.environ.get('KEEP', '1')}: eager {t_eager:.2f} ms/img, frozen {t_frozen:.2f} ms/img, "
              f"max |diff| {float((a - b).abs().max()):.1e}", flush=True)
