"""Evidence bundle: evidence.json content and integrity, owner-record checks, a
self-contained report.html with its figures, the optional PDF."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from xmark_core.errors import DataError
from xmark_core.hashing import commitment, sha256_file
from xmark_core.report import (
    build_evidence,
    check_owner_record,
    load_evidence,
    released_ids,
    render_html,
    write_bundle,
)
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

CLASSES = ["No Finding", "Cardiomegaly", "Effusion"]


class CornerModel(nn.Module):
    def forward(self, x):
        c = x[:, 0, :4, :4].mean((1, 2))
        return torch.stack([torch.zeros_like(c), 8 * c - 2, torch.zeros_like(c)], 1)


class CornerMarker:
    def mark(self, images):
        out = np.array(images, dtype=np.float32, copy=True)
        out[:, :4, :4] = 1.0
        return out

    def target_scores(self, images):  # the owner's "surrogate": brighter is closer to the target
        return np.array([float(np.mean(x)) for x in images])


@pytest.fixture()
def verification():
    rng = np.random.default_rng(0)
    images = [0.3 * rng.random((32, 32), dtype=np.float32) for _ in range(120)]
    ids = [f"img-{i}" for i in range(120)]
    suspect = TorchSuspect(CornerModel(), CLASSES, 32, device="cpu", name="corner model")
    return run_verification(suspect, CornerMarker(), images, ids, 1, VerifyConfig(m=60, queries="boundary", specificity=0.0)), suspect


@pytest.fixture()
def owner(tmp_path):
    gen = tmp_path / "G.pt"
    gen.write_bytes(b"generator weights")
    sur = tmp_path / "surrogate.pt"
    sur.write_bytes(b"surrogate weights")
    # The layout xmark_core.embed writes (only the fields the verifier reads).
    record = {"generator": {"sha256": sha256_file(gen)}, "surrogate": {"sha256": sha256_file(sur)},
              "key": 7, "target": 1, "target_name": "Cardiomegaly",
              "marked": [{"image_id": "phantom-0-5", "path": "a.png"}, {"image_id": "phantom-0-9"}]}
    record["commitment"] = commitment(record)
    path = tmp_path / "owner_record.json"
    path.write_text(json.dumps(record))
    return path, gen, sur


def test_owner_record_checks(owner, tmp_path):
    path, gen, sur = owner
    ok = check_owner_record(path, generator=gen, surrogate=sur)
    assert ok["ok"] and ok["commitment_ok"] and ok["generator_ok"] and ok["surrogate_ok"]
    assert ok["commitment"] == ok["commitment_recomputed"] and ok["record_key"] == 7
    other = tmp_path / "other.pt"
    other.write_bytes(b"another generator")
    wrong = check_owner_record(path, generator=other, surrogate=sur)
    assert not wrong["ok"] and wrong["commitment_ok"] and wrong["generator_ok"] is False
    record = json.loads(path.read_text())
    record["key"] = 8  # edited after the commitment was published
    path.write_text(json.dumps(record))
    edited = check_owner_record(path, generator=gen)
    assert not edited["ok"] and not edited["commitment_ok"]
    assert released_ids(path) == ["phantom-0-5", "phantom-0-9"]
    with pytest.raises(DataError, match="not found"):
        check_owner_record(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        check_owner_record(tmp_path / "bad.json")
    (tmp_path / "nocommit.json").write_text("{}")
    with pytest.raises(DataError, match="commitment"):
        check_owner_record(tmp_path / "nocommit.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    for bad, match in (("missing.json", "not found"), ("bad.json", "not valid JSON"), ("list.json", "JSON object")):
        with pytest.raises(DataError, match=match):
            released_ids(tmp_path / bad)


def test_evidence_bundle(verification, owner, tmp_path):
    result, suspect = verification
    path, gen, sur = owner
    ev = build_evidence(result, suspect.identity(), owner=check_owner_record(path, gen, sur),
                        marker={"generator": str(gen), "generator_sha256": sha256_file(gen)},
                        data={"spec": "fake pool"}, command=["xmark", "verify"])
    paths = write_bundle(ev, tmp_path / "out", pdf=True)
    loaded = load_evidence(paths["evidence"])
    assert loaded == ev
    assert loaded["decision"] is True and loaded["owner_ok"] is True
    res = loaded["result"]
    assert res["p_value"] == result.p_value and res["delta_p"] == result.delta_p and res["wsr"] == 1.0
    assert res["n_queries"] == 60 and len(loaded["log"]) == 60 and res["target_name"] == "Cardiomegaly"
    assert set(loaded["log"][0]) >= {"image_id", "sha256_original", "sha256_watermarked", "p_b", "p_w"}
    assert loaded["parameters"] == {"m": 60, "tau": 0.2, "alpha": 0.01, "test": "ttest", "seed": 0,
                                    "batch_size": 20, "max_bet": 0.9, "query_gain": 2.0,
                                    "queries": "boundary", "specificity": 0.0,
                                    "threads": result.config.threads, "check_gain": None}
    assert result.config.threads >= 1  # the count the queries were marked at: a replay uses it
    assert loaded["data"]["query_choice"]["queries"] == "boundary"
    assert loaded["data"]["query_choice"]["min_score_chosen"] > 0
    assert set(loaded["software"]) >= {"python", "torch", "xmark", "numpy", "scipy"}
    assert loaded["owner"]["commitment_ok"] and loaded["suspect"]["location"] == "corner model"
    assert len(loaded["running"]["p_value"]) == 60 and loaded["created_utc"].endswith("+00:00")
    assert "Ownership is claimed" in loaded["verdict"]

    page = paths["html"].read_text()
    assert page.count("<svg") == 3 and "Ownership claimed" in page
    assert "<script" not in page and 'src="http' not in page and "href=\"http" not in page
    assert len(page) < 1_500_000 and page == render_html(loaded)
    assert "<th>mark strength in the key check (check gain)</th><td>no key check</td>" in page
    # the owner table says what was released under the commitment
    assert "<th>marked class (owner record)</th><td>Cardiomegaly</td>" in page
    assert "<th>owner key (owner record)</th><td>7</td>" in page
    assert "<th>hardening (owner record)</th><td>none: the released images carry the mark alone</td>" in page
    # the models and data in a reviewer's words
    assert "<th>reached as</th><td>model in memory</td>" in page
    assert "<th>answers with</th><td>class probabilities</td>" in page
    assert f"<th>generator file SHA-256</th><td>{sha256_file(gen)}</td>" in page
    assert "<th>query pool size</th><td>" in page and "pool_ids_sha256" not in page
    earlier = render_html({**loaded, "marker": {"key": 7, "target": 1, "classes": CLASSES}})  # the app's, before XXVII
    assert "<th>owner key</th><td>7</td>" in earlier and f"<th>target class</th><td>1 ({CLASSES[1]})</td>" in earlier
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"

    tampered = json.loads(paths["evidence"].read_text())
    tampered["result"]["p_value"] = 0.5
    paths["evidence"].write_text(json.dumps(tampered))
    with pytest.raises(DataError, match="altered"):
        load_evidence(paths["evidence"])


def test_failed_owner_check_is_in_the_verdict(verification, owner):
    result, suspect = verification
    path, gen, _ = owner
    record = json.loads(path.read_text())
    record["target"] = 2
    path.write_text(json.dumps(record))
    ev = build_evidence(result, suspect.identity(), owner=check_owner_record(path, gen))
    assert ev["owner_ok"] is False and "WARNING" in ev["verdict"]
    assert "does NOT match" in render_html(ev)
    assert "No owner record" in build_evidence(result, suspect.identity())["verdict"]


def test_no_claim_report(tmp_path):
    rng = np.random.default_rng(1)
    images = [0.3 * rng.random((32, 32), dtype=np.float32) for _ in range(50)]

    class Noop:
        def mark(self, x):
            return np.asarray(x)

    suspect = TorchSuspect(CornerModel(), CLASSES, 32, device="cpu")
    r = run_verification(suspect, Noop(), images, [str(i) for i in range(50)], 1,
                         VerifyConfig(m=30, test="sequential", queries="random", specificity=0.0))
    ev = build_evidence(r, suspect.identity())
    page = render_html(ev)
    assert not ev["decision"] and "No claim" in page and "sequential betting test" in page
    # t statistic of zero-variance data is infinite: stored as null, the JSON stays strict.
    json.dumps(ev, allow_nan=False)
