"""The suspect HTTP API: one JSON format shared by the client and the reference server.

Wrap any real model endpoint to match this and ``xmark verify --suspect URL`` can query it.

API version ``xmark-suspect/1``
-------------------------------

``GET {base}/info`` -> 200::

    {"api": "xmark-suspect/1",
     "task": "classification",          # or "segmentation"
     "output": "proba",                 # "proba" | "label" | "proba_map" (segmentation)
     "classes": ["No Finding", "Cardiomegaly", ...],
     "input_size": 64,                  # side the model expects, or null (takes any size)
     "model_id": "my-model-v3",         # any stable name of the deployed model
     "model_sha256": "ab12...",         # hash of the weights file, or null if undisclosed
     "max_batch": 256}                  # most images accepted in one /predict

``POST {base}/predict`` with body::

    {"images": [{"shape": [H, W], "dtype": "float32", "data": "<base64>"}, ...]}

``data`` is the base64 of the image's raw bytes, C order, little-endian.  ``dtype`` is
``"float32"`` (intensities in [0, 1]; what X-Mark sends, no quantisation of the
watermark), ``"uint16"`` (scaled by 1/65535) or ``"uint8"`` (scaled by 1/255).  X-Mark
resizes queries to ``input_size`` before sending; a server also resizes any other size.

Response, 200, one row per image in request order::

    {"probabilities": [[p_1, ..., p_K], ...],   # output "proba": softmax, rows sum to 1
     "classes": [...], "model_id": "..."}
    {"labels": [2, "Cardiomegaly", ...], ...}    # output "label": index or class name
    {"probability_maps": [{"shape": [C, H, W], "dtype": "float32", "data": "<base64>"}],
     "classes": [...], "model_id": "..."}        # task "segmentation"

Errors: 4xx (bad request: the client does not retry) or 5xx / 429 (the client retries with
exponential backoff and honours ``Retry-After``), body ``{"detail": "..."}``.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

API_VERSION = "xmark-suspect/1"
DTYPES = {"float32": (np.dtype("<f4"), 1.0), "uint16": (np.dtype("<u2"), 65535.0),
          "uint8": (np.dtype("u1"), 255.0)}
MAX_SIDE = 8192


def encode_array(a: np.ndarray, dtype: str = "float32") -> dict[str, Any]:
    """Encode an array as ``{"shape", "dtype", "data"}``; float input in [0, 1] is scaled
    to the integer range for ``uint8`` / ``uint16``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}")
    np_dtype, scale = DTYPES[dtype]
    a = np.asarray(a)
    if scale != 1.0:
        a = np.round(np.clip(a, 0.0, 1.0) * scale)
    raw = np.ascontiguousarray(a.astype(np_dtype)).tobytes()
    return {"shape": list(a.shape), "dtype": dtype, "data": base64.b64encode(raw).decode("ascii")}


def decode_array(obj: Any, ndim: int | None = None) -> np.ndarray:
    """Inverse of :func:`encode_array`: float32 array (integer dtypes scaled to [0, 1]).

    Raises
    ------
    ValueError
        Missing keys, unknown dtype, bad base64, or a byte count that does not match the shape.
    """
    if not isinstance(obj, dict) or not {"shape", "dtype", "data"} <= obj.keys():
        raise ValueError('each array must be an object with "shape", "dtype" and "data"')
    shape, dtype, data = obj["shape"], obj["dtype"], obj["data"]
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {list(DTYPES)}")
    if (not isinstance(shape, list) or not all(isinstance(s, int) and 0 < s <= MAX_SIDE for s in shape)
            or (ndim is not None and len(shape) != ndim)):
        raise ValueError(f"shape {shape!r} must be a list of {ndim or 'N'} sizes in 1..{MAX_SIDE}")
    np_dtype, scale = DTYPES[dtype]
    try:
        raw = base64.b64decode(data, validate=True)
    except (ValueError, TypeError) as e:
        raise ValueError(f"data is not valid base64 ({e})") from e
    expected = int(np.prod(shape)) * np_dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"data has {len(raw)} bytes; shape {shape} of {dtype} needs {expected}")
    a = np.frombuffer(raw, dtype=np_dtype).reshape(shape).astype(np.float32)
    return a / np.float32(scale) if scale != 1.0 else a
