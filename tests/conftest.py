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
