"""Shared test set-up: one torch thread (2-core CI; oversubscription made tests 3-4x slower), deterministic seeds."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("XMARK_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def untrained_marker(eps: float, target: int = 1):
    """A Marker with random weights whose mark is visible (its output head scaled up):
    deterministic and non-trivial, for tests of the release mechanics, not of the mark."""
    from xmark_core.generator.model import Marker, build_generator
    from xmark_core.nets.classifiers import build_classifier

    torch.manual_seed(0)
    sur = build_classifier("smallcnn", 4, width=8)
    gen = build_generator(base=8, eps=eps, key=5)
    with torch.no_grad():
        gen.head.weight.mul_(30.0)
    return Marker(sur, gen, input_size=64, target=target, device=torch.device("cpu"))
