"""Embedding: release layout, loaders round trip, commitment, resume after a crash, shards, CLI.

The marker here is a real generator with random weights (its output is deterministic and
non-trivial); whether marks *work* is tested in test_generator.py and the verification tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import untrained_marker

from xmark_core.data.folder import FolderDataset
from xmark_core.data.io import read_image, write_image
from xmark_core.data.phantom import PhantomDataset
from xmark_core.embed import (
    OWNER_RECORD,
    check_commitment,
    embed_release,
    load_owner_record,
    merge_shards,
    select_marked,
    target_scores,
)
from xmark_core.errors import DataError
from xmark_core.generator.model import load_marker

TARGET = 1


@pytest.fixture(scope="module")
def marker():
    return untrained_marker(eps=0.03, target=TARGET)


@pytest.fixture(scope="module")
def phantom():
    return PhantomDataset(40, size=64, seed=3)


def _images(release):
    return sorted(p for p in release.rglob("*.png"))


def test_release_round_trips_through_the_loader(tmp_path, marker, phantom):
    res = embed_release(phantom, marker, TARGET, tmp_path, rho=0.5, seed=0)
    assert res.n_images == 40 and res.n_marked == 5 and res.commitment
    back = FolderDataset(tmp_path / "release")
    assert back.classes == phantom.classes
    np.testing.assert_array_equal(back.labels(), phantom.labels())  # clean-label: labels untouched
    rec = load_owner_record(tmp_path)
    marked = {m["image_id"] for m in rec["marked"]}
    assert len(marked) == 5
    labels = phantom.labels()
    scores = target_scores(phantom, marker, TARGET, labels)
    expect = set(select_marked(labels, TARGET, 0.5, 0, scores).tolist())
    assert marked == {f"phantom-3-{i}" for i in expect}
    # hardest first: every marked image scores no higher than any unmarked target image
    tidx = np.flatnonzero(labels == TARGET)
    unmarked = [i for i in tidx if i not in expect]
    assert max(scores[list(expect)]) <= min(scores[unmarked])
    for i in range(len(back)):
        r, src = back[i], phantom[i]
        assert r.meta["bit_depth"] == 16
        if src.image_id in marked:
            assert src.label == TARGET
            want = marker.mark(src.image)
            assert np.abs(r.image - want).max() < 1e-4  # 16-bit quantisation only
            assert np.abs(r.image - src.image).max() > 1e-3
        else:
            assert np.abs(r.image - src.image).max() < 1e-4
    q = rec["quality"]
    assert q["psnr_min"] > 30 and q["ssim_min"] > 0.9
    manifest = json.loads((tmp_path / "release" / "manifest.json").read_text())
    assert manifest["commitment"] == rec["commitment"] == res.commitment
    assert "marked" not in json.dumps(manifest)  # the public manifest does not say which
    assert not (tmp_path / "release" / OWNER_RECORD).exists()


def test_file_release_keeps_format_and_bit_depth(tmp_path, marker, phantom):
    src = tmp_path / "src"
    rows = ["path,label"]
    for i in range(12):
        r = phantom[i]
        name = f"{phantom.classes[r.label].replace(' ', '_')}/img{i}.png"
        write_image(src / name, r.image, bit_depth=8 if i % 2 else 16)
        rows.append(f"{name},{phantom.classes[r.label]}")
    (src / "labels.csv").write_text("\n".join(rows) + "\n")
    (src / "classes.txt").write_text("\n".join(phantom.classes) + "\n")
    ds = FolderDataset(src)
    res = embed_release(ds, marker, TARGET, tmp_path / "out", rho=1.0, seed=0)
    assert res.n_marked == 3
    back = FolderDataset(tmp_path / "out" / "release")
    assert [back.image_id(i) for i in range(len(back))] == [ds.image_id(i) for i in range(len(ds))]
    rec = load_owner_record(tmp_path / "out")
    marked = {m["path"] for m in rec["marked"]}
    for i in range(len(ds)):
        a, b = read_image(ds.paths[i]), read_image(back.paths[i])
        assert a.bit_depth == b.bit_depth and b.fmt == "png"
        same_bytes = ds.paths[i].read_bytes() == back.paths[i].read_bytes()
        assert same_bytes == (ds.image_id(i) not in marked)


def test_commitment_detects_any_change(tmp_path, marker, phantom):
    embed_release(phantom, marker, TARGET, tmp_path, rho=0.5, seed=0)
    release = tmp_path / "release"
    rec = load_owner_record(tmp_path)
    assert check_commitment(rec) and check_commitment(tmp_path, release)
    # a marked file changes
    f = release / rec["marked"][0]["path"]
    img = read_image(f)
    write_image(f, np.clip(img.image + 0.01, 0, 1), like=img)
    assert check_commitment(rec)  # the record itself is intact ...
    assert not check_commitment(rec, release)  # ... but no longer matches the release
    # an unmarked file changes (listed in the manifest the record binds)
    embed_release(phantom, marker, TARGET, tmp_path / "b", rho=0.5, seed=0)
    rec_b = load_owner_record(tmp_path / "b")
    unmarked = next(p for p in _images(tmp_path / "b" / "release") if
                    p.relative_to(tmp_path / "b" / "release").as_posix() not in
                    {m["path"] for m in rec_b["marked"]})
    unmarked.write_bytes(unmarked.read_bytes()[:-12] + b"\0" * 12)
    assert not check_commitment(rec_b, tmp_path / "b" / "release")
    # any edit of the record breaks its commitment
    for edit in (lambda r: r["marked"][0].__setitem__("ssim", 0.5), lambda r: r.__setitem__("rho", 0.2),
                 lambda r: r["generator"].__setitem__("key", 6)):
        r = load_owner_record(tmp_path)
        edit(r)
        assert not check_commitment(r)


class _Crash(Exception):
    pass


def test_resume_after_crash(tmp_path, marker, phantom):
    full = embed_release(phantom, marker, TARGET, tmp_path / "ref", rho=0.5, seed=0)

    def crash_after(k):
        def progress(done, total):
            if done == k:
                raise _Crash
        return progress

    out = tmp_path / "run"
    with pytest.raises(_Crash):
        embed_release(phantom, marker, TARGET, out, rho=0.5, seed=0, progress=crash_after(23))
    release = out / "release"
    assert not list(out.rglob("*.tmp*"))  # no half-written file left behind
    written = _images(release)
    assert len(written) == 23
    for p in written:
        read_image(p)  # every file on disk is complete
    assert not (out / OWNER_RECORD).exists()
    # a file damaged after the crash is redone, the others are skipped
    written[0].write_bytes(b"garbage")
    res = embed_release(phantom, marker, TARGET, out, rho=0.5, seed=0)
    assert res.n_skipped == 22 and res.n_written == 18
    assert res.commitment == full.commitment
    assert check_commitment(out, release)


def test_a_rerun_with_other_settings_makes_every_file_again(tmp_path, marker, phantom):
    # A rerun skips the files its journal lists, but only a journal of the same settings: a folder
    # used again with another generator (or rho, seed, thread count) must not keep the old marks
    # under a record that names the new generator.
    other = untrained_marker(eps=0.01, target=TARGET)
    embed_release(phantom, marker, TARGET, tmp_path / "x", rho=0.5, seed=0)
    again = embed_release(phantom, other, TARGET, tmp_path / "x", rho=0.5, seed=0)
    fresh = embed_release(phantom, other, TARGET, tmp_path / "y", rho=0.5, seed=0)
    assert again.n_skipped == 0 and again.commitment == fresh.commitment
    assert again.psnr_mean == pytest.approx(fresh.psnr_mean)
    assert check_commitment(tmp_path / "x", tmp_path / "x" / "release")
    same = embed_release(phantom, other, TARGET, tmp_path / "x", rho=0.5, seed=0)
    assert same.n_skipped == 40 and same.commitment == fresh.commitment


def test_journal_is_flushed_per_image_and_synced_in_batches(tmp_path, marker, phantom, monkeypatch):
    import xmark_core.embed as embed_mod

    synced: list[int] = []
    monkeypatch.setattr(embed_mod.os, "fsync", lambda fd: synced.append(fd))
    embed_release(phantom, marker, TARGET, tmp_path / "a", rho=0.5, seed=0)
    # 40 entries: one fsync after the 32nd, one at the end (not 40)
    assert len(synced) == len(phantom) // embed_mod.JOURNAL_SYNC_EVERY + 1 == 2


def test_shards_merge_to_the_same_commitment(tmp_path, marker, phantom):
    single = embed_release(phantom, marker, TARGET, tmp_path / "single", rho=0.5, seed=0)
    parts = []
    for i in range(3):
        r = embed_release(phantom, marker, TARGET, tmp_path / f"s{i}", rho=0.5, seed=0, shard=(i, 3))
        assert r.commitment is None
        parts.append(tmp_path / f"s{i}")
    with pytest.raises(DataError, match="missing shard"):
        merge_shards(parts[:2], tmp_path / "merged")
    merged = merge_shards(parts, tmp_path / "merged")
    assert merged.n_images == 40 and merged.n_marked == single.n_marked
    assert merged.commitment == single.commitment
    assert check_commitment(tmp_path / "merged", tmp_path / "merged" / "release")
    assert FolderDataset(tmp_path / "merged" / "release").labels().tolist() == phantom.labels().tolist()


def test_an_embedding_writes_the_same_release_at_any_thread_count(tmp_path):
    # At two threads the demo marker's sums run in another order: unless marking runs at one
    # thread (the default), a few pixels of a few of these 256 px images land one 16-bit step
    # apart, and the release's files and commitment change with the machine's core count.
    marker = load_marker("models/surrogate.pt", "models/generator.pt", device="cpu")
    ds = PhantomDataset(64, size=256, seed=5)
    before = torch.get_num_threads()
    records = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            embed_release(ds, marker, marker.target, tmp_path / str(n), rho=0.5)
            assert torch.get_num_threads() == n  # the caller's count is restored
            records.append(load_owner_record(tmp_path / str(n)))
    finally:
        torch.set_num_threads(before)
    one, two = ([m["sha256"] for m in r["marked"]] for r in records)
    assert len(one) == 8 and one == two
    assert records[0]["commitment"] == records[1]["commitment"]
    assert records[0]["marker"]["threads"] == 1


def test_merge_refuses_shards_marked_at_different_thread_counts(tmp_path, marker, phantom):
    for i, n in enumerate((1, 2)):
        embed_release(phantom, marker, TARGET, tmp_path / f"s{i}", rho=0.5, shard=(i, 2), threads=n)
    with pytest.raises(DataError, match=r"shard 1 .* marked at 2 torch thread\(s\), shard 0 at 1.*--threads 1"):
        merge_shards([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        embed_release(phantom, marker, TARGET, tmp_path / "bad", threads=0)


def test_selection_hardest_and_random():
    labels = np.array([1, 0, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1])
    scores = np.full(len(labels), np.nan)
    tidx = np.flatnonzero(labels == 1)
    scores[tidx] = np.linspace(0.9, 0.1, len(tidx))  # the last target images are the hardest
    hard = select_marked(labels, 1, 0.2, 0, scores)
    np.testing.assert_array_equal(hard, tidx[-2:])
    rnd = select_marked(labels, 1, 0.2, 0)
    assert len(rnd) == 2 and set(rnd) <= set(tidx)
    np.testing.assert_array_equal(rnd, select_marked(labels, 1, 0.2, 0))  # seeded
    with pytest.raises(DataError, match="one value per image"):
        select_marked(labels, 1, 0.2, 0, scores[:3])


def test_marking_every_target_image_needs_no_scores(tmp_path, marker, phantom, monkeypatch):
    # rho = 1 marks all target images whatever their scores: the surrogate pass is skipped
    import xmark_core.embed as embed

    def refuse(*a, **k):
        raise AssertionError("target_scores called although every target image is marked")

    monkeypatch.setattr(embed, "target_scores", refuse)
    res = embed_release(phantom, marker, TARGET, tmp_path, rho=1.0)
    n_target = int(np.sum(np.asarray(phantom.labels()) == TARGET))
    assert res.summary()["n_marked"] == n_target


def test_bad_inputs(tmp_path, marker, phantom):
    with pytest.raises(DataError, match="selection"):
        embed_release(phantom, marker, TARGET, tmp_path, selection="best")
    with pytest.raises(DataError, match="rho"):
        embed_release(phantom, marker, TARGET, tmp_path, rho=1.5)
    with pytest.raises(DataError, match="shard"):
        embed_release(phantom, marker, TARGET, tmp_path, shard=(3, 3))
    with pytest.raises(DataError, match="target"):
        embed_release(phantom, marker, 9, tmp_path)

