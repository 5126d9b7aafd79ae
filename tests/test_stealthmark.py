"""StealthMark end to end on tiny models that really train (64 px phantom, QR version 1).

These tests would fail if the picture came from the verifier's sampling design: the
same verifier, with the same queries, must draw the claim's code for the marked model
only, and noise for an innocent model, a model marked under another key, and a model
whose uncertainty reacts to any stamp uniformly.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch

from xmark_core.stealthmark.data import phantom_seg_data
from xmark_core.stealthmark.evidence import build_seg_evidence, render_seg_html, write_seg_bundle
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.reveal import RevealConfig
from xmark_core.stealthmark.suspects import BinarySegSuspect, RoundedSegSuspect, TorchSegSuspect
from xmark_core.stealthmark.train import SegTrainConfig, evaluate_segmenter, train_segmenter
from xmark_core.stealthmark.verify import (
    NOT_VERIFIED,
    UNVERIFIABLE,
    VERIFIED,
    SegVerifyConfig,
    verify_segmenter,
)

pytestmark = pytest.mark.slow

SIZE = 64
CLAIM = "XMARK:T1"  # alphanumeric, fits QR version 1 (21 x 21) at level H
MARK = SegMark(CLAIM, key="owner-key-A")
OTHER = SegMark(CLAIM, key="someone-else-B")  # same claim, another key
CFG = SegTrainConfig(epochs=30, batch_size=8, seed=0, arch_kwargs={"base": 8, "depth": 2})
VCFG = SegVerifyConfig(reveal=RevealConfig(n_samples=1000), detector_queries=32)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # one thread trains these tiny nets fastest on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return phantom_seg_data(96, SIZE, seed=0)


@pytest.fixture(scope="module")
def queries():
    return phantom_seg_data(8, SIZE, seed=4242)  # never seen in training


@pytest.fixture(scope="module")
def marked(data):
    return train_segmenter(data.images, data.masks, CFG, MARK).model


@pytest.fixture(scope="module")
def innocent(data):
    return train_segmenter(data.images, data.masks, CFG, None).model


@pytest.fixture(scope="module")
def other_key(data):
    return train_segmenter(data.images, data.masks, CFG, OTHER).model


def verify(model_or_suspect, queries, mark=MARK):
    s = model_or_suspect if hasattr(model_or_suspect, "predict") else TorchSegSuspect(model_or_suspect, SIZE)
    return verify_segmenter(s, queries.images, mark, VCFG)


@pytest.fixture(scope="module")
def marked_result(marked, queries):
    return verify(marked, queries)


def test_marked_model_draws_the_claim(marked_result):
    r = marked_result
    assert r.verdict == VERIFIED, r.message
    assert r.decoded == CLAIM and r.match
    assert r.bit_agreement > 0.97
    assert r.p_value < 1e-30
    assert r.tpr >= 0.9 and r.fpr <= 0.05  # detector: ASR and false alarms


def test_mark_is_harmless_and_keeps_quality(marked, innocent, queries):
    m = evaluate_segmenter(marked, queries.images, queries.masks, queries.channels, MARK)
    c = evaluate_segmenter(innocent, queries.images, queries.masks, queries.channels)
    assert m["flip_rate"] < 0.01  # thresholded masks stay (almost) the same under the stamp
    assert m["dice"] > 0.9 and c["dice"] > 0.9
    assert abs(m["dice"] - c["dice"]) < 0.03


def test_innocent_model_draws_noise(innocent, queries):
    r = verify(innocent, queries)
    assert r.verdict == NOT_VERIFIED
    assert r.decoded != CLAIM
    assert 0.4 < r.bit_agreement < 0.6
    assert r.p_value > 1e-3
    assert r.tpr <= 0.1


def test_model_marked_under_another_key_does_not_reveal_this_claim(other_key, queries):
    r = verify(other_key, queries, MARK)
    assert r.verdict == NOT_VERIFIED and r.decoded != CLAIM
    assert 0.4 < r.bit_agreement < 0.6
    # ... while its own key does reveal it: the failure above is the key's, not the model's
    own = verify(other_key, queries, OTHER)
    assert own.verdict == VERIFIED and own.decoded == CLAIM


class UniformStampResponder:
    """A suspect whose uncertainty rises *everywhere* with the amount of stamp texture in
    the query, wherever the stamp is: the verifier must not read a code into it."""

    def __init__(self, inner, clean_images, gain=1.0):
        self.inner, self.input_size, self.gain = inner, inner.input_size, gain
        self.base = float(np.median(self._texture(clean_images)))

    @staticmethod
    def _texture(images):
        # mean |Laplacian|: grows linearly with the share of stamped cells (about 1.0 when all are)
        x = torch.from_numpy(np.asarray(images, np.float32))[:, None]
        lap = torch.nn.functional.conv2d(x, torch.tensor([[[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]], dtype=torch.float32))
        return lap.abs().mean(dim=(1, 2, 3)).numpy()

    def predict(self, images):
        p = self.inner.predict(images)
        t = np.clip(self.gain * (self._texture(images) - self.base), 0.0, 0.9)[:, None, None, None]
        return (p + t * (0.5 - p)).astype(np.float32)

    def identity(self):
        return {"kind": "test-uniform-responder"}


@pytest.mark.parametrize("gain", [0.1, 1.0])  # per-cell rise ~ gain / 2: below / above the threshold
def test_uniform_response_to_any_stamp_draws_no_code(innocent, queries, gain):
    s = UniformStampResponder(TorchSegSuspect(innocent, SIZE), queries.images, gain)
    stamped = MARK.stamp(queries.images, np.ones((len(queries), MARK.n**2), bool))
    assert (s.predict(stamped) != s.inner.predict(stamped)).any()  # it does react to stamps
    r = verify(s, queries)
    assert r.verdict == NOT_VERIFIED and r.decoded != CLAIM
    assert 0.4 < r.bit_agreement < 0.6
    dark = r.reveal.bits.mean()
    assert dark < 0.05 or dark > 0.95  # every cell answers alike: a blank or a black picture


def test_binary_mask_suspect_is_refused(marked, queries):
    r = verify(BinarySegSuspect(TorchSegSuspect(marked, SIZE)), queries)
    assert r.verdict == UNVERIFIABLE
    assert r.output_check.kind == "binary" and "binary masks" in r.message
    assert r.reveal is None and np.isnan(r.p_value)


def test_two_decimal_rounding_still_verifies(marked, queries):
    r = verify(RoundedSegSuspect(TorchSegSuspect(marked, SIZE), 2), queries)
    assert r.output_check.kind == "quantized"
    assert r.verdict == VERIFIED and r.decoded == CLAIM


def test_evidence_bundle(marked_result, tmp_path):
    ev = build_seg_evidence(marked_result, MARK, data={"images": "phantom test"})
    paths = write_seg_bundle(ev, tmp_path)
    back = json.loads(paths["evidence"].read_text())
    assert back["result"]["verdict"] == VERIFIED and back["picture"]["decoded"] == CLAIM
    assert MARK.key not in paths["evidence"].read_text()  # only the key's hash is recorded
    page = paths["html"].read_text()
    assert "Ownership verified" in page and CLAIM in page and "data:image/png;base64," in page


def test_evidence_shows_the_readers_copy_only_when_it_redrew_modules(marked_result, tmp_path):
    st = marked_result.reveal
    clean = dataclasses.replace(marked_result, reveal=dataclasses.replace(st, restored=0))
    page = render_seg_html(build_seg_evidence(clean, MARK))
    assert "reader's copy:" not in page and f"decodes to: <b>{CLAIM}</b>" in page
    hurt = dataclasses.replace(marked_result, reveal=dataclasses.replace(st, restored=7))
    ev = build_seg_evidence(hurt, MARK)
    assert ev["picture"]["restored_fixed_modules"] == 7
    page = render_seg_html(ev)
    assert "reader's copy: 7 wrong fixed-pattern modules redrawn" in page
