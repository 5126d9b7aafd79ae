"""A suspect behind a remote HTTP API (format: :mod:`xmark_core.verify.wire`).

Network faults are expected from a model someone else runs: every request has a
timeout, transient failures (timeouts, dropped connections, 429, 5xx) are retried with
exponential backoff, requests are rate-limited, and every answer is validated before it
can enter the evidence -- a malformed one raises :class:`~xmark_core.errors.SuspectError`
saying what was wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np

from xmark_core.errors import SuspectError
from xmark_core.verify.suspects import check_labels, check_probabilities, prepare_images
from xmark_core.verify.wire import API_VERSION, encode_array

RETRY_STATUS = {429, 500, 502, 503, 504}


class HttpSuspect:
    """Query a classifier over HTTP.

    Parameters
    ----------
    url : base URL of the API (``/info`` and ``/predict`` are appended)
    input_size : override the side reported by ``/info`` (queries are resized to it
        before sending)
    classes : expected class names; must match ``/info`` when it reports them
    timeout : seconds for each request (connect, read, write)
    retries : extra attempts after a transient failure
    backoff : first retry delay in seconds; doubles each retry, capped at ``max_backoff``
    rate_limit : at most this many requests per second (None: no limit)
    batch_size : images per ``/predict`` request (also capped by the server's ``max_batch``)
    headers : extra HTTP headers (e.g. an API key)
    transport : an ``httpx`` transport (tests)
    sleep, clock : the sleep and monotonic-clock functions (tests)
    """

    def __init__(self, url: str, input_size: int | None = None, classes: Sequence[str] | None = None,
                 timeout: float = 30.0, retries: int = 3, backoff: float = 0.5,
                 max_backoff: float = 8.0, rate_limit: float | None = None, batch_size: int = 32,
                 headers: dict[str, str] | None = None, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.url = url.rstrip("/")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.min_interval = 1.0 / rate_limit if rate_limit else 0.0
        self._sleep, self._clock = sleep, clock
        self._last_request = -np.inf
        self.n_requests = 0
        self.n_retries = 0
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers,
                                    transport=transport, follow_redirects=False)
        try:
            self.info = self._get_info()
        except BaseException:
            self._client.close()
            raise
        self.output = self.info["output"]
        remote = self.info.get("classes")
        if classes is not None and remote is not None and list(classes) != list(remote):
            raise SuspectError(f"{self.url}: /info reports classes {remote}, expected {list(classes)}")
        self.classes = [str(c) for c in (remote if remote is not None else classes or [])]
        if not self.classes:
            raise SuspectError(f"{self.url}: /info does not name the classes; pass classes (CLI: --classes)")
        self.input_size = input_size or self.info.get("input_size")
        self.batch_size = max(1, min(batch_size, int(self.info.get("max_batch") or batch_size)))

    # ------------------------------------------------------------------ transport

    def _wait_rate(self) -> None:
        wait = self._last_request + self.min_interval - self._clock()
        if wait > 0:
            self._sleep(wait)
        self._last_request = self._clock()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay = self.backoff * 2**attempt
        if response is not None and "retry-after" in response.headers:
            try:
                delay = max(delay, float(response.headers["retry-after"]))
            except ValueError:
                pass
        return min(delay, self.max_backoff)

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        """One API call with retries; returns the decoded JSON body."""
        where = f"{method} {self.url}{path}"
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                self.n_retries += 1
            self._wait_rate()
            self.n_requests += 1
            response = None
            try:
                response = self._client.request(method, self.url + path, json=body)
            except httpx.TimeoutException as e:
                last = f"timed out ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"connection failed ({type(e).__name__}: {e})"
            else:
                if response.status_code in RETRY_STATUS:
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                elif response.status_code >= 400:
                    raise SuspectError(f"{where}: HTTP {response.status_code}: {_detail(response)}")
                else:
                    try:
                        return response.json()
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise SuspectError(
                            f"{where}: the answer is not JSON ({e}); first bytes: {response.content[:80]!r}"
                        ) from e
            if attempt < self.retries:
                self._sleep(self._delay(attempt, response))
        raise SuspectError(f"{where}: no valid answer after {self.retries + 1} attempts; last: {last}")

    # ------------------------------------------------------------------ API

    def _info_object(self) -> tuple[dict[str, Any], str]:
        """``GET /info`` checked to be a JSON object of this API version; and its URL (for
        errors). Subclasses for other tasks check the rest."""
        info = self._request("GET", "/info")
        where = f"{self.url}/info"
        if not isinstance(info, dict):
            raise SuspectError(f"{where}: expected a JSON object, got {type(info).__name__}")
        if info.get("api", API_VERSION) != API_VERSION:
            raise SuspectError(f"{where}: API {info.get('api')!r} is not {API_VERSION!r}")
        return info, where

    def _get_info(self) -> dict[str, Any]:
        info, where = self._info_object()
        if info.get("task", "classification") != "classification":
            raise SuspectError(f"{where}: task {info.get('task')!r} is not a classifier")
        info.setdefault("output", "proba")
        if info["output"] not in ("proba", "label"):
            raise SuspectError(f"{where}: output {info['output']!r} must be 'proba' or 'label'")
        size = info.get("input_size")
        if size is not None and (not isinstance(size, int) or size < 1):
            raise SuspectError(f"{where}: input_size {size!r} is not a positive integer")
        classes = info.get("classes")
        if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
            raise SuspectError(f"{where}: classes must be a list of names")
        return info

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        x = prepare_images(images, self.input_size)
        out = [self._predict_batch(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out)

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        answer = self._request("POST", "/predict", {"images": [encode_array(im) for im in x]})
        where = f"{self.url}/predict"
        if not isinstance(answer, dict):
            raise SuspectError(f"{where}: expected a JSON object, got {type(answer).__name__}")
        model_id = answer.get("model_id")
        if model_id is not None and self.info.get("model_id") is not None and model_id != self.info["model_id"]:
            raise SuspectError(f"{where}: model_id changed from {self.info['model_id']!r} to {model_id!r} "
                               "during verification; the evidence would mix two models")
        if self.output == "proba":
            if "probabilities" not in answer:
                raise SuspectError(f"{where}: answer lacks 'probabilities' (keys: {sorted(answer)})")
            return check_probabilities(answer["probabilities"], len(x), len(self.classes), where)
        if "labels" not in answer:
            raise SuspectError(f"{where}: answer lacks 'labels' (keys: {sorted(answer)})")
        return check_labels(answer["labels"], len(x), self.classes, where)

    def identity(self) -> dict[str, Any]:
        return {"kind": "http", "location": self.url, "model_id": self.info.get("model_id"),
                "sha256": self.info.get("model_sha256"), "sha256_source": "reported by the API (/info)",
                "api": self.info.get("api", API_VERSION),
                "classes": self.classes, "input_size": self.input_size, "output": self.output}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSuspect:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])[:500]
    except ValueError:
        pass
    return response.text[:500]
