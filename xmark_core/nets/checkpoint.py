"""Save and load model checkpoints safely.

A checkpoint is a plain dict of tensors and primitives, so ``torch.load(weights_only=True)``
reads it without executing any code from the file. A pickle that needs code to load (a
whole pickled ``nn.Module``, or a malicious file) is refused. TorchScript archives are
recognised and loaded with ``torch.jit.load``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pickle
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xmark_core.atomic import atomic_path
from xmark_core.errors import CheckpointError
from xmark_core.hashing import sha256_file

FORMAT = "xmark-checkpoint"
VERSION = 1

# kind -> "module:function(arch, **arch_kwargs)"; imported only when such a file is loaded,
# so the ground floor (nets) does not import the generator or stealthmark packages.
KIND_BUILDERS: dict[str, str] = {
    "classifier": "xmark_core.nets.classifiers:build_classifier",
    "generator": "xmark_core.generator.model:build_generator",
    "segmenter": "xmark_core.stealthmark.model:build_segmenter",
}

# Metadata stored inside TorchScript archives written by export_torchscript.
_TS_META = "xmark.json"


@dataclass
class LoadedModel:
    """A model read from disk, in eval mode, with what is known about it."""

    model: nn.Module
    kind: str
    arch: str | None
    arch_kwargs: dict[str, Any]
    classes: list[str] | None
    input_size: int | None
    config: dict[str, Any] | None
    extra: dict[str, Any] | None
    sha256: str
    path: str | None = field(default=None)


def _plain(obj: Any, where: str = "value") -> Any:
    """Convert to dicts/lists/str/int/float/bool/None/tensors, the types weights_only accepts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, where) for v in obj]
    raise CheckpointError(f"cannot store {where} of type {type(obj).__name__} in a checkpoint")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    kind: str,
    arch: str,
    arch_kwargs: dict[str, Any],
    classes: list[str] | None = None,
    input_size: int | None = None,
    config: Any = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model``'s weights and how to rebuild it, atomically.

    Parameters
    ----------
    path : target file (``.pt``)
    model : the module whose ``state_dict`` is saved
    kind : builder family, a key of :data:`KIND_BUILDERS` ("classifier", "generator", ...)
    arch, arch_kwargs : rebuilt as ``builder(arch, **arch_kwargs)``; for a classifier
        ``num_classes`` defaults to ``len(classes)``
    classes, input_size : what a user of the model needs to feed and read it
    config : training configuration (dataclass or dict), stored as a plain dict
    extra : any other plain data (metrics, history, data provenance ...)
    """
    if kind not in KIND_BUILDERS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; known: {', '.join(KIND_BUILDERS)}")
    arch_kwargs = dict(arch_kwargs)
    if kind == "classifier" and "num_classes" not in arch_kwargs and classes is not None:
        arch_kwargs["num_classes"] = len(classes)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "arch": arch,
        "arch_kwargs": _plain(arch_kwargs, "arch_kwargs"),
        "classes": None if classes is None else [str(c) for c in classes],
        "input_size": None if input_size is None else int(input_size),
        "config": _plain(config, "config"),
        "extra": _plain(extra, "extra"),
        # contiguous: the stored tensors, strides included, do not depend on the layout the
        # model ran in (a Marker runs its nets channels-last on CPU)
        "state_dict": {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                       for k, v in model.state_dict().items()},
    }
    # through a file object: given a path, torch names the archive's root folder after the
    # (random) temporary file, so equal weights would give files with different hashes
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


@contextmanager
def _quiet_jit():
    # torch >= 2.10 marks TorchScript deprecated; suspects still ship as TorchScript, so
    # we keep reading/writing it without flooding the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def export_torchscript(
    path: str | Path,
    model: nn.Module,
    input_size: int,
    classes: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Trace ``model`` at ``input_size`` and save it as TorchScript with X-Mark metadata.

    The archive runs without X-Mark's code (e.g. as a "suspect" handed to a verifier);
    :func:`load_checkpoint` reads its classes and input size back.

    Parameters
    ----------
    path : target file
    model : eager model taking (N, 1, input_size, input_size) images in [0, 1]
    input_size : side the trace is taken at (and recorded)
    classes : class names to record
    extra : any other plain metadata to record
    """
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    example = torch.rand(2, 1, input_size, input_size, device=dev)
    with torch.no_grad(), _quiet_jit():
        traced = torch.jit.trace(model, example)
    model.train(was_training)
    meta = json.dumps({"classes": classes, "input_size": int(input_size), "extra": _plain(extra)})
    with atomic_path(path) as tmp, open(tmp, "wb") as f, _quiet_jit():  # a file object: see save_checkpoint
        torch.jit.save(traced, f, _extra_files={_TS_META: meta})


def _is_torchscript(path: Path) -> bool:
    # Both torch.save and torch.jit.save write zip archives; only TorchScript has code/.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def _resolve(kind: str):
    spec = KIND_BUILDERS.get(kind)
    if spec is None:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; known: {', '.join(KIND_BUILDERS)}")
    module, fn = spec.split(":")
    try:
        return getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"cannot build a {kind!r} model: {spec} is unavailable ({e})") from e


def _load_torchscript(path: Path, device: torch.device, digest: str) -> LoadedModel:
    files = {_TS_META: ""}
    try:
        with _quiet_jit():
            model = torch.jit.load(str(path), map_location=device, _extra_files=files)
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise CheckpointError(f"{path}: not a loadable TorchScript archive ({e})") from e
    meta = json.loads(files[_TS_META]) if files[_TS_META] else {}
    model.eval()
    return LoadedModel(
        model=model,
        kind="torchscript",
        arch=None,
        arch_kwargs={},
        classes=meta.get("classes"),
        input_size=meta.get("input_size"),
        config=None,
        extra=meta.get("extra"),
        sha256=digest,
        path=str(path),
    )


def _looks_like_pickle(path: Path) -> bool:
    # Pickles of protocol >= 2 start with the PROTO opcode; torch.save writes zip archives.
    with open(path, "rb") as f:
        return f.read(1) == b"\x80" or zipfile.is_zipfile(path)


def _unpickling_reason(e: Exception) -> str:
    # torch's message is long; keep the line that names the offending global.
    lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
    return lines[0] if lines else "unsupported object in the pickle"


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> LoadedModel:
    """Load a checkpoint written by :func:`save_checkpoint` or a TorchScript archive.

    Parameters
    ----------
    path : the file
    device : where to put the model; default CPU

    Returns
    -------
    LoadedModel
        The model in eval mode plus its metadata and the file's SHA-256.

    Raises
    ------
    CheckpointError
        Missing or malformed file, unknown kind, weights that do not fit the
        architecture, or a pickle that would need to run code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    digest = sha256_file(path)
    if _is_torchscript(path):
        return _load_torchscript(path, dev, digest)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol chatter
            payload = torch.load(path, map_location=dev, weights_only=True)
    except pickle.UnpicklingError as e:
        if not _looks_like_pickle(path):
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle); "
                "expected a file written by save_checkpoint or a TorchScript archive"
            ) from e
        raise CheckpointError(
            f"{path}: refused: this pickle needs to run code to load ({_unpickling_reason(e)}); "
            "loading it could execute anything. Only plain checkpoints (tensors and numbers, "
            "as written by xmark_core.nets.checkpoint.save_checkpoint) or TorchScript archives "
            "are accepted. If you trust the file, re-save its state_dict with save_checkpoint."
        ) from e
    except Exception as e:  # noqa: BLE001 - truncated zips, random bytes, ...
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e}); "
            "expected a file written by save_checkpoint or a TorchScript archive"
        ) from e

    if not isinstance(payload, dict) or "state_dict" not in payload or "arch" not in payload:
        raise CheckpointError(
            f"{path}: not an X-Mark checkpoint (expected a dict with 'state_dict' and 'arch'; "
            "a bare state_dict does not say which architecture it belongs to)"
        )
    kind = payload.get("kind", "classifier")
    arch = payload["arch"]
    arch_kwargs = dict(payload.get("arch_kwargs") or {})
    classes = payload.get("classes")
    build_kwargs = dict(arch_kwargs)
    if kind == "classifier" and "num_classes" not in build_kwargs:
        if not classes:
            raise CheckpointError(f"{path}: classifier checkpoint without num_classes or classes")
        build_kwargs["num_classes"] = len(classes)
    try:
        model = _resolve(kind)(arch, **build_kwargs)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - bad arch / kwargs stored in the file
        raise CheckpointError(f"{path}: cannot build {kind} {arch!r} with {build_kwargs} ({e})") from e
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {kind} {arch!r}: {str(e).splitlines()[0]}") from e
    model.to(dev).eval()
    input_size = payload.get("input_size")
    return LoadedModel(
        model=model,
        kind=kind,
        arch=arch,
        arch_kwargs=arch_kwargs,
        classes=None if classes is None else list(classes),
        input_size=None if input_size is None else int(input_size),
        config=payload.get("config"),
        extra=payload.get("extra"),
        sha256=digest,
        path=str(path),
    )

