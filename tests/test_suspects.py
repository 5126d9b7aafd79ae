"""Suspect adapters: preprocessing at the suspect's input size, checkpoint / TorchScript
loading, refusal of unsafe pickles, labels-only view, validation of answers."""

import os
import pickle
import shlex

import numpy as np
import pytest
import torch
from torch import nn

from xmark_core.errors import CheckpointError, SuspectError
from xmark_core.hashing import sha256_file
from xmark_core.nets import build_classifier, save_checkpoint
from xmark_core.nets.checkpoint import export_torchscript
from xmark_core.verify.suspects import (
    CheckpointSuspect,
    Suspect,
    TorchSuspect,
    check_labels,
    check_probabilities,
    labels_only,
    open_suspect,
    prepare_images,
)

CLASSES = ["a", "b", "c"]


class ShapeSpy(nn.Module):
    """Logits from the mean intensity; records the input shapes it was given."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.0, 4.0, -4.0]))
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x.mean((1, 2, 3))[:, None] * self.w


@pytest.fixture()
def clf_ckpt(tmp_path):
    m = build_classifier("smallcnn", 3, width=4).eval()
    path = tmp_path / "clf.pt"
    save_checkpoint(path, m, kind="classifier", arch="smallcnn", arch_kwargs=m.arch_kwargs,
                    classes=CLASSES, input_size=32)
    return path, m


def test_torch_suspect_resizes_to_its_input_size():
    spy = ShapeSpy()
    s = TorchSuspect(spy, CLASSES, input_size=48, device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.random((100, 80), dtype=np.float32), rng.random((30, 30), dtype=np.float32)]
    p = s.predict(images)
    assert spy.shapes == [(2, 1, 48, 48)]
    assert p.shape == (2, 3) and np.allclose(p.sum(1), 1)
    # Brighter image -> larger logit for class "b": the model really saw each image.
    bright = s.predict([np.full((64, 64), 0.9, np.float32), np.full((64, 64), 0.1, np.float32)])
    assert bright[0, 1] > bright[1, 1]
    assert isinstance(s, Suspect)


def test_prepare_images_rejects_bad_input():
    with pytest.raises(SuspectError, match="0, 1"):
        prepare_images([np.full((8, 8), 2.0)], 8)
    with pytest.raises(SuspectError, match="differ in size"):
        prepare_images([np.zeros((8, 8)), np.zeros((9, 9))], None)
    with pytest.raises(SuspectError, match="no images"):
        prepare_images([], 8)
    assert prepare_images(np.zeros((3, 1, 16, 16)), 8).shape == (3, 8, 8)


def test_checkpoint_suspect_matches_in_process_model(clf_ckpt):
    path, m = clf_ckpt
    s = CheckpointSuspect(path, device="cpu")
    x = np.random.default_rng(1).random((5, 64, 64), dtype=np.float32)
    ref = TorchSuspect(m, CLASSES, 32, device="cpu").predict(x)
    np.testing.assert_allclose(s.predict(x), ref, atol=1e-6)
    ident = s.identity()
    assert ident["kind"] == "checkpoint" and ident["sha256"] == sha256_file(path)
    assert ident["input_size"] == 32 and ident["classes"] == CLASSES
    assert s.classes == CLASSES and s.input_size == 32 and s.output == "proba"


def test_torchscript_suspect(tmp_path, clf_ckpt):
    _, m = clf_ckpt
    ts = tmp_path / "suspect.ts"
    export_torchscript(ts, m, input_size=32, classes=CLASSES)
    s = open_suspect(ts)
    x = np.random.default_rng(2).random((4, 40, 40), dtype=np.float32)
    ref = TorchSuspect(m, CLASSES, 32, device="cpu").predict(x)
    np.testing.assert_allclose(s.predict(x), ref, atol=1e-5)
    assert s.identity()["format"] == "torchscript"


def test_checkpoint_without_classes_needs_them(tmp_path):
    m = build_classifier("smallcnn", 3, width=4)
    ts = tmp_path / "bare.ts"
    export_torchscript(ts, m, input_size=32)
    with pytest.raises(SuspectError, match="classes"):
        CheckpointSuspect(ts)
    assert CheckpointSuspect(ts, classes=CLASSES).classes == CLASSES


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_unsafe_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": _RunsShell(marker), "arch": "smallcnn"}, f)
    with pytest.raises(CheckpointError):
        CheckpointSuspect(bad)
    assert not marker.exists()
    whole = tmp_path / "whole.pt"
    torch.save(build_classifier("smallcnn", 3, width=4), whole)  # a pickled module needs code
    with pytest.raises(CheckpointError, match="refused"):
        open_suspect(whole)


def test_labels_only_view(clf_ckpt):
    path, _ = clf_ckpt
    s = CheckpointSuspect(path)
    lab = labels_only(s)
    x = np.random.default_rng(3).random((6, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(lab.predict(x), s.predict(x).argmax(1))
    assert lab.output == "label" and lab.identity()["labels_only"] is True
    assert labels_only(lab) is lab
    assert open_suspect(path, labels=True).output == "label"


def test_answer_validation():
    good = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(check_probabilities(good, 2, 3, "x"), good)
    rounded = np.array([[0.3333, 0.3333, 0.3333]])  # rounding by an API is accepted
    assert check_probabilities(rounded, 1, 3, "x").sum() == pytest.approx(1.0)
    for bad, msg in [(good[:1], "2 rows"), (good[:, :2], "3 probabilities"),
                     (good * 3, r"\[0, 1\]"), (np.array([[0.2, 0.2, 0.2]] * 2), "sums to"),
                     ([["a", "b", "c"]] * 2, "numeric"), (np.array([[np.nan, 0.5, 0.5]] * 2), "finite")]:
        with pytest.raises(SuspectError, match=msg):
            check_probabilities(bad, 2, 3, "x")
    np.testing.assert_array_equal(check_labels([0, "c", 1], 3, CLASSES, "x"), [0, 2, 1])
    for bad in ([0, 1], [0, 1, 3], [0, 1, "z"], [0, 1, True], "abc"):
        with pytest.raises(SuspectError):
            check_labels(bad, 3, CLASSES, "x")
