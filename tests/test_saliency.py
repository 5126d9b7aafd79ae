"""Saliency: range and shape at any resolution, EigenCAM sign, GradCAM under no_grad."""

import numpy as np
import pytest
import torch

from xmark_core import saliency
from xmark_core.data.base import resize, to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.nets import TrainConfig, build_classifier, train_classifier
from xmark_core.saliency import oriented_eigen_projection, saliency_maps


@pytest.fixture(scope="module")
def phantom_model():
    """A small CNN trained briefly on 64 px phantoms (the surrogate of the method, in miniature)."""
    ds = PhantomDataset(160, 64, seed=11)
    X, y = to_arrays(ds, 64)
    cfg = TrainConfig(epochs=12, lr=3e-3, batch_size=32, val_fraction=0.0, arch_kwargs={"width": 8}, seed=0)
    return train_classifier(X, y, ds.classes, cfg).model


def _blob_activations() -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.random((2, 16, 8, 8)).astype(np.float32) * 0.1
    a[:, :, 2:5, 3:6] += 1.0 + rng.random((2, 16, 3, 3)).astype(np.float32)  # features fire here
    return a


def test_projection_is_positive_where_features_fire():
    p = oriented_eigen_projection(_blob_activations())
    assert p.shape == (2, 8, 8)
    inside = np.zeros((8, 8), bool)
    inside[2:5, 3:6] = True
    for m in p:
        assert m[inside].min() > m[~inside].max()


def test_orientation_does_not_depend_on_svd_sign(monkeypatch):
    a = _blob_activations()
    expected = oriented_eigen_projection(a)
    svd = torch.linalg.svd

    def flipped(x, full_matrices=True):
        u, s, vh = svd(x, full_matrices=full_matrices)
        return -u, s, -vh

    monkeypatch.setattr(torch.linalg, "svd", flipped)
    np.testing.assert_allclose(oriented_eigen_projection(a), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["eigencam", "gradcam"])
def test_maps_in_unit_range_at_any_resolution(method):
    model = build_classifier("smallcnn", 3, width=4).eval()
    for images in (np.random.rand(2, 1, 64, 64), np.random.rand(2, 1, 97, 131), np.random.rand(3, 256, 256)):
        maps = saliency_maps(model, images.astype(np.float32), method=method, input_size=64, batch_size=2)
        assert maps.shape == (len(images), *images.shape[-2:]) and maps.dtype == np.float32
        assert maps.min() == 0.0 and maps.max() == 1.0
        for m in maps:
            assert m.min() == 0.0 and m.max() == pytest.approx(1.0)
    mixed = [np.random.rand(50, 70).astype(np.float32), np.random.rand(300, 200).astype(np.float32)]
    out = saliency_maps(model, mixed, method=method, input_size=64)
    assert [m.shape for m in out] == [(50, 70), (300, 200)]


def test_eigencam_is_positive_on_anatomy(phantom_model, monkeypatch):
    ds = PhantomDataset(16, 128, seed=99)
    recs = [ds[i] for i in range(len(ds))]
    images = np.stack([r.image for r in recs])
    anatomy = [r.meta["masks"]["left_lung"] | r.meta["masks"]["right_lung"] | r.meta["masks"]["heart"] for r in recs]
    ours = saliency_maps(phantom_model, images, input_size=64)
    # The same maps with the principal component's sign the other way round.
    monkeypatch.setattr(saliency, "oriented_eigen_projection", lambda a: -oriented_eigen_projection(a))
    flipped = saliency_maps(phantom_model, images, input_size=64)

    def contrast(maps):
        inside = np.array([m[a].mean() for m, a in zip(maps, anatomy)])
        outside = np.array([m[~a].mean() for m, a in zip(maps, anatomy)])
        return inside, outside

    inside, outside = contrast(ours)
    f_inside, f_outside = contrast(flipped)
    assert (inside > outside).mean() >= 0.9
    assert inside.mean() > 2 * outside.mean()
    assert (inside / outside > f_inside / f_outside).mean() >= 0.9  # the sign rule picks the anatomy


def test_saliency_is_resolution_consistent(phantom_model):
    full = PhantomDataset(4, 256, seed=5)
    images = np.stack([full[i].image for i in range(4)])
    small = np.stack([resize(im, 64) for im in images])
    big_maps = saliency_maps(phantom_model, images, input_size=64)
    small_maps = saliency_maps(phantom_model, small, input_size=64)
    for b, s in zip(big_maps, small_maps):
        assert np.corrcoef(resize(b, 64).ravel(), s.ravel())[0, 1] > 0.9


def test_gradcam_on_frozen_model_inside_no_grad(phantom_model):
    phantom_model.requires_grad_(False)
    phantom_model.train()
    x = np.stack([PhantomDataset(2, 64, seed=3)[i].image for i in range(2)])
    try:
        with torch.no_grad():
            g = saliency_maps(phantom_model, x, method="gradcam", target=1)
            e = saliency_maps(phantom_model, x, method="eigencam")
    finally:
        phantom_model.requires_grad_(True)
    assert phantom_model.training  # mode restored
    assert all(p.grad is None for p in phantom_model.parameters())
    for m in (*g, *e):
        assert m.min() == 0.0 and m.max() == pytest.approx(1.0) and m.std() > 0.05
    phantom_model.eval()


def test_cli_train_classifier_then_saliency(tmp_path, capsys):
    import json

    import cv2

    from xmark_core.cli import main
    from xmark_core.nets import load_checkpoint

    ckpt = tmp_path / "clf.pt"
    rc = main(["train-classifier", "--data", "phantom:40:64:0", "--epochs", "1", "--width", "4",
               "--test-fraction", "0.2", "--out", str(ckpt), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_train"] == 32 and summary["n_test"] == 8 and summary["test_metrics"]["n"] == 8
    loaded = load_checkpoint(ckpt)
    assert loaded.sha256 == summary["sha256"] and loaded.input_size == 64
    assert loaded.classes == summary["classes"] and loaded.extra["data"] == "phantom:40:64:0"

    out = tmp_path / "overlays"
    rc = main(["saliency", "--model", str(ckpt), "--data", "phantom:3:96:1", "--out", str(out),
               "--n", "2", "--method", "gradcam", "--json"])
    assert rc == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert sorted(p.name for p in out.iterdir()) == ["phantom-1-0.png", "phantom-1-1.png"]
    assert cv2.imread(files[0]).shape == (96, 96, 3)
    assert main(["saliency", "--model", str(tmp_path / "nope.pt"), "--data", "phantom:1", "--out", str(out)]) == 2


def test_a_map_does_not_depend_on_the_batch():
    """The shipped surrogate's convolutions round differently in a batch of one (oneDNN
    picks its kernels by batch size); with fixed_batch every pass has batch_size images, so
    an image's map, and the mark it gates, are the same bit for bit whatever batch it came in."""
    from xmark_core.app_support.demo import default_models_dir
    from xmark_core.nets.checkpoint import load_checkpoint

    model = load_checkpoint(default_models_dir() / "surrogate.pt").model
    x, _ = to_arrays(PhantomDataset(5, size=128, seed=4), 128)
    def maps(chunks):
        return np.concatenate([saliency_maps(model, x[a:b], input_size=64, batch_size=4, fixed_batch=True)
                               for a, b in chunks])

    together = maps([(0, 5)])
    assert np.array_equal(together, maps([(i, i + 1) for i in range(5)]))
    assert np.array_equal(together, maps([(0, 2), (2, 5)]))
