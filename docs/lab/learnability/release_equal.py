"""Is the benchmark's release of the shipped marker the demo's release? (lab; repo root)

Builds the release both ways with the shipped marker marking at native resolution: the
benchmark's (BenchContext, demo preset, work_size None) and the demo's (`embed_release` to
PNG and back, as `make models`), and compares the marked images and the training arrays.

    PYTHONPATH=. python docs/lab/learnability/release_equal.py
"""
import tempfile
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
from benchmarks.context import CLEAN, BenchContext, Log
from benchmarks.settings import preset
from xmark_core.data.open import open_dataset
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker
ROOT = Path(__file__).resolve().parents[3]
marker = load_marker(ROOT / "models/surrogate.pt", ROOT / "models/generator.pt")
s = preset("demo", work_size=None)
ctx = BenchContext.create(s, Log(quiet=True))
ctx.set_selection(marker.surrogate)
rel = ctx.add_release("xmark", marker)
Xb = ctx.train_images("xmark", 64)
Xc = ctx.train_images(CLEAN, 64)
ds = PhantomDataset(2400, size=128, seed=0)
X0, y0 = to_arrays(ds, 64)
with tempfile.TemporaryDirectory() as tmp:
    emb = embed_release(ds, marker, 1, Path(tmp) / "embed", rho=0.1, seed=0)
    rds = open_dataset(str(Path(tmp) / "embed" / "release"))
    Xr, yr = to_arrays(rds, 64)
    ids = [rds[i].image_id for i in range(3)]
print("ids", ids, "labels equal", (yr == ctx.y).all(), (y0 == ctx.y).all())
print("clean diff", np.abs(X0 - Xc).max())
dr = np.abs(Xr - X0).reshape(len(X0), -1).max(1)
mi = np.flatnonzero(dr > 1e-4)
print("demo marked", len(mi), "bench marked", len(rel.index), "same", set(mi) == set(rel.index.tolist()), len(set(mi) & set(rel.index.tolist())))
print("release diff", np.abs(Xr - Xb).max(), "mark energy demo", np.abs(Xr - X0)[mi].mean(), "bench", np.abs(Xb - Xc)[rel.index].mean())
