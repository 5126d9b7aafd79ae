"""Suspect models behind one black-box interface.

A suspect takes a batch of images in [0, 1] at *any* size and returns class
probabilities ``(N, K)`` (``output == "proba"``) or labels ``(N,)`` (``output ==
"label"``).  Its preprocessing -- the input size it was trained at -- is part of the
suspect: the adapter resizes queries to ``input_size`` before the model sees them, so a
model trained at 128 px is queried at 128 px.

Adapters: :class:`TorchSuspect` (an in-process module), :class:`CheckpointSuspect` (an
X-Mark checkpoint or a TorchScript archive, loaded safely),
:class:`~xmark_core.verify.http_client.HttpSuspect` (a remote API) and
:func:`labels_only` (hide probabilities); :class:`MeanSuspect` averages several (the owner's
proxies).  :func:`open_suspect` picks one from a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from xmark_core.data.base import resize
from xmark_core.errors import SuspectError


@runtime_checkable
class Suspect(Protocol):
    """What verification needs from a suspect model.

    Attributes
    ----------
    classes : class names, index = column of the probabilities
    input_size : side the model expects (queries are resized to it), or None if the
        model takes images as given
    output : "proba" (probabilities (N, K)) or "label" (class indices (N,))
    """

    classes: list[str]
    input_size: int | None
    output: str

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Probabilities (N, K) or labels (N,) for images (N, H, W) in [0, 1]."""
        ...

    def identity(self) -> dict[str, Any]:
        """``kind``, ``location``, hashes and whatever else identifies the model."""
        ...


def prepare_images(images: Sequence[np.ndarray] | np.ndarray, input_size: int | None) -> np.ndarray:
    """Stack images (each (H, W), float in [0, 1]) into (N, S, S) float32 at ``input_size``.

    Images may have different sizes when ``input_size`` is given; otherwise they must
    share one shape.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = images[None]
    out = []
    for i, im in enumerate(images):
        im = np.asarray(im, dtype=np.float32)
        if im.ndim != 2:
            raise SuspectError(f"query image {i} has shape {im.shape}; expected (H, W)")
        if not np.isfinite(im).all() or im.min() < 0 or im.max() > 1:
            raise SuspectError(f"query image {i} is not float intensities in [0, 1]")
        out.append(resize(im, input_size) if input_size else im)
    if not out:
        raise SuspectError("no images to query")
    if len({a.shape for a in out}) > 1:
        raise SuspectError("query images differ in size and the suspect has no input_size to resize to")
    return np.stack(out).astype(np.float32, copy=False)


def check_probabilities(p: Any, n: int, k: int, where: str, tol: float = 1e-3) -> np.ndarray:
    """Validate a probability table: shape (n, k), finite, in [0, 1], rows summing to 1.

    Rows within ``tol`` of 1 are renormalised (APIs round); anything else is an error.
    """
    try:
        p = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise SuspectError(f"{where}: probabilities are not a numeric table ({e})") from e
    if p.ndim != 2 or p.shape[0] != n:
        raise SuspectError(f"{where}: expected {n} rows of probabilities, got shape {p.shape}")
    if p.shape[1] != k:
        raise SuspectError(f"{where}: expected {k} probabilities per row (one per class), got {p.shape[1]}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise SuspectError(f"{where}: probabilities must be finite numbers in [0, 1]")
    s = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(s - 1) > tol)
    if bad.size:
        raise SuspectError(
            f"{where}: row {int(bad[0])} of the probabilities sums to {s[bad[0]]:.6f}, not 1 "
            "(the API must return softmax probabilities, not logits or scores)"
        )
    return p / s[:, None]


def check_labels(y: Any, n: int, classes: list[str], where: str) -> np.ndarray:
    """Validate labels: n entries, each a class index or a class name; return indices."""
    if not isinstance(y, (list, tuple, np.ndarray)) or len(y) != n:
        got = len(y) if isinstance(y, (list, tuple, np.ndarray)) else type(y).__name__
        raise SuspectError(f"{where}: expected {n} labels, got {got}")
    out = np.empty(n, np.int64)
    for i, v in enumerate(y):
        if isinstance(v, str) and v in classes:
            out[i] = classes.index(v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < len(classes):
            out[i] = int(v)
        else:
            raise SuspectError(f"{where}: label {i} ({v!r}) is neither a class index nor one of {classes}")
    return out


class TorchSuspect:
    """An in-process classifier returning logits for (N, 1, S, S) input in [0, 1].

    Parameters
    ----------
    model : the classifier (normalisation is inside it, see the image convention)
    classes : class names
    input_size : side S the model was trained at (queries are resized to it)
    batch_size : images per forward pass
    device : where to run (default: :func:`xmark_core.device.get_device`)
    name : shown as the suspect's location
    """

    output = "proba"

    def __init__(self, model: nn.Module, classes: Sequence[str], input_size: int | None,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 name: str = "in-process model"):
        from xmark_core.device import get_device

        self.device = get_device(str(device)) if device is not None else get_device()
        self.model = model.to(self.device).eval()
        self.classes = [str(c) for c in classes]
        self.input_size = None if input_size is None else int(input_size)
        self.batch_size = batch_size
        self.name = name

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        from xmark_core.nets.train import predict_proba

        x = prepare_images(images, self.input_size)
        p = predict_proba(self.model, x[:, None], batch_size=self.batch_size, device=self.device)
        return check_probabilities(p, len(x), len(self.classes), self.name, tol=1e-4)

    def identity(self) -> dict[str, Any]:
        return {"kind": "torch", "location": self.name, "classes": self.classes,
                "input_size": self.input_size, "output": self.output}


class CheckpointSuspect(TorchSuspect):
    """A suspect read from a checkpoint file (X-Mark format or TorchScript).

    Loading uses ``torch.load(weights_only=True)``; a pickle that needs code to load is
    refused with :class:`~xmark_core.errors.CheckpointError`.  TorchScript archives from
    elsewhere may lack classes / input size: pass them here.

    Parameters
    ----------
    path : checkpoint file
    classes, input_size : override or supply what the file does not say
    batch_size, device : as :class:`TorchSuspect`
    """

    def __init__(self, path: str | Path, classes: Sequence[str] | None = None,
                 input_size: int | None = None, batch_size: int = 64,
                 device: str | torch.device | None = None):
        from xmark_core.device import get_device
        from xmark_core.nets.checkpoint import load_checkpoint

        dev = get_device(str(device)) if device is not None else get_device()
        loaded = load_checkpoint(path, device=dev)
        if loaded.kind not in ("classifier", "torchscript"):
            raise SuspectError(f"{path}: a {loaded.kind!r} checkpoint is not a classifier to verify")
        classes = classes or loaded.classes
        if not classes:
            raise SuspectError(f"{path}: the checkpoint does not name its classes; pass classes=[...] "
                               "(CLI: --classes)")
        size = input_size or loaded.input_size
        if size is None:
            raise SuspectError(f"{path}: the checkpoint does not state its input size; pass "
                               "input_size (CLI: --input-size)")
        super().__init__(loaded.model, classes, size, batch_size, dev, name=str(Path(path).resolve()))
        self.loaded = loaded

    def identity(self) -> dict[str, Any]:
        return {"kind": "checkpoint", "location": self.name, "sha256": self.loaded.sha256,
                "format": self.loaded.kind, "arch": self.loaded.arch, "classes": self.classes,
                "input_size": self.input_size, "output": self.output}


class LabelsOnly:
    """Wrap a suspect so that only its top-1 labels are visible (``output == "label"``)."""

    output = "label"

    def __init__(self, suspect: Suspect):
        self.inner = suspect
        self.classes = suspect.classes
        self.input_size = suspect.input_size

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        out = np.asarray(self.inner.predict(images))
        return out if self.inner.output == "label" else out.argmax(axis=1)

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "output": "label", "labels_only": True}


def labels_only(suspect: Suspect) -> Suspect:
    """A view of ``suspect`` that returns class indices only (for the label-only test)."""
    return suspect if suspect.output == "label" else LabelsOnly(suspect)


class MeanSuspect:
    """Several probability models seen as one: the mean of their probabilities.

    Why: proxy queries are the images on which the owner's proxy answers the mark most, and
    a proxy chooses well for suspects that see the image as it does. The owner does not know
    the thief's input size; the mean rise of proxies trained at several sizes serves
    suspects of each (lab, 2026-12-06 (XI)). That mean rise is the rise of this mean's
    probability (the mean is linear), so :func:`~xmark_core.verify.protocol.proxy_scores`
    takes it as it takes one proxy.

    Parameters
    ----------
    members : suspects that give probabilities over the same classes, in the same order
    """

    output = "proba"
    input_size = None  # each member resizes the queries to its own size

    def __init__(self, members: Sequence[Suspect]):
        self.members = list(members)
        if not self.members:
            raise SuspectError("a mean of suspects needs at least one")
        self.classes = list(self.members[0].classes)
        for m in self.members:
            if list(m.classes) != self.classes:
                raise SuspectError(f"every model of a mean must name the same classes in the same order: "
                                   f"{self.classes} against {list(m.classes)}")
            if m.output != "proba":
                raise SuspectError("every model of a mean must give probabilities, not labels only")

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        return np.mean([np.asarray(m.predict(images), np.float64) for m in self.members], axis=0)

    def identity(self) -> dict[str, Any]:
        from xmark_core.hashing import canonical_json, sha256_bytes

        members = [m.identity() for m in self.members]
        out = {"kind": "mean", "members": members, "classes": self.classes, "output": self.output}
        if all(m.get("sha256") for m in members):  # one hash for the set, as a replay compares it
            out["sha256"] = sha256_bytes(canonical_json([m["sha256"] for m in members]))
        return out


def model_hashes(identity: dict[str, Any]) -> set[str]:
    """The SHA-256 of every model file an identity stands for (a mean's members' included)."""
    own = {identity["sha256"]} if identity.get("sha256") and identity.get("kind") != "mean" else set()
    return own.union(*(model_hashes(m) for m in identity.get("members") or []))


def mean_or_one(members: Sequence[Suspect]) -> Suspect:
    """The one suspect given, or the :class:`MeanSuspect` of several."""
    return members[0] if len(members) == 1 else MeanSuspect(members)


def is_url(spec: str) -> bool:
    return str(spec).startswith(("http://", "https://"))


def open_suspect(spec: str | Path, *, classes: Sequence[str] | None = None,
                 input_size: int | None = None, labels: bool = False,
                 **http_kwargs: Any) -> Suspect:
    """Open a suspect from a checkpoint path or an ``http(s)://`` API base URL.

    Parameters
    ----------
    spec : file path or URL
    classes, input_size : overrides for files / APIs that do not state them
    labels : wrap with :func:`labels_only`
    http_kwargs : passed to :class:`~xmark_core.verify.http_client.HttpSuspect`
    """
    if is_url(str(spec)):
        from xmark_core.verify.http_client import HttpSuspect

        s: Suspect = HttpSuspect(str(spec), input_size=input_size, classes=classes, **http_kwargs)
    else:
        s = CheckpointSuspect(spec, classes=classes, input_size=input_size)
    return labels_only(s) if labels else s
