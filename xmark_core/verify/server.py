"""Reference server: expose a checkpoint as the suspect HTTP API (``xmark serve-model``).

The format is documented in :mod:`xmark_core.verify.wire`.  The server is generic over
the task: a :class:`ModelService` answers ``/info`` and ``/predict``;
:class:`ClassifierService` returns class probabilities (or labels only),
:class:`SegmentationService` returns per-pixel probability maps, so a StealthMark
segmenter (checkpoint kind ``"segmenter"``) is served by the same app.

Bound to 127.0.0.1 by default: it is a demo and test fixture, not a hardened service.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from torch import nn

from xmark_core.verify.suspects import prepare_images
from xmark_core.verify.wire import API_VERSION, decode_array, encode_array

MAX_REQUEST_PIXELS = 64 * 2048 * 2048  # decoded float32: 1 GiB at most per request


class ModelService:
    """What the app serves: metadata for ``/info`` and a ``predict`` for ``/predict``.

    Subclasses set ``task`` and ``output`` and implement :meth:`predict`, which takes
    (N, S, S) float32 images already resized to ``input_size`` and returns the JSON
    fields of the answer.
    """

    task = "classification"
    output = "proba"

    def __init__(self, model: nn.Module, classes: list[str] | None, input_size: int | None,
                 model_id: str, model_sha256: str | None = None, max_batch: int = 256,
                 device: str | torch.device | None = None):
        from xmark_core.device import get_device

        self.device = get_device(str(device)) if device is not None else get_device()
        self.model = model.to(self.device).eval()
        self.classes = classes
        self.input_size = input_size
        self.model_id = model_id
        self.model_sha256 = model_sha256
        self.max_batch = max_batch
        self.lock = threading.Lock()  # one forward pass at a time; torch modules are not re-entrant

    def info(self) -> dict[str, Any]:
        return {"api": API_VERSION, "task": self.task, "output": self.output,
                "classes": self.classes, "input_size": self.input_size, "model_id": self.model_id,
                "model_sha256": self.model_sha256, "max_batch": self.max_batch}

    @torch.no_grad()
    def forward(self, x: np.ndarray) -> torch.Tensor:
        with self.lock:
            return self.model(torch.from_numpy(x[:, None]).to(self.device)).float().cpu()

    def predict(self, x: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError


class ClassifierService(ModelService):
    """Softmax probabilities of a classifier returning logits; ``labels_only`` hides them."""

    def __init__(self, *args: Any, labels_only: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.output = "label" if labels_only else "proba"

    def predict(self, x: np.ndarray) -> dict[str, Any]:
        p = torch.softmax(self.forward(x), dim=1).double().numpy()
        if self.output == "label":
            return {"labels": p.argmax(axis=1).tolist()}
        return {"probabilities": p.tolist()}


class SegmentationService(ModelService):
    """Per-pixel probability maps of a segmenter returning logits (N, C, H, W).

    ``activation`` is "sigmoid" (independent masks, the default) or "softmax" (one label
    per pixel); the segmentation owner picks what their model needs.
    """

    task = "segmentation"
    output = "proba_map"

    def __init__(self, *args: Any, activation: str = "sigmoid", **kwargs: Any):
        super().__init__(*args, **kwargs)
        if activation not in ("sigmoid", "softmax"):
            raise ValueError("activation must be 'sigmoid' or 'softmax'")
        self.activation = activation

    def predict(self, x: np.ndarray) -> dict[str, Any]:
        z = self.forward(x)
        p = torch.sigmoid(z) if self.activation == "sigmoid" else torch.softmax(z, dim=1)
        return {"probability_maps": [encode_array(m) for m in p.numpy()]}


def service_from_checkpoint(path: str | Path, labels_only: bool = False, model_id: str | None = None,
                            device: str | torch.device | None = None, max_batch: int = 256) -> ModelService:
    """Load a checkpoint (safely) and wrap it in the service for its kind.

    Parameters
    ----------
    path : X-Mark checkpoint or TorchScript archive
    labels_only : serve top-1 labels instead of probabilities (classifiers)
    model_id : name reported by ``/info`` (default: file name + first 12 hex of its hash)
    """
    from xmark_core.errors import CheckpointError
    from xmark_core.nets.checkpoint import load_checkpoint

    loaded = load_checkpoint(path, device=device)
    mid = model_id or f"{Path(path).name}@{loaded.sha256[:12]}"
    args = (loaded.model, loaded.classes, loaded.input_size, mid, loaded.sha256, max_batch, device)
    if loaded.kind == "segmenter":
        return SegmentationService(*args)
    if loaded.kind in ("classifier", "torchscript"):
        if not loaded.classes:
            raise CheckpointError(f"{path}: the checkpoint does not name its classes; cannot serve it")
        return ClassifierService(*args, labels_only=labels_only)
    raise CheckpointError(f"{path}: a {loaded.kind!r} checkpoint cannot be served as a suspect")


class _Image(BaseModel):
    shape: list[int]
    dtype: str
    data: str


class _PredictRequest(BaseModel):
    images: list[_Image]


def create_app(service: ModelService) -> FastAPI:
    """FastAPI app with ``GET /info`` and ``POST /predict`` (see :mod:`~xmark_core.verify.wire`)."""
    app = FastAPI(title="X-Mark suspect API", version=API_VERSION,
                  description="Black-box model API queried by `xmark verify`.")

    @app.get("/info")
    def info() -> dict[str, Any]:
        return service.info()

    @app.post("/predict")
    def predict(req: _PredictRequest) -> dict[str, Any]:
        n = len(req.images)
        if n == 0:
            raise HTTPException(422, "no images")
        if n > service.max_batch:
            raise HTTPException(413, f"{n} images in one request; at most {service.max_batch}")
        pixels = sum(int(np.prod(im.shape)) for im in req.images)
        if pixels > MAX_REQUEST_PIXELS:
            raise HTTPException(413, f"{pixels} pixels in one request; at most {MAX_REQUEST_PIXELS}")
        try:
            images = [decode_array(im.model_dump(), ndim=2) for im in req.images]
            x = prepare_images(images, service.input_size)
        except Exception as e:  # noqa: BLE001 - any decoding problem is the client's
            raise HTTPException(422, f"bad image: {e}") from e
        return {**service.predict(x), "classes": service.classes, "model_id": service.model_id}

    return app


def serve(service: ModelService, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level)
