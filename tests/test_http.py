"""The HTTP suspect against the real reference server (in a thread and as the
`xmark serve-model` command) and against fake servers that time out, return garbage,
drop connections or answer with the wrong shape.  Everything stays on 127.0.0.1."""

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from torch import nn

from xmark_core.errors import SuspectError
from xmark_core.hashing import sha256_file
from xmark_core.nets import build_classifier, save_checkpoint
from xmark_core.verify.http_client import HttpSuspect
from xmark_core.verify.server import SegmentationService, create_app, service_from_checkpoint
from xmark_core.verify.suspects import CheckpointSuspect
from xmark_core.verify.wire import API_VERSION, decode_array, encode_array

CLASSES = ["a", "b", "c"]
INFO = {"api": API_VERSION, "task": "classification", "output": "proba", "classes": CLASSES,
        "input_size": 16, "model_id": "fake", "model_sha256": None, "max_batch": 64}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = build_classifier("smallcnn", 3, width=4).eval()
    path = tmp_path_factory.mktemp("srv") / "clf.pt"
    save_checkpoint(path, m, kind="classifier", arch="smallcnn", arch_kwargs=m.arch_kwargs,
                    classes=CLASSES, input_size=32)
    return path


class UvicornThread:
    """Serve a FastAPI app on a free 127.0.0.1 port in a background thread."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(400):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def served(ckpt):
    with UvicornThread(create_app(service_from_checkpoint(ckpt, device="cpu"))) as srv:
        yield srv.url


def images(n=5, size=40, seed=0):
    return np.random.default_rng(seed).random((n, size, size), dtype=np.float32)


# ----------------------------------------------------------------------------- real server


def test_http_suspect_equals_local_checkpoint(served, ckpt):
    with HttpSuspect(served, batch_size=2) as s:
        x = images()
        np.testing.assert_allclose(s.predict(x), CheckpointSuspect(ckpt, device="cpu").predict(x), atol=1e-6)
        assert s.n_requests == 1 + 3  # /info, then 5 images in batches of 2
        ident = s.identity()
        assert ident["kind"] == "http" and ident["location"] == served
        assert ident["sha256"] == sha256_file(ckpt) and ident["model_id"].startswith("clf.pt@")
        assert s.classes == CLASSES and s.input_size == 32


def test_server_rejects_bad_requests_without_retry(served):
    with HttpSuspect(served, retries=3, sleep=lambda _: None) as s:
        bad = {"images": [{"shape": [4, 4], "dtype": "float32", "data": "!!notbase64"}]}
        with pytest.raises(SuspectError, match="HTTP 422"):
            s._request("POST", "/predict", bad)
        assert s.n_retries == 0
        many = {"images": [encode_array(np.zeros((4, 4), np.float32))] * 300}
        with pytest.raises(SuspectError, match="HTTP 413"):
            s._request("POST", "/predict", many)
    r = httpx.post(served + "/predict", json={"images": [encode_array(np.full((8, 8), 0.5), "uint16")]})
    assert r.status_code == 200 and np.allclose(np.sum(r.json()["probabilities"]), 1)


def test_labels_only_and_segmentation_services(ckpt):
    with UvicornThread(create_app(service_from_checkpoint(ckpt, labels_only=True, device="cpu"))) as srv:
        s = HttpSuspect(srv.url)
        x = images(4)
        assert s.output == "label"
        np.testing.assert_array_equal(s.predict(x), CheckpointSuspect(ckpt).predict(x).argmax(1))
    seg = SegmentationService(nn.Conv2d(1, 2, 3, padding=1), ["lung", "heart"], 24, "seg", device="cpu")
    with UvicornThread(create_app(seg)) as srv:
        info = httpx.get(srv.url + "/info").json()
        assert info["task"] == "segmentation" and info["output"] == "proba_map"
        ans = httpx.post(srv.url + "/predict", json={"images": [encode_array(images(1)[0])]}).json()
        maps = decode_array(ans["probability_maps"][0])
        assert maps.shape == (2, 24, 24) and maps.min() >= 0 and maps.max() <= 1
        with pytest.raises(SuspectError, match="not a classifier"):
            HttpSuspect(srv.url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_model_command(ckpt):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xmark_core.cli", "serve-model", str(ckpt), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to 60 s on a loaded machine
            if proc.poll() is not None:
                pytest.fail(f"serve-model exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(url + "/info", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        s = HttpSuspect(url)
        x = images(3)
        np.testing.assert_allclose(s.predict(x), CheckpointSuspect(ckpt).predict(x), atol=1e-6)
        assert s.identity()["sha256"] == sha256_file(ckpt)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ----------------------------------------------------------------------------- fake servers


class FakeServer:
    """A stdlib HTTP server whose /predict behaviour is scripted per request number."""

    def __init__(self, predict, info=None):
        calls = self.calls = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body, headers=()):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, INFO if info is None else info)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls.append(len(body["images"]))
                predict(self, len(calls), len(body["images"]))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def ok(h, k, n):
    h._send(200, {"probabilities": [[0.2, 0.3, 0.5]] * n, "model_id": "fake"})


def drop(h, k, n):
    h.close_connection = True
    h.connection.shutdown(socket.SHUT_RDWR)


class Sleeps(list):
    def __call__(self, s):
        self.append(s)


def test_timeouts_are_retried_then_reported():
    def slow(h, k, n):
        time.sleep(0.8)
        ok(h, k, n)

    with FakeServer(slow) as srv:
        sleeps = Sleeps()
        s = HttpSuspect(srv.url, timeout=0.2, retries=2, backoff=0.01, sleep=sleeps)
        with pytest.raises(SuspectError, match="timed out") as e:
            s.predict(images(2))
        assert "3 attempts" in str(e.value) and sleeps == [0.01, 0.02]


def test_dropped_connections_are_retried_with_backoff():
    with FakeServer(lambda h, k, n: drop(h, k, n) if k <= 2 else ok(h, k, n)) as srv:
        sleeps = Sleeps()
        s = HttpSuspect(srv.url, retries=3, backoff=0.5, sleep=sleeps)
        p = s.predict(images(3))
        assert p.shape == (3, 3) and s.n_retries == 2 and sleeps == [0.5, 1.0]
    with FakeServer(drop) as srv:
        s = HttpSuspect(srv.url, retries=1, backoff=0.0, sleep=Sleeps())
        with pytest.raises(SuspectError, match="connection failed"):
            s.predict(images(1))
        assert len(srv.calls) == 2


def test_retry_after_and_server_errors():
    def busy(h, k, n):
        if k == 1:
            h._send(503, {"detail": "overloaded"}, [("Retry-After", "3")])
        else:
            ok(h, k, n)

    with FakeServer(busy) as srv:
        sleeps = Sleeps()
        s = HttpSuspect(srv.url, backoff=0.1, sleep=sleeps)
        assert s.predict(images(1)).shape == (1, 3) and sleeps == [3.0]
    with FakeServer(lambda h, k, n: h._send(400, {"detail": "image too small"})) as srv:
        s = HttpSuspect(srv.url, sleep=Sleeps())
        with pytest.raises(SuspectError, match="HTTP 400: image too small"):
            s.predict(images(1))
        assert len(srv.calls) == 1  # a client error is not retried


@pytest.mark.parametrize("answer, msg", [
    (b"<html>oops</html>", "not JSON"),
    ({"probs": [[1, 0, 0]]}, "lacks 'probabilities'"),
    ([[0.2, 0.3, 0.5]], "JSON object"),
    ({"probabilities": [[0.2, 0.3, 0.5]]}, "expected 2 rows"),
    ({"probabilities": [[0.5, 0.5]] * 2}, "3 probabilities per row"),
    ({"probabilities": [[2.0, -1.0, 0.0]] * 2}, r"\[0, 1\]"),
    ({"probabilities": [[1.0, 2.0, 3.0]] * 2}, r"\[0, 1\]"),
    ({"probabilities": [[0.1, 0.1, 0.1]] * 2}, "sums to"),
    ({"probabilities": [[0.2, 0.3, 0.5]] * 2, "model_id": "other"}, "model_id changed"),
])
def test_malformed_answers_are_clear_errors(answer, msg):
    with FakeServer(lambda h, k, n: h._send(200, answer)) as srv:
        s = HttpSuspect(srv.url, sleep=Sleeps())
        with pytest.raises(SuspectError, match=msg):
            s.predict(images(2))
        assert len(srv.calls) == 1


@pytest.mark.parametrize("info, msg", [
    ({**INFO, "api": "other/9"}, "is not"),
    ({**INFO, "output": "logits"}, "output"),
    ({**INFO, "classes": None}, "does not name the classes"),
    ({**INFO, "input_size": -3}, "input_size"),
    ([1, 2], "JSON object"),
])
def test_malformed_info_is_a_clear_error(info, msg):
    with FakeServer(ok, info=info) as srv, pytest.raises(SuspectError, match=msg):
        HttpSuspect(srv.url, sleep=Sleeps())


def test_rate_limit_and_unreachable_server():
    class Clock(Sleeps):  # time advances only when the client sleeps
        def now(self):
            return sum(self)

    with FakeServer(ok) as srv:
        clock = Clock()
        s = HttpSuspect(srv.url, rate_limit=10, batch_size=1, sleep=clock, clock=clock.now)
        s.predict(images(3))
        # /info + 3 requests: every request after the first waited for its 0.1 s slot.
        assert clock == pytest.approx([0.1, 0.1, 0.1])
    port = _free_port()  # nothing listens there
    with pytest.raises(SuspectError, match="connection failed"):
        HttpSuspect(f"http://127.0.0.1:{port}", retries=1, backoff=0, sleep=Sleeps())


def test_classes_mismatch_and_labels_answers():
    with FakeServer(ok) as srv, pytest.raises(SuspectError, match="expected"):
        HttpSuspect(srv.url, classes=["x", "y", "z"])
    info = {**INFO, "output": "label"}
    with FakeServer(lambda h, k, n: h._send(200, {"labels": ["c", 0][:n]}), info=info) as srv:
        s = HttpSuspect(srv.url)
        np.testing.assert_array_equal(s.predict(images(2)), [2, 0])
