"""Entry point: ``python -m benchmarks.run [--quick] --out results/``.

Runs the parts in order (protocol -> resolution -> false accusations -> attacks ->
sequential queries -> speed -> StealthMark if ``benchmarks/stealthmark.py`` exists),
prints progress on stderr and the Markdown table on stdout, and writes
``summary.json``, ``run.json``, ``table.md`` and ``details/<part>.json`` under ``--out``.
With ``jobs`` >= 2, StealthMark (which needs nothing of X-Mark's) runs beside the X-Mark
parts in a worker process instead, and the runner waits for it before the speed part, whose
timings need a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import attacks, false_accusations, protocol, queries, report, resolution, speed
from benchmarks.context import BenchContext, Log
from benchmarks.settings import BASELINES, BenchSettings, preset
from xmark_core.allocator import keep_large_blocks

PARTS: dict[str, Callable[..., Any]] = {
    "resolution": resolution.run,
    "false_accusations": false_accusations.run,
    "attacks": attacks.run,
    "queries": queries.run,
    "speed": speed.run,
}
ALL_PARTS = ("protocol", *PARTS, "stealthmark")


def run_stealthmark(settings: BenchSettings, out: Path, log: Log) -> dict[str, Any] | None:
    """Call ``benchmarks.stealthmark.run`` if that module exists (None if it does not).

    The hook passes whichever of ``settings``, ``quick``, ``preset``, ``seed``, ``out`` and
    ``log`` its signature accepts and stores the returned dict under ``"stealthmark"``.
    """
    try:
        mod = importlib.import_module("benchmarks.stealthmark")
    except ModuleNotFoundError as e:
        if e.name == "benchmarks.stealthmark":
            return None
        raise
    fn = getattr(mod, "run", None)
    if fn is None:
        raise AttributeError("benchmarks/stealthmark.py has no run() function")
    offered = {"settings": settings, "quick": settings.quick, "preset": settings.preset,
               "seed": settings.seed, "out": out, "log": log}
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    result = fn(**{k: v for k, v in offered.items() if takes_all or k in params})
    return dict(result) if result is not None else None


def _stealthmark_in_worker(call: Callable[..., dict[str, Any] | None], settings: BenchSettings, out: Path,
                           quiet: bool, t0: float) -> tuple[dict[str, Any] | None, float]:
    """:func:`run_stealthmark` in a worker process and its wall seconds; its progress lines
    tagged and stamped from the parent's start (``perf_counter`` is the system's monotonic
    clock)."""
    log = Log(quiet=quiet)
    log.t0 = t0
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    sm = call(settings, out, lambda msg: log(f"stealthmark: {msg}"))
    return sm, time.perf_counter() - started


class StealthMarkPart:
    """The StealthMark part, run in this process when awaited or, with ``jobs`` >= 2, started
    at once in a worker process beside the X-Mark parts (it shares no model or data with
    them, so only the wall time changes). ``call`` is :func:`run_stealthmark` or a stand-in
    with its signature (tests)."""

    def __init__(self, settings: BenchSettings, out: Path, log: Log,
                 call: Callable[..., dict[str, Any] | None] = run_stealthmark):
        self.settings, self.out, self.log, self.call = settings, out, log, call
        self.pool: ProcessPoolExecutor | None = None
        self.future: Future | None = None
        if settings.jobs >= 2:
            log("StealthMark runs beside the X-Mark parts in a worker process")
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self.future = self.pool.submit(_stealthmark_in_worker, call, settings, out, log.quiet, log.t0)

    def collect(self, seconds: dict[str, float], problems: list[str]) -> dict[str, Any] | None:
        """The part's block (None where there is no ``benchmarks/stealthmark.py``), its own wall
        seconds put in ``seconds`` (beside the X-Mark parts: while they ran too); an exception
        in it becomes ``{"error": ...}`` and an entry in ``problems``, not a lost run."""
        t0 = time.perf_counter()
        try:
            if self.future is not None:
                sm, took = self.future.result()
            else:
                sm = self.call(self.settings, self.out, self.log)
                took = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - another helper's part must not lose ours
            self.log(f"StealthMark benchmark failed: {type(e).__name__}: {e}")
            problems.append(f"stealthmark: {type(e).__name__}: {e}")
            sm, took = {"error": f"{type(e).__name__}: {e}"}, time.perf_counter() - t0
        finally:
            if self.pool is not None:
                self.pool.shutdown()
        if sm is not None:
            seconds["stealthmark"] = took
        return sm


def run_benchmark(settings: BenchSettings, out: str | Path, parts: Sequence[str] = ALL_PARTS,
                  log: Log | None = None, keep_models: str | Path | None = None,
                  reuse_models: str | Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """Run the benchmark and write its files.

    Parameters
    ----------
    settings : a preset from :func:`benchmarks.settings.preset`
    out : results folder
    parts : which parts to run ("protocol" always runs: the others need its models)
    log : progress sink (default: stderr)
    keep_models : folder to write every trained classifier and generator to, as it is
        trained (checkpoints ``load_checkpoint`` / ``load_marker`` read); results do not change
    reuse_models : folder of kept models to load instead of training them where one was made
        from this run's data and recipe (:mod:`benchmarks.reuse`); the same folder as
        ``keep_models`` resumes a stopped run

    Returns
    -------
    (summary, problems) : the summary.json content, and what failed or departs from its
        shape (empty when all is well)
    """
    log = log or Log()
    out = Path(out)
    unknown = set(parts) - set(ALL_PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {ALL_PARTS}")
    torch.set_num_threads(settings.threads)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    commit, dirty = report.git_commit(), report.git_dirty()  # the code as it was loaded
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    problems: list[str] = []
    log(f"benchmark preset {settings.preset}: {settings.n_images} images at {settings.source_size} px, "
        f"suspects at {settings.input_size} px, torch threads {settings.threads}")

    stealthmark = StealthMarkPart(settings, out, log) if "stealthmark" in parts else None
    tp = time.perf_counter()
    ctx = BenchContext.create(settings, log, keep_models, reuse_models)
    seconds["data"] = time.perf_counter() - tp
    tp = time.perf_counter()
    methods, proto = protocol.run(ctx)
    seconds["protocol"] = time.perf_counter() - tp
    results: dict[str, Any] = {"protocol": proto}
    sm: dict[str, Any] | None = None
    for name, fn in PARTS.items():
        if name == "speed" and stealthmark is not None and stealthmark.future is not None:
            sm = stealthmark.collect(seconds, problems)  # the speed part times a quiet machine
            stealthmark = None
        if name in parts:
            tp = time.perf_counter()
            log(f"--- {name}")
            results[name] = fn(ctx, methods)
            seconds[name] = time.perf_counter() - tp
    if stealthmark is not None:
        sm = stealthmark.collect(seconds, problems)

    summary = report.build_summary(commit, settings.quick, results, BASELINES)
    if sm is not None:
        summary["stealthmark"] = sm
        results["stealthmark"] = sm
    total = time.perf_counter() - t0
    summary = report.jsonable(summary)
    problems += report.shape_problems(summary)
    run_info = {
        "commit": commit, "dirty": dirty, "settings": settings.to_dict(), "parts": list(parts),
        "started_utc": started, "seconds_total": total, "seconds": seconds,
        "models": [tr.spec() for tr in ctx.models.values()],
        "reuse_models": None if reuse_models is None else str(reuse_models),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "numpy": np.__version__, "cpu_count": os.cpu_count(),
                    "cpu": _cpu_model(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())},
        "argv": sys.argv, "problems": problems,
    }
    table = report.markdown(summary, results, {**settings.to_dict(), "classes": settings.classes}, total,
                            run_info["machine"])
    report.write_results(out, summary, results, run_info, table)
    log(f"done in {total / 60:.1f} min; results in {out}")
    return summary, problems


def _cpu_model() -> str:
    """The CPU's model name (Linux; ``platform.processor()`` elsewhere): floating-point results
    are reproducible for a seed on one kind of CPU, not across kinds (oneDNN picks kernels by ISA)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    keep_large_blocks()
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="reduced run (~10 min on 2 quiet cores)")
    p.add_argument("--preset", choices=("full", "hardened", "demo", "quick", "micro"), default=None,
                   help="settings preset (default full; hardened = full with X-Mark's strongest opt-in recipe; "
                        "demo = the shipped demo's scale; --quick = --preset quick; micro is for tests)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1)")
    p.add_argument("--jobs", type=int, default=None,
                   help="classifiers trained at once, one process each (default 1; same results for any value)")
    p.add_argument("--seed", type=int, default=None, help="master seed (default 0)")
    p.add_argument("--parts", default=",".join(ALL_PARTS),
                   help=f"comma-separated parts to run (default all: {','.join(ALL_PARTS)})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting (JSON value), e.g. --set epochs=5")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--keep-models", metavar="DIR", default=None,
                   help="also write every trained classifier and generator to DIR (for lab work on the run's models)")
    p.add_argument("--reuse-models", metavar="DIR", default=None,
                   help="load the models a run kept in DIR instead of training them, where made from this run's "
                        "data and recipe; the --keep-models folder of a stopped run resumes it")
    a = p.parse_args(argv)
    name = a.preset or ("quick" if a.quick else "full")
    overrides = _parse_set(a.set)
    if a.threads is not None:
        overrides["threads"] = a.threads
    if a.seed is not None:
        overrides["seed"] = a.seed
    if a.jobs is not None:
        overrides["jobs"] = a.jobs
    settings = preset(name, **overrides)
    parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    summary, problems = run_benchmark(settings, a.out, parts, Log(quiet=a.quiet), a.keep_models, a.reuse_models)
    print(Path(a.out, "table.md").read_text(encoding="utf-8"))
    for msg in problems:
        print(f"problem: {msg}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
