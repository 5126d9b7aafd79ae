"""StealthMark benchmark: ``python -m benchmarks.stealthmark [--quick] [--out results]``.

Trains a marked and an unmarked segmenter (same seed, data and budget), verifies the
marked one over many query seeds, innocent models of other seeds and wrong keys, and
attacks (clean fine-tuning, magnitude pruning, query noise and JPEG, output rounding).
Returns / writes the ``"stealthmark"`` block of ``results/summary.json``::

    {"asr", "fpr", "decode_rate", "innocent_decode_rate", "bit_agreement", "dice_drop",
     "auc_drop", "attacks": {NAME: {"decode_rate", "bit_agreement", "dice"}}, ...}

``--quick``: 64 px, QR version 1 claim, fewer seeds (minutes on a CPU core). Default:
128 px, ``XMARK:owner-id`` (QR version 2), 20 query seeds, 5 innocent models, 5 wrong keys.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from xmark_core.atomic import atomic_write_json
from xmark_core.stealthmark.data import phantom_seg_data
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.metrics import score_segmentation
from xmark_core.stealthmark.model import predict_proba
from xmark_core.stealthmark.reveal import RevealConfig
from xmark_core.stealthmark.suspects import RoundedSegSuspect, TorchSegSuspect
from xmark_core.stealthmark.train import SegTrainConfig, evaluate_segmenter, train_segmenter
from xmark_core.stealthmark.verify import VERIFIED, SegVerifyConfig, verify_segmenter


@dataclass
class SMSettings:
    size: int = 128
    claim: str = "XMARK:owner-id"
    n_train: int = 300
    n_val: int = 48
    n_queries: int = 16
    epochs: int = 30
    batch_size: int = 16
    base: int = 8
    depth: int = 3
    lime_samples: int = 1500
    query_seeds: int = 20
    attack_seeds: int = 5
    innocent_models: int = 5
    wrong_keys: int = 5
    finetune_epochs: int = 5
    finetune_lr: float = 1e-3


QUICK = SMSettings(size=64, claim="XMARK:T1", n_train=96, n_val=24, n_queries=8, epochs=30, batch_size=8,
                   base=8, depth=2, lime_samples=1000, query_seeds=10, attack_seeds=3, innocent_models=3,
                   wrong_keys=5, finetune_epochs=5)


class QueryNoise:
    """Queries pass through Gaussian noise (std ``sigma``) before reaching the model."""

    def __init__(self, inner, sigma: float, seed: int = 0):
        self.inner, self.sigma, self.input_size = inner, sigma, inner.input_size
        self.rng = np.random.default_rng(seed)

    def predict(self, images):
        noisy = images + self.rng.normal(0, self.sigma, images.shape).astype(np.float32)
        return self.inner.predict(np.clip(noisy, 0, 1))

    def identity(self):
        return {**self.inner.identity(), "attack": f"query noise {self.sigma}"}


class QueryJpeg:
    """Queries pass through 8-bit JPEG at ``quality`` before reaching the model."""

    def __init__(self, inner, quality: int):
        self.inner, self.quality, self.input_size = inner, quality, inner.input_size

    def predict(self, images):
        out = []
        for im in images:
            ok, buf = cv2.imencode(".jpg", (np.clip(im, 0, 1) * 255).round().astype(np.uint8),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            out.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0)
        return self.inner.predict(np.stack(out))

    def identity(self):
        return {**self.inner.identity(), "attack": f"jpeg q{self.quality}"}


def pruned(model: nn.Module, amount: float) -> nn.Module:
    """Global L1 magnitude pruning of all conv weights (the coordinate map is kept)."""
    m = copy.deepcopy(model)
    params = [(mod, "weight") for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for mod, name in params:
        prune.remove(mod, name)
    return m.eval()


def _verify_many(suspect, images, mark: SegMark, s: SMSettings, seeds: int, offset: int = 0) -> dict[str, Any]:
    rows = []
    for k in range(seeds):
        cfg = SegVerifyConfig(reveal=RevealConfig(n_samples=s.lime_samples, seed=offset + k),
                              detector_queries=64, seed=10_000 + offset + k)
        r = verify_segmenter(suspect, images, mark, cfg)
        rows.append({"decoded": r.decoded, "verified": r.verdict == VERIFIED, "bit_agreement": r.bit_agreement,
                     "p_value": r.p_value, "tpr": r.tpr, "fpr": r.fpr, "verdict": r.verdict})
    ok = [r["decoded"] == mark.claim for r in rows]
    return {"decode_rate": float(np.mean(ok)), "verified_rate": float(np.mean([r["verified"] for r in rows])),
            "bit_agreement": float(np.mean([r["bit_agreement"] for r in rows])),
            "tpr": float(np.mean([r["tpr"] for r in rows])), "fpr": float(np.mean([r["fpr"] for r in rows])),
            "runs": rows}


def run(quick: bool = True, seed: int = 0, out: str | Path | None = None, log=None) -> dict[str, Any]:
    """Run the StealthMark benchmark; returns the ``"stealthmark"`` summary block."""
    torch.set_num_threads(1)
    s = QUICK if quick else SMSettings()
    say = log or (lambda msg: print(f"[stealthmark] {msg}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    train = phantom_seg_data(s.n_train, s.size, seed=seed)
    val = phantom_seg_data(s.n_val, s.size, seed=seed + 1)
    queries = phantom_seg_data(s.n_queries, s.size, seed=seed + 2).images
    mark = SegMark(s.claim, key=f"bench-owner-key-{seed}")
    cfg = SegTrainConfig(epochs=s.epochs, batch_size=s.batch_size, seed=seed,
                         arch_kwargs={"base": s.base, "depth": s.depth})
    say(f"training marked model ({s.size} px, {s.n_train} images, {s.epochs} epochs)")
    marked = train_segmenter(train.images, train.masks, cfg, mark).model
    say("training clean models")
    cleans = [train_segmenter(train.images, train.masks, replace(cfg, seed=seed + i), None).model
              for i in range(s.innocent_models)]
    q_marked = evaluate_segmenter(marked, val.images, val.masks, val.channels, mark)
    q_clean = evaluate_segmenter(cleans[0], val.images, val.masks, val.channels)
    say(f"Dice marked {q_marked['dice']:.4f} clean {q_clean['dice']:.4f}; flip rate {q_marked['flip_rate']:.4f}")

    sus = TorchSegSuspect(marked, s.size)
    say(f"verifying the marked model over {s.query_seeds} query seeds")
    main = _verify_many(sus, queries, mark, s, s.query_seeds)
    say(f"decode rate {main['decode_rate']:.2f}, bit agreement {main['bit_agreement']:.4f}")
    innocent = [_verify_many(TorchSegSuspect(m, s.size), queries, mark, s, 1, offset=100 + i)
                for i, m in enumerate(cleans)]
    wrong = [_verify_many(sus, queries, SegMark(s.claim, key=f"wrong-key-{i}"), s, 1, offset=200 + i)
             for i in range(s.wrong_keys)]
    say(f"innocent decode {np.mean([r['decode_rate'] for r in innocent]):.2f}, "
        f"wrong-key decode {np.mean([r['decode_rate'] for r in wrong]):.2f}")

    def dice_of(model: nn.Module, images: np.ndarray | None = None) -> float:
        p = predict_proba(model, val.images if images is None else images)
        return score_segmentation(p, val.masks).mean_dice

    attacks: dict[str, dict[str, Any]] = {}
    say("attacks: fine-tuning on clean data")
    ft = train_segmenter(train.images, train.masks,
                         replace(cfg, epochs=s.finetune_epochs, lr=s.finetune_lr, seed=seed + 7), None,
                         init=marked).model
    models = {"finetune": ft, **{f"prune_{int(a * 100)}": pruned(marked, a) for a in (0.1, 0.3, 0.5)}}
    for name, m in models.items():
        r = _verify_many(TorchSegSuspect(m, s.size), queries, mark, s, s.attack_seeds, offset=300)
        attacks[name] = {"decode_rate": r["decode_rate"], "bit_agreement": r["bit_agreement"], "dice": dice_of(m)}
        say(f"  {name}: decode {r['decode_rate']:.2f} bits {r['bit_agreement']:.3f} dice {attacks[name]['dice']:.4f}")
    rng = np.random.default_rng(seed)
    wrappers = {
        "query_noise_0.01": (QueryNoise(sus, 0.01), np.clip(val.images + rng.normal(0, 0.01, val.images.shape), 0, 1)),
        "query_noise_0.03": (QueryNoise(sus, 0.03), np.clip(val.images + rng.normal(0, 0.03, val.images.shape), 0, 1)),
        "query_jpeg_90": (QueryJpeg(sus, 90), None),
        "query_jpeg_75": (QueryJpeg(sus, 75), None),
        "output_round_2": (RoundedSegSuspect(sus, 2), None),
    }
    for name, (w, _) in wrappers.items():
        r = _verify_many(w, queries, mark, s, s.attack_seeds, offset=400)
        attacked_val = w.predict(val.images) if not name.startswith("output") else np.round(predict_proba(marked, val.images), 2)
        attacks[name] = {"decode_rate": r["decode_rate"], "bit_agreement": r["bit_agreement"],
                         "dice": score_segmentation(attacked_val, val.masks).mean_dice}
        say(f"  {name}: decode {r['decode_rate']:.2f} bits {r['bit_agreement']:.3f}")

    summary = {
        "asr": main["tpr"], "fpr": main["fpr"], "decode_rate": main["decode_rate"],
        "verified_rate": main["verified_rate"],
        "innocent_decode_rate": float(np.mean([r["decode_rate"] for r in innocent])),
        "innocent_verified_rate": float(np.mean([r["verified_rate"] for r in innocent])),
        "innocent_bit_agreement": float(np.mean([r["bit_agreement"] for r in innocent])),
        "innocent_detector_tpr": float(np.mean([r["tpr"] for r in innocent])),
        "wrong_key_decode_rate": float(np.mean([r["decode_rate"] for r in wrong])),
        "wrong_key_bit_agreement": float(np.mean([r["bit_agreement"] for r in wrong])),
        "bit_agreement": main["bit_agreement"],
        "dice_marked": q_marked["dice"], "dice_clean": q_clean["dice"],
        "dice_drop": q_clean["dice"] - q_marked["dice"],
        "auc_marked": q_marked["auc"], "auc_clean": q_clean["auc"], "auc_drop": q_clean["auc"] - q_marked["auc"],
        "flip_rate": q_marked["flip_rate"], "stamped_dice": q_marked["stamped_dice"],
        "attacks": attacks,
        "settings": {**vars(s), "quick": quick, "seed": seed}, "seconds": time.perf_counter() - t0,
    }
    if out is not None:
        details = {"summary": summary, "marked_runs": main["runs"],
                   "innocent_runs": [r["runs"] for r in innocent], "wrong_key_runs": [r["runs"] for r in wrong]}
        atomic_write_json(Path(out) / "details" / "stealthmark.json", details, default=str)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write details/stealthmark.json here")
    args = ap.parse_args(argv)
    summary = run(quick=args.quick, seed=args.seed, out=args.out)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
