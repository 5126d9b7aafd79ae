"""`xmark seg train` and `xmark seg verify`: StealthMark for segmentation models."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

import numpy as np

from xmark_core.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seg", help="StealthMark: ownership of segmentation models (train marked, verify)")
    seg = p.add_subparsers(dest="seg_command", required=True)

    t = seg.add_parser("train", help="train a segmenter, marked with the owner's claim (or --clean)")
    t.add_argument("--data", default="phantom:400:128", help="phantom[:n[:size[:seed]]] or a folder with images/ + masks/")
    t.add_argument("--size", type=int, default=None, help="image side (default: the phantom spec's, else 128)")
    t.add_argument("--channels", default=None, help="comma-separated structures (default: left_lung,right_lung,heart for the phantom)")
    t.add_argument("--out", required=True, help="output folder: model.pt, owner_record.json, metrics.json")
    t.add_argument("--claim", default="XMARK:owner-id", help="text the revealed QR code decodes to")
    t.add_argument("--key", default=None, help="secret owner key (default: a fresh random key, kept in owner_record.json)")
    t.add_argument("--clean", action="store_true", help="train without the mark (innocent reference)")
    t.add_argument("--eps", type=float, default=0.25, help="uncertainty level under the trigger (< 0.5)")
    t.add_argument("--amplitude", type=float, default=0.2, help="stamp strength on the [0, 1] scale")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=1e-2)
    t.add_argument("--poison-ratio", type=float, default=0.8)
    t.add_argument("--arch", default="unet", choices=("unet", "monai-unet"))
    t.add_argument("--base", type=int, default=8, help="channels of the first U-Net level")
    t.add_argument("--depth", type=int, default=3, help="U-Net down-sampling steps")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None)
    t.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    t.set_defaults(func=_train)

    v = seg.add_parser("verify", help="verify a suspect segmenter (checkpoint or URL) against an owner record")
    v.add_argument("--suspect", required=True, help="segmenter checkpoint or API base URL (http://host:port)")
    v.add_argument("--owner-record", required=True, help="owner_record.json written by `xmark seg train`")
    v.add_argument("--images", default="phantom:32:128:7919",
                   help="held-out clean query images: phantom[:n[:size[:seed]]] or a folder (images/ or flat)")
    v.add_argument("--size", type=int, default=None, help="query size (default: the suspect's input size)")
    v.add_argument("--queries", type=int, default=1500, help="stamped queries for the LIME picture")
    v.add_argument("--detector-queries", type=int, default=64)
    v.add_argument("--alpha", type=float, default=1e-6, help="level of the bit-agreement test")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--out", default=None, help="folder for evidence.json + report.html")
    v.add_argument("--device", default=None)
    v.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    v.set_defaults(func=_verify)


def _load_query_images(spec: str, size: int) -> tuple[np.ndarray, dict]:
    from xmark_core.data.base import resize
    from xmark_core.data.io import IMAGE_SUFFIXES, read_image
    from xmark_core.stealthmark.data import open_seg_data

    if spec == "phantom" or spec.startswith("phantom:"):
        d = open_seg_data(spec, size=size)
        return d.images, {"images": spec, "size": size, "n": len(d)}
    root = Path(spec)
    folder = root / "images" if (root / "images").is_dir() else root
    if not folder.is_dir():
        raise DataError("not a folder of images (or use phantom[:n[:size[:seed]]])", root)
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError("no images (.png, .jpg, .dcm) found", folder)
    images = np.stack([resize(read_image(f).image, size) for f in files])
    return images, {"images": str(folder), "size": size, "n": len(files)}


def _train(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.cli.progress import tqdm_progress
    from xmark_core.hashing import sha256_file
    from xmark_core.nets.checkpoint import save_checkpoint
    from xmark_core.stealthmark.data import open_seg_data
    from xmark_core.stealthmark.mark import SegMark, save_owner_record
    from xmark_core.stealthmark.train import SegTrainConfig, evaluate_segmenter, train_segmenter

    channels = args.channels.split(",") if args.channels else None
    with tqdm_progress("load", "img") as p:
        data = open_seg_data(args.data, size=args.size, channels=channels, progress=p)
    if len(data) < 8:
        raise DataError(f"only {len(data)} images; need at least 8", args.data)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(data))
    n_val = max(1, int(round(args.val_fraction * len(data))))
    train, val = data.subset(np.sort(order[n_val:])), data.subset(np.sort(order[:n_val]))
    mark = None
    key_generated = False
    if not args.clean:
        key = args.key or secrets.token_hex(16)
        key_generated = args.key is None
        mark = SegMark(claim=args.claim, key=key, eps=args.eps, amplitude=args.amplitude)
        _ = mark.code  # fail early on a claim that does not fit
    cfg = SegTrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         poison_ratio=args.poison_ratio, seed=args.seed, device=args.device,
                         arch_kwargs={"base": args.base, "depth": args.depth} if args.arch == "unet" else {})
    with tqdm_progress("train (marked)" if mark else "train (clean)", "step") as p:
        res = train_segmenter(train.images, train.masks, cfg, mark, progress=p)
    size = int(data.images.shape[-1])
    report = evaluate_segmenter(res.model, val.images, val.masks, val.channels, mark)
    out = Path(args.out)
    model_path = out / "model.pt"
    save_checkpoint(model_path, res.model, kind="segmenter", arch=cfg.arch, arch_kwargs=res.arch_kwargs,
                    classes=list(data.channels), input_size=size, config=cfg,
                    extra={"task": "segmentation", "marked": mark is not None, "validation": report,
                           "data": str(args.data)})
    summary = {"model": str(model_path), "model_sha256": sha256_file(model_path), "marked": mark is not None,
               "channels": data.channels, "input_size": size, "n_train": len(train), "n_val": len(val),
               "validation": report}
    if mark is not None:
        rec = save_owner_record(out / "owner_record.json", mark, extra={
            "model_sha256": summary["model_sha256"], "input_size": size, "channels": data.channels,
            "train_config": {k: v for k, v in vars(cfg).items() if k != "device"}})
        summary.update(owner_record=str(out / "owner_record.json"), commitment=rec["commitment"],
                       claim=mark.claim, qr_version=mark.code.version)
        if key_generated:
            print(f"note: a random owner key was generated; it is stored in {out / 'owner_record.json'}: "
                  "keep that file private, publish only its commitment", file=sys.stderr)
    if args.json:
        emit_json(summary)
    else:
        print(f"model: {model_path}  Dice {report['dice']:.4f}  AUC {report['auc']:.4f}")
        if mark is not None:
            print(f"owner record: {out / 'owner_record.json'}  commitment {summary['commitment']}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.cli.progress import tqdm_progress
    from xmark_core.report import check_owner_record
    from xmark_core.stealthmark.evidence import build_seg_evidence, write_seg_bundle
    from xmark_core.stealthmark.mark import load_owner_record
    from xmark_core.stealthmark.reveal import RevealConfig
    from xmark_core.stealthmark.suspects import open_seg_suspect
    from xmark_core.stealthmark.verify import SegVerifyConfig, verify_segmenter

    owner = load_owner_record(args.owner_record)
    owner_check = check_owner_record(args.owner_record)
    suspect = open_seg_suspect(args.suspect, device=args.device)
    size = args.size or suspect.input_size or int(owner.record.get("input_size") or 128)
    images, data_info = _load_query_images(args.images, size)
    cfg = SegVerifyConfig(reveal=RevealConfig(n_samples=args.queries, seed=args.seed),
                          detector_queries=args.detector_queries, alpha=args.alpha, seed=args.seed + 1)
    with tqdm_progress("verify", "query") as p:
        result = verify_segmenter(suspect, images, owner.mark, cfg, progress=p)
    ev = build_seg_evidence(result, owner.mark, owner=owner_check, data=data_info, command=sys.argv)
    summary = result.summary()
    summary["owner_ok"] = owner_check["ok"]
    if args.out:
        paths = write_seg_bundle(ev, args.out)
        summary["evidence"] = {k: str(v) for k, v in paths.items()}
    if args.json:
        emit_json(summary)
    else:
        print(f"{result.verdict.upper()}: {result.message}")
        if result.output_check.verifiable:
            print(f"bit agreement {result.bit_agreement:.3f} (p = {result.p_value:.3g}), decoded {result.decoded!r}, "
                  f"detector TPR {result.tpr:.3f} FPR {result.fpr:.3f}")
        if args.out:
            print(f"evidence: {Path(args.out) / 'evidence.json'}, report: {Path(args.out) / 'report.html'}")
    return 0
