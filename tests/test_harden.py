"""Hardening (xmark_core.harden): the PSNR floor it shares with the mark, that it fools the
owner's clean models through their resize, determinism, the owner record, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import untrained_marker

from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import check_commitment, embed_release, load_owner_record
from xmark_core.errors import CheckpointError, DataError
from xmark_core.generator.model import build_generator
from xmark_core.harden import (
    HardenConfig,
    HardenedMarker,
    HardenModel,
    _fit_scale,
    _weights,
    harden,
    load_harden_models,
)
from xmark_core.nets import build_classifier, save_checkpoint
from xmark_core.nets.train import TrainConfig, predict_proba, train_classifier
from xmark_core.quality import psnr, ssim
from xmark_core.report import check_owner_record, hardening_text

TARGET = 1


def _noise_mark(images: np.ndarray, db: float, seed: int = 0) -> np.ndarray:
    """Images plus Gaussian noise of about ``db`` PSNR: a stand-in mark of known energy."""
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0, 10 ** (-db / 20), images.shape).astype(np.float32), 0, 1)


@pytest.fixture(scope="module")
def clean_model():
    """A small classifier really trained on 32 px phantoms (it calls target images the target)."""
    X, y = to_arrays(PhantomDataset(400, size=32, seed=0), 32)
    res = train_classifier(X, y, list(FINDINGS), TrainConfig(input_size=32, epochs=6, seed=0,
                                                             arch_kwargs={"width": 8}))
    return res.model.eval()


@pytest.fixture(scope="module")
def target_images(clean_model):
    """128 px target-class images the clean model, at its 32 px, calls the target most surely."""
    ds = PhantomDataset(160, size=128, seed=5)
    X, y = to_arrays(ds, 128)
    X = X[y == TARGET][:, 0]
    p = predict_proba(clean_model, to_arrays(ds, 32)[0][y == TARGET])[:, TARGET]
    return X[np.argsort(-p)[:12]]


def test_hardening_fools_the_model_through_its_resize_within_the_floor(clean_model, target_images):
    X = target_images
    marked = _noise_mark(X, 45.0)  # room for a hardening about twice the mark's energy
    out = harden(X, marked, [HardenModel(clean_model, 32)], TARGET, HardenConfig(psnr_floor=40.0, ssim_floor=None))

    def p_target(images):
        return predict_proba(clean_model, to_arrays_like(images, 32))[:, TARGET]

    before, after = p_target(marked), p_target(out)
    assert before.mean() > 0.8  # the clean model is sure of these marked images
    assert after.mean() < 0.5 * before.mean()  # measured: 0.84 -> 0.29 (at a 42 dB floor, 0.56)
    q = np.array([psnr(a, b) for a, b in zip(X, out)])
    assert q.min() >= 40.0 - 1e-3 and q.max() < 40.3  # the budget is spent, and never overspent
    # the mark itself is still there (about sqrt(1/3) of the energy): added to, not swapped
    assert np.mean([np.corrcoef((m - x).ravel(), (o - x).ravel())[0, 1] for x, m, o in zip(X, marked, out)]) > 0.4


def test_the_ssim_floor_scales_the_hardening_down(clean_model, target_images):
    X = target_images[:6]
    marked = _noise_mark(X, 45.0)
    model = [HardenModel(clean_model, 32)]
    loose = harden(X, marked, model, TARGET, HardenConfig(psnr_floor=40.0, ssim_floor=None, steps=8))
    s_loose = np.array([ssim(a, b) for a, b in zip(X, loose)])
    s_mark = np.array([ssim(a, b) for a, b in zip(X, marked)])
    floor = float(np.round((s_loose.mean() + s_mark.min()) / 2, 4))  # between the two: binds, leaves room
    assert s_loose.max() < floor < s_mark.min()
    tight = harden(X, marked, model, TARGET, HardenConfig(psnr_floor=40.0, ssim_floor=floor, steps=8))
    s_tight = np.array([ssim(a, b) for a, b in zip(X, tight)])
    assert s_tight.min() >= floor and s_tight.max() < floor + 2e-3  # met, with little left unspent
    assert np.all([psnr(a, b) > psnr(a, c) for a, b, c in zip(X, tight, loose)])  # less added
    # a mark already below the SSIM floor gets nothing added
    np.testing.assert_array_equal(
        harden(X, marked, model, TARGET, HardenConfig(psnr_floor=40.0, ssim_floor=s_mark.max() + 1e-4, steps=2)),
        marked)


def test_contrast_weighting_spends_the_same_energy_for_less_ssim(clean_model, target_images):
    X = target_images[:6]
    marked = _noise_mark(X, 45.0)
    model = [HardenModel(clean_model, 32)]
    out = {w: harden(X, marked, model, TARGET, HardenConfig(psnr_floor=40.0, ssim_floor=None, weighting=w, steps=8))
           for w in ("flat", "contrast")}
    ps = {w: np.mean([psnr(a, b) for a, b in zip(X, o)]) for w, o in out.items()}
    ss = {w: np.mean([ssim(a, b) for a, b in zip(X, o)]) for w, o in out.items()}
    assert abs(ps["flat"] - ps["contrast"]) < 0.05  # both spend the PSNR budget
    assert ss["contrast"] > ss["flat"] + 1e-3
    # the weights: mean square 1, larger where the image has structure than in the flat background
    w = _weights(torch.from_numpy(X[:2, None]), "contrast")
    assert torch.allclose(w.pow(2).mean(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)
    assert float(w[0, 0, :4, :4].mean()) < float(w[0, 0].max()) / 3


def to_arrays_like(images: np.ndarray, size: int) -> np.ndarray:
    from xmark_core.data.base import resize

    return np.stack([resize(im, size) for im in images])[:, None]


def test_hardening_leaves_the_callers_models_as_they_were(clean_model, target_images):
    clean_model.train()
    flags = [p.requires_grad for p in clean_model.parameters()]
    before = {k: v.clone() for k, v in clean_model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in clean_model.parameters()]
    harden(target_images[:2], _noise_mark(target_images[:2], 44.0), [HardenModel(clean_model, 32)], TARGET,
           HardenConfig(steps=2))
    assert clean_model.training and [p.requires_grad for p in clean_model.parameters()] == flags
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad)  # no gradient added to the weights
               for g, p in zip(grads, clean_model.parameters()))
    assert all(torch.equal(before[k], v) for k, v in clean_model.state_dict().items())  # BN stats too
    clean_model.eval()


def test_no_room_left_means_no_hardening(clean_model, target_images):
    X = target_images[:4]
    marked = _noise_mark(X, 41.0)  # the mark alone is below the floor
    out = harden(X, marked, [HardenModel(clean_model, 32)], TARGET, HardenConfig(psnr_floor=42.0, steps=3))
    np.testing.assert_array_equal(out, marked)


def test_hardening_is_deterministic_and_independent_of_batching(clean_model, target_images):
    X = target_images[:7]
    marked = _noise_mark(X, 44.0)
    models = [HardenModel(clean_model, 32), HardenModel(clean_model, 48)]  # two input sizes
    cfg = HardenConfig(steps=4, batch_size=4)
    whole = harden(X, marked, models, TARGET, cfg)
    np.testing.assert_array_equal(whole, harden(X, marked, models, TARGET, cfg))
    np.testing.assert_array_equal(whole[2:5], harden(X[2:5], marked[2:5], models, TARGET, cfg))


def test_fit_scale_keeps_mark_plus_hardening_on_the_budget():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(3, 50, generator=g)
    h = torch.randn(3, 50, generator=g) * torch.tensor([[0.01], [3.0], [10.0]])
    budget = (m * m).sum(1) * torch.tensor([2.0, 2.0, 0.5])  # the last: the mark alone overspends
    t = _fit_scale(m, h, budget)
    assert t[0] == 1.0  # a small hardening fits whole
    assert torch.isclose(((m[1] + t[1] * h[1]) ** 2).sum(), budget[1], rtol=1e-5)  # scaled to the edge
    assert 0 <= t[1] < 1 and t[2] == 0.0


def test_bad_input():
    net = build_classifier("smallcnn", 4, width=4)
    with pytest.raises(DataError, match="one shape"):
        harden(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)), [HardenModel(net, 8)], TARGET)
    with pytest.raises(DataError, match="at least one"):
        harden(np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), [], TARGET)
    with pytest.raises(DataError, match="steps"):
        HardenConfig(steps=0)
    with pytest.raises(DataError, match="weighting"):
        HardenConfig(weighting="saliency")
    with pytest.raises(DataError, match="ssim_floor"):
        HardenConfig(ssim_floor=1.5)


@pytest.fixture(scope="module")
def marker():
    return untrained_marker(eps=0.01, target=TARGET)


def test_hardened_release_records_its_hardening(tmp_path, marker, clean_model):
    ds = PhantomDataset(40, size=64, seed=3)
    hm = HardenedMarker(marker, [HardenModel(clean_model, 32, "clean smallcnn")], HardenConfig(steps=5))
    res = embed_release(ds, hm, TARGET, tmp_path / "h", rho=0.5)
    plain = embed_release(ds, marker, TARGET, tmp_path / "p", rho=0.5)
    rec, rec_plain = load_owner_record(res.owner_record_path), load_owner_record(plain.owner_record_path)
    assert "hardening" not in rec_plain  # an unhardened record keeps its shape
    h = rec["hardening"]
    assert h["psnr_floor"] == 42.0 and h["steps"] == 5 and h["models"][0]["name"] == "clean smallcnn"
    assert len(h["models"][0]["weights_sha256"]) == 64
    assert check_commitment(res.owner_record_path, tmp_path / "h" / "release")
    # same images marked; each hardened one within the floor and below its plain PSNR
    assert [m["path"] for m in rec["marked"]] == [m["path"] for m in rec_plain["marked"]]
    for a, b in zip(rec["marked"], rec_plain["marked"]):
        assert a["sha256"] != b["sha256"]
        if b["psnr"] >= 42.0:
            assert 42.0 - 1e-3 <= a["psnr"] < b["psnr"]
    # the verifier's owner check carries it to the evidence, and the report says it in words
    owner = check_owner_record(res.owner_record_path)
    assert owner["ok"] and owner["record_hardening"] == h and "record_hardening" not in check_owner_record(
        plain.owner_record_path)
    text = hardening_text(owner["record_hardening"])
    assert "clean smallcnn (32 px)" in text and "PSNR >= 42 dB and SSIM >= 0.99 per image" in text
    # a record whose hardening is edited no longer matches its commitment
    rec["hardening"]["psnr_floor"] = 30.0
    assert not check_commitment(rec)


def test_cli_embed_with_hardening(tmp_path, marker, capsys):
    from xmark_core.cli import main
    from xmark_core.hashing import sha256_file

    classes = list(FINDINGS)
    sur = build_classifier("smallcnn", 4, width=4).eval()
    save_checkpoint(tmp_path / "sur.pt", sur, kind="classifier", arch="smallcnn", arch_kwargs=sur.arch_kwargs,
                    classes=classes, input_size=64)
    gen = build_generator("unet", base=4, depth=2, eps=0.01, key=5).eval()
    save_checkpoint(tmp_path / "G.pt", gen, kind="generator", arch="unet", arch_kwargs=gen.arch_kwargs(),
                    input_size=64, extra={"target": TARGET, "input_size": 64,
                                          "surrogate_sha256": sha256_file(tmp_path / "sur.pt")})
    other = build_classifier("resnet18", 4).eval()
    save_checkpoint(tmp_path / "r18.pt", other, kind="classifier", arch="resnet18", arch_kwargs={},
                    classes=classes, input_size=32)
    base = ["embed", "--data", "phantom:16:64:0", "--surrogate", str(tmp_path / "sur.pt"), "--generator",
            str(tmp_path / "G.pt"), "--target", "1", "--rho", "0.5", "--json", "--harden-steps", "2"]
    assert main([*base, "--out", str(tmp_path / "out"), "--harden-with", "surrogate",
                 "--harden-with", str(tmp_path / "r18.pt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    rec = load_owner_record(tmp_path / "out")
    assert summary["commitment"] == rec["commitment"]
    names = [m["name"] for m in rec["hardening"]["models"]]
    assert names[0] == "surrogate" and names[1].startswith("resnet18")
    assert [m["input_size"] for m in rec["hardening"]["models"]] == [64, 32]
    assert rec["hardening"]["models"][1]["sha256"] == sha256_file(tmp_path / "r18.pt")
    assert "note:" not in capsys.readouterr().err  # every marked image had room
    # floors that leave no room (SSIM 1: any change is too much): nothing is added, and the user
    # is told what to change
    assert main([*base, "--out", str(tmp_path / "full"), "--harden-with", "surrogate", "--harden-ssim", "1"]) == 0
    err = capsys.readouterr().err
    n = len(rec["marked"])
    assert f"hardening changed 0 of {n} marked images" in err and "--eps" in err
    assert main([*base[:-2], "--out", str(tmp_path / "plain")]) == 0  # the same without hardening
    assert ([m["sha256"] for m in load_owner_record(tmp_path / "full")["marked"]]
            == [m["sha256"] for m in load_owner_record(tmp_path / "plain")["marked"]])
    # a generator is not a clean classifier to harden against: refused with the reason
    assert main([*base, "--out", str(tmp_path / "bad"), "--harden-with", str(tmp_path / "G.pt")]) != 0
    assert "clean classifiers" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="classes"):
        wrong = build_classifier("smallcnn", 3, width=4).eval()
        save_checkpoint(tmp_path / "w.pt", wrong, kind="classifier", arch="smallcnn", arch_kwargs=wrong.arch_kwargs,
                        classes=["a", "b", "c"], input_size=32)
        load_harden_models([str(tmp_path / "w.pt")], marker, classes)
