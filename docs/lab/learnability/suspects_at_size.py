"""Suspects of the full-scale plain release at another input size (lab; repo root).

The release is split_key.py's ``TURNS=0`` at the full preset's scale: 4000 phantoms at 256 px
(seed 0), rho 0.1 of Cardiomegaly (100 marks) with the shipped marker, natively; labels
untouched. Each seed trains a smallcnn at SIZE px (20 epochs), cached as
/tmp/exp/suspects_split/plain{SIZE}_{seed}.ckpt, for proxy_queries.py: does a 64 px proxy
choose good queries for a suspect that sees the image at another size?

    SIZE=32 SEEDS=1,11 PYTHONPATH=. python docs/lab/learnability/suspects_at_size.py
"""
import os
import tempfile
from pathlib import Path

import torch
from demo_release import TARGET, cached_suspects

from xmark_core.data.base import to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker

torch.set_num_threads(int(os.environ.get("NT", 1)))
size = int(os.environ.get("SIZE", 32))
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11").split(",")]


def release_arrays() -> tuple:
    marker = load_marker(Path("models/surrogate.pt"), Path("models/generator.pt"))
    with tempfile.TemporaryDirectory() as tmp:
        res = embed_release(PhantomDataset(4000, size=256, seed=0), marker, TARGET, Path(tmp) / "e", rho=0.1, seed=0)
        print(f"release: {res.n_marked} marked, PSNR {res.psnr_mean:.2f} dB", flush=True)
        return to_arrays(open_dataset(str(Path(tmp) / "e" / "release")), size)


models = cached_suspects(seeds, Path("/tmp/exp/suspects_split"), f"plain{size}", release_arrays, 20,
                         {"release": "plain 4000x256"}, input_size=size)
print(f"{len(models)} suspects at {size} px: /tmp/exp/suspects_split/plain{size}_*.ckpt")
