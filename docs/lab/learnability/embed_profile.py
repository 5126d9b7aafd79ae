"""Where does embedding time go at 512 px? (lab; repo root)

Times ``embed_release`` on N (default 24) phantom PNGs (16-bit, all of the target class, every
image marked, as the benchmark's speed part) against the I/O floor (decode + encode the same
files): once cold (the first run at this size in the process), twice warm, then profiles one
more pass (cProfile, by own time). GEN: a generator checkpoint (default the shipped one;
generator_width.py's base-8 one is /tmp/exp/gens/base8.pt); WORK: working size, "none" =
native (default 128); SIZE: image side (default 512); SORT / TOP: the profile's order
("tottime", "cumtime") and length (15); KEEP=0: leave glibc's large-block default alone (the
CLI and the benchmark apply ``keep_large_blocks``); BATCH: the marker's batch size (default 8);
RHO: the share of images marked (default 1: all, as the benchmark's embed column; 0.1 is its
release column); SYNC: journal entries per fsync (default the library's); REPS: warm repeats
(default 2); TOP=0: no profile; OPS=1: also torch.profiler's self time per op and input shape
(OPS_TOP rows, default 20). Prints wall and CPU times (CPU is steadier on a busy machine). One
thread.

    PYTHONPATH=. python docs/lab/learnability/embed_profile.py
    GEN=/tmp/exp/gens/base8.pt WORK=none PYTHONPATH=. python docs/lab/learnability/embed_profile.py
    KEEP=0 WORK=none N=8 PYTHONPATH=. python docs/lab/learnability/embed_profile.py
"""
import cProfile
import dataclasses
import os
import pstats
import tempfile
import time
from pathlib import Path

import torch

import xmark_core.embed as embed_mod
from benchmarks.speed import io_floor, write_phantom_folder
from xmark_core.allocator import keep_large_blocks
from xmark_core.data.folder import FolderDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker

torch.set_num_threads(1)
if os.environ.get("KEEP", "1") != "0":
    keep_large_blocks()
work = os.environ.get("WORK", "128")
size = int(os.environ.get("SIZE", 512))
m = load_marker("models/surrogate.pt", os.environ.get("GEN", "models/generator.pt"), device="cpu")
m = dataclasses.replace(m, work_size=None if work == "none" else int(work),
                        batch_size=int(os.environ.get("BATCH", m.batch_size)))
n = int(os.environ.get("N", 24))
rho = float(os.environ.get("RHO", 1.0))
embed_mod.JOURNAL_SYNC_EVERY = int(os.environ.get("SYNC", embed_mod.JOURNAL_SYNC_EVERY))


def timed(fn, *args, **kwargs) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn(*args, **kwargs)``: CPU time is the steadier on a busy machine."""
    w, c = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - w, time.process_time() - c


def line(label: str, io: tuple[float, float], emb: tuple[float, float]) -> str:
    return (f"{size} px, work {work}{label}: I/O {io[0] / n * 1000:.1f} ms/img, embed {emb[0] / n * 1000:.1f} "
            f"ms/img, ratio {emb[0] / io[0]:.2f} (CPU: {io[1] / n * 1000:.1f}, {emb[1] / n * 1000:.1f}, "
            f"{emb[1] / io[1]:.2f})")


with tempfile.TemporaryDirectory() as d:
    tmp = Path(d)
    ds = FolderDataset(write_phantom_folder(tmp / "src", n, size, 5, m.target, m.info["classes"]))
    io = timed(io_floor, list(ds.paths), tmp / "io_cold")
    emb = timed(embed_release, ds, m, m.target, tmp / "warm", rho=rho, seed=0)
    print(line(", cold (first run in this process)", io, emb), flush=True)
    for rep in range(int(os.environ.get("REPS", 2))):
        io = timed(io_floor, list(ds.paths), tmp / f"io{rep}")
        emb = timed(embed_release, ds, m, m.target, tmp / f"out{rep}", rho=rho, seed=0)
        print(line("", io, emb), flush=True)
    if os.environ.get("TOP", "15") != "0":
        prof = cProfile.Profile()
        prof.enable()
        embed_release(ds, m, m.target, tmp / "prof", rho=rho, seed=0)
        prof.disable()
        pstats.Stats(prof).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", 15)))
    if os.environ.get("OPS", "0") != "0":
        # Each torch op's self time by input shape over one more embedding; a convolution's
        # throughput is its multiply-accumulates (N*H*W*Cout*Cin*k*k) over that time.
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as tprof:
            embed_release(ds, m, m.target, tmp / "ops", rho=rho, seed=0)
        print(tprof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                                  row_limit=int(os.environ.get("OPS_TOP", 20))))
