"""Part 7: speed on this machine.

At 256, 512 and 1024 px, on a folder of 16-bit PNG phantoms (all of the target class, so
every image is marked, ``rho = 1``):

* ``eigencam_ips`` -- EigenCAM maps per second (the surrogate at its input size, the map
  upsampled to the image);
* ``generator_ips`` -- perturbations per second given the saliency, with the run's
  ``work_size`` and (up to ``speed_native_max``) at native resolution;
* ``embed_ips`` -- end-to-end :func:`xmark_core.embed.embed_release` (read, saliency,
  generator, write, PSNR/SSIM against the stored values, hashes, manifest) at the run's
  ``--threads`` (the CLI marks at one unless told otherwise);
* ``io_ips`` -- the I/O floor: merely decode and re-encode the same PNGs;
  ``io_floor_ratio`` = embedding time / I/O time;
* ``release_ips`` / ``release_io_ratio`` -- the same embedding with the run's ``rho``: every
  image scored by the surrogate, ``rho`` of them marked (at least one), the rest copied -- what
  an owner waits for (a real release marks ``rho`` of *one* class, fewer still);
* with ``harden`` set: ``embed_hardened_ips`` / ``hardened_io_ratio`` -- the end-to-end
  embedding with the run's hardening after the mark (:mod:`xmark_core.harden`), every image
  marked and hardened;

and verification seconds per 100 queries in-process and over HTTP (the reference server
on 127.0.0.1 in a thread). The load average is recorded: timings on a shared machine are
only comparable with the load they were taken under. An embedding's per-call costs (hashing
both nets' weights for the owner record, the manifest) are spread over ``speed_images``
images: at 512 px they add ~5 ms per image over 4 images and ~1 ms over 16 (``--quick``
times 16).

Decoding and encoding (the floor), embedding and the release are timed ``speed_repeats`` times,
interleaved, and the medians reported: one run of 16 images varies by several per cent.

Timings are of the steady state that a release of thousands of images runs in. Before it
times anything, each size embeds one batch of other images (``marker.batch_size``) and
decodes and encodes them once. A new image size pays once for what is built per shape:
oneDNN's kernels, the resize matrices and first-touched buffers. That first embedding's
seconds are recorded as ``warmup_s``; ``docs/lab/learnability/embed_profile.py`` prints the
same cold run beside the warm ones.
"""

from __future__ import annotations

import csv
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.context import BenchContext
from benchmarks.protocol import XMARK, Method
from benchmarks.settings import SPEED_SIZES
from xmark_core.data.folder import FolderDataset
from xmark_core.data.io import read_image, write_image
from xmark_core.data.phantom import make_phantom
from xmark_core.embed import embed_release
from xmark_core.generator.model import Marker
from xmark_core.harden import HardenedMarker
from xmark_core.saliency import saliency_maps
from xmark_core.verify.protocol import run_verification


def run_embed(*args: Any, **kwargs: Any) -> Any:
    """:func:`~xmark_core.embed.embed_release` at the run's ``--threads`` (as ``xmark embed
    --threads 0``; the CLI's default, one thread, is the run of record's count)."""
    return embed_release(*args, threads=None, **kwargs)


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class ServerThread:
    """The reference suspect server on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: Any):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("the reference server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def write_phantom_folder(root: Path, n: int, size: int, seed: int, target: int, classes: list[str]) -> Path:
    """``n`` target-class phantoms as 16-bit PNGs with ``labels.csv`` and ``classes.txt``."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"img_{i:04d}.png"
        write_image(root / name, make_phantom(seed, i, size, finding=target).image, bit_depth=16)
        rows.append((name, classes[target]))
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)
    (root / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    return root


def io_floor(paths: list[Path], out: Path) -> float:
    """Seconds to decode and re-encode ``paths`` into ``out``: what any embedding must spend."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        loaded = read_image(p)
        write_image(out / f"{i}.png", loaded.image, like=loaded)
    return time.perf_counter() - t0


def size_row(ctx: BenchContext, marker: Marker, size: int, tmp: Path,
             hard: HardenedMarker | None = None) -> dict[str, Any]:
    """Timings at one image size (``speed_images`` images); with ``hard``, its embedding too."""
    s = ctx.s
    n = s.speed_images
    folder = write_phantom_folder(tmp / f"src{size}", n, size, s.seed + 3, s.target, s.classes)
    ds = FolderDataset(folder)
    warm = FolderDataset(write_phantom_folder(tmp / f"warm{size}", marker.batch_size, size, s.seed + 4,
                                              s.target, s.classes))
    io_floor(list(warm.paths), tmp / f"warm_io{size}")
    _, t_warm = _timed(lambda: run_embed(warm, marker, s.target, tmp / f"warm_out{size}", rho=1.0, seed=s.seed))
    if hard is not None:  # its resizes to each clean model's input are built per shape too
        run_embed(warm, hard, s.target, tmp / f"warm_hard{size}", rho=1.0, seed=s.seed)
    images = np.stack([ds[i].image for i in range(n)])[:, None]
    sal, t_cam = _timed(lambda: saliency_maps(marker.surrogate, images, input_size=marker.input_size))
    _, t_gen = _timed(lambda: marker.perturbation(images[:, 0], saliency=sal))
    row: dict[str, Any] = {"n": n, "eigencam_ips": n / t_cam, "generator_ips": n / t_gen,
                           "work_size": marker.work_size, "warmup_s": t_warm}
    if size <= s.speed_native_max and marker.work_size is not None and size > marker.work_size:
        native = Marker(marker.surrogate, marker.generator, marker.input_size, marker.target,
                        marker.cam_method, work_size=None, device=marker.device)
        native.perturbation(images[:1, 0], saliency=sal[:1])  # warm-up at this shape
        _, t_nat = _timed(lambda: native.perturbation(images[:, 0], saliency=sal))
        row["generator_native_ips"] = n / t_nat
    # Interleaved repeats, each into a fresh folder (an existing one would be resumed, not
    # redone); the medians are reported, every time is kept.
    times: dict[str, list[float]] = {"io": [], "embed": [], "release": [], **({"hardened": []} if hard else {})}
    for rep in range(s.speed_repeats):
        times["io"].append(io_floor(list(ds.paths), tmp / f"io{size}_{rep}"))
        t0 = time.perf_counter()
        res = run_embed(ds, marker, s.target, tmp / f"embed{size}_{rep}", rho=1.0, seed=s.seed)
        times["embed"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rel = run_embed(ds, marker, s.target, tmp / f"release{size}_{rep}", rho=s.rho, seed=s.seed)
        times["release"].append(time.perf_counter() - t0)
        if hard is not None:
            t0 = time.perf_counter()
            res_h = run_embed(ds, hard, s.target, tmp / f"hardened{size}_{rep}", rho=1.0, seed=s.seed)
            times["hardened"].append(time.perf_counter() - t0)
    t_io, t_embed, t_rel = (float(np.median(times[k])) for k in ("io", "embed", "release"))
    row.update(io_ips=n / t_io, embed_ips=n / t_embed, io_floor_ratio=t_embed / t_io,
               embed_marked=res.n_marked, embed_psnr=res.psnr_mean,
               release_ips=n / t_rel, release_io_ratio=t_rel / t_io, release_marked=rel.n_marked,
               seconds=times)
    if hard is not None:
        t_hard = float(np.median(times["hardened"]))
        row.update(embed_hardened_ips=n / t_hard, hardened_io_ratio=t_hard / t_io, hardened_psnr=res_h.psnr_mean)
    ctx.log(f"speed {size}px: EigenCAM {row['eigencam_ips']:.1f} img/s, generator {row['generator_ips']:.1f} img/s, "
            f"embed {row['embed_ips']:.2f} img/s, I/O {row['io_ips']:.1f} img/s (ratio {row['io_floor_ratio']:.2f}; "
            f"rho {s.rho:g}: {row['release_io_ratio']:.2f})"
            + (f"; hardened {row['embed_hardened_ips']:.2f} img/s (ratio {row['hardened_io_ratio']:.2f})"
               if hard is not None else ""))
    return row


def verify_timings(ctx: BenchContext, marker: Marker, mal_model: torch.nn.Module) -> dict[str, float]:
    """Seconds per 100 paired queries in-process and over HTTP (marking and choosing the
    queries included: the surrogate's scores, or with proxy queries the owner's proxy's)."""
    from xmark_core.verify.http_client import HttpSuspect
    from xmark_core.verify.server import ClassifierService, create_app

    s = ctx.s
    cfg = ctx.verify_config()
    suspect = ctx.suspect(mal_model)
    proxy = ctx.proxy_suspect(XMARK) if s.queries == "proxy" else None
    _, t_local = _timed(lambda: run_verification(suspect, marker, ctx.pool, ctx.pool_ids, s.target, cfg, proxy=proxy))
    service = ClassifierService(mal_model, s.classes, s.input_size, "benchmark-malicious")
    with ServerThread(create_app(service)) as srv, HttpSuspect(srv.url) as remote:
        _, t_http = _timed(lambda: run_verification(remote, marker, ctx.pool, ctx.pool_ids, s.target, cfg,
                                                    proxy=proxy))
    out = {"verify_s_per_100": t_local * 100 / s.m, "verify_http_s_per_100": t_http * 100 / s.m}
    ctx.log(f"verification: {out['verify_s_per_100']:.2f} s / 100 queries in-process, "
            f"{out['verify_http_s_per_100']:.2f} s over HTTP")
    return out


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, Any]:
    """``{"sizes": {size: row}, "verify_s_per_100", "verify_http_s_per_100", machine info}``."""
    inner = methods[XMARK].marker.inner
    if not isinstance(inner, Marker):
        raise TypeError(f"speed needs X-Mark's Marker, got {type(inner).__name__}")
    hard = methods[XMARK].release_marker  # the marker that wrote the hardened release (None: not hardened)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="xmark-bench-speed-") as tmp:
        sizes = {str(size): size_row(ctx, inner, size, Path(tmp), hard) for size in SPEED_SIZES}
    out: dict[str, Any] = {"sizes": sizes, **verify_timings(ctx, inner, ctx.train(XMARK).model)}
    out.update(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
               loadavg_before=list(load_before), loadavg_after=list(os.getloadavg()))
    return out
