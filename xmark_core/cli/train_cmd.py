"""`xmark train-classifier` and `xmark saliency`."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from xmark_core.atomic import atomic_write_bytes
from xmark_core.cli.progress import tqdm_progress
from xmark_core.errors import CheckpointError, DataError
from xmark_core.hashing import sha256_file


def _open(spec: str):
    from xmark_core.data.open import open_dataset

    return open_dataset(spec)


def _train(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.data.base import stratified_split, to_arrays
    from xmark_core.nets.checkpoint import save_checkpoint
    from xmark_core.nets.train import TrainConfig, evaluate, train_classifier

    t0 = time.perf_counter()
    ds = _open(args.data)
    labels = np.asarray(ds.labels())
    if len(labels) < 10:
        raise DataError(f"only {len(labels)} images; need at least 10 to train and validate", args.data)
    if args.test_fraction > 0:
        train_idx, test_idx = stratified_split(labels, [1 - args.test_fraction, args.test_fraction], args.seed)
    else:
        train_idx, test_idx = np.arange(len(labels)), np.arange(0)
    with tqdm_progress("load", "img") as p:
        X, y = to_arrays(ds, args.size, train_idx, progress=p)
    arch_kwargs = {"width": args.width} if args.arch == "smallcnn" and args.width else {}
    cfg = TrainConfig(
        arch=args.arch,
        input_size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        augment=not args.no_augment,
        val_fraction=args.val_fraction,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        arch_kwargs=arch_kwargs,
        balanced=args.balanced,
    )
    with tqdm_progress("train", "epoch") as p:
        res = train_classifier(X, y, list(ds.classes), cfg, progress=p)
    test = None
    if len(test_idx):
        with tqdm_progress("load test", "img") as p:
            Xt, yt = to_arrays(ds, args.size, test_idx, progress=p)
        test = evaluate(res.model, Xt, yt).to_dict()
    summary = {
        "out": str(args.out),
        "arch": args.arch,
        "classes": list(ds.classes),
        "input_size": args.size,
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "epochs_run": len(res.history),
        "best_epoch": res.best_epoch,
        "val_metrics": res.metrics.to_dict(),
        "test_metrics": test,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_checkpoint(
        args.out,
        res.model,
        kind="classifier",
        arch=args.arch,
        arch_kwargs=res.model.arch_kwargs,
        classes=list(ds.classes),
        input_size=args.size,
        config=cfg,
        extra={
            "data": args.data,
            "test_fraction": args.test_fraction,
            "history": res.history,
            **{k: summary[k] for k in ("n_train", "n_test", "best_epoch", "val_metrics", "test_metrics")},
        },
    )
    summary["sha256"] = sha256_file(args.out)
    if args.json:
        emit_json(summary)
    else:
        shown = test or summary["val_metrics"]
        which = "test" if test else "validation"
        print(
            f"saved {args.out}: {which} accuracy {shown['accuracy']:.3f}, macro AUC "
            f"{shown['macro_auc'] if shown['macro_auc'] is None else round(shown['macro_auc'], 3)} "
            f"(best epoch {res.best_epoch}/{len(res.history)})",
            file=sys.stderr,
        )
    return 0


def safe_name(image_id: str) -> str:
    """A flat, portable file stem for an image id (``a/b/c.png`` -> ``a__b__c``)."""
    stem = re.sub(r"\.(png|jpe?g|dcm|dicom)$", "", image_id, flags=re.I)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__")).strip("._") or "image"


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _saliency(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.nets.checkpoint import load_checkpoint
    from xmark_core.saliency import overlay, saliency_maps

    loaded = load_checkpoint(args.model)
    if loaded.kind != "classifier":
        raise CheckpointError(f"{args.model}: a {loaded.kind} checkpoint; saliency needs a classifier checkpoint")
    target = None
    if args.target is not None:
        classes = loaded.classes or []
        target = classes.index(args.target) if args.target in classes else int(args.target)
    ds = _open(args.data)
    n = min(args.n, len(ds))
    out = Path(args.out)
    written: list[str] = []
    with tqdm_progress("saliency", "img") as progress:
        for i in range(n):
            rec = ds[i]
            sal = saliency_maps(loaded, rec.image[None], method=args.method, layer=args.layer, target=target)[0]
            path = out / f"{safe_name(rec.image_id)}.png"
            atomic_write_bytes(path, _png(overlay(rec.image, sal, alpha=args.alpha)[..., ::-1]))
            if args.save_maps:
                atomic_write_bytes(out / f"{safe_name(rec.image_id)}_map.png", _png(np.round(sal * 65535).astype(np.uint16)))
            written.append(str(path))
            progress(i + 1, n)
    summary = {"model": str(args.model), "model_sha256": loaded.sha256, "method": args.method, "n": n, "files": written}
    if args.json:
        emit_json(summary)
    else:
        print(f"wrote {n} overlays to {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train-classifier`` and ``saliency`` to the ``xmark`` command."""
    # Literal copies of nets.classifiers.ARCHS and saliency.METHODS: importing those
    # modules pulls in torch/torchvision and would make `xmark --help` take seconds.
    # tests/test_nets.py checks that they agree.
    ARCHS = ("smallcnn", "resnet18", "densenet121")
    METHODS = ("eigencam", "gradcam")

    p = sub.add_parser(
        "train-classifier",
        help="train a chest X-ray classifier (the owner's surrogate, or a suspect for experiments)",
        description="Train a one-channel classifier; a stratified test split is held out and reported.",
    )
    p.add_argument("--data", required=True, help="dataset: phantom[:n[:size[:seed]]], a folder, or a CheXpert csv")
    p.add_argument("--arch", choices=ARCHS, default="smallcnn")
    p.add_argument("--size", type=int, default=64, help="input side in pixels (default 64)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of training data for early stopping")
    p.add_argument("--test-fraction", type=float, default=0.15, help="share held out for the reported test metrics")
    p.add_argument("--patience", type=int, default=5, help="epochs without validation improvement before stopping")
    p.add_argument("--width", type=int, default=None, help="smallcnn base width (default 16)")
    p.add_argument("--balanced", action="store_true", help="weight the loss by inverse class frequency")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA if present)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint file to write (.pt)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_train)

    s = sub.add_parser(
        "saliency",
        help="write saliency overlays (EigenCAM or GradCAM) of a classifier on a dataset",
        description="Colour-mapped saliency over each image, as PNG files, at the image's own resolution.",
    )
    s.add_argument("--model", required=True, type=Path, help="classifier checkpoint")
    s.add_argument("--data", required=True, help="dataset spec (as for train-classifier)")
    s.add_argument("--out", required=True, type=Path, help="folder for the PNG overlays")
    s.add_argument("--method", choices=METHODS, default="eigencam")
    s.add_argument("--n", type=int, default=16, help="number of images (from the start of the dataset)")
    s.add_argument("--layer", default=None, help="CAM layer by name, e.g. body.layer3 (default: last conv block)")
    s.add_argument("--target", default=None, help="GradCAM class name or index (default: predicted class)")
    s.add_argument("--alpha", type=float, default=0.4, help="opacity of the heat map")
    s.add_argument("--save-maps", action="store_true", help="also write each raw map as a 16-bit PNG")
    s.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    s.set_defaults(func=_saliency)
