"""Clean-label embedding: watermark a fraction of the target-class images of a dataset.

Layout of an embedding's output folder ``out``::

    out/release/            what the owner publishes: the images in their source format
                            (unmarked files byte-identical), the label file(s) the loaders
                            read (labels.csv + classes.txt, or the CheXpert CSV), manifest.json
    out/owner_record.json   private: generator hash/config/key, target, rho, seed, marked files
                            with per-image PSNR/SSIM, and the commitment over all of it
    out/.xmark/             private work files: per-shard journals and shard records

Every image is written atomically and logged in a journal once its bytes are on disk, so
a re-run after a crash resumes: files whose hash matches the journal are skipped, anything
else is rewritten. A journal holds for the settings it names (generator, rho, seed, thread
count, ...); a run with other settings in the same folder makes every file again.
``shard=(i, n)`` processes every n-th image (a cluster job array); each shard leaves a shard
record and :func:`merge_shards` joins them into one manifest and one commitment. Labels are
never changed (clean-label).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

import xmark_core
from xmark_core.atomic import atomic_path, atomic_write_json, atomic_write_text
from xmark_core.errors import DataError, XMarkError
from xmark_core.hashing import canonical_json, commitment, sha256_bytes, sha256_file
from xmark_core.quality import psnr, ssim

Progress = Callable[[int, int], None]

RELEASE_DIR = "release"
MANIFEST = "manifest.json"
OWNER_RECORD = "owner_record.json"
WORK_DIR = ".xmark"
FORMAT_VERSION = 1
# Torch threads a release is marked at: at another count a few pixels can land one 16-bit
# step apart, so the release and its commitment would depend on the machine's core count.
# Parallelism comes from shards (one process per core), which give the same bits.
MARK_THREADS = 1


@dataclass
class EmbedResult:
    """Outcome of :func:`embed_release` (one shard) or :func:`merge_shards`.

    ``commitment``, ``manifest_path`` and ``owner_record_path`` are set once the release is
    complete (a single shard, or after the merge); a shard of several leaves them None.
    """

    out_dir: Path
    shard: tuple[int, int]
    n_images: int
    n_marked: int
    n_written: int
    n_skipped: int
    psnr_mean: float | None
    ssim_mean: float | None
    commitment: str | None = None
    manifest_path: Path | None = None
    owner_record_path: Path | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "shard": f"{self.shard[0]}/{self.shard[1]}",
            "n_images": self.n_images, "n_marked": self.n_marked, "n_written": self.n_written,
            "n_skipped": self.n_skipped, "psnr_mean": self.psnr_mean, "ssim_mean": self.ssim_mean,
            "commitment": self.commitment,
            "manifest": str(self.manifest_path) if self.manifest_path else None,
            "owner_record": str(self.owner_record_path) if self.owner_record_path else None,
        }


# ---------------------------------------------------------------------------------------
# which images, where they go


SELECTIONS = ("hardest", "random")


def n_marked(n_target: int, rho: float) -> int:
    """How many of ``n_target`` target-class images a fraction ``rho`` marks (>= 1 if rho > 0)."""
    return min(n_target, max(1 if rho > 0 else 0, int(round(rho * n_target))))


def select_marked(
    labels: np.ndarray, target: int, rho: float, seed: int, scores: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the target-class images to mark: ``round(rho * n_target)`` of them (at
    least one when ``rho > 0``); sorted. Independent of sharding.

    Parameters
    ----------
    labels : (N,) class indices of the whole dataset
    target : the target class
    rho : fraction of the target-class images to mark
    seed : seed of a random choice, and of the tie-break between equal scores
    scores : optional (N,) surrogate probabilities of the target class. Given, the
        ``k`` target images with the *lowest* score are marked ("hardest first"): a model
        trained on the release fits those badly from the anatomy alone, so it is on
        them that it learns the mark (at rho = 0.1 a random choice is not learned; see
        docs/architecture.md). Omitted, the choice is uniformly random.
    """
    if not 0.0 <= rho <= 1.0:
        raise DataError(f"rho must lie in [0, 1], got {rho}")
    tidx = np.flatnonzero(np.asarray(labels) == target)
    if len(tidx) == 0:
        raise DataError(f"no image of the target class {target} in the dataset; check --target")
    k = n_marked(len(tidx), rho)
    rng = np.random.default_rng(seed)
    if scores is None:
        return np.sort(rng.choice(tidx, size=k, replace=False))
    sc = np.asarray(scores, np.float64)
    if sc.shape != np.shape(labels):
        raise DataError(f"scores must have one value per image ({len(labels)}), got shape {sc.shape}")
    order = np.lexsort((rng.random(len(tidx)), sc[tidx]))  # lowest score first, random ties
    return np.sort(tidx[order[:k]])


def target_scores(
    ds: Any, marker: Any, target: int, labels: np.ndarray, progress: Progress | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """The surrogate's probability of ``target`` for every target-class image (others NaN).

    Used by the "hardest" selection; scored by the marker's surrogate
    (:meth:`xmark_core.generator.model.Marker.target_scores`: resized as in training).
    """
    scorer = getattr(marker, "target_scores", None)
    if scorer is None:
        raise XMarkError("selection 'hardest' needs a Marker with a surrogate; use selection='random'")
    out = np.full(len(labels), np.nan)
    tidx = np.flatnonzero(np.asarray(labels) == target)
    for b in range(0, len(tidx), batch_size):
        chunk = tidx[b:b + batch_size]
        out[chunk] = scorer([ds[int(i)].image for i in chunk], target=target, batch_size=batch_size)
        if progress:
            progress(min(b + batch_size, len(tidx)), len(tidx))
    return out


def shard_indices(n: int, shard: tuple[int, int]) -> np.ndarray:
    """Indices handled by shard ``(i, n_shards)``: every ``n_shards``-th image from ``i``
    (interleaved, so marked images spread evenly over the jobs)."""
    i, k = shard
    if k < 1 or not 0 <= i < k:
        raise DataError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    return np.arange(i, n, k)


def _source_kind(ds: Any) -> str:
    from xmark_core.data.chexpert import CheXpertDataset

    if isinstance(ds, CheXpertDataset):
        return "chexpert"
    return "files" if hasattr(ds, "paths") else "arrays"


def _safe_rel(rel: str, what: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise DataError(
            f"{what}: image id {rel!r} is not a relative path inside the dataset; "
            "put the images under the dataset folder"
        )
    return p.as_posix()


@dataclass
class _Item:
    index: int
    rel: str  # path inside release/
    label: int
    image_id: str
    source: Path | None  # file to copy when unmarked (None: write the record's image)
    record: Any = None  # the decoded record, when describing the image needed it


def _item(ds: Any, kind: str, i: int, labels: np.ndarray) -> _Item:
    """Describe image ``i`` without decoding it when the dataset is file-based."""
    if kind == "chexpert":
        rel = ds.rel_paths[i]
        return _Item(i, _safe_rel(rel, str(ds.csv_path)), int(labels[i]), rel, Path(ds.paths[i]))
    if kind == "files":
        image_id = ds.image_id(i) if hasattr(ds, "image_id") else Path(ds.paths[i]).name
        return _Item(i, _safe_rel(image_id, str(getattr(ds, "root", "dataset"))), int(labels[i]),
                     image_id, Path(ds.paths[i]))
    rec = ds[i]
    if rec.path is not None:
        return _Item(i, _safe_rel(rec.image_id, "dataset"), int(rec.label), rec.image_id, Path(rec.path), rec)
    rel = f"images/{_safe_rel(rec.image_id, 'dataset')}.png"
    return _Item(i, rel, int(rec.label), rec.image_id, None, rec)


def _write_label_files(dataset: dict[str, Any], entries: Sequence[dict[str, Any]], release: Path) -> list[str]:
    """Write the files the loaders need to read the release back; return their names.

    CheXpert: the source CSV filtered to the released rows (paths unchanged). Anything
    else: ``labels.csv`` (path,label) and ``classes.txt``, which FolderDataset reads.
    """
    if dataset["kind"] == "chexpert":
        keep = {e["image_id"] for e in entries}
        src = Path(dataset["csv"])
        try:
            with open(src, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                fields = reader.fieldnames or []
                rows = [r for r in reader if (r.get("Path") or "").strip() in keep]
        except OSError as e:
            raise DataError(f"cannot read the source CSV to copy it into the release ({e})", src) from None
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(release / src.name, buf.getvalue())
        return [src.name]
    classes = dataset["classes"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label"])
    for e in entries:
        w.writerow([e["path"], classes[e["label"]]])
    atomic_write_text(release / "labels.csv", buf.getvalue())
    atomic_write_text(release / "classes.txt", "\n".join(classes) + "\n")
    return ["labels.csv", "classes.txt"]


# ---------------------------------------------------------------------------------------
# journal: one JSON line per file whose bytes are on disk


def _journal_path(out: Path, shard: tuple[int, int]) -> Path:
    return out / WORK_DIR / f"journal-{shard[0]}-of-{shard[1]}.jsonl"


def _read_journal(path: Path, settings_sha256: str) -> dict[str, dict[str, Any]]:
    """The entries a run with these settings journaled, by path. The journal's first line names
    the settings it was written with; a journal of other settings (another generator, rho,
    seed, thread count ...) or of none (written before XXVIII) counts as empty, so every
    file is made again: the files of one release and its record must come from one setting."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if header.get("settings_sha256") != settings_sha256:
        return done
    for line in lines[1:]:
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash: that file is simply redone
        done[e["path"]] = e
    return done


def _open_journal(path: Path, settings_sha256: str, resume: bool) -> Any:
    """The journal, open for appending; a new one (first line: the settings' hash) unless
    ``resume``."""
    if resume:
        return open(path, "a", encoding="utf-8")
    journal = open(path, "w", encoding="utf-8")
    _append(journal, {"settings_sha256": settings_sha256})
    return journal


def _append(journal, entry: dict[str, Any]) -> None:
    journal.write(json.dumps(entry, sort_keys=True) + "\n")
    journal.flush()  # a process that crashes loses nothing it journaled


# Entries between fsyncs of the journal. Against power loss only; an entry lost that way only
# means its file is checked by hash and written again, to the same bytes (marks are
# deterministic). One fsync per entry cost ~0.4 ms per image.
JOURNAL_SYNC_EVERY = 32


def _copy_file(src: Path, dst: Path) -> str:
    data = src.read_bytes()
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)
    return sha256_bytes(data)


MARK_BATCH_PIXELS = 16 * 512 * 512  # images of one shape marked per call, by total pixels


@dataclass
class _ToMark:
    item: _Item
    image: np.ndarray  # float32 (H, W) as decoded
    like: Any  # the source file as loaded (its format and bit depth), or None


def _load_for_marking(ds: Any, it: _Item) -> _ToMark:
    from xmark_core.data.io import read_image

    rec = it.record if it.record is not None else ds[it.index]
    like = rec.meta.get("loaded")
    if like is None and it.source is not None:
        like = read_image(it.source)
    return _ToMark(it, np.asarray(rec.image, np.float32), like)


def _mark_all(marker: Any, todo: Sequence[_ToMark]) -> list[np.ndarray]:
    """Marked copies of ``todo``'s images: those of one shape in batches of at most
    :data:`MARK_BATCH_PIXELS` (the marker's per-image result does not depend on the batch)."""
    out: list[np.ndarray | None] = [None] * len(todo)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for j, t in enumerate(todo):
        by_shape.setdefault(t.image.shape, []).append(j)
    for shape, idx in by_shape.items():
        step = max(1, MARK_BATCH_PIXELS // int(np.prod(shape)))
        for b in range(0, len(idx), step):
            chunk = idx[b:b + step]
            marked = marker.mark(np.stack([todo[j].image for j in chunk]))
            for j, m in zip(chunk, marked):
                out[j] = m
    return out  # type: ignore[return-value]


def _write_marked(t: _ToMark, marked: np.ndarray, dst: Path) -> dict[str, Any]:
    """Write one marked image in its source format, read it back for quality and hash."""
    from xmark_core.data.io import read_image, write_image

    if t.like is not None:
        back = write_image(dst, marked, like=t.like)
    else:
        back = write_image(dst, marked, bit_depth=16)  # rendered (phantom) images: 16-bit PNG
    if back is None:  # lossy or DICOM: measure what was really stored
        back = read_image(dst).image
    if back.shape != t.image.shape:
        raise XMarkError(f"{dst}: written image has shape {back.shape}, source {t.image.shape}")
    return {
        "sha256": sha256_file(dst),
        "source_sha256": sha256_file(t.item.source) if t.item.source is not None else None,
        "psnr": psnr(t.image, back), "ssim": ssim(t.image, back),
    }


# ---------------------------------------------------------------------------------------
# records


def weights_sha256(module: Any) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, values)."""
    from xmark_core.hashing import sha256_array

    items = [
        [k, sha256_array(v.detach().cpu().numpy())] for k, v in sorted(module.state_dict().items())
    ]
    return sha256_bytes(canonical_json(items))


def _settings(ds: Any, kind: str, marker: Any, target: int, rho: float, seed: int, threads: int) -> dict[str, Any]:
    """Everything that defines the release (identical in every shard, so the commitment
    of a sharded run equals that of a single run)."""
    info = dict(getattr(marker, "info", {}) or {})
    gen = getattr(marker, "generator", None)
    sur = getattr(marker, "surrogate", None)
    classes = list(ds.classes)
    settings = {
        "dataset": {
            "kind": kind, "n": len(ds), "classes": classes, "source": repr(ds),
            "csv": str(ds.csv_path) if kind == "chexpert" else None,
        },
        "target": int(target), "target_name": classes[target], "rho": float(rho), "seed": int(seed),
        "generator": {
            "sha256": info.get("generator_sha256"),
            "weights_sha256": weights_sha256(gen) if gen is not None else None,
            "arch_kwargs": gen.arch_kwargs() if hasattr(gen, "arch_kwargs") else None,
            "key": getattr(marker, "key", None),
            "config": info.get("generator_config"),
        },
        "surrogate": {
            "sha256": info.get("surrogate_sha256"),
            "weights_sha256": weights_sha256(sur) if sur is not None else None,
        },
        "marker": {
            "input_size": getattr(marker, "input_size", None),
            "cam_method": getattr(marker, "cam_method", None),
            "work_size": getattr(marker, "work_size", None),
            "threads": int(threads),
        },
    }
    hardening = getattr(marker, "hardening", None)  # a HardenedMarker (xmark_core.harden)
    if callable(hardening):  # only then: records of unhardened releases keep their old shape
        settings["hardening"] = hardening()
    return settings


def _software() -> dict[str, str]:
    import torch

    return {"xmark": xmark_core.__version__, "numpy": np.__version__, "torch": torch.__version__}


def files_digest(files: Sequence[dict[str, Any]]) -> str:
    """SHA-256 over the sorted (path, sha256) list of a release: binds the manifest."""
    return sha256_bytes(canonical_json(sorted([f["path"], f["sha256"]] for f in files)))


def _finalize(out: Path, settings: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[str, Path, Path]:
    release = out / RELEASE_DIR
    side = _write_label_files(settings["dataset"], entries, release)
    files = [{"path": e["path"], "sha256": e["sha256"]} for e in entries]
    files += [{"path": name, "sha256": sha256_file(release / name)} for name in side]
    files.sort(key=lambda f: f["path"])
    marked = sorted((e for e in entries if e["marked"]), key=lambda e: e["path"])
    q_psnr = [e["psnr"] for e in marked if np.isfinite(e["psnr"])]
    q_ssim = [e["ssim"] for e in marked]
    record = {
        "format": "xmark-owner-record", "version": FORMAT_VERSION, "software": _software(),
        **settings,
        "n_images": len(entries), "n_marked": len(marked),
        "files_sha256": files_digest(files),
        "marked": [
            {k: e[k] for k in ("path", "image_id", "sha256", "source_sha256", "psnr", "ssim")}
            for e in marked
        ],
        "quality": {
            "psnr_mean": float(np.mean(q_psnr)) if q_psnr else None,
            "psnr_min": float(np.min(q_psnr)) if q_psnr else None,
            "ssim_mean": float(np.mean(q_ssim)) if q_ssim else None,
            "ssim_min": float(np.min(q_ssim)) if q_ssim else None,
        },
    }
    record["commitment"] = commitment(record)
    classes = settings["dataset"]["classes"]
    counts = np.bincount([e["label"] for e in entries], minlength=len(classes))
    manifest = {
        "format": "xmark-manifest", "version": FORMAT_VERSION, "software": _software(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {"images": len(entries), "per_class": dict(zip(classes, counts.tolist()))},
        "files": files, "files_sha256": record["files_sha256"],
        "commitment": record["commitment"],
    }
    rec_path, man_path = out / OWNER_RECORD, release / MANIFEST
    atomic_write_json(rec_path, record)
    atomic_write_json(man_path, manifest)
    return record["commitment"], man_path, rec_path


def _result(out: Path, shard, entries, written, skipped, final=None) -> EmbedResult:
    marked = [e for e in entries if e["marked"]]
    ps = [e["psnr"] for e in marked if np.isfinite(e["psnr"])]
    ss = [e["ssim"] for e in marked]
    res = EmbedResult(
        out_dir=out, shard=tuple(shard), n_images=len(entries), n_marked=len(marked),
        n_written=written, n_skipped=skipped,
        psnr_mean=float(np.mean(ps)) if ps else None, ssim_mean=float(np.mean(ss)) if ss else None,
    )
    if final:
        res.commitment, res.manifest_path, res.owner_record_path = final
    return res


# ---------------------------------------------------------------------------------------
# public API


def embed_release(
    ds: Any,
    marker: Any,
    target: int,
    out_dir: str | Path,
    rho: float = 0.1,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
    progress: Progress | None = None,
    selection: str = "hardest",
    threads: int | None = MARK_THREADS,
) -> EmbedResult:
    """Write a clean-label watermarked release of ``ds`` (or one shard of it).

    Parameters
    ----------
    ds : an :class:`~xmark_core.data.base.XrayDataset` (phantom, folder, CheXpert, ...)
    marker : a :class:`~xmark_core.generator.model.Marker` (anything with ``mark(images)``);
        a :class:`~xmark_core.harden.HardenedMarker` writes a hardened release and records
        its hardening models and budget in the owner record
    target : class index whose images get marked; labels are never changed
    out_dir : output folder (see the module docstring for its layout)
    rho : fraction of the target-class images to mark
    seed : seed of the choice of marked images
    shard : ``(i, n)``: process every n-th image starting at i; merge with :func:`merge_shards`
    progress : called as ``progress(done, total)`` over this shard's images
    selection : ``"hardest"`` (default: the target images the surrogate is least sure
        of, see :func:`select_marked`; every shard scores all target images, so the choice
        does not depend on sharding) or ``"random"``
    threads : torch CPU threads for scoring and marking (default :data:`MARK_THREADS`, 1:
        the same bits on any core count of a machine; run shards side by side for speed);
        ``None``: torch's current setting. The count used is recorded (``marker.threads``),
        and :func:`merge_shards` refuses shards marked at different counts.

    Returns
    -------
    EmbedResult
        With the commitment when the release is complete (``n == 1``).
    """
    from xmark_core.device import torch_threads

    with torch_threads(threads):
        return _write_release(ds, marker, target, Path(out_dir), rho, seed, shard, progress, selection)


def _write_release(ds: Any, marker: Any, target: int, out: Path, rho: float, seed: int,
                   shard: tuple[int, int], progress: Progress | None, selection: str) -> EmbedResult:
    """:func:`embed_release` at the thread count it set."""
    import torch

    n_total = len(ds)
    if n_total == 0:
        raise DataError("the dataset is empty; nothing to release")
    if not 0 <= target < len(ds.classes):
        raise DataError(f"target {target} is not a class index (classes: {list(ds.classes)})")
    labels = np.asarray(ds.labels())
    kind = _source_kind(ds)
    if selection not in SELECTIONS:
        raise DataError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    # When every target image is marked the scores cannot change the choice: skip them.
    n_target = int(np.sum(labels == target))
    ranked = selection == "hardest" and n_marked(n_target, rho) < n_target
    scores = target_scores(ds, marker, target, labels) if ranked else None
    marked_set = set(select_marked(labels, target, rho, seed, scores).tolist())
    settings = {**_settings(ds, kind, marker, target, rho, seed, torch.get_num_threads()), "selection": selection}
    mine = shard_indices(n_total, shard)
    release = out / RELEASE_DIR
    release.mkdir(parents=True, exist_ok=True)
    (out / WORK_DIR).mkdir(exist_ok=True)

    jpath = _journal_path(out, shard)
    settings_sha256 = sha256_bytes(canonical_json(settings))
    done = _read_journal(jpath, settings_sha256)
    entries: list[dict[str, Any]] = []
    written = skipped = 0
    # Unmarked images are copied as they come; marked ones wait until a batch of them is
    # due, then go through the nets together (the marker's result does not depend on the
    # batch). Entries are put back in index order at the end.
    batch = max(1, int(getattr(marker, "batch_size", 1) or 1))
    pending: list[tuple[_Item, Path]] = []

    def tick() -> None:
        if progress:
            progress(len(entries), len(mine))

    def record(entry: dict[str, Any], journal: Any) -> None:
        nonlocal written
        _append(journal, entry)
        entries.append(entry)
        written += 1
        if written % JOURNAL_SYNC_EVERY == 0:
            os.fsync(journal.fileno())
        tick()

    def new_entry(it: _Item, is_marked: bool) -> dict[str, Any]:
        return {"index": it.index, "path": it.rel, "image_id": it.image_id, "label": it.label,
                "marked": is_marked}

    def mark_pending(journal: Any) -> None:
        todo = [_load_for_marking(ds, it) for it, _ in pending]
        for (it, dst), t, marked in zip(pending, todo, _mark_all(marker, todo)):
            record({**new_entry(it, True), **_write_marked(t, marked, dst)}, journal)
        pending.clear()

    with _open_journal(jpath, settings_sha256, resume=bool(done)) as journal:
        for i in mine:
            it = _item(ds, kind, int(i), labels)
            dst = release / it.rel
            is_marked = int(i) in marked_set
            old = done.get(it.rel)
            if (old and old.get("marked") == is_marked and dst.is_file()
                    and sha256_file(dst) == old["sha256"]):
                entries.append(old)
                skipped += 1
                tick()
            elif is_marked:
                pending.append((it, dst))
                if len(pending) >= batch:
                    mark_pending(journal)
            else:
                entry = new_entry(it, False)
                if it.source is not None:
                    entry["sha256"] = _copy_file(it.source, dst)
                else:
                    from xmark_core.data.io import write_image

                    write_image(dst, it.record.image, bit_depth=16)
                    entry["sha256"] = sha256_file(dst)
                record(entry, journal)
        mark_pending(journal)
        os.fsync(journal.fileno())
    entries.sort(key=lambda e: e["index"])

    shard_record = {
        "format": "xmark-shard", "version": FORMAT_VERSION, "shard": list(shard),
        "settings": settings, "entries": entries,
    }
    atomic_write_json(out / WORK_DIR / f"shard-{shard[0]}-of-{shard[1]}.json", shard_record)
    final = _finalize(out, settings, entries) if shard[1] == 1 else None
    return _result(out, shard, entries, written, skipped, final)


def merge_shards(
    dirs: Sequence[str | Path], out_dir: str | Path, progress: Progress | None = None
) -> EmbedResult:
    """Join the shard records of a sharded embedding into one manifest and one commitment.

    Shards may have written into the same folder (a shared file system) or into separate
    folders; in the latter case their release files are moved into ``out_dir``.

    Raises
    ------
    DataError
        Missing or duplicate shards, or shards made with different settings.
    """
    out = Path(out_dir)
    records: dict[int, tuple[Path, dict[str, Any]]] = {}
    n_shards = None
    for d in dict.fromkeys(Path(x).resolve() for x in dirs):
        found = sorted((d / WORK_DIR).glob("shard-*-of-*.json"))
        if not found:
            raise DataError(f"no shard record (.xmark/shard-i-of-n.json) in {d}; run `xmark embed --shard` first", d)
        for f in found:
            rec = json.loads(f.read_text(encoding="utf-8"))
            i, n = rec["shard"]
            if n_shards is None:
                n_shards = n
            if n != n_shards:
                raise DataError(f"shard records disagree on the number of shards ({n} vs {n_shards})", f)
            if i in records and records[i][0] != d:
                raise DataError(f"shard {i}/{n} found twice ({records[i][0]} and {d})", f)
            records[i] = (d, rec)
    if n_shards is None:
        raise DataError("no shard folders given")
    missing = sorted(set(range(n_shards)) - set(records))
    if missing:
        raise DataError(f"missing shard(s) {missing} of {n_shards}; finish those jobs, then merge")
    settings = records[0][1]["settings"]
    want = settings["marker"].get("threads")
    for i, (d, rec) in records.items():
        got = rec["settings"]["marker"].get("threads")
        if got != want:  # the one setting a user changes by moving a shard to another machine
            raise DataError(f"shard {i} in {d} was marked at {got} torch thread(s), shard 0 at {want}: a few "
                            f"pixels of a mark can differ between counts; run shard {i} again with --threads {want}", d)
        if rec["settings"] != settings:
            raise DataError(f"shard {i} in {d} was made with other settings than shard 0", d)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    total = sum(len(rec["entries"]) for _, rec in records.values())
    for i in range(n_shards):
        d, rec = records[i]
        for e in rec["entries"]:
            if d != out.resolve():
                src, dst = d / RELEASE_DIR / e["path"], out / RELEASE_DIR / e["path"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.is_file() or sha256_file(dst) != e["sha256"]:
                    shutil.copy2(src, dst)
            entries.append(e)
            if progress:
                progress(len(entries), total)
    entries.sort(key=lambda e: e["index"])
    if len({e["path"] for e in entries}) != len(entries) or len(entries) != settings["dataset"]["n"]:
        raise DataError(
            f"shards hold {len(entries)} images but the dataset has {settings['dataset']['n']}; "
            "were they run on the same dataset?"
        )
    for e in entries:
        f = out / RELEASE_DIR / e["path"]
        if not f.is_file() or sha256_file(f) != e["sha256"]:
            raise DataError("file missing or changed since its shard wrote it; re-run that shard", f)
    final = _finalize(out, settings, entries)
    return _result(out, (0, n_shards), entries, 0, len(entries), final)


def load_owner_record(path: str | Path) -> dict[str, Any]:
    """Read an owner record (the file or the embedding's output folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / OWNER_RECORD
    if not p.is_file():
        raise DataError("owner record not found", p)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"not a JSON owner record ({e})", p) from None


def check_commitment(owner_record: dict[str, Any] | str | Path, release_dir: str | Path | None = None) -> bool:
    """True if the record's ``commitment`` matches its content (and, given the release
    folder, every file the manifest lists still has its recorded hash).

    Parameters
    ----------
    owner_record : the record dict, its file, or the embedding's output folder
    release_dir : the published release folder (with manifest.json), optional
    """
    rec = owner_record if isinstance(owner_record, dict) else load_owner_record(owner_record)
    if rec.get("commitment") != commitment(rec):
        return False
    if release_dir is None:
        return True
    release = Path(release_dir)
    man_path = release / MANIFEST
    if not man_path.is_file():
        return False
    manifest = json.loads(man_path.read_text(encoding="utf-8"))
    if manifest.get("commitment") != rec["commitment"] or files_digest(manifest["files"]) != rec["files_sha256"]:
        return False
    by_path = {f["path"]: f["sha256"] for f in manifest["files"]}
    for m in rec["marked"]:
        if by_path.get(m["path"]) != m["sha256"]:
            return False
    for path, digest in by_path.items():
        f = release / path
        if not f.is_file() or sha256_file(f) != digest:
            return False
    return True
