"""StealthMark building blocks that need no training: metrics, QR, trigger, output checks."""

import numpy as np
import pytest

from xmark_core.errors import DataError
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.metrics import dice, hd95, iou, pixel_auc, score_segmentation
from xmark_core.stealthmark.qr import (
    decode_code,
    fixed_modules,
    keyed_mask,
    make_claim_code,
    read_code,
)
from xmark_core.stealthmark.trigger import apply_stamps, cell_index
from xmark_core.stealthmark.verify import check_outputs


def square(size, r0, c0, side):
    m = np.zeros((size, size), bool)
    m[r0:r0 + side, c0:c0 + side] = True
    return m


def test_dice_iou_on_known_overlap():
    a = square(32, 0, 0, 10)  # 100 px
    b = square(32, 0, 5, 10)  # 100 px, overlap 10 x 5 = 50
    assert dice(a, b) == pytest.approx(2 * 50 / 200)
    assert iou(a, b) == pytest.approx(50 / 150)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0 and dice(a, empty) == 0.0


def test_metrics_sum_over_both_spatial_axes_per_image():
    a = np.stack([square(16, 0, 0, 4), square(16, 8, 8, 8)])  # (2, 16, 16): two images
    b = np.stack([square(16, 0, 0, 4), np.zeros((16, 16), bool)])
    d = dice(a, b)
    assert d.shape == (2,)
    assert d[0] == 1.0 and d[1] == 0.0


def test_hd95_of_shifted_square_is_the_shift():
    a = square(64, 10, 10, 20)
    b = square(64, 10, 13, 20)  # shifted 3 px to the right
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, a) == 0.0
    assert np.isnan(hd95(a, np.zeros_like(a)))
    assert hd95(a, b, spacing=0.5) == pytest.approx(1.5)


def test_pixel_auc_and_scores():
    truth = square(16, 4, 4, 8)
    assert pixel_auc(truth.astype(float), truth) == 1.0
    assert pixel_auc(1.0 - truth, truth) == 0.0
    probs = np.stack([truth * 0.9 + 0.05])[None].astype(np.float32)  # (1, 1, H, W)
    s = score_segmentation(probs, truth[None, None], ["box"])
    assert s.dice == [1.0] and s.auc == [1.0] and s.hd95 == [0.0]


def test_claim_code_round_trip_and_limits():
    code = make_claim_code("XMARK:owner-id")
    assert code.version == 2 and code.size == 25 and code.error == "H"
    assert decode_code(code.matrix) == "XMARK:owner-id"
    rng = np.random.default_rng(0)
    assert decode_code(rng.random((25, 25)) < 0.5) is None
    with pytest.raises(DataError, match="version"):
        make_claim_code("XMARK:" + "a-much-too-long-owner-identifier")


def test_keyed_mask_depends_on_key_and_is_balanced():
    a, b = keyed_mask("key-a", 25), keyed_mask("key-b", 25)
    assert (a == keyed_mask("key-a", 25)).all()
    assert 0.4 < (a != b).mean() < 0.6
    assert 0.4 < a.mean() < 0.6


def test_stamp_stays_inside_chosen_cells_and_range():
    mark = SegMark("XMARK:T1", key="k")
    n = mark.n
    imgs = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    imgs[0, :8] = 1.0  # bright rows: the stamp must not clip there
    on = np.zeros((2, n * n), bool)
    on[0, [0, 5]] = True
    out = apply_stamps(imgs, on, mark.key, n, mark.amplitude, mark.tile)
    cells = cell_index((64, 64), n)
    changed = out != imgs
    assert not changed[1].any()
    assert changed[0][~np.isin(cells, [0, 5])].sum() == 0
    assert out.min() >= 0.0 and out.max() <= 1.0
    top = out[0][cells == 0]
    assert top.max() - top.min() > 1.5 * mark.amplitude  # both signs of the texture survive


def test_output_check_refuses_binary_and_coarse_outputs():
    rng = np.random.default_rng(0)
    soft = rng.random((2, 3, 16, 16)).astype(np.float32)
    assert check_outputs(soft, 0.25).verifiable
    binary = (soft > 0.5).astype(np.float32)
    chk = check_outputs(binary, 0.25)
    assert not chk.verifiable and chk.kind == "binary" and "cannot be verified" in chk.message
    coarse = np.round(soft * 4) / 4  # steps of 0.25 > eps / 2
    assert not check_outputs(coarse, 0.25).verifiable
    two_dec = np.round(soft, 2)
    chk = check_outputs(two_dec, 0.25)
    assert chk.verifiable and chk.kind == "quantized"


def test_fixed_modules_are_the_claim_independent_patterns():
    a, b = make_claim_code("XMARK:T1"), make_claim_code("QQ-7")
    assert a.version == b.version == 1
    fixed, values = fixed_modules(1, "h")
    assert fixed.sum() == 207  # 3 finders with separators (192), timing (10), dark module, 4 level bits
    assert fixed[:8, :8].all() and fixed[6, 8:13].all() and fixed[13, 8]
    for code in (a, b):
        assert np.array_equal(code.matrix[fixed], values[fixed])
    assert not np.array_equal(a.matrix[~fixed], b.matrix[~fixed])  # the claim lives only off the fixed modules
    assert fixed_modules(2, "h")[0].sum() == 241


def test_reader_copy_repairs_finders_but_never_invents_a_claim():
    code = make_claim_code("XMARK:T1")
    fixed, _ = fixed_modules(1, "h")
    rng = np.random.default_rng(4)
    hurt = code.matrix.copy()
    hurt.flat[rng.choice(np.flatnonzero(fixed), 40, replace=False)] ^= True  # 40 wrong finder/timing modules
    hurt.flat[rng.choice(np.flatnonzero(~fixed), 4, replace=False)] ^= True  # and 4 wrong data modules
    assert decode_code(hurt) is None  # the plain reader gives up
    r = read_code(hurt, 1, "h")
    assert r.text == "XMARK:T1" and r.restored == 40 and not r.as_drawn
    assert np.array_equal(r.reader_modules[~fixed], hurt[~fixed])  # data modules untouched
    # an innocent model's picture: random data modules never decode, with or without the copy
    assert all(read_code(rng.random((21, 21)) < 0.5, 1, "h").text is None for _ in range(100))
    with pytest.raises(DataError):
        read_code(np.zeros((25, 25), bool), 1, "h")
