"""Segmentation suspects: anything that maps images to per-structure probability maps.

A suspect is queried as a black box: ``predict(images (N, H, W) in [0, 1]) -> (N, C, H, W)``
values in [0, 1]. Local modules and checkpoints are wrapped here; wrappers that degrade
the outputs (rounding, binary masks) model what a deployed service may return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import nn

from xmark_core.data.base import resize
from xmark_core.stealthmark.model import predict_proba


@runtime_checkable
class SegSuspect(Protocol):
    """What verification needs from a segmentation model."""

    input_size: int | None

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probability maps (N, C, H, W) for images (N, H, W) in [0, 1]."""
        ...

    def identity(self) -> dict[str, Any]:
        """What was queried (kind, location, SHA-256 ...), for the evidence record."""
        ...


def query_images(images: np.ndarray, suspect: SegSuspect) -> np.ndarray:
    """Clean images (M, H, W) as float32, resized to the suspect's input size if it has one:
    stamps are laid on the grid *at the size the model sees*, never resized afterwards."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected clean images (M, H, W), got shape {images.shape}")
    size = getattr(suspect, "input_size", None)
    if size and images.shape[-2:] != (size, size):
        images = np.stack([resize(im, size) for im in images])
    return images


class TorchSegSuspect:
    """A local ``nn.Module`` returning logits; sigmoid is applied here."""

    def __init__(self, model: nn.Module, input_size: int | None = None, name: str = "module",
                 batch_size: int = 64, device: str | None = None):
        self.model = model.eval()
        self.input_size = input_size
        self.name = name
        self.batch_size = batch_size
        self.device = device

    def predict(self, images: np.ndarray) -> np.ndarray:
        return predict_proba(self.model, images, batch_size=self.batch_size, device=self.device)

    def identity(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {"kind": "torch-module", "location": self.name, "parameters": int(n_params)}


class CheckpointSegSuspect(TorchSegSuspect):
    """A segmenter checkpoint (X-Mark format or TorchScript) on disk."""

    def __init__(self, path: str | Path, device: str | None = None, batch_size: int = 64):
        from xmark_core.nets.checkpoint import load_checkpoint

        loaded = load_checkpoint(path, device=device)
        super().__init__(loaded.model, loaded.input_size, name=str(path), batch_size=batch_size, device=device)
        self.loaded = loaded

    def identity(self) -> dict[str, Any]:
        return {"kind": f"checkpoint:{self.loaded.kind}", "location": str(self.name),
                "arch": self.loaded.arch, "sha256": self.loaded.sha256}


class RoundedSegSuspect:
    """Wrap a suspect so it returns probabilities rounded to ``decimals`` (a common API habit)."""

    def __init__(self, inner: SegSuspect, decimals: int = 2):
        self.inner = inner
        self.decimals = decimals
        self.input_size = inner.input_size

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.round(self.inner.predict(images), self.decimals).astype(np.float32)

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "wrapped": f"rounded to {self.decimals} decimals"}


class BinarySegSuspect:
    """Wrap a suspect so it returns thresholded masks only (0/1)."""

    def __init__(self, inner: SegSuspect, threshold: float = 0.5):
        self.inner = inner
        self.threshold = threshold
        self.input_size = inner.input_size

    def predict(self, images: np.ndarray) -> np.ndarray:
        return (self.inner.predict(images) > self.threshold).astype(np.float32)

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "wrapped": "binary masks"}


def _http_seg_class():
    """Build the HTTP segmentation suspect on top of the verify package's HTTP client
    (its retries, rate limit and validation), imported lazily: httpx is only needed here."""
    from xmark_core.errors import SuspectError
    from xmark_core.verify.http_client import HttpSuspect
    from xmark_core.verify.wire import decode_array, encode_array

    class HttpSegSuspect(HttpSuspect):
        """A segmenter behind the suspect HTTP API (``task: segmentation``, ``output: proba_map``)."""

        def _get_info(self) -> dict[str, Any]:
            info, where = self._info_object()
            if info.get("task") != "segmentation":
                raise SuspectError(f"{where}: task {info.get('task')!r} is not 'segmentation'")
            if info.get("output", "proba_map") != "proba_map":
                raise SuspectError(f"{where}: output {info.get('output')!r}; StealthMark needs 'proba_map'")
            info["output"] = "proba_map"
            info.setdefault("classes", ["structure"])
            return info

        def _predict_batch(self, x: np.ndarray) -> np.ndarray:
            answer = self._request("POST", "/predict", {"images": [encode_array(im) for im in x]})
            where = f"{self.url}/predict"
            maps = answer.get("probability_maps") if isinstance(answer, dict) else None
            if not isinstance(maps, list) or len(maps) != len(x):
                raise SuspectError(f"{where}: expected 'probability_maps' with {len(x)} entries")
            try:
                out = np.stack([decode_array(m, ndim=3) for m in maps])
            except ValueError as e:
                raise SuspectError(f"{where}: bad probability map ({e})") from e
            if out.shape[-2:] != x.shape[-2:]:
                raise SuspectError(f"{where}: maps of size {out.shape[-2:]} for queries of size {x.shape[-2:]}")
            return out

        def identity(self) -> dict[str, Any]:
            return {**super().identity(), "kind": "http-segmentation"}

    return HttpSegSuspect


def http_seg_suspect(url: str, **kwargs: Any) -> SegSuspect:
    """A segmenter served over HTTP (``xmark serve-model`` of a segmenter checkpoint, or any
    API following :mod:`xmark_core.verify.wire`); ``kwargs`` go to ``HttpSuspect``."""
    return _http_seg_class()(url, **kwargs)


def open_seg_suspect(spec: str | Path, device: str | None = None) -> SegSuspect:
    """A checkpoint path or an ``http(s)://`` URL -> a segmentation suspect."""
    text = str(spec)
    if text.startswith(("http://", "https://")):
        return http_seg_suspect(text)
    return CheckpointSegSuspect(text, device=device)
