"""A folder of images as a dataset: ``labels.csv`` (path,label) or one subfolder per class.

Class order (which index a label gets) comes from ``classes.txt`` (one name per line) when
the folder has one, else from the sorted label names. ``xmark data synth`` writes both
files, so a synthesised phantom folder reads back with the phantom's class indices.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from xmark_core.data.base import Record
from xmark_core.data.io import IMAGE_SUFFIXES, read_image
from xmark_core.errors import DataError

LABELS_CSV = "labels.csv"
CLASSES_TXT = "classes.txt"


def list_images(root: Path) -> list[Path]:
    """Image files (by suffix) under ``root``, recursively, sorted, hidden files skipped."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def read_classes_txt(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise DataError("duplicate class names", path)
    if not names:
        raise DataError("no class names in file", path)
    return names


def _read_labels_csv(csv_path: Path) -> list[tuple[str, str, int]]:
    """(path, label, line number) rows of a labels CSV, with clear errors for bad layouts."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in ("path", "label") if c not in header]
            if missing:
                raise DataError(
                    f"CSV lacks column(s) {missing}; found {header}. Expected a header line 'path,label'",
                    csv_path,
                )
            rows = []
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                if not row.get("path"):
                    raise DataError(f"line {line}: empty path", csv_path)
                if not row.get("label"):
                    raise DataError(f"line {line}: empty label for {row['path']!r}", csv_path)
                rows.append((row["path"], row["label"], line))
    except UnicodeDecodeError:
        raise DataError("not a UTF-8 text CSV", csv_path) from None
    except csv.Error as e:
        raise DataError(f"malformed CSV: {e}", csv_path) from None
    return rows


class FolderDataset:
    """Images in a folder with labels from ``labels.csv`` or from class subfolders.

    Parameters
    ----------
    root : the folder
    classes : class names in index order; default ``classes.txt`` if present, else the
        sorted label names (CSV) or subfolder names

    Raises
    ------
    DataError
        Missing or empty folder, CSV without ``path``/``label`` columns, a label not in
        ``classes``, a listed file that does not exist.
    """

    def __init__(self, root: str | Path, classes: list[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("folder not found" if not self.root.exists() else "not a folder", self.root)
        if classes is None and (self.root / CLASSES_TXT).is_file():
            classes = read_classes_txt(self.root / CLASSES_TXT)
        csv_path = self.root / LABELS_CSV
        if csv_path.is_file():
            self.paths, names = self._from_csv(csv_path)
        else:
            self.paths, names = self._from_subfolders()
        self.classes = list(classes) if classes is not None else sorted(set(names))
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(names) - set(index))
        if unknown:
            where = f"{csv_path}" if csv_path.is_file() else f"{self.root} subfolders"
            raise DataError(
                f"unknown label(s) {unknown[:5]} in {where}; known classes: {self.classes}", self.root
            )
        self._labels = np.array([index[n] for n in names], dtype=np.int64)

    def _from_csv(self, csv_path: Path) -> tuple[list[Path], list[str]]:
        rows = _read_labels_csv(csv_path)
        if not rows:
            raise DataError("CSV has a header but no rows", csv_path)
        paths = [Path(p) if Path(p).is_absolute() else self.root / p for p, _, _ in rows]
        missing = [(p, line) for p, (_, _, line) in zip(paths, rows) if not p.is_file()]
        if missing:
            first = ", ".join(f"line {line}: {p}" for p, line in missing[:3])
            raise DataError(f"{len(missing)} listed image(s) do not exist ({first})", csv_path)
        return paths, [label for _, label, _ in rows]

    def _from_subfolders(self) -> tuple[list[Path], list[str]]:
        subdirs = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        paths, names = [], []
        for d in subdirs:
            for p in list_images(d):
                paths.append(p)
                names.append(d.name)
        if not paths:
            loose = list_images(self.root)
            hint = (
                f"found {len(loose)} image(s) but no {LABELS_CSV} and no class subfolders"
                if loose
                else "no images found"
            )
            raise DataError(
                f"{hint}; put images in one subfolder per class or add {LABELS_CSV} (path,label)",
                self.root,
            )
        return paths, names

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Record:
        path = self.paths[i]
        loaded = read_image(path)
        meta = {"bit_depth": loaded.bit_depth, "fmt": loaded.fmt, "warnings": loaded.warnings, "loaded": loaded}
        return Record(
            image=loaded.image, label=int(self._labels[i]), image_id=self.image_id(i), path=path, meta=meta
        )

    def image_id(self, i: int) -> str:
        """Path relative to the root in POSIX form (absolute paths outside the root stay absolute)."""
        p = self.paths[i]
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def __repr__(self) -> str:
        return f"FolderDataset({str(self.root)!r}, n={len(self)}, classes={self.classes})"
