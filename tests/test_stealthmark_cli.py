"""`xmark seg train|verify` plumbing, checkpoints, the owner record and the HTTP suspect
(tiny budgets: these check the wiring, tests/test_stealthmark.py checks the statistics)."""

import json

import numpy as np
import pytest

from xmark_core.cli import main
from xmark_core.errors import DataError
from xmark_core.stealthmark.data import load_seg_folder, open_seg_data
from xmark_core.stealthmark.mark import SegMark, load_owner_record, save_owner_record
from xmark_core.stealthmark.suspects import CheckpointSegSuspect, http_seg_suspect


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    rc = main(["seg", "train", "--data", "phantom:16:64", "--out", str(out), "--claim", "XMARK:T1",
               "--key", "cli-key", "--epochs", "1", "--batch-size", "8", "--base", "4", "--depth", "2", "--json"])
    assert rc == 0
    return out


def test_train_writes_checkpoint_and_owner_record(trained, capsys):
    rec = json.loads((trained / "owner_record.json").read_text())
    assert rec["mark"]["claim"] == "XMARK:T1" and rec["input_size"] == 64
    owner = load_owner_record(trained / "owner_record.json")
    assert owner.commitment_ok() and owner.mark.key == "cli-key"
    s = CheckpointSegSuspect(trained / "model.pt")
    assert s.input_size == 64 and s.loaded.kind == "segmenter"
    p = s.predict(np.random.default_rng(0).random((2, 64, 64), dtype=np.float32))
    assert p.shape == (2, 3, 64, 64) and 0 <= p.min() and p.max() <= 1


def test_verify_command_writes_evidence(trained, tmp_path, capsys):
    capsys.readouterr()
    rc = main(["seg", "verify", "--suspect", str(trained / "model.pt"), "--owner-record",
               str(trained / "owner_record.json"), "--images", "phantom:4:64:99", "--queries", "100",
               "--detector-queries", "8", "--out", str(tmp_path / "ev"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verdict"] == "not verified"  # one epoch: no mark learned yet
    assert summary["owner_ok"] is True and summary["n_queries"] == 100
    ev = json.loads((tmp_path / "ev" / "evidence.json").read_text())
    assert ev["schema"] == "xmark-seg-evidence/1" and len(ev["picture"]["coef"]) == 21
    assert "cli-key" not in (tmp_path / "ev" / "evidence.json").read_text()
    assert (tmp_path / "ev" / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_edited_owner_record_is_caught(tmp_path):
    path = tmp_path / "rec.json"
    save_owner_record(path, SegMark("XMARK:T1", key="k"))
    rec = json.loads(path.read_text())
    rec["mark"]["claim"] = "XMARK:T2"
    path.write_text(json.dumps(rec))
    with pytest.raises(DataError, match="does not match its claim"):
        load_owner_record(path)


def test_http_segmentation_suspect_matches_local(trained):
    from test_http import UvicornThread  # the verify tests' in-thread uvicorn server

    from xmark_core.verify.server import create_app, service_from_checkpoint

    x = np.random.default_rng(1).random((3, 64, 64), dtype=np.float32)
    local = CheckpointSegSuspect(trained / "model.pt").predict(x)
    with UvicornThread(create_app(service_from_checkpoint(trained / "model.pt", device="cpu"))) as srv:
        remote = http_seg_suspect(srv.url)
        assert remote.input_size == 64 and remote.identity()["kind"] == "http-segmentation"
        np.testing.assert_allclose(remote.predict(x), local, atol=1e-5)


def test_folder_loader(tmp_path):
    import cv2

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    d = open_seg_data("phantom:3:32")
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"c{i}.png"), (d.images[i] * 255).astype(np.uint8))
        label = np.where(d.masks[i, 2], 2, np.where(d.masks[i, 0], 1, 0))  # label map: 1 lung, 2 heart
        cv2.imwrite(str(tmp_path / "masks" / f"c{i}.png"), label.astype(np.uint8))
    got = load_seg_folder(tmp_path, size=32)
    assert got.channels == ["label_1", "label_2"] and got.masks.shape == (3, 2, 32, 32)
    assert got.ids == ["images/c0.png", "images/c1.png", "images/c2.png"]
    np.testing.assert_array_equal(got.masks[:, 1], d.masks[:, 2])
    (tmp_path / "masks" / "c1.png").unlink()
    with pytest.raises(DataError, match="no mask c1.png"):
        load_seg_folder(tmp_path, size=32)
