"""Part 1 and 2: the protocol for X-Mark and the baselines on the same data and suspects.

The owner trains a surrogate on the clean dataset, trains the generator against it, and
releases the dataset with ``rho`` of the target-class images marked (clean-label). Every
baseline marks the *same* images at X-Mark's PSNR. For each method a suspect is trained
on its release (Malicious) and queried with the method's marker; the clean-trained model
with the same seed gives the clean accuracy the drop is measured against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import baselines as B
from benchmarks.context import (
    CLEAN,
    BenchContext,
    MemoMarker,
    Trained,
    brief,
    model_file,
    release_threads,
    summarize,
)
from benchmarks.reuse import digest, fingerprint
from benchmarks.settings import BASELINES
from xmark_core.data.base import stratified_split
from xmark_core.embed import weights_sha256
from xmark_core.generator.model import Marker
from xmark_core.generator.train import (
    GeneratorTrainConfig,
    GeneratorTrainResult,
    compute_saliency,
    save_generator,
    train_generator,
)
from xmark_core.harden import HardenConfig, HardenedMarker, HardenModel
from xmark_core.hashing import sha256_file
from xmark_core.verify.protocol import MarkerLike

XMARK = "xmark"


@dataclass
class Method:
    """A watermarking method as the other parts use it.

    Attributes
    ----------
    name : "xmark" or a baseline name
    marker : the owner's marker (memoised: query images are marked once per run)
    release : its clean-label release
    independent : ``independent(i)`` builds the marker of the i-th independent key (Ind-T)
    info : how it was made (strength, training history, ...)
    release_marker : what wrote the release when that is not ``marker`` (X-Mark's hardened
        marker, with ``harden``); None otherwise
    """

    name: str
    marker: MemoMarker
    release: Any
    independent: Callable[[int], MarkerLike]
    info: dict[str, Any] = field(default_factory=dict)
    prefetch: Callable[[Sequence[int]], None] = lambda indices: None
    """Prepare ``independent(i)`` for these i at once (X-Mark: trains their generators in
    worker processes with ``jobs`` > 1); optional, ``independent`` works without it."""
    release_marker: MarkerLike | None = None


def generator_config(ctx: BenchContext, key: int) -> GeneratorTrainConfig:
    """The generator module's default recipe, with the run's overrides and this key/seed."""
    return GeneratorTrainConfig(**{**ctx.s.gen_overrides, "key": int(key), "seed": int(key)})


def generator_data(ctx: BenchContext, surrogate: Trained) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified training subset (at the surrogate's input size) and its saliency maps,
    computed once and shared by every key."""
    if "generator_data" not in ctx.cache:
        s = ctx.s
        frac = min(1.0, s.gen_images / len(ctx.y))
        idx = stratified_split(ctx.y, [frac, 1.0 - frac], s.seed)[0] if frac < 1 else np.arange(len(ctx.y))
        X = ctx.train_images(CLEAN, s.input_size)[idx]
        sal = compute_saliency(surrogate.model, X, s.input_size)
        ctx.cache["generator_data"] = (X, ctx.y[idx], sal)
    return ctx.cache["generator_data"]


def _fit_generator(surrogate: Any, X: np.ndarray, y: np.ndarray, target: int, cfg: GeneratorTrainConfig,
                   sal: np.ndarray, input_size: int,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Any, list[dict[str, float]]]:
    """One generator of :func:`train_xmark` or, in a worker, of :func:`prefetch_generators`."""
    res = train_generator(surrogate, X, y, target, cfg, saliency=sal, input_size=input_size, progress=progress)
    return res.generator, res.history


def _log_generator(ctx: BenchContext, key: int, history: list[dict[str, float]]) -> None:
    last = history[-1] if history else {}
    ctx.log(f"generator key {key}: surrogate ASR {last.get('asr', float('nan')):.3f}, "
            f"training PSNR {last.get('psnr', float('nan')):.2f} dB")


def generator_fingerprint(ctx: BenchContext, surrogate: Trained, key: int) -> str:
    """What ``key``'s generator is recognised by in a kept folder (:mod:`benchmarks.reuse`):
    its recipe, its training data and saliency maps, and the surrogate's weights."""
    if "generator_data_digest" not in ctx.cache:
        ctx.cache["generator_data_digest"] = (digest(generator_data(ctx, surrogate)), weights_sha256(surrogate.model))
    recipe = {"kind": "generator", "train": dataclasses.asdict(generator_config(ctx, key)),
              "target": ctx.s.target, "input_size": ctx.s.input_size}
    return fingerprint(recipe, *ctx.cache["generator_data_digest"])


def _keep_generator(ctx: BenchContext, surrogate: Trained, key: int, source: Path | None = None) -> None:
    """``generator_key{key}.pt`` in ``--keep-models``' folder (``load_marker`` reads it with
    the surrogate's file, ``clean_{arch}_{size}px_seed{seed}.pt``); ``source``: see
    :meth:`BenchContext.keep_model`."""
    def write(path: Path) -> None:  # paired with the kept surrogate, which load_marker then checks
        gen, history = ctx.cache["generators"][key]
        res = GeneratorTrainResult(gen, history, generator_config(ctx, key), ctx.s.target, ctx.s.input_size,
                                   extra={"fingerprint": generator_fingerprint(ctx, surrogate, key),
                                          "threads": ctx.s.threads})
        sur = path.parent / model_file((CLEAN, ctx.s.arch, ctx.s.input_size, ctx.s.seed))
        save_generator(path, res, surrogate_sha256=sha256_file(sur) if sur.exists() else None, classes=ctx.s.classes)

    ctx.keep_model(f"generator_key{key}.pt", write, source)


def _reuse_generator(ctx: BenchContext, surrogate: Trained, key: int) -> bool:
    """With ``--reuse-models``: put ``key``'s kept generator into the run's cache when its
    fingerprint is this run's (:func:`generator_fingerprint`); False when there is none."""
    lm = ctx.load_kept(f"generator_key{key}.pt", lambda: generator_fingerprint(ctx, surrogate, key))
    if lm is None:
        return False
    ctx.cache.setdefault("generators", {})[key] = (lm.model, list((lm.extra or {}).get("history") or []))
    ctx.log(f"reuse {lm.path} as generator key {key}")
    _keep_generator(ctx, surrogate, key, Path(str(lm.path)))
    return True


def prefetch_generators(ctx: BenchContext, surrogate: Trained, keys: Sequence[int]) -> None:
    """Train the generators of ``keys`` that :func:`train_xmark` has not, ``jobs`` at a time
    in worker processes (the same weights: generator training is reproducible for a seed);
    nothing with ``jobs`` 1."""
    s = ctx.s
    done = ctx.cache.setdefault("generators", {})
    todo = [k for k in dict.fromkeys(keys) if k not in done and not _reuse_generator(ctx, surrogate, k)]
    if min(s.jobs, len(todo)) < 2:
        return
    X, y, sal = generator_data(ctx, surrogate)
    ctx.log(f"train generators of keys {todo} in {min(s.jobs, len(todo))} processes")
    calls = [(_fit_generator, (surrogate.model, X, y, s.target, generator_config(ctx, k), sal, s.input_size))
             for k in todo]
    for i, (gen, history) in ctx.in_processes(calls):
        done[todo[i]] = (gen, history)
        _log_generator(ctx, todo[i], history)
        _keep_generator(ctx, surrogate, todo[i])


def train_xmark(ctx: BenchContext, surrogate: Trained, key: int) -> tuple[Marker, list[dict[str, float]]]:
    """Train an X-Mark generator for ``key`` (or take :func:`prefetch_generators`') and wrap
    it as a :class:`Marker`."""
    s = ctx.s
    cfg = generator_config(ctx, key)
    done = ctx.cache.setdefault("generators", {})
    if key not in done and not _reuse_generator(ctx, surrogate, key):
        X, y, sal = generator_data(ctx, surrogate)
        ctx.log(f"train generator key {key} on {len(X)} images at {s.input_size}px ({cfg.epochs} epochs)")
        done[key] = _fit_generator(surrogate.model, X, y, s.target, cfg, sal, s.input_size,
                                   ctx.log.progress(f"generator key {key}"))
        _log_generator(ctx, key, done[key][1])
        _keep_generator(ctx, surrogate, key)
    generator, history = done[key]
    marker = Marker(surrogate=surrogate.model, generator=generator, input_size=s.input_size,
                    target=s.target, cam_method=cfg.cam_method, work_size=s.work_size)
    return marker, history


def hardened(ctx: BenchContext, marker: Marker) -> HardenedMarker:
    """``marker`` hardening what it marks against the owner's clean models ``s.harden``."""
    s = ctx.s
    models = [ctx.train(CLEAN, arch=arch, seed=s.seed) for arch in s.harden]
    return HardenedMarker(marker, [HardenModel(tr.model, tr.input_size, f"{tr.arch} seed {tr.seed}")
                                   for tr in models],
                          HardenConfig(psnr_floor=s.harden_psnr, ssim_floor=s.harden_ssim,
                                       weighting=s.harden_weighting, steps=s.harden_steps))


def xmark_method(ctx: BenchContext, surrogate: Trained) -> Method:
    marker, history = train_xmark(ctx, surrogate, ctx.s.owner_key)
    # The release may be hardened; the owner's queries carry the mark alone.
    release_marker = hardened(ctx, marker) if ctx.s.harden else marker
    release = ctx.add_release(XMARK, release_marker)
    if ctx.s.harden:
        ctx.log(f"hardening changed {release_marker.n_hardened} of {release_marker.n_marked} marked images")

    def independent(i: int) -> MarkerLike:
        return train_xmark(ctx, surrogate, ctx.s.key(i))[0]

    def prefetch(indices: Sequence[int]) -> None:
        prefetch_generators(ctx, surrogate, [ctx.s.key(i) for i in indices])

    return Method(XMARK, MemoMarker(marker), release, independent, {
        "generator_config": dataclasses.asdict(generator_config(ctx, ctx.s.owner_key)),
        "generator_history": history, "work_size": ctx.s.work_size,
        "harden": list(ctx.s.harden),
        "n_hardened": getattr(release_marker, "n_hardened", 0),  # the others had no room under the floors
    }, prefetch, release_marker if ctx.s.harden else None)


def baseline_marker(ctx: BenchContext, name: str, key: int, surrogate: Trained, target_psnr: float) -> B.TriggerMarker:
    """Baseline ``name`` with ``key``, scaled to ``target_psnr`` on the release's marked images."""
    s = ctx.s
    if name == "badnets":
        trig: Any = B.badnets_trigger(s.source_size, key)
    elif name == "blended":
        trig = B.blended_trigger(s.source_size, key)
    elif name == "static":
        X, y, _ = generator_data(ctx, surrogate)
        with release_threads():  # the trigger is part of the release
            trig = B.static_trigger(surrogate.model, X, y, s.target, key, steps=s.static_steps, eps=s.static_eps)
    else:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    return B.TriggerMarker(name, trig).scaled_to(ctx.X[ctx.marked_index()], target_psnr)


def baseline_method(ctx: BenchContext, name: str, surrogate: Trained, target_psnr: float) -> Method:
    marker = baseline_marker(ctx, name, ctx.s.seed, surrogate, target_psnr)
    release = ctx.add_release(name, marker)

    def independent(i: int) -> MarkerLike:
        return baseline_marker(ctx, name, ctx.s.key(i), surrogate, target_psnr)

    return Method(name, MemoMarker(marker), release, independent,
                  {"strength": marker.strength, "target_psnr": target_psnr})


def run(ctx: BenchContext) -> tuple[dict[str, Method], dict[str, Any]]:
    """Surrogate, generator, releases, Malicious suspects; returns the methods and results.

    Returns
    -------
    (methods, results) : ``results[name]`` has ``malicious`` (wsr, delta_p, p, ...),
        ``ba_clean``, ``ba``, ``ba_drop``, ``psnr``, ``ssim``, the suspect's spec and info.
    """
    s = ctx.s
    # surrogate, clean reference, the owner's clean models for hardening
    ctx.train_many([(CLEAN, None, None, s.seed), (CLEAN, None, None, None)]
                   + [(CLEAN, None, arch, s.seed) for arch in s.harden])
    surrogate = ctx.train(CLEAN, seed=s.seed)
    ctx.set_selection(surrogate.model)
    methods = {XMARK: xmark_method(ctx, surrogate)}
    target_psnr = ctx.releases[XMARK].psnr if s.baseline_psnr is None else float(s.baseline_psnr)
    if not np.isfinite(target_psnr):
        ctx.log(f"X-Mark's PSNR is {target_psnr}; baselines are scaled to {s.psnr_fallback} dB instead")
        target_psnr = s.psnr_fallback
    for name in s.baselines:
        methods[name] = baseline_method(ctx, name, surrogate, target_psnr)

    ctx.owners.update({name: meth.marker for name, meth in methods.items()})
    uses_proxy = "proxy" in s.query_choices
    proxies = [(name, None, None, seed) for name in methods for seed in s.proxy_seeds] if uses_proxy else []
    seeds = [s.suspect_seed(i) for i in range(s.malicious_seeds)]
    ctx.train_many([(name, None, None, seed) for name in methods for seed in seeds] + proxies
                   + [(CLEAN, None, None, seed) for seed in seeds])  # a clean model per seed: paired BA drops
    references = [ctx.train(CLEAN, seed=seed) for seed in seeds]
    reference = references[0]
    results: dict[str, Any] = {"surrogate": surrogate.spec(), "clean_reference": reference.spec(),
                               "clean_references": [r.spec() for r in references]}
    for name, meth in methods.items():
        suspects = [ctx.train(name, seed=seed) for seed in seeds]
        mal = suspects[0]
        r = brief(ctx.verify(ctx.suspect(mal), meth.marker, name))
        rel = meth.release
        results[name] = {
            "malicious": r, "ba_clean": reference.accuracy, "ba": mal.accuracy,
            "ba_drop": reference.accuracy - mal.accuracy, "psnr": rel.psnr, "psnr_min": rel.psnr_min,
            "ssim": rel.ssim, "n_marked": len(rel.index), "suspect": mal.spec(), "info": meth.info,
        }
        if uses_proxy:
            results[name]["proxies"] = [tr.spec() for tr in ctx.proxies(name)]
        ctx.log(f"{name} Malicious: WSR {r['wsr']:.3f} dP {r['delta_p']:.3f} p {r['p']:.3g}; "
                f"BA {mal.accuracy:.4f} (clean {reference.accuracy:.4f})")
        more = [brief(ctx.verify(ctx.suspect(tr), meth.marker, name)) for tr in suspects[1:]]
        results[name]["malicious_seeds"] = summarize([r, *more], s.alpha)
        results[name]["ba_seeds"] = {  # each against the clean model of its seed
            "ba": [tr.accuracy for tr in suspects], "ba_clean": [ref.accuracy for ref in references],
            "ba_drop": [ref.accuracy - tr.accuracy for ref, tr in zip(references, suspects)]}
        if more:
            ctx.log(f"{name} Malicious over {1 + len(more)} seeds: share claimed "
                    f"{results[name]['malicious_seeds']['share_p_below_alpha']:.2f}")
        if s.also_queries:
            results[name]["by_queries"] = by_queries(ctx, name, meth.marker, [r, *more], reference)
    return methods, results


def by_queries(ctx: BenchContext, name: str, marker: MarkerLike, rows: list[dict[str, Any]],
               reference: Trained) -> dict[str, Any]:
    """``name``'s Malicious suspects (``rows``: their results under ``queries``) and the clean
    reference verified under every query choice of the settings (``also_queries``).

    Returns
    -------
    ``{choice: {"malicious": summarize(...), "clean_reference": brief(...)}}``
    """
    s = ctx.s
    suspects = [ctx.suspect(ctx.train(name, seed=s.suspect_seed(i))) for i in range(s.malicious_seeds)]
    out: dict[str, Any] = {}
    for q in s.query_choices:
        mal = rows if q == s.queries else [brief(ctx.verify(v, marker, name, queries=q)) for v in suspects]
        clean = brief(ctx.verify(ctx.suspect(reference), marker, name, queries=q))
        out[q] = {"malicious": summarize(mal, s.alpha), "clean_reference": clean}
        dp = " ".join(f"{r['delta_p']:.3f}" for r in mal)
        ctx.log(f"{name} with {q} queries: dP per seed {dp}; clean reference dP {clean['delta_p']:.3f} "
                f"p {clean['p']:.3g}")
    return out
