"""Look at a dataset before using it: classes, sizes, bit depths and every unreadable file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xmark_core.data.chexpert import CheXpertDataset
from xmark_core.data.folder import FolderDataset, list_images
from xmark_core.data.io import read_image
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import PhantomDataset
from xmark_core.errors import DataError


@dataclass
class InspectReport:
    """What :func:`inspect_dataset` found. ``ok`` is False if the dataset could not be
    opened (``error`` says why) or any image is unreadable."""

    source: str
    kind: str
    ok: bool = True
    error: str | None = None
    n_images: int = 0
    n_checked: int = 0
    classes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    bit_depths: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reason(e: DataError) -> str:
    """The message without the leading path (the report lists the path separately)."""
    text = str(e)
    return text[len(e.path) + 2 :] if e.path and text.startswith(f"{e.path}: ") else text


def _kind(ds: Any) -> str:
    return {PhantomDataset: "phantom", FolderDataset: "folder", CheXpertDataset: "chexpert"}.get(type(ds), "other")


def inspect_dataset(
    spec: str | Path,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> InspectReport:
    """Open ``spec`` (see :func:`open_dataset`) and decode every image, collecting problems.

    Parameters
    ----------
    spec : dataset description or path
    limit : decode only the first ``limit`` images (class counts still cover all)
    progress : called as ``(done, total)``

    Returns
    -------
    InspectReport
        Never raises for bad data: problems are reported in ``error`` / ``unreadable``.
    """
    report = InspectReport(source=str(spec), kind="unknown")
    try:
        ds = open_dataset(spec)
    except DataError as e:
        report.ok, report.error = False, str(e)
        path = Path(str(spec))
        if path.is_dir():  # still check the files, so every broken one is listed at once
            _scan_files(report, list_images(path), limit, progress)
        return report
    report.kind = _kind(ds)
    report.classes = list(ds.classes)
    labels = ds.labels()
    report.n_images = len(ds)
    counts = Counter(int(v) for v in labels)
    report.counts = {c: counts.get(i, 0) for i, c in enumerate(ds.classes)}
    if isinstance(ds, CheXpertDataset):
        report.details["chexpert"] = ds.summary
    n = len(ds) if limit is None else min(limit, len(ds))
    sizes, depths, formats = Counter(), Counter(), Counter()
    for i in range(n):
        try:
            rec = ds[i]
        except DataError as e:
            report.unreadable.append({"path": e.path or f"#{i}", "reason": _reason(e)})
        except Exception as e:  # inspect must finish and list everything, whatever breaks
            paths = getattr(ds, "paths", None)
            where = str(paths[i]) if paths is not None else f"#{i}"
            report.unreadable.append({"path": where, "reason": f"{type(e).__name__}: {e}"})
        else:
            h, w = rec.image.shape
            sizes[f"{h}x{w}"] += 1
            depths[str(rec.meta.get("bit_depth", 32 if report.kind == "phantom" else "?"))] += 1
            formats[rec.meta.get("fmt", "synthetic")] += 1
            report.warnings.extend(rec.meta.get("warnings", []))
        if progress:
            progress(i + 1, n)
    report.n_checked = n
    report.sizes, report.bit_depths, report.formats = dict(sizes), dict(depths), dict(formats)
    report.ok = not report.unreadable
    return report


def _scan_files(report: InspectReport, files: list[Path], limit: int | None, progress) -> None:
    files = files if limit is None else files[:limit]
    sizes, depths, formats = Counter(), Counter(), Counter()
    for k, p in enumerate(files):
        try:
            img = read_image(p)
        except DataError as e:
            report.unreadable.append({"path": str(p), "reason": _reason(e)})
        else:
            h, w = img.image.shape
            sizes[f"{h}x{w}"] += 1
            depths[str(img.bit_depth)] += 1
            formats[img.fmt] += 1
            report.warnings.extend(img.warnings)
        if progress:
            progress(k + 1, len(files))
    report.n_images = report.n_checked = len(files)
    report.sizes, report.bit_depths, report.formats = dict(sizes), dict(depths), dict(formats)
