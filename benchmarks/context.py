"""What every benchmark part shares: the data, a cache of trained models, verification.

One :class:`BenchContext` per run renders the phantom sets once, trains each model once
per (training set, architecture, input size, seed) and memoises the marks of query
images, so the parts can ask for "the suspect trained on the X-Mark release at 32 px"
without caring whether another part already trained it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.reuse import digest, fingerprint, load_same, same_file
from benchmarks.settings import BenchSettings
from xmark_core.data.base import resize, to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.device import torch_threads
from xmark_core.embed import MARK_THREADS, select_marked
from xmark_core.nets.checkpoint import LoadedModel, save_checkpoint
from xmark_core.nets.train import TrainConfig, predict_proba, train_classifier
from xmark_core.quality import psnr, ssim
from xmark_core.verify.protocol import (
    SIDES,
    MarkerLike,
    VerificationResult,
    VerifyConfig,
    proxy_scores,
    run_verification,
)
from xmark_core.verify.suspects import MeanSuspect, TorchSuspect

CLEAN = "clean"  # name of the unmarked training set


class Log:
    """Progress lines on stderr, stamped with the seconds since the run started."""

    def __init__(self, stream: Any = sys.stderr, quiet: bool = False):
        self.stream, self.quiet, self.t0 = stream, quiet, time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed:7.1f}s] {msg}", file=self.stream, flush=True)

    def progress(self, what: str, every: int = 1) -> Callable[[int, int], None]:
        """A ``(done, total)`` callback that logs every ``every`` steps and at the end."""

        def report(done: int, total: int) -> None:
            if done == total or done % every == 0:
                self(f"{what}: {done}/{total}")

        return report


def resize_stack(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) images resized to (N, size, size) like a training pipeline would
    (:func:`xmark_core.data.base.resize`: area when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return np.stack([resize(im, size) for im in images]) if len(images) else np.zeros((0, size, size), np.float32)


def quantize16(images: np.ndarray) -> np.ndarray:
    """What a 16-bit PNG release stores (the embedder writes phantom images that way)."""
    return (np.round(np.clip(images, 0.0, 1.0) * 65535.0) / 65535.0).astype(np.float32)


class MemoMarker:
    """Wrap a marker so each query image is marked once per run (marks are deterministic)."""

    def __init__(self, inner: MarkerLike):
        self.inner = inner
        self._memo: dict[bytes, np.ndarray] = {}
        self._turned: dict[float, MemoMarker] = {}

    @staticmethod
    def _key(im: np.ndarray) -> bytes:
        a = np.ascontiguousarray(im, dtype=np.float32)
        return hashlib.blake2b(a.tobytes(), digest_size=16, person=str(a.shape).encode()[:16]).digest()

    def mark(self, images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, dtype=np.float32)
        keys = [self._key(im) for im in batch]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            for i, m in zip(todo, np.asarray(self.inner.mark(batch[todo]), np.float32)):
                self._memo[keys[i]] = m
        return np.stack([self._memo[k] for k in keys])

    def turned(self, degrees: float) -> MemoMarker:
        """The inner marker's specificity control (memoised too, once per angle)."""
        if degrees not in self._turned:
            self._turned[degrees] = MemoMarker(self.inner.turned(degrees))  # type: ignore[attr-defined]
        return self._turned[degrees]


def release_threads() -> AbstractContextManager[None]:
    """Torch at one thread inside, the run's count restored after (as ``xmark embed``).

    What a release holds (which images are marked, their marks and hardening, a baseline's
    trigger) must not depend on ``--threads``: another count sums floats in another order and
    writes other bits (a few pixels in a few images), and every suspect trained on the release
    would then be trained again instead of reused from a ``--reuse-models`` folder. Making a
    release takes seconds to a minute; the training that ``--threads`` speeds up stays outside.
    """
    return torch_threads(MARK_THREADS)


@dataclass
class Release:
    """A clean-label release of one method: which images were marked, and how."""

    name: str
    index: np.ndarray  # indices into the dataset (target-class images)
    marked: np.ndarray  # (k, S, S) marked images as released (16-bit)
    psnr: float  # mean over marked images, dB
    psnr_min: float
    ssim: float  # mean over marked images


@dataclass
class Trained:
    """A classifier trained in this run and how it was made."""

    model: nn.Module
    train_set: str
    arch: str
    input_size: int
    seed: int
    accuracy: float  # on the held-out evaluation set, all classes
    seconds: float
    best_epoch: int
    reused_from: str | None = None  # the kept checkpoint it was loaded from (--reuse-models)

    def spec(self) -> dict[str, Any]:
        return {"train_set": self.train_set, "arch": self.arch, "input_size": self.input_size,
                "seed": self.seed, "accuracy": self.accuracy, "seconds": round(self.seconds, 2),
                "best_epoch": self.best_epoch, "reused_from": self.reused_from}


def brief(r: VerificationResult) -> dict[str, Any]:
    """The numbers of a verification that the results files keep. With the key-specificity
    check, ``p`` is the largest of three tests; ``p_ownership`` is the owner's mark against the
    original alone and ``p_turned`` each turned mark's test, so a table can say which one
    withheld a claim."""
    spec = r.details.get("specificity") or {}
    return {"wsr": r.wsr, "delta_p": r.delta_p, "p": r.p_value, "decision": r.decision,
            "p_sequential": r.supporting.get("sequential"), "p_label": r.supporting.get("label"),
            "clean_target_rate": r.clean_target_rate, "n_queries": r.n_queries,
            "p_ownership": (spec.get("main") or {}).get("p_value", r.p_value),
            "p_turned": {side: spec[side]["p_value"] for side in SIDES if side in spec}}


@dataclass
class BenchContext:
    """Data, model cache and helpers of one benchmark run (build with :meth:`create`)."""

    s: BenchSettings
    log: Log
    X: np.ndarray  # (N, S, S) the owner's dataset at the source resolution
    y: np.ndarray
    X_eval: np.ndarray  # held-out set: accuracy and the query pool
    y_eval: np.ndarray
    X_att: np.ndarray  # the attacker's own clean data (fine-tuning attacks)
    y_att: np.ndarray
    pool: list[np.ndarray]  # non-target held-out images (verification queries)
    pool_ids: list[str]
    releases: dict[str, Release] = field(default_factory=dict)
    models: dict[tuple, Trained] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # per-run memo of the parts
    owners: dict[str, MarkerLike] = field(default_factory=dict)  # method name -> its (memoised) marker
    models_dir: Path | None = None  # --keep-models: every trained model is also written here
    reuse_dir: Path | None = None  # --reuse-models: kept models loaded instead of trained (benchmarks.reuse)
    _train_cache: dict[tuple, np.ndarray] = field(default_factory=dict)

    @classmethod
    def create(cls, s: BenchSettings, log: Log, models_dir: str | Path | None = None,
               reuse_dir: str | Path | None = None) -> BenchContext:
        """Render the three phantom sets at the source resolution; ``models_dir``: see
        :meth:`keep_model`; ``reuse_dir``: see :meth:`reused`."""

        def render(n: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
            ds = PhantomDataset(n, size=s.source_size, seed=seed)
            X, y = to_arrays(ds, s.source_size, progress=log.progress(f"render {what}", max(1, n // 4)))
            return X[:, 0], y

        X, y = render(s.n_images, s.seed, "dataset")
        Xe, ye = render(s.n_eval, s.seed + 1, "held-out set")
        Xa, ya = render(max(8, int(round(s.attacker_fraction * s.n_images))), s.seed + 2, "attacker data")
        pool_idx = np.flatnonzero(ye != s.target)
        if len(pool_idx) < s.m:
            raise ValueError(f"the held-out pool has {len(pool_idx)} non-target images, fewer than m={s.m}; "
                             "raise n_eval")
        kept = None if models_dir is None else Path(models_dir)
        if kept is not None:
            kept.mkdir(parents=True, exist_ok=True)
        return cls(s=s, log=log, X=X, y=y, X_eval=Xe, y_eval=ye, X_att=Xa, y_att=ya,
                   pool=[Xe[i] for i in pool_idx], pool_ids=[f"phantom-{s.seed + 1}-{i}" for i in pool_idx],
                   models_dir=kept, reuse_dir=None if reuse_dir is None else Path(reuse_dir))

    # ------------------------------------------------------------------ releases

    def set_selection(self, surrogate: nn.Module) -> None:
        """Score the target images with the owner's surrogate: the embedder's default
        "hardest" selection then marks the same images for every method, and boundary
        queries (:class:`VerifyConfig` ``queries``) are the same pool images for every method."""
        X = self.train_images(CLEAN, self.s.input_size)
        pool = resize_stack(np.stack(self.pool), self.s.input_size)[:, None]
        with release_threads():
            self.cache["scores"] = predict_proba(surrogate, X)[:, self.s.target]
            self.cache["query_scores"] = predict_proba(surrogate, pool)[:, self.s.target].astype(np.float64)

    def marked_index(self) -> np.ndarray:
        """The target-class images every method marks (the embedder's own selection:
        hardest first once :meth:`set_selection` ran, else random)."""
        return select_marked(self.y, self.s.target, self.s.rho, self.s.seed, self.cache.get("scores"))

    def add_release(self, name: str, marker: MarkerLike) -> Release:
        """Mark the selected images with ``marker`` at the source resolution (at one thread:
        :func:`release_threads`) and record quality."""
        idx = self.marked_index()
        orig = self.X[idx]
        with release_threads():
            marked = quantize16(np.asarray(marker.mark(orig), np.float32))
        ps = np.array([psnr(a, b) for a, b in zip(orig, marked)])
        ss = np.array([ssim(a, b) for a, b in zip(orig, marked)])
        rel = Release(name, idx, marked, float(np.mean(ps)), float(np.min(ps)), float(np.mean(ss)))
        self.releases[name] = rel
        self.log(f"release {name}: {len(idx)} of {len(self.X)} images marked, PSNR {rel.psnr:.2f} dB "
                 f"(min {rel.psnr_min:.2f}), SSIM {rel.ssim:.4f}")
        return rel

    def train_images(self, train_set: str, size: int) -> np.ndarray:
        """(N, 1, size, size) training images of ``train_set`` (CLEAN or a release name)."""
        key = (train_set, size)
        if key in self._train_cache:
            return self._train_cache[key]
        base = self._train_cache.get((CLEAN, size))
        if base is None:
            base = resize_stack(self.X, size)[:, None]
            if size == self.s.input_size:  # the size most models use: keep it
                self._train_cache[(CLEAN, size)] = base
        if train_set == CLEAN:
            return base
        rel = self.releases[train_set]
        out = base.copy()
        out[rel.index, 0] = resize_stack(rel.marked, size)
        if size == self.s.input_size:
            self._train_cache[key] = out
        return out

    # ------------------------------------------------------------------ models

    def _model_key(self, train_set: str, size: int | None, arch: str | None, seed: int | None) -> tuple:
        """The cache key ``(train_set, arch, size, seed)`` with the defaults filled in."""
        s = self.s
        return (train_set, arch or s.arch, size or s.input_size, s.suspect_seed(0) if seed is None else seed)

    def _train_config(self, key: tuple) -> TrainConfig:
        _, arch, size, seed = key
        s = self.s
        return TrainConfig(arch=arch, input_size=size, epochs=s.epochs_for(seed), batch_size=s.batch_size, lr=s.lr,
                           patience=s.patience, seed=seed,
                           arch_kwargs=dict(s.arch_kwargs) if arch == "smallcnn" else {})

    def _name(self, key: tuple) -> str:
        train_set, arch, size, seed = key
        other = self.s.other_epochs(seed)
        return f"{arch}@{size}px seed {seed} on {train_set}" + ("" if other is None else f", {other} epochs")

    def _file(self, key: tuple) -> str:
        """:func:`model_file` of ``key``, with the epochs where they are not the recipe's."""
        return model_file(key, self.s.other_epochs(key[3]))

    def _keep(self, key: tuple, model: nn.Module, best_epoch: int, seconds: float,
              reused_from: Path | None = None) -> Trained:
        tr = Trained(model.eval(), key[0], key[1], key[2], key[3], 0.0, seconds, best_epoch,
                     None if reused_from is None else str(reused_from))
        tr.accuracy = self.accuracy(self.suspect(tr))
        how = "train" if reused_from is None else f"reuse {reused_from} as"
        self.log(f"{how} {self._name(key)}: accuracy {tr.accuracy:.4f} ({tr.seconds:.0f} s)")
        self.models[key] = tr
        self.keep_model(self._file(key), lambda path: save_checkpoint(
            path, tr.model, kind="classifier", arch=tr.arch, arch_kwargs=tr.model.arch_kwargs,
            classes=self.s.classes, input_size=tr.input_size, config=self._train_config(key),
            extra={"benchmark": tr.spec(), "fingerprint": self.fingerprint(key), "threads": self.s.threads}),
            reused_from)
        return tr

    def data_digest(self, train_set: str, size: int) -> str:
        """:func:`~benchmarks.reuse.digest` of a training set's images and labels (memoised)."""
        memo = f"data_digest:{train_set}:{size}"
        if memo not in self.cache:
            self.cache[memo] = digest([self.train_images(train_set, size), self.y])
        return self.cache[memo]

    def fingerprint(self, key: tuple) -> str:
        """What the classifier ``key`` is recognised by in a kept folder: its training data
        and recipe (:mod:`benchmarks.reuse`)."""
        recipe = {"kind": "classifier", "train": asdict(self._train_config(key)), "classes": self.s.classes}
        return fingerprint(recipe, self.data_digest(key[0], key[2]))

    def load_kept(self, name: str, want: Callable[[], str]) -> LoadedModel | None:
        """:func:`~benchmarks.reuse.load_same` on ``reuse_dir``, each file refused at most once a
        run (a part asks again for what another part trained)."""
        refused = self.cache.setdefault("reuse_refused", set())
        if name in refused:
            return None
        lm = load_same(self.reuse_dir, name, want, self.log, self.s.threads)
        if lm is None:
            refused.add(name)
        return lm

    def reused(self, key: tuple) -> Trained | None:
        """With ``reuse_dir`` (``--reuse-models``): the classifier ``key`` loaded from it when it
        holds one with this run's :meth:`fingerprint` (then cached like a trained one), else None."""
        lm = self.load_kept(self._file(key), lambda: self.fingerprint(key))
        if lm is None:
            return None
        made = (lm.extra or {}).get("benchmark") or {}
        return self._keep(key, lm.model, int(made.get("best_epoch", -1)), float(made.get("seconds", 0.0)),
                          Path(str(lm.path)))

    def keep_model(self, name: str, write: Callable[[Path], None], source: Path | None = None) -> None:
        """With ``models_dir`` (``--keep-models``), ``write`` a trained model to ``models_dir /
        name`` (atomically, as every checkpoint): lab work on a run's suspects then loads them
        (``load_checkpoint``, ``load_marker``) instead of training them again, and a later run
        reuses them (``--reuse-models``). ``source``: the file a reused model was loaded from;
        nothing is written when that is the destination (a resumed run)."""
        if self.models_dir is not None and not same_file(source, self.models_dir / name):
            write(self.models_dir / name)

    def train(self, train_set: str = CLEAN, size: int | None = None, arch: str | None = None,
              seed: int | None = None) -> Trained:
        """The classifier trained on ``train_set`` (cached per set, arch, size and seed).

        Defaults: the standard input size and architecture, the first suspect seed.
        """
        key = self._model_key(train_set, size, arch, seed)
        if key in self.models:
            return self.models[key]
        if (tr := self.reused(key)) is not None:
            return tr
        progress = self.log.progress(f"train {self._name(key)}", max(1, self.s.epochs_for(key[3]) // 4))
        return self._keep(key, *_fit_classifier(self.train_images(train_set, key[2]), self.y, self.s.classes,
                                                self._train_config(key), progress))

    def train_many(self, specs: Sequence[tuple[str, int | None, str | None, int | None]],
                   on_trained: Callable[[Trained], Any] | None = None) -> None:
        """Train the models ``specs`` names (``(train_set, size, arch, seed)``, as :meth:`train`
        takes them) that are not cached yet, ``s.jobs`` at a time (:meth:`in_processes`).

        The weights are those :meth:`train` would give: training is bitwise reproducible for a
        seed and thread count. With ``jobs`` 1 this does nothing; :meth:`train` trains each model
        when it is first asked for. ``on_trained`` is called with each model as it finishes, so
        a part can verify and log it at once and a run stopped early keeps what it finished.
        """
        todo = [k for k in dict.fromkeys(self._model_key(*spec) for spec in specs)
                if k not in self.models and self.reused(k) is None]
        if min(self.s.jobs, len(todo)) < 2:
            return
        self.log(f"training {len(todo)} models in {min(self.s.jobs, len(todo))} processes: "
                 + "; ".join(self._name(k) for k in todo))
        calls = [(_fit_classifier, (self.train_images(k[0], k[2]), self.y, self.s.classes, self._train_config(k)))
                 for k in todo]
        for i, (model, best_epoch, seconds) in self.in_processes(calls):
            tr = self._keep(todo[i], model, best_epoch, seconds)
            if on_trained is not None:
                on_trained(tr)

    def in_processes(self, calls: Sequence[tuple[Callable[..., Any], tuple]]) -> Iterator[tuple[int, Any]]:
        """Run ``calls`` (module-level functions and their arguments, which are pickled)
        ``s.jobs`` at a time, each in a worker process with ``s.threads`` torch threads; yields
        ``(index into calls, result)`` as they finish."""
        with ProcessPoolExecutor(max_workers=min(self.s.jobs, len(calls)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            running = {pool.submit(_in_worker, self.s.threads, fn, args): i for i, (fn, args) in enumerate(calls)}
            for done in as_completed(running):
                yield running[done], done.result()

    def suspect(self, tr: Trained | nn.Module, input_size: int | None = None) -> TorchSuspect:
        """A black-box view of a trained model (queries resized to its input size)."""
        if isinstance(tr, Trained):
            return TorchSuspect(tr.model, self.s.classes, tr.input_size, name=f"{tr.train_set}/{tr.arch}")
        return TorchSuspect(tr, self.s.classes, input_size or self.s.input_size)

    def accuracy(self, suspect: Any) -> float:
        """Clean accuracy of a suspect on the held-out set (all classes)."""
        pred = [np.asarray(suspect.predict(self.X_eval[i:i + 256])).argmax(1) for i in range(0, len(self.X_eval), 256)]
        return float(np.mean(np.concatenate(pred) == self.y_eval))

    # ------------------------------------------------------------------ verification

    def verify_config(self, **overrides: Any) -> VerifyConfig:
        s = self.s
        return VerifyConfig(**{"m": s.m, "tau": s.tau, "alpha": s.alpha, "seed": s.verify_seed,
                               "query_gain": s.query_gain, "queries": s.queries,
                               "specificity": s.specificity, "check_gain": s.check_gain, **overrides})

    def verify(self, suspect: Any, marker: MarkerLike, owner: str | None = None, **cfg: Any) -> VerificationResult:
        """:func:`~xmark_core.verify.protocol.run_verification` on the shared query pool (the
        key-specificity check only where the marker has a key carrier: not the baselines).
        ``owner``: the method whose queries these are (needed for proxy queries); ``cfg``
        overrides :meth:`verify_config`, ``queries`` included."""
        if not hasattr(getattr(marker, "inner", marker), "turned"):
            cfg = {"specificity": 0.0, **cfg}
        vc = self.verify_config(**cfg)
        return run_verification(suspect, marker, self.pool, self.pool_ids, self.s.target, vc,
                                query_scores=self.query_scores(owner, vc.queries))

    def proxies(self, owner: str) -> list[Trained]:
        """``owner``'s proxies for proxy queries: classifiers trained on ``owner``'s release with
        each of ``proxy_seeds`` (cached like every model; never a suspect's seed)."""
        return [self.train(owner, seed=seed) for seed in self.s.proxy_seeds]

    def proxy_suspect(self, owner: str) -> TorchSuspect | MeanSuspect:
        """What chooses ``owner``'s proxy queries: its proxy, or with several the mean of their
        probabilities (:class:`MeanSuspect`, as the CLI takes ``--proxy`` several times)."""
        members = [self.suspect(tr) for tr in self.proxies(owner)]
        return members[0] if len(members) == 1 else MeanSuspect(members)

    def query_scores(self, owner: str | None, queries: str | None = None) -> np.ndarray | None:
        """What the pool's queries are chosen by under ``queries`` (default: the settings'):
        the surrogate's target probability (boundary queries; random ones ignore it), or for
        proxy queries the rise of ``owner``'s proxies' (mean) target probability when ``owner``'s
        mark is added (:func:`proxy_scores`; :meth:`proxy_suspect`), computed once per method."""
        if (queries or self.s.queries) != "proxy":
            return self.cache.get("query_scores")
        if owner is None or owner not in self.owners:
            raise ValueError(f"proxy queries need the owner method of a verification, got {owner!r}")
        key = f"proxy_scores:{owner}"
        if key not in self.cache:
            self.cache[key] = proxy_scores(self.proxy_suspect(owner), self.owners[owner], self.pool,
                                           self.s.classes[self.s.target], self.s.query_gain)
            names = [self._name((owner, tr.arch, tr.input_size, tr.seed)) for tr in self.proxies(owner)]
            self.log(f"proxy queries for {owner}: chosen by {' and '.join(names)}"
                     + (" (mean probability)" if len(names) > 1 else ""))
        return self.cache[key]


def model_file(key: tuple, epochs: int | None = None) -> str:
    """File name of a kept classifier: ``{train_set}_{arch}_{size}px_seed{seed}.pt``, with
    ``_ep{epochs}`` before the suffix when ``epochs`` is given (suspects trained other than the
    recipe, ``suspect_epochs``)."""
    train_set, arch, size, seed = key
    return f"{train_set}_{arch}_{size}px_seed{seed}{'' if epochs is None else f'_ep{epochs}'}.pt"


def _in_worker(threads: int, fn: Callable[..., Any], args: tuple) -> Any:
    torch.set_num_threads(threads)
    return fn(*args)


def _fit_classifier(X: np.ndarray, y: np.ndarray, classes: list[str], cfg: TrainConfig,
                    progress: Callable[[int, int], None] | None = None) -> tuple[nn.Module, int, float]:
    """One model of :meth:`BenchContext.train` or, in a worker, of :meth:`~BenchContext.train_many`:
    (model, best epoch, seconds)."""
    t0 = time.perf_counter()
    res = train_classifier(X, y, classes, cfg, progress=progress)
    return res.model, res.best_epoch, time.perf_counter() - t0


def summarize(rows: Sequence[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Ind-M / Ind-T columns: every p-value and ΔP, their extremes and the false-claim share."""
    p = [float(r["p"]) for r in rows]
    d = [float(r["delta_p"]) for r in rows]
    return {"n": len(rows), "min_p": min(p) if p else None, "max_delta_p": max(d) if d else None,
            "share_p_below_alpha": float(np.mean(np.array(p) < alpha)) if p else None,
            "p": p, "delta_p": d, "wsr": [float(r["wsr"]) for r in rows],
            "p_ownership": [r.get("p_ownership") for r in rows]}
