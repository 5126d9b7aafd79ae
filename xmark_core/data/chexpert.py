"""CheXpert as published: ``train.csv`` / ``valid.csv`` with ``Path``, ``Sex``, ``Age``,
``Frontal/Lateral``, ``AP/PA`` and 14 observation columns holding 1 (positive), 0
(negative), -1 (uncertain) or blank (not mentioned).

X-Mark needs one label per image, so the loader (1) keeps frontal views if asked,
(2) resolves uncertain values with a policy (Irvin et al. 2019: U-Ignore, U-Ones,
U-Zeros; blank counts as negative), and (3) turns the chosen observations into a single
label with a rule:

* ``"first"``: the first positive observation in the order given;
* ``"exclusive"``: keep only images with exactly one positive observation.

Images with no positive chosen observation are dropped; every drop is counted in
:attr:`CheXpertDataset.summary` so nothing disappears silently.

``Path`` entries start with the release folder (``CheXpert-v1.0-small/train/...``): they
are resolved against ``root``, against ``root``'s parent and with the first component
stripped, so ``root`` may be either the release folder or the folder above it.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path, PurePosixPath

import numpy as np

from xmark_core.data.base import Record
from xmark_core.data.io import read_image
from xmark_core.errors import DataError

OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
META_COLUMNS: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
# The phantom's classes, so a model trained on the demo and on CheXpert share a label space.
DEFAULT_OBSERVATIONS: tuple[str, ...] = ("No Finding", "Cardiomegaly", "Pleural Effusion", "Consolidation")
UNCERTAINTY_POLICIES = ("ignore", "ones", "zeros")
SINGLE_LABEL_RULES = ("first", "exclusive")
_VALUES = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": -1, "-1.0": -1, "": 0}


class CheXpertDataset:
    """Single-label view of a CheXpert CSV.

    Parameters
    ----------
    root : folder holding the CSV (the release folder) or the folder above it
    csv : CSV file name inside ``root`` (or a path)
    observations : observation columns that become the classes, in priority order
    frontal_only : keep only rows with ``Frontal/Lateral == "Frontal"``
    uncertainty : ``"ignore"`` (drop images with an uncertain chosen observation),
        ``"ones"`` (uncertain = positive) or ``"zeros"`` (uncertain = negative)
    single_label : ``"first"`` or ``"exclusive"`` (see the module docstring)
    check_files : drop rows whose image file is missing (counted in ``summary``)

    Attributes
    ----------
    classes : list of the chosen observations
    summary : counts of rows read, kept and dropped per reason
    """

    def __init__(
        self,
        root: str | Path,
        csv: str | Path = "train.csv",
        observations: tuple[str, ...] | list[str] = DEFAULT_OBSERVATIONS,
        frontal_only: bool = True,
        uncertainty: str = "ignore",
        single_label: str = "first",
        check_files: bool = True,
    ):
        self.root = Path(root)
        csv_path = Path(csv) if Path(csv).is_absolute() else self.root / csv
        if not csv_path.is_file():
            raise DataError("CheXpert CSV not found", csv_path)
        if uncertainty not in UNCERTAINTY_POLICIES:
            raise DataError(f"uncertainty must be one of {UNCERTAINTY_POLICIES}, got {uncertainty!r}")
        if single_label not in SINGLE_LABEL_RULES:
            raise DataError(f"single_label must be one of {SINGLE_LABEL_RULES}, got {single_label!r}")
        observations = list(observations)
        bad = [o for o in observations if o not in OBSERVATIONS]
        if bad or not observations:
            raise DataError(f"unknown observation(s) {bad}; choose from {list(OBSERVATIONS)}")
        self.csv_path, self.classes = csv_path, observations
        self.uncertainty, self.single_label = uncertainty, single_label
        self.paths: list[Path] = []
        self.rel_paths: list[str] = []
        self.rows: list[dict[str, str]] = []
        labels: list[int] = []
        drops = {"lateral": 0, "uncertain": 0, "no_positive": 0, "several_positive": 0, "missing_file": 0}
        n_rows = 0
        self._base: Path | None = None
        self._strip = False
        for line, row in self._read(csv_path, ["Path"] + (["Frontal/Lateral"] if frontal_only else []) + observations):
            n_rows += 1
            if frontal_only and row["Frontal/Lateral"] != "Frontal":
                drops["lateral"] += 1
                continue
            values = [self._value(row.get(o), o, line) for o in observations]
            if -1 in values:
                if uncertainty == "ignore":
                    drops["uncertain"] += 1
                    continue
                values = [(1 if uncertainty == "ones" else 0) if v == -1 else v for v in values]
            positives = [i for i, v in enumerate(values) if v == 1]
            if not positives:
                drops["no_positive"] += 1
                continue
            if single_label == "exclusive" and len(positives) > 1:
                drops["several_positive"] += 1
                continue
            if self._base is None and check_files:
                self._find_base(row["Path"])
            path = self._locate(row["Path"])
            if check_files and not path.is_file():
                drops["missing_file"] += 1
                continue
            self.paths.append(path)
            self.rel_paths.append(row["Path"])
            self.rows.append({k: row.get(k, "") for k in ("Sex", "Age", "Frontal/Lateral", "AP/PA")})
            labels.append(positives[0])
        self._labels = np.array(labels, dtype=np.int64)
        self.summary = {"rows": n_rows, "kept": len(labels), "dropped": drops}
        if check_files and drops["missing_file"] and not labels:
            raise DataError(
                f"none of the {drops['missing_file']} selected images exist under {self.root} "
                f"(first CSV path resolves relative to the release folder or its parent)",
                csv_path,
            )
        if drops["missing_file"]:
            warnings.warn(f"{csv_path}: {drops['missing_file']} listed images are missing and were skipped", stacklevel=2)

    @staticmethod
    def _read(csv_path: Path, need: list[str]):
        try:
            f = open(csv_path, newline="", encoding="utf-8-sig")
        except OSError as e:
            raise DataError(f"cannot open CSV: {e.strerror or e}", csv_path) from None
        with f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in need if c not in header]
            if missing:
                raise DataError(
                    f"not a CheXpert CSV: missing column(s) {missing}; found {header}", csv_path
                )
            try:
                for line, row in enumerate(reader, start=2):
                    yield line, {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            except csv.Error as e:
                raise DataError(f"malformed CSV: {e}", csv_path) from None

    def _value(self, raw: str | None, column: str, line: int) -> int:
        if raw is None:
            raise DataError(f"missing observation column {column!r}", self.csv_path)
        try:
            return _VALUES[raw]
        except KeyError:
            raise DataError(
                f"line {line}, column {column!r}: value {raw!r} is not 1, 0, -1 or blank", self.csv_path
            ) from None

    def _find_base(self, rel_path: str) -> None:
        """Work out which folder the CSV paths are relative to, from an existing file."""
        rel = PurePosixPath(rel_path)
        stripped = PurePosixPath(*rel.parts[1:]) if len(rel.parts) > 1 else rel
        for base in (self.root, self.root.parent, self.csv_path.parent):
            for tail, strip in ((rel, False), (stripped, True)):
                if (base / tail).is_file():
                    self._base, self._strip = base, strip
                    return

    def _locate(self, rel_path: str) -> Path:
        rel = PurePosixPath(rel_path)
        if self._strip and len(rel.parts) > 1:
            rel = PurePosixPath(*rel.parts[1:])
        return (self._base or self.root) / rel

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Record:
        loaded = read_image(self.paths[i])
        meta = dict(self.rows[i], bit_depth=loaded.bit_depth, fmt=loaded.fmt, warnings=loaded.warnings, loaded=loaded)
        return Record(
            image=loaded.image, label=int(self._labels[i]), image_id=self.rel_paths[i], path=self.paths[i], meta=meta
        )

    def labels(self) -> np.ndarray:
        return self._labels.copy()

    def __repr__(self) -> str:
        return f"CheXpertDataset({str(self.csv_path)!r}, n={len(self)}, classes={self.classes})"


def is_chexpert_csv(path: str | Path) -> bool:
    """True if the CSV's header has CheXpert's ``Path`` and ``Frontal/Lateral`` columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return False
    header = [h.strip() for h in header]
    return "Path" in header and "Frontal/Lateral" in header
