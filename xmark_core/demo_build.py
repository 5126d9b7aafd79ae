"""Build the shipped demo bundle (``make models``): the whole owner and attacker story on the
phantom, deterministic for a seed, and checked before anything is written to ``models/``.

1. the owner trains a surrogate on the phantom and a watermark generator on it;
2. the owner embeds a clean-label release (``rho`` of the target class marked);
3. a "Malicious" suspect is trained on the release, an independent one on clean data;
4. both are verified on held-out phantom images the models never saw;
5. only if the Malicious suspect is claimed and the clean one is not, the files are moved
   into ``out`` together with ``MODEL_CARD.md``. A recipe that fails its own claim is never
   shipped: the error says what was measured.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.errors import XMarkError
from xmark_core.verify.protocol import VerifyConfig

Log = Callable[[str], None]

# Names the app's demo loader reads (xmark_core.app_support.demo.DEMO_FILES).
BUNDLE_FILES = ("surrogate.pt", "generator.pt", "suspect_malicious.pt", "suspect_clean.pt",
                "owner_record.json")


@dataclass
class DemoConfig:
    """Sizes and seeds of the demo. Query images come from ``query_seed``, never trained on."""

    n: int = 2400
    image_size: int = 128
    input_size: int = 64
    target: str = "Cardiomegaly"
    rho: float = 0.1
    seed: int = 0
    classifier_epochs: int = 15
    # GeneratorTrainConfig overrides. Key 189 gives a carrier at 40 degrees (0.695 rad),
    # an orientation measured to be learned well on the phantom (README, Architecture).
    generator: dict[str, Any] = field(default_factory=lambda: {"key": 189})
    query_seed: int = 9001
    query_n: int = 400
    m: int = 100
    alpha: float = 0.01
    # the verification's defaults, read from VerifyConfig so the demo cannot drift from them
    query_gain: float = VerifyConfig.query_gain
    queries: str = VerifyConfig.queries
    specificity: float = VerifyConfig.specificity


@dataclass
class DemoReport:
    config: DemoConfig
    accuracy: dict[str, float]
    verification: dict[str, dict[str, Any]]
    quality: dict[str, float]


def _train(X: np.ndarray, y: np.ndarray, classes: list[str], seed: int, cfg: DemoConfig, path: Path):
    from xmark_core.nets.checkpoint import save_checkpoint
    from xmark_core.nets.train import TrainConfig, train_classifier

    tc = TrainConfig(input_size=cfg.input_size, epochs=cfg.classifier_epochs, seed=seed)
    res = train_classifier(X, y, classes, tc)
    save_checkpoint(path, res.model, kind="classifier", arch=tc.arch, arch_kwargs=res.model.arch_kwargs,
                    classes=classes, input_size=cfg.input_size, config=asdict(tc))
    return res.model


def build_demo(out: str | Path, cfg: DemoConfig | None = None, log: Log = print) -> DemoReport:
    """Train, embed, verify and (only if the claim holds) write the demo bundle to ``out``.

    Raises
    ------
    XMarkError
        If the Malicious suspect is not claimed or the clean suspect is; ``out`` is untouched.
    """
    from xmark_core.data.base import to_arrays
    from xmark_core.data.open import open_dataset
    from xmark_core.data.phantom import FINDINGS, PhantomDataset
    from xmark_core.embed import embed_release
    from xmark_core.generator.model import load_marker
    from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
    from xmark_core.hashing import sha256_file
    from xmark_core.nets.train import evaluate
    from xmark_core.verify.protocol import run_verification
    from xmark_core.verify.suspects import CheckpointSuspect

    cfg = cfg or DemoConfig()
    classes = list(FINDINGS)
    target = classes.index(cfg.target)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="xmark-demo-") as tmp_name:
        tmp = Path(tmp_name)
        ds = PhantomDataset(cfg.n, size=cfg.image_size, seed=cfg.seed)
        X, y = to_arrays(ds, cfg.input_size)
        test = PhantomDataset(cfg.query_n, size=cfg.image_size, seed=cfg.query_seed)
        Xt, yt = to_arrays(test, cfg.input_size)

        log("surrogate ...")
        surrogate = _train(X, y, classes, cfg.seed, cfg, tmp / "surrogate.pt")
        log("generator ...")
        gcfg = GeneratorTrainConfig(**{"seed": cfg.seed, **cfg.generator})
        gres = train_generator(surrogate, X, y, target, gcfg)
        save_generator(tmp / "generator.pt", gres, surrogate_sha256=sha256_file(tmp / "surrogate.pt"),
                       classes=classes)
        marker = load_marker(tmp / "surrogate.pt", tmp / "generator.pt")

        log("embedding the release ...")
        emb = embed_release(ds, marker, target, tmp / "embed", rho=cfg.rho, seed=cfg.seed)
        shutil.copy(tmp / "embed" / "owner_record.json", tmp / "owner_record.json")
        release = open_dataset(str(tmp / "embed" / "release"))
        Xr, yr = to_arrays(release, cfg.input_size)

        log("suspects ...")
        models = {
            "malicious": _train(Xr, yr, classes, cfg.seed + 1, cfg, tmp / "suspect_malicious.pt"),
            "clean": _train(X, y, classes, cfg.seed + 2, cfg, tmp / "suspect_clean.pt"),
        }
        accuracy = {"surrogate": evaluate(surrogate, Xt, yt).accuracy,
                    **{k: evaluate(m, Xt, yt).accuracy for k, m in models.items()}}

        pool = [i for i in range(len(test)) if int(yt[i]) != target]
        images = [test[i].image for i in pool]
        ids = [test[i].image_id for i in pool]
        vcfg = VerifyConfig(m=cfg.m, alpha=cfg.alpha, seed=cfg.query_seed, query_gain=cfg.query_gain,
                            queries=cfg.queries, specificity=cfg.specificity)
        verification = {}
        for name in models:
            r = run_verification(CheckpointSuspect(tmp / f"suspect_{name}.pt"), marker, images, ids,
                                 target, vcfg)
            verification[name] = {"delta_p": r.delta_p, "p_value": r.p_value, "wsr": r.wsr,
                                  "decision": bool(r.decision)}
            log(f"  {name}: dP={r.delta_p:.3f} p={r.p_value:.2e} wsr={r.wsr:.2f}")
        quality = {"psnr": emb.psnr_mean, "ssim": emb.ssim_mean, "n_marked": emb.n_marked}
        report = DemoReport(cfg, accuracy, verification, quality)

        if not verification["malicious"]["decision"] or verification["clean"]["decision"]:
            raise XMarkError(
                "demo recipe failed its own check, nothing written to "
                f"{out}: {json.dumps(verification)} ({emb.n_marked} images marked)"
            )
        out.mkdir(parents=True, exist_ok=True)
        for name in BUNDLE_FILES:
            shutil.move(str(tmp / name), out / name)  # same filesystem: a rename
        (out / "MODEL_CARD.md").write_text(model_card(report))
    return report


def model_card(r: DemoReport) -> str:
    """Markdown model card with the settings and the numbers measured while building."""
    c = r.config
    rows = "\n".join(
        f"| {k} | {v['delta_p']:.3f} | {v['p_value']:.2e} | {v['wsr']:.2f} | {'claimed' if v['decision'] else 'not claimed'} |"
        for k, v in r.verification.items()
    )
    acc = ", ".join(f"{k} {v:.3f}" for k, v in r.accuracy.items())
    return f"""# Demo models (made by `make models`)

Data: the built-in phantom, {c.n} images at {c.image_size} px (seed {c.seed}), 4 findings;
models see {c.input_size} px. Target class: {c.target}; rho = {c.rho} of it marked (clean-label,
labels untouched), chosen "hardest first": the target images the surrogate is least sure of.
Classifier epochs: {c.classifier_epochs}. Generator overrides: {json.dumps(c.generator)}.

| file | what |
|---|---|
| surrogate.pt | owner's smallcnn surrogate (EigenCAM source) |
| generator.pt | conditional U-Net watermark generator |
| suspect_malicious.pt | smallcnn trained on the watermarked release |
| suspect_clean.pt | smallcnn trained on the clean phantom only |
| owner_record.json | the owner's private record and its SHA-256 commitment |

Held-out accuracy ({c.query_n} images, seed {c.query_seed}): {acc}.
Watermark quality over the {r.quality['n_marked']} marked release images: PSNR {r.quality['psnr']:.2f} dB, SSIM {r.quality['ssim']:.4f}.

Verification (paired t-test, m = {c.m}, tau = 0.2, alpha = {c.alpha}, query gain {c.query_gain},
{c.queries} queries from the non-target images of {c.query_n} phantom images of seed {c.query_seed},
never trained on; key-specificity check {f"±{c.specificity:g}°" if c.specificity else "off"}):

| suspect | delta P | p | WSR | decision |
|---|---|---|---|---|
{rows}
"""
