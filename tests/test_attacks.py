"""Input transforms and model attacks of xmark_core.attacks (values, not just shapes)."""

import numpy as np
import pytest
import torch

from xmark_core import attacks
from xmark_core.nets.classifiers import build_classifier


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    smooth = np.linspace(0.2, 0.8, 64, dtype=np.float32)[None, :].repeat(64, 0)
    return np.stack([smooth, smooth.T, np.clip(smooth + rng.normal(0, 0.1, (64, 64)), 0, 1)]).astype(np.float32)


def test_resize_roundtrip_keeps_smooth_and_removes_fine_detail(images):
    out = attacks.resize_roundtrip(images, 0.5)
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.abs(out[0] - images[0]).max() < 0.02  # a ramp survives down/up-sampling
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    assert np.abs(attacks.resize_roundtrip(checker, 0.25) - 0.5).max() < 0.05  # finest pattern averages out
    assert attacks.resize_roundtrip(images[0], 1.0).shape == (64, 64)
    with pytest.raises(ValueError):
        attacks.resize_roundtrip(images, 0.0)


def test_jpeg_error_grows_as_quality_drops(images):
    err = [np.abs(attacks.jpeg(images, q) - images).mean() for q in (95, 50, 10)]
    assert err[0] < err[1] < err[2]
    assert err[0] < 0.01
    with pytest.raises(ValueError):
        attacks.jpeg(images, 0)


def test_blur_and_median_smooth_noise(images):
    noisy = images[2]
    for out in (attacks.gaussian_blur(noisy, 1.5), attacks.median_filter(noisy, 5)):
        assert out.shape == noisy.shape
        assert np.diff(out, axis=1).std() < 0.5 * np.diff(noisy, axis=1).std()
    np.testing.assert_array_equal(attacks.gaussian_blur(noisy, 0.0), noisy)
    with pytest.raises(ValueError):
        attacks.median_filter(noisy, 4)


def test_noise_has_requested_sigma_and_is_seeded(images):
    flat = np.full((2, 128, 128), 0.5, np.float32)
    a = attacks.gaussian_noise(flat, 0.05, seed=3)
    assert abs(float((a - flat).std()) - 0.05) < 0.003
    np.testing.assert_array_equal(a, attacks.gaussian_noise(flat, 0.05, seed=3))
    assert not np.array_equal(a, attacks.gaussian_noise(flat, 0.05, seed=4))
    assert a.min() >= 0 and a.max() <= 1


def test_registry_and_transformed_suspect(images):
    assert set(attacks.INPUT_ATTACKS) == {"resize_0.5", "resize_0.25", "jpeg", "blur", "noise", "median"}
    t = attacks.input_attack("jpeg", quality=30)
    np.testing.assert_array_equal(t(images), attacks.jpeg(images, 30))
    with pytest.raises(ValueError):
        attacks.input_attack("nope")

    class Echo:
        classes, input_size, output = ["a", "b"], 64, "proba"

        def predict(self, x):
            m = np.asarray(x).reshape(len(x), -1).mean(1)
            return np.stack([m, 1 - m], 1)

        def identity(self):
            return {"kind": "echo"}

    s = attacks.TransformedSuspect(Echo(), lambda x: np.zeros_like(x), "zero")
    assert s.classes == ["a", "b"] and s.output == "proba"
    np.testing.assert_array_equal(s.predict(images)[:, 0], 0.0)
    assert s.identity() == {"kind": "echo", "input_attack": "zero"}


def _toy(n=64, size=16, seed=0):
    """Two classes told apart by brightness: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = (0.3 + 0.4 * y[:, None, None, None] + rng.normal(0, 0.05, (n, 1, size, size))).clip(0, 1)
    return X.astype(np.float32), y


def _tiny():
    """conv -> ReLU -> global pool -> linear: the head structure fine-pruning expects, no BatchNorm."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 2),
    ).eval()


def test_fine_tune_changes_a_copy_and_learns():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X, y = _toy()
    steps = []
    tuned = attacks.fine_tune(model, X, y, epochs=8, lr=5e-2, batch_size=32,
                              progress=lambda d, t: steps.append((d, t)))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])  # the input model is untouched
    assert not tuned.training
    assert steps[-1] == (16, 16)
    with torch.no_grad():
        acc = (tuned(torch.from_numpy(X)).argmax(1).numpy() == y).mean()
        acc0 = (model(torch.from_numpy(X)).argmax(1).numpy() == y).mean()
    assert acc0 <= 0.6 and acc == 1.0
    with pytest.raises(ValueError):
        attacks.fine_tune(model, X[:0], y[:0])


def test_fine_tune_depends_on_its_seed_alone_not_on_the_global_rng():
    """smallcnn has dropout, which draws from the global RNG: the same seed must give the same
    weights whatever the process drew before, and leave the caller's RNG where it was."""
    torch.manual_seed(0)
    model = build_classifier("smallcnn", 2, width=2).eval()
    X, y = _toy(n=32)

    def tuned(seed):
        return attacks.fine_tune(model, X, y, epochs=2, lr=5e-2, batch_size=8, seed=seed).state_dict()

    torch.manual_seed(1)
    first = tuned(3)
    torch.rand(1000)  # other random work in between
    state = torch.get_rng_state()
    second = tuned(3)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    other = tuned(4)
    for k in first:
        torch.testing.assert_close(second[k], first[k], rtol=0, atol=0)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_fine_prune_zeroes_least_active_channels_exactly():
    model = build_classifier("smallcnn", 2, width=2).eval()  # the real head: last block -> pool -> fc
    X, _ = _toy(n=16)
    activity = attacks.channel_activity(model, X)
    assert activity.shape == (16,)
    pruned_model, pruned = attacks.fine_prune(model, X, fraction=0.25)
    assert len(pruned) == 4
    np.testing.assert_array_equal(pruned, np.sort(np.argsort(activity, kind="stable")[:4]))
    head = pruned_model.body.fc.weight.detach()
    assert torch.all(head[:, torch.as_tensor(pruned)] == 0)
    assert torch.count_nonzero(head) == head.numel() - 2 * 4
    # Zeroing the head's columns == zeroing the pooled channels.
    with torch.no_grad():
        feats = model.body.pool(model.body.features(model.norm(torch.from_numpy(X)))).flatten(1)
        feats[:, torch.as_tensor(pruned)] = 0
        torch.testing.assert_close(pruned_model(torch.from_numpy(X)), model.body.fc(feats))


def test_fine_prune_keeps_channels_pruned_while_fine_tuning():
    model = _tiny()
    X, y = _toy()
    net, pruned = attacks.fine_prune(model, X, fraction=0.5, y=y, finetune_epochs=3, lr=3e-2, batch_size=32)
    assert len(pruned) == 4
    assert torch.all(net[-1].weight[:, torch.as_tensor(pruned)] == 0)
    assert torch.count_nonzero(net[-1].weight) == 8  # the kept half changed, the pruned half stayed 0
    with pytest.raises(ValueError):
        attacks.fine_prune(model, X, fraction=0.5, finetune_epochs=1)
    with pytest.raises(ValueError):
        attacks.fine_prune(model, X, fraction=1.0)
