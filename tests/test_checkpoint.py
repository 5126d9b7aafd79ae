"""Checkpoints: exact round trips, TorchScript, and refusal of pickles that run code."""

import os
import pickle
import shlex
import zipfile

import numpy as np
import pytest
import torch

from xmark_core.errors import CheckpointError
from xmark_core.hashing import sha256_file
from xmark_core.nets import build_classifier, load_checkpoint, predict_proba, save_checkpoint
from xmark_core.nets.checkpoint import export_torchscript
from xmark_core.nets.train import TrainConfig

CLASSES = ["a", "b", "c"]


@pytest.fixture()
def model():
    m = build_classifier("smallcnn", 3, width=4)
    # Non-trivial BatchNorm statistics, so a lost buffer would change predictions.
    m.train()
    with torch.no_grad():
        m(torch.rand(8, 1, 32, 32))
    return m.eval()


def test_round_trip_identical_predictions(tmp_path, model):
    path = tmp_path / "clf.pt"
    cfg = TrainConfig(epochs=3, arch_kwargs={"width": 4})
    save_checkpoint(path, model, kind="classifier", arch="smallcnn", arch_kwargs=model.arch_kwargs,
                    classes=CLASSES, input_size=32, config=cfg, extra={"acc": np.float32(0.5)})
    loaded = load_checkpoint(path)
    x = torch.rand(6, 1, 32, 32)
    np.testing.assert_array_equal(predict_proba(model, x), predict_proba(loaded.model, x))
    assert loaded.kind == "classifier" and loaded.arch == "smallcnn"
    assert loaded.classes == CLASSES and loaded.input_size == 32
    assert loaded.config["epochs"] == 3 and loaded.config["aug"]["hflip"] is False
    assert loaded.extra == {"acc": 0.5}
    assert loaded.sha256 == sha256_file(path)
    assert not loaded.model.training
    # The file is a plain dict: torch's safe loader reads it without our code.
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"state_dict", "arch", "classes", "input_size", "config", "kind"}


def test_checkpoint_does_not_depend_on_the_layout_the_model_ran_in(tmp_path, model):
    """A Marker runs its nets channels-last on CPU; a checkpoint saved afterwards must hold
    the same tensors, strides included, as one saved before."""
    kw = dict(kind="classifier", arch="smallcnn", arch_kwargs=model.arch_kwargs, classes=CLASSES, input_size=32)
    save_checkpoint(tmp_path / "before.pt", model, **kw)
    model.to(memory_format=torch.channels_last)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    save_checkpoint(tmp_path / "after.pt", model, **kw)
    assert sha256_file(tmp_path / "after.pt") == sha256_file(tmp_path / "before.pt")


def test_equal_models_give_byte_identical_files(tmp_path, model):
    """Equal weights must give equal files, whatever the file is called: the owner record
    commits to the checkpoints' hashes, so a rebuild with the same seeds must reproduce it.
    (torch names an archive's root folder after the file it writes; ours wrote through a
    randomly named temporary file.)"""
    kw = dict(kind="classifier", arch="smallcnn", arch_kwargs=model.arch_kwargs, classes=CLASSES, input_size=32)
    save_checkpoint(tmp_path / "a.pt", model, **kw)
    save_checkpoint(tmp_path / "b.pt", model, **kw)
    assert sha256_file(tmp_path / "a.pt") == sha256_file(tmp_path / "b.pt")
    # TorchScript mangles class names per trace within one process, so two exports here differ
    # anyway; the file's name must still not be in the archive
    export_torchscript(tmp_path / "a.ts", model, input_size=32, classes=CLASSES)
    with zipfile.ZipFile(tmp_path / "a.ts") as z:
        assert {n.split("/", 1)[0] for n in z.namelist()} == {"archive"}


class _RunsShell:
    """A pickle payload that runs a shell command when unpickled (harmless: touches a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    # Positive control: the payload really executes under a plain unpickler.
    pickle.loads(pickle.dumps(_RunsShell(marker)))
    assert marker.exists()
    marker.unlink()

    as_torch = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "arch": "smallcnn", "payload": _RunsShell(marker)}, as_torch)
    as_pickle = tmp_path / "evil.pkl"
    as_pickle.write_bytes(pickle.dumps(_RunsShell(marker)))
    for path in (as_torch, as_pickle):
        with pytest.raises(CheckpointError, match="refused"):
            load_checkpoint(path)
    assert not marker.exists()


def test_whole_pickled_module_is_refused(tmp_path, model):
    path = tmp_path / "module.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError, match="needs to run code"):
        load_checkpoint(path)


def test_bad_files_raise_checkpoint_error(tmp_path, model):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(junk)
    bare = tmp_path / "bare.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(CheckpointError, match="which architecture"):
        load_checkpoint(bare)
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, model, kind="classifier", arch="smallcnn",
                    arch_kwargs={"num_classes": 3, "width": 8}, classes=CLASSES)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(wrong)
    with pytest.raises(CheckpointError, match="unknown checkpoint kind"):
        save_checkpoint(tmp_path / "x.pt", model, kind="mystery", arch="smallcnn", arch_kwargs={})


def test_torchscript_round_trip(tmp_path, model):
    path = tmp_path / "suspect.ts"
    export_torchscript(path, model, input_size=32, classes=CLASSES)
    loaded = load_checkpoint(path)
    assert loaded.kind == "torchscript"
    assert loaded.classes == CLASSES and loaded.input_size == 32
    x = torch.rand(5, 1, 32, 32)
    np.testing.assert_allclose(predict_proba(model, x), predict_proba(loaded.model, x), atol=1e-6)
