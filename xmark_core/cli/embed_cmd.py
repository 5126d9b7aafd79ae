"""`xmark train-generator`, `xmark embed` and `xmark embed merge`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields

import numpy as np

from xmark_core.errors import CheckpointError, DataError


def resolve_class(classes: list[str], value: str) -> int:
    """A class given by name (case-insensitive) or index -> its index."""
    lower = [c.lower() for c in classes]
    if value.lower() in lower:
        return lower.index(value.lower())
    try:
        idx = int(value)
    except ValueError:
        raise DataError(f"unknown class {value!r}; choose one of {classes} (or an index)") from None
    if not 0 <= idx < len(classes):
        raise DataError(f"class index {idx} out of range 0..{len(classes) - 1} ({classes})")
    return idx


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n (e.g. 0/8), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def _threads(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"--threads takes a count >= 1, or 0 for torch's default; got {text!r}")
    return n


def _train_generator(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.cli.progress import tqdm_progress
    from xmark_core.data.base import stratified_split, to_arrays
    from xmark_core.data.open import open_dataset
    from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
    from xmark_core.nets.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    sur = load_checkpoint(args.surrogate)
    if sur.kind != "classifier":
        raise CheckpointError(f"{args.surrogate}: a {sur.kind} checkpoint; --surrogate needs a classifier")
    ds = open_dataset(args.data)
    classes = list(ds.classes)
    if sur.classes and list(sur.classes) != classes:
        raise DataError(f"the surrogate's classes {sur.classes} differ from the dataset's {classes}", args.data)
    target = resolve_class(classes, args.target)
    labels = np.asarray(ds.labels())
    idx = np.arange(len(labels))
    if args.max_images and args.max_images < len(idx):
        idx = stratified_split(labels, [args.max_images, len(labels) - args.max_images], args.seed)[0]
    size = args.size or sur.input_size or 64
    with tqdm_progress("load", "img") as p:
        X, y = to_arrays(ds, size, idx, progress=p)
    overrides = json.loads(args.config) if args.config else {}
    known = {f.name for f in fields(GeneratorTrainConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise DataError(f"unknown generator setting(s) {bad} in --config; known: {sorted(known)}")
    for name in ("epochs", "eps", "key", "seed", "device"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    cfg = GeneratorTrainConfig(**overrides)
    with tqdm_progress("train generator", "epoch") as p:
        res = train_generator(sur, X, y, target, cfg, input_size=sur.input_size or size, progress=p)
    res.extra.update(data=str(args.data), n_train=int(len(idx)), train_size=int(size))
    save_generator(args.out, res, surrogate_sha256=sur.sha256, classes=classes)
    last = res.history[-1]
    summary = {
        "out": str(args.out), "target": target, "target_name": classes[target], "key": cfg.key,
        "n_train": int(len(idx)), "size": int(size), "epochs": cfg.epochs,
        "surrogate_target_rate": last["asr"], "psnr": last["psnr"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        emit_json(summary)
    else:
        print(
            f"saved {args.out}: surrogate reads {last['asr']:.0%} of marked non-target images as "
            f"{classes[target]!r}, mean PSNR {last['psnr']:.1f} dB (training set)",
            file=sys.stderr,
        )
    return 0


def _embed(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.cli.progress import tqdm_progress
    from xmark_core.data.open import open_dataset
    from xmark_core.embed import embed_release, merge_shards
    from xmark_core.generator.model import load_marker

    if getattr(args, "embed_action", None) == "merge":
        with tqdm_progress("merge", "img") as p:
            res = merge_shards(args.dirs, args.out, progress=p)
    else:
        missing = [o for o in ("data", "surrogate", "generator", "target", "out") if not getattr(args, o)]
        if missing:
            raise DataError("xmark embed needs " + ", ".join("--" + m for m in missing))
        ds = open_dataset(args.data)
        marker = load_marker(args.surrogate, args.generator, device=args.device)
        marker.work_size = args.work_size
        target = resolve_class(list(ds.classes), args.target)
        if marker.target is not None and marker.target != target:
            raise DataError(
                f"the generator was trained for class {marker.target} "
                f"({ds.classes[marker.target]!r}), not {target} ({ds.classes[target]!r})",
                args.generator,
            )
        if args.harden_with:
            from xmark_core.harden import HardenConfig, HardenedMarker, load_harden_models

            marker = HardenedMarker(
                marker, load_harden_models(args.harden_with, marker, list(ds.classes), device=args.device),
                HardenConfig(psnr_floor=args.harden_psnr, ssim_floor=args.harden_ssim or None,
                             steps=args.harden_steps))
        with tqdm_progress("embed", "img") as p:
            res = embed_release(ds, marker, target, args.out, rho=args.rho, seed=args.seed,
                                shard=args.shard, progress=p, selection=args.selection,
                                threads=args.threads or None)
        note = marker.room_note() if args.harden_with else None
        if note:
            print(f"note: {note}", file=sys.stderr)
    if args.json:
        emit_json(res.summary())
    elif res.commitment:
        print(
            f"release in {res.out_dir}/release ({res.n_images} images, {res.n_marked} marked, mean "
            f"PSNR {res.psnr_mean:.1f} dB); commitment {res.commitment}; keep "
            f"{res.owner_record_path} private",
            file=sys.stderr,
        )
    else:
        print(
            f"shard {res.shard[0]}/{res.shard[1]} done ({res.n_images} images, {res.n_marked} "
            "marked); run `xmark embed merge` when every shard has finished",
            file=sys.stderr,
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-generator", help="train the watermark generator against a surrogate classifier",
        description="Train the conditional U-Net watermark generator so that marked images read "
        "as the target class to the surrogate (clean-label X-Mark).",
    )
    p.add_argument("--surrogate", required=True, help="classifier checkpoint (xmark train-classifier)")
    p.add_argument("--data", required=True, help="dataset spec: phantom[:n[:size[:seed]]], folder, CheXpert CSV")
    p.add_argument("--target", required=True, help="target class (name or index)")
    p.add_argument("--out", required=True, help="generator checkpoint to write (.pt)")
    p.add_argument("--size", type=int, default=None, help="training resolution (default: the surrogate's)")
    p.add_argument("--max-images", type=int, default=None, help="train on a stratified subset of this size")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--eps", type=float, default=None, help="per-pixel bound of the mark")
    p.add_argument("--key", type=int, default=None, help="owner key (integer)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--config", default=None, help="JSON object of GeneratorTrainConfig fields")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_train_generator)

    e = sub.add_parser(
        "embed", help="write a watermarked (clean-label) release of a dataset",
        description="Watermark a fraction rho of the target-class images and write the release, "
        "its public manifest and the private owner record. `xmark embed merge DIR... --out DIR` "
        "joins the shards of a sharded run.",
    )
    e.add_argument("--data", help="dataset spec")
    e.add_argument("--surrogate", help="classifier checkpoint the generator was trained with")
    e.add_argument("--generator", help="generator checkpoint (xmark train-generator)")
    e.add_argument("--target", help="target class (name or index)")
    e.add_argument("--rho", type=float, default=0.1, help="fraction of target-class images to mark")
    e.add_argument("--seed", type=int, default=0, help="seed of the choice of marked images")
    e.add_argument("--selection", choices=("hardest", "random"), default="hardest",
                   help="which target images to mark: those the surrogate is least sure of "
                        "(default; what a model learns the mark from) or a random choice")
    e.add_argument("--shard", type=_parse_shard, default=(0, 1), help="i/n: this job's share")
    e.add_argument("--work-size", type=int, default=None,
                   help="mark larger images at this side and upsample the mark (default: native). "
                        "Faster; measured on the phantom: about twice the largest input side a "
                        "model is expected to train at keeps the mark learned, the input side "
                        "itself weakens it (README, Results: Speed)")
    e.add_argument("--harden-with", action="append", default=[], metavar="CKPT",
                   help="also push each marked image away from the target class for this clean "
                        "classifier of the owner's (repeat for several; 'surrogate' = the "
                        "surrogate), inside the --harden-psnr budget shared with the mark: a "
                        "model of that architecture then learns the mark more readily (lab, XXII)")
    e.add_argument("--harden-psnr", type=float, default=42.0,
                   help="PSNR floor (dB) of mark + hardening per image (default 42)")
    e.add_argument("--harden-ssim", type=float, default=0.99,
                   help="SSIM floor of mark + hardening per image (default 0.99; 0: none)")
    e.add_argument("--harden-steps", type=int, default=20, help="PGD steps of the hardening (default 20)")
    e.add_argument("--threads", type=_threads, default=1,
                   help="torch CPU threads for marking (default 1: the release has the same bits on "
                        "any core count of a machine; for speed run --shard i/n jobs side by side, "
                        "one per core). 0: torch's default, all cores: faster, but a few pixels can "
                        "differ from a run at another count. The count is recorded, and merge "
                        "refuses shards marked at different counts")
    e.add_argument("--out", help="output folder")
    e.add_argument("--device", default=None)
    e.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    e.set_defaults(func=_embed)
    esub = e.add_subparsers(dest="embed_action", required=False)
    m = esub.add_parser("merge", help="join the shard records into one manifest and commitment")
    m.add_argument("dirs", nargs="+", help="output folders of the shards (may all be the same)")
    m.add_argument("--out", required=True, help="folder of the merged release")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_embed)
