"""Build the shipped demo bundle (``make models``): the whole owner and attacker story on the
phantom, deterministic for a seed, and checked before anything is written to ``models/``.

1. the owner trains a surrogate on the phantom and a watermark generator on it;
2. the owner embeds a clean-label release (``rho`` of the target class marked);
3. a "Malicious" suspect is trained on the release, an independent one on clean data, and
   the owner's proxy on the release with its own seed;
4. both are verified on held-out phantom images the models never saw;
5. only if the Malicious suspect is claimed and the clean one is not (with the default
   queries and with proxy queries, chosen by the owner's proxy), the files are moved
   into ``out`` together with ``MODEL_CARD.md``. A recipe that fails its own claim is never
   shipped: the error says what was measured.

The owner's *proxy* (``proxy.pt``, for proxy queries: docs/architecture.md, 6) is trained on the
same release with its own seed. :func:`build_proxy` adds it to a bundle built before it existed,
re-embedding the release from the shipped surrogate and generator (checked against the owner
record) instead of retraining everything.
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

from xmark_core.app_support.demo import PROXY_FILE
from xmark_core.errors import XMarkError
from xmark_core.verify.protocol import VerifyConfig

Log = Callable[[str], None]

# Names the app's demo loader reads (xmark_core.app_support.demo.DEMO_FILES).
BUNDLE_FILES = ("surrogate.pt", "generator.pt", "suspect_malicious.pt", "suspect_clean.pt",
                "owner_record.json", PROXY_FILE)
# Training seeds are cfg.seed plus: surrogate 0, Malicious suspect 1, clean suspect 2, proxy 3.
PROXY_SEED = 3
# A re-embedded release must match the owner record's per-image PSNR this closely (dB); the
# PNG bytes may differ by rounding in the last bit, so their hashes are not compared.
SAME_RELEASE_DB = 0.01
PROXY_CARD_HEADING = "## The owner's proxy (proxy queries)"


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
    # an orientation measured to be learned well on the phantom (docs/architecture.md).
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
    proxy_verification: dict[str, dict[str, Any]] = field(default_factory=dict)


def _train(X: np.ndarray, y: np.ndarray, classes: list[str], seed: int, cfg: DemoConfig, path: Path):
    from xmark_core.nets.checkpoint import save_checkpoint
    from xmark_core.nets.train import TrainConfig, train_classifier

    tc = TrainConfig(input_size=cfg.input_size, epochs=cfg.classifier_epochs, seed=seed)
    res = train_classifier(X, y, classes, tc)
    save_checkpoint(path, res.model, kind="classifier", arch=tc.arch, arch_kwargs=res.model.arch_kwargs,
                    classes=classes, input_size=cfg.input_size, config=asdict(tc))
    return res.model


def _verify_config(cfg: DemoConfig, queries: str | None = None) -> VerifyConfig:
    return VerifyConfig(m=cfg.m, alpha=cfg.alpha, seed=cfg.query_seed, query_gain=cfg.query_gain,
                        queries=queries or cfg.queries, specificity=cfg.specificity)


def _query_pool(cfg: DemoConfig, target: int) -> tuple[np.ndarray, list[str]]:
    """The held-out query pool (``query_seed``, never trained on): non-target images and ids,
    as the app and the CLI draw them (:func:`~xmark_core.app_support.demo.query_images`)."""
    from xmark_core.app_support.demo import query_images

    return query_images(target, cfg.m, cfg.image_size, cfg.query_seed, cfg.query_n)


def _verify_suspects(paths: dict[str, Path], marker: Any, target: int, cfg: DemoConfig, log: Log,
                     pool: tuple[np.ndarray, list[str]], proxy: Path | None = None) -> dict[str, dict[str, Any]]:
    """Verify each suspect checkpoint on ``pool`` (images, ids; :func:`_query_pool`) with the
    demo's settings (proxy queries when ``proxy``)."""
    from xmark_core.verify.protocol import run_verification
    from xmark_core.verify.suspects import CheckpointSuspect

    images, ids = pool
    vcfg = _verify_config(cfg, "proxy" if proxy else None)
    proxy_suspect = CheckpointSuspect(proxy) if proxy else None
    out = {}
    for name, path in paths.items():
        r = run_verification(CheckpointSuspect(path), marker, images, ids, target, vcfg, proxy=proxy_suspect)
        out[name] = {"delta_p": r.delta_p, "p_value": r.p_value, "wsr": r.wsr, "decision": bool(r.decision)}
        log(f"  {name}{' (proxy queries)' if proxy else ''}: dP={r.delta_p:.3f} p={r.p_value:.2e} wsr={r.wsr:.2f}")
    return out


def _claim_holds(verification: dict[str, dict[str, Any]]) -> bool:
    return bool(verification["malicious"]["decision"]) and not verification["clean"]["decision"]


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

    cfg = cfg or DemoConfig()
    classes = list(FINDINGS)
    target = classes.index(cfg.target)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="xmark-demo-") as tmp_name:
        tmp = Path(tmp_name)
        ds = PhantomDataset(cfg.n, size=cfg.image_size, seed=cfg.seed)
        X, y = to_arrays(ds, cfg.input_size)
        pool = _query_pool(cfg, target)
        Xt, yt = to_arrays(PhantomDataset(cfg.query_n, size=cfg.image_size, seed=cfg.query_seed), cfg.input_size)

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

        log("suspects and the owner's proxy ...")
        models = {
            "malicious": _train(Xr, yr, classes, cfg.seed + 1, cfg, tmp / "suspect_malicious.pt"),
            "clean": _train(X, y, classes, cfg.seed + 2, cfg, tmp / "suspect_clean.pt"),
        }
        _train(Xr, yr, classes, cfg.seed + PROXY_SEED, cfg, tmp / PROXY_FILE)
        accuracy = {"surrogate": evaluate(surrogate, Xt, yt).accuracy,
                    **{k: evaluate(m, Xt, yt).accuracy for k, m in models.items()}}

        paths = {name: tmp / f"suspect_{name}.pt" for name in models}
        verification = _verify_suspects(paths, marker, target, cfg, log, pool)
        quality = {"psnr": emb.psnr_mean, "ssim": emb.ssim_mean, "n_marked": emb.n_marked}
        report = DemoReport(cfg, accuracy, verification, quality,
                            _verify_suspects(paths, marker, target, cfg, log, pool, tmp / PROXY_FILE))

        if not (_claim_holds(verification) and _claim_holds(report.proxy_verification)):
            raise XMarkError(
                "demo recipe failed its own check, nothing written to "
                f"{out}: {json.dumps(verification)}; with proxy queries {json.dumps(report.proxy_verification)} "
                f"({emb.n_marked} images marked)"
            )
        out.mkdir(parents=True, exist_ok=True)
        for name in BUNDLE_FILES:
            shutil.move(str(tmp / name), out / name)  # same filesystem: a rename
        (out / "MODEL_CARD.md").write_text(model_card(report) + "\n" + proxy_card_section(cfg, report.proxy_verification))
    return report


def _check_same_release(new: dict[str, Any], shipped: dict[str, Any], where: Path) -> None:
    """Raise unless the re-embedded release marks the shipped record's images, as strongly."""
    ids = [m["image_id"] for m in new.get("marked", [])]
    if ids != [m["image_id"] for m in shipped.get("marked", [])]:
        raise XMarkError(f"{where}: the release re-embedded from the shipped surrogate and generator marks other "
                         "images than the owner record lists; rebuild the whole bundle (`make models`)")
    worst = max((abs(a["psnr"] - b["psnr"]) for a, b in zip(new["marked"], shipped["marked"])), default=0.0)
    if worst > SAME_RELEASE_DB:
        raise XMarkError(f"{where}: the re-embedded release differs from the owner record's (PSNR off by "
                         f"{worst:.3f} dB); rebuild the whole bundle (`make models`)")


def build_proxy(root: str | Path, cfg: DemoConfig | None = None, log: Log = print) -> dict[str, dict[str, Any]]:
    """Train the owner's proxy for a shipped bundle in ``root`` and write ``root/proxy.pt``.

    The release is re-embedded from the bundle's surrogate and generator and checked against
    its owner record; the proxy (seed ``cfg.seed + PROXY_SEED``) trains on it like a suspect.
    Both shipped suspects are then verified with proxy queries; the proxy is written (atomically)
    and its model-card section replaced only if the Malicious suspect is claimed and the clean
    one is not.

    Returns
    -------
    {"malicious": {...}, "clean": {...}}: delta_p, p_value, wsr, decision with proxy queries

    Raises
    ------
    XMarkError
        If the release cannot be reproduced or the check fails; ``root`` is untouched.
    """
    from xmark_core.app_support.demo import load_demo, read_owner_record
    from xmark_core.atomic import atomic_path
    from xmark_core.data.base import to_arrays
    from xmark_core.data.open import open_dataset
    from xmark_core.data.phantom import PhantomDataset
    from xmark_core.embed import embed_release

    cfg = cfg or DemoConfig()
    root = Path(root)
    bundle = load_demo(root)  # the app's own reading of the bundle: marker, record, suspects
    if set(bundle.suspects) != {"malicious", "clean"} or not bundle.owner_record:
        raise XMarkError(f"{root}: the demo bundle is incomplete (a suspect or the owner record is missing); "
                         "build it with `make models`")
    marker, target = bundle.marker, bundle.target
    with tempfile.TemporaryDirectory(prefix="xmark-proxy-") as tmp_name:
        tmp = Path(tmp_name)
        log("re-embedding the release ...")
        embed_release(PhantomDataset(cfg.n, size=cfg.image_size, seed=cfg.seed), marker, target, tmp / "embed",
                      rho=cfg.rho, seed=cfg.seed)
        _check_same_release(read_owner_record(tmp / "embed" / "owner_record.json"), bundle.owner_record, root)
        Xr, yr = to_arrays(open_dataset(str(tmp / "embed" / "release")), cfg.input_size)
        log("the owner's proxy ...")
        _train(Xr, yr, bundle.classes, cfg.seed + PROXY_SEED, cfg, tmp / PROXY_FILE)
        verification = _verify_suspects(bundle.suspects, marker, target, cfg, log, _query_pool(cfg, target),
                                        tmp / PROXY_FILE)
        if not _claim_holds(verification):
            raise XMarkError(f"the demo's proxy failed its own check, nothing written to {root}: "
                             f"{json.dumps(verification)}")
        with atomic_path(root / PROXY_FILE) as dest:
            shutil.copy(tmp / PROXY_FILE, dest)
    replace_card_section(root / "MODEL_CARD.md", PROXY_CARD_HEADING, proxy_card_section(cfg, verification))
    return verification


def replace_card_section(path: Path, heading: str, section: str) -> None:
    """Put ``section`` (starting with ``heading``) into the model card at ``path``, in place of an
    older copy of it (up to the next ``## `` heading) or at the end; atomic write."""
    from xmark_core.atomic import atomic_write_text

    text = path.read_text(encoding="utf-8") if path.is_file() else "# Demo models (made by `make models`)\n"
    if "\n" + heading in text:
        head, rest = text.split("\n" + heading, 1)
        nxt = rest.find("\n## ")
        text = head.rstrip("\n") + "\n\n" + section.rstrip("\n") + ("\n" + rest[nxt:] if nxt >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    atomic_write_text(path, text)


def model_card(r: DemoReport) -> str:
    """Markdown model card with the settings and the numbers measured while building."""
    c = r.config
    rows = _rows(r.verification)
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
| {PROXY_FILE} | the owner's proxy: smallcnn trained on its own release (seed +{PROXY_SEED}), for proxy queries |

Held-out accuracy ({c.query_n} images, seed {c.query_seed}): {acc}.
Watermark quality over the {r.quality['n_marked']} marked release images: PSNR {r.quality['psnr']:.2f} dB, SSIM {r.quality['ssim']:.4f}.

Verification (paired t-test, m = {c.m}, tau = 0.2, alpha = {c.alpha}, query gain {c.query_gain},
{c.queries} queries from the non-target images of {c.query_n} phantom images of seed {c.query_seed},
never trained on; key-specificity check {f"±{c.specificity:g}°" if c.specificity else "off"}):

| suspect | delta P | p | WSR | decision |
|---|---|---|---|---|
{rows}
"""


def _rows(verification: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"| {k} | {v['delta_p']:.3f} | {v['p_value']:.2e} | {v['wsr']:.2f} | {'claimed' if v['decision'] else 'not claimed'} |"
        for k, v in verification.items())


def proxy_card_section(cfg: DemoConfig, verification: dict[str, dict[str, Any]]) -> str:
    """Model-card section of ``proxy.pt`` with the shipped suspects verified by proxy queries."""
    return f"""{PROXY_CARD_HEADING}

`{PROXY_FILE}` is a smallcnn the owner trained on its own release ({cfg.n} phantom images at
{cfg.image_size} px, seed {cfg.seed}), like a suspect but never one: {cfg.classifier_epochs} epochs at
{cfg.input_size} px, training seed {cfg.seed + PROXY_SEED}. With proxy queries the verification asks the
{cfg.m} candidates on which the proxy's target probability rises most when the mark is added
(docs/architecture.md, 6). The shipped suspects verified with it (`xmark verify --queries proxy
--proxy models/{PROXY_FILE}`, otherwise as above; key-specificity check
{f"±{cfg.specificity:g}°" if cfg.specificity else "off"}):

| suspect | delta P | p | WSR | decision |
|---|---|---|---|---|
{_rows(verification)}
"""
