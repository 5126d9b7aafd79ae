"""Generator: quality, saliency confinement, specificity, keys, tiling, checkpoints.

A module fixture trains a real (tiny) surrogate and two generators on a 64 px phantom set.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.generator import losses as L
from xmark_core.generator.model import Marker, build_generator, load_marker, saliency_gate
from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
from xmark_core.nets.checkpoint import save_checkpoint
from xmark_core.nets.train import TrainConfig, predict_proba, train_classifier
from xmark_core.quality import psnr, ssim

TARGET = 1
SIZE = 64


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    ds = PhantomDataset(160, size=SIZE, seed=0)
    X, y = to_arrays(ds, SIZE)
    cls_cfg = TrainConfig(epochs=4, input_size=SIZE, seed=0, val_fraction=0.0, arch_kwargs={"width": 8})
    sur = train_classifier(X, y, list(ds.classes), cls_cfg).model
    gcfg = GeneratorTrainConfig(base=8, epochs=3, batch_size=32, key=1, seed=0)
    res = train_generator(sur, X, y, TARGET, gcfg)
    res2 = train_generator(sur, X, y, TARGET, GeneratorTrainConfig(base=8, epochs=3, batch_size=32, key=2, seed=1))
    Xq, _ = to_arrays(PhantomDataset(12, size=SIZE, seed=7), SIZE)
    dev = torch.device("cpu")
    return {
        "ds": ds, "sur": sur, "res": res, "classes": list(ds.classes), "Xq": Xq[:, 0],
        "marker": Marker(sur, res.generator, input_size=SIZE, target=TARGET, device=dev),
        "marker2": Marker(sur, res2.generator, input_size=SIZE, target=TARGET, device=dev),
    }


def test_history_logs_every_loss_term(trained):
    hist = trained["res"].history
    assert len(hist) == 3
    for key in ("eff_nontarget", "eff_target", "eff_scale", "ssim", "mse", "highfreq", "specificity",
                "carrier", "total", "asr", "psnr"):
        assert key in hist[-1] and np.isfinite(hist[-1][key]), key
    # the objective fell, and the net did not erode the key's carrier to buy quality
    assert hist[-1]["total"] < hist[0]["total"]
    assert hist[-1]["carrier"] < 0.01


def test_quality_bar(trained):
    x = trained["Xq"]
    xw = trained["marker"].mark(x)
    assert xw.shape == x.shape and xw.dtype == np.float32
    assert xw.min() >= 0.0 and xw.max() <= 1.0
    p = [psnr(a, b) for a, b in zip(x, xw)]
    s = [ssim(a, b) for a, b in zip(x, xw)]
    assert np.mean(p) >= 38.0 and np.min(p) >= 36.0, p
    assert np.mean(s) >= 0.97, s
    assert np.abs(xw - x).max() <= trained["res"].config.eps + 1e-6
    assert not np.array_equal(x, xw)  # there is a mark at all


def test_energy_inside_salient_region(trained):
    mk, x = trained["marker"], trained["Xq"]
    sal = mk.saliency(x)
    d = mk.perturbation(x, sal)
    shares = []
    for di, si in zip(d, sal):
        top = si >= np.quantile(si, 0.7)
        shares.append(float((di**2)[top].sum() / (di**2).sum()))
    assert np.mean(shares) >= 0.8 and np.min(shares) >= 0.7, shares


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_marks_are_sample_specific_and_deterministic(trained):
    mk, x = trained["marker"], trained["Xq"]
    d = mk.perturbation(x)
    corr = [_corr(d[i], d[j]) for i in range(len(d)) for j in range(i + 1, len(d))]
    # Each image gets its own carrier phase, so marks do not correlate on average; two
    # phases may fall close by chance, but no two different images share their mark.
    assert np.mean(corr) < 0.6 and np.max(corr) < 0.99, (np.mean(corr), np.max(corr))
    assert np.array_equal(d, mk.perturbation(x))  # same image, same key: same mark
    # Batch-independent bit for bit (every pass of the nets has the same size, short ones
    # padded: oneDNN takes other kernels for other batch sizes), so a release's bytes do not
    # depend on how the embedder batched them.
    assert np.array_equal(d[3], mk.perturbation(x[3])[0])
    assert np.array_equal(mk.mark(x[:5]), np.concatenate([mk.mark(x[:2]), mk.mark(x[2:3]), mk.mark(x[3:5])]))


def test_other_key_gives_other_mark(trained):
    x = trained["Xq"]
    d1, d2 = trained["marker"].perturbation(x), trained["marker2"].perturbation(x)
    corr = [_corr(a, b) for a, b in zip(d1, d2)]
    assert np.mean(corr) < 0.7, corr
    # the key enters the network: same weights, other key code -> other output
    g = trained["marker"].generator
    g_other = build_generator(**{**g.arch_kwargs(), "key": 99})
    state = {k: v for k, v in g.state_dict().items() if k != "key_code"}
    g_other.load_state_dict(state, strict=False)
    xt = torch.from_numpy(x[:2, None])
    s = torch.rand_like(xt)
    with torch.no_grad():
        assert not torch.allclose(g(xt, s), g_other(xt, s))


def test_marks_carry_the_key_carrier(trained):
    from xmark_core.generator.model import image_phase, key_carrier

    mk, x = trained["marker"], trained["Xq"]
    g = mk.generator
    sal = mk.saliency(x)
    d = mk.perturbation(x, sal)
    ph = torch.from_numpy(image_phase(x, g.key))
    ref = (key_carrier(g.key, g.carrier_cycles, SIZE, SIZE, ph) * g.gate(torch.from_numpy(sal)[:, None]))[:, 0]
    ref = ref.numpy()
    amp = (d * ref).sum((1, 2)) / (g.eps * (ref**2).sum((1, 2)))
    assert np.median(amp) > 0.5, amp
    # the carrier takes carrier_amp = 0.75 of eps and the net does not cancel it
    assert np.median(amp) > 0.7, amp
    # another key's carrier (other orientation) is absent from these marks
    other = key_carrier(g.key + 1, g.carrier_cycles, SIZE, SIZE, ph)[:, 0].numpy() * (ref != 0)
    amp_other = np.abs((d * other).sum((1, 2)) / (g.eps * (other**2).sum((1, 2))))
    assert np.median(amp_other) < 0.25, amp_other


def test_turned_marker_carries_the_carrier_at_the_turned_orientation(trained):
    """Marker.turned (the specificity controls): the same net and strength, the carrier rotated;
    the owner's marker is left untouched, and a generator without a carrier cannot be turned."""
    from xmark_core.errors import DataError
    from xmark_core.generator.model import carrier_orientation, image_phase, key_carrier

    mk, x = trained["marker"], trained["Xq"]
    g = mk.generator
    before = mk.mark(x)
    turned = mk.turned(30.0)
    sal = mk.saliency(x)
    d = turned.perturbation(x, sal)
    ph = torch.from_numpy(image_phase(x, g.key))
    gate = g.gate(torch.from_numpy(sal)[:, None])
    at = (key_carrier(g.key, g.carrier_cycles, SIZE, SIZE, ph, np.radians(30.0)) * gate)[:, 0].numpy()
    own = (key_carrier(g.key, g.carrier_cycles, SIZE, SIZE, ph) * gate)[:, 0].numpy()

    def amp(ref):
        return np.median(np.abs((d * ref).sum((1, 2)) / (g.eps * (ref**2).sum((1, 2)))))

    assert amp(at) > 0.7 and amp(own) < 0.25
    assert np.abs(d).max() <= g.eps + 1e-6 and turned.info["carrier_turn_deg"] == 30.0
    assert np.array_equal(mk.mark(x), before) and g.carrier_turn == 0.0  # the owner's is unchanged
    assert np.array_equal(mk.turned(0.0).mark(x), before)
    assert mk.turned(10.0).turned(5.0).info["carrier_turn_deg"] == 15.0  # turns add up
    assert carrier_orientation(g.key) == carrier_orientation(turned.key)
    plain = Marker(trained["sur"], build_generator("unet", base=4, depth=2), input_size=SIZE, target=TARGET,
                   device=torch.device("cpu"))
    with pytest.raises(DataError, match="no key carrier"):
        plain.turned(10.0)


def test_marker_runs_a_channels_last_copy_of_the_surrogate_on_cpu(trained):
    """The speed-up must not reach the caller's module: a benchmark goes on training generators
    against the same surrogate, and its numbers must not depend on having built a Marker."""
    sur, m = trained["sur"], trained["marker"]

    def conv(module):
        return next(c for c in module.modules() if isinstance(c, torch.nn.Conv2d) and c.in_channels > 1)

    assert conv(sur).weight.is_contiguous()
    assert conv(m.surrogate).weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv(m.surrogate).weight.is_contiguous()
    x = trained["Xq"][:4, None]
    np.testing.assert_allclose(predict_proba(m.surrogate, x), predict_proba(sur, x), atol=1e-6)
    again = Marker(m.surrogate, m.generator, input_size=SIZE, target=TARGET, device=torch.device("cpu"))
    assert again.surrogate is m.surrogate  # already in that layout: no second copy


def test_carrier_is_resolution_relative_and_phase_deterministic():
    import cv2

    from xmark_core.generator.model import image_phase, key_carrier

    ph = torch.tensor([0.3])
    c64 = key_carrier(7, 10.7, 64, 64, ph)[0, 0].numpy()
    c256 = key_carrier(7, 10.7, 256, 256, ph)[0, 0].numpy()
    down = cv2.resize(c256, (64, 64), interpolation=cv2.INTER_AREA)
    assert _corr(down, c64) > 0.9  # a resize maps the carrier onto the carrier
    assert abs(float(c64.std()) - 2**-0.5) < 0.05  # unit amplitude
    ims = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    p1, p2 = image_phase(ims, 5), image_phase(ims[::-1].copy(), 5)
    np.testing.assert_array_equal(p1, p2[::-1])  # per image, not per batch position
    assert len(set(p1.tolist())) == 3 and (p1 >= 0).all() and (p1 < 2 * np.pi).all()
    assert not np.array_equal(p1, image_phase(ims, 6))  # the key enters the phase


def test_tiled_matches_untiled_on_large_image(trained):
    import cv2

    big = cv2.resize(trained["Xq"][0], (333, 301), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mk = trained["marker"]
    whole = Marker(mk.surrogate, mk.generator, SIZE, tile=1024, device=torch.device("cpu"))
    tiled = Marker(mk.surrogate, mk.generator, SIZE, tile=128, overlap=48, device=torch.device("cpu"))
    a, b = whole.perturbation(big)[0], tiled.perturbation(big)[0]
    assert a.shape == big.shape
    eps = mk.generator.eps
    assert np.abs(a - b).max() < 0.05 * eps, np.abs(a - b).max() / eps
    # no seam: the tiled mark is as smooth across tile borders as elsewhere
    assert np.abs(np.diff(b, axis=1)).max() <= np.abs(np.diff(a, axis=1)).max() + 0.05 * eps


def test_decoder_convolves_before_upsampling_with_the_same_result(trained):
    """The decoder runs each 1x1 conv before the bilinear upsampling (cheaper); the two
    commute, so the mark equals the textbook order's. The weights are channels-last (faster
    CPU convolutions) and stay so through a state-dict load."""
    import torch.nn.functional as F

    gen = trained["marker"].generator
    assert gen.head.weight.is_contiguous(memory_format=torch.channels_last)
    # a checkpoint trained before the change must give the same mark
    fresh = build_generator(**gen.arch_kwargs())
    fresh.load_state_dict({k: v.contiguous() for k, v in gen.state_dict().items()})
    assert fresh.enc[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.from_numpy(trained["Xq"][:4, None].copy())
    s = torch.rand_like(x, generator=torch.Generator().manual_seed(0))
    c = gen.carrier(x)
    z = torch.cat([x * 2 - 1, s * 2 - 1, c], dim=1)
    skips = []
    with torch.no_grad():
        for i, block in enumerate(gen.enc):
            z = block(z if i == 0 else F.avg_pool2d(z, 2))
            skips.append(z)
        z = z + gen.key_proj(gen.key_code)[None, :, None, None]
        for up, dec, skip in zip(gen.up, gen.dec, reversed(skips[:-1])):
            z = up(F.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False))
            z = dec(torch.cat([z, skip], dim=1))
        textbook = gen.head(z)
        ours = fresh.residual(x, s, c)
    assert torch.allclose(ours, textbook, atol=1e-5, rtol=1e-4), float((ours - textbook).abs().max())
    assert float(textbook.abs().max()) > 1e-3  # not trivially zero


def test_work_size_marks_large_images_at_low_resolution(trained):
    import cv2

    big = cv2.resize(trained["Xq"][1], (256, 256), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mk = trained["marker"]
    m = Marker(mk.surrogate, mk.generator, SIZE, work_size=64, device=torch.device("cpu"))
    d = m.perturbation(big)[0]
    assert d.shape == (256, 256) and np.abs(d).max() <= mk.generator.eps + 1e-6
    # The image and its saliency both at the working size, the mark upsampled: exactly the
    # small image's own mark, stretched (a full-size saliency map shrunk would differ).
    small = mk.perturbation(cv2.resize(big, (64, 64), interpolation=cv2.INTER_AREA))[0]
    up = cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(d, np.clip(up, -mk.generator.eps, mk.generator.eps))
    back = cv2.resize(d, (64, 64), interpolation=cv2.INTER_AREA)
    assert _corr(back, small) > 0.9
    # Below the surrogate's input size the map comes from the full image, shrunk.
    coarse = Marker(mk.surrogate, mk.generator, SIZE, work_size=SIZE // 2, device=torch.device("cpu"))
    assert np.array_equal(coarse.perturbation(big), coarse.perturbation(big, coarse.saliency(big)))


def test_gate_and_losses_on_tensors():
    s = torch.linspace(0, 1, 64 * 64).view(1, 1, 64, 64)
    g = saliency_gate(s, area=0.25, temp=0.02)
    assert 0.2 < float((g > 0.5).float().mean()) < 0.3
    x = torch.rand(4, 1, 32, 32)
    assert float(L.ssim(x, x).min()) == pytest.approx(1.0, abs=1e-5)
    d = torch.randn(4, 1, 32, 32)
    smooth = torch.nn.functional.interpolate(torch.randn(4, 1, 4, 4), size=(32, 32), mode="bilinear")
    assert L.highfreq_loss(d, 1.0) > 10 * L.highfreq_loss(smooth, 1.0)
    same = torch.ones(4, 1, 8, 8) * torch.randn(1, 1, 8, 8)
    assert float(L.specificity_loss(same, 1.0, 0.5)) > 0.2
    assert float(L.specificity_loss(torch.randn(8, 1, 16, 16), 1.0, 0.5)) == 0.0
    r = L.random_rescale(x, 0.25, torch.Generator().manual_seed(0))
    assert r.shape == x.shape


def test_checkpoint_round_trip(trained, tmp_path):
    sur_path, gen_path = tmp_path / "sur.pt", tmp_path / "gen.pt"
    sur = trained["sur"]
    save_checkpoint(sur_path, sur, kind="classifier", arch=sur.arch, arch_kwargs=sur.arch_kwargs,
                    classes=trained["classes"], input_size=SIZE)
    from xmark_core.hashing import sha256_file

    save_generator(gen_path, trained["res"], surrogate_sha256=sha256_file(sur_path), classes=trained["classes"])
    mk = load_marker(sur_path, gen_path, device="cpu")
    assert mk.target == TARGET and mk.key == 1 and mk.input_size == SIZE
    x = trained["Xq"][:4]
    np.testing.assert_allclose(mk.mark(x), trained["marker"].mark(x), atol=1e-6)
    # a generator is tied to its surrogate: another surrogate file is refused
    other = tmp_path / "other.pt"
    save_checkpoint(other, sur, kind="classifier", arch=sur.arch, arch_kwargs=sur.arch_kwargs,
                    classes=trained["classes"], input_size=SIZE, extra={"note": "different file"})
    from xmark_core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="trained with surrogate"):
        load_marker(other, gen_path)


def test_shipped_marks_do_not_depend_on_the_batch(monkeypatch):
    """oneDNN picks its kernels by batch size (the shipped generator at 256 px rounds a
    batch of 16 differently from one of 2); every pass of the marker has the same size, so a
    release's bytes do not depend on how the embedder grouped its images."""
    import xmark_core.generator.model as gm
    from xmark_core.app_support.demo import default_models_dir

    monkeypatch.setattr(gm, "GEN_BATCH_PIXELS", 16 * 256 * 256)
    root = default_models_dir()
    mk = load_marker(root / "surrogate.pt", root / "generator.pt", device="cpu")
    mk.batch_size = 16
    x, _ = to_arrays(PhantomDataset(16, size=256, seed=2), 256)
    x = x[:, 0]
    together = mk.mark(x)
    for cut in (5, 1):
        assert np.array_equal(together, np.concatenate([mk.mark(x[:cut]), mk.mark(x[cut:])]))
