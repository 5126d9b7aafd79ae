"""`xmark data synth | inspect | figure`."""

from __future__ import annotations

import argparse
from pathlib import Path

from xmark_core.cli.progress import tqdm_progress


def _synth(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.data.synth import synth_summary, write_phantom_folder

    with tqdm_progress("synth") as p:
        res = write_phantom_folder(
            args.out, args.n, size=args.size, seed=args.seed, bit_depth=args.bit_depth,
            masks=args.masks, overwrite=args.overwrite, progress=p,
        )
    if args.json:
        emit_json(synth_summary(res))
    else:
        counts = ", ".join(f"{k}: {v}" for k, v in res.counts.items())
        print(f"wrote {res.n} images ({res.size} px, {res.bit_depth}-bit) to {res.out} [{counts}]")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.data.inspection import inspect_dataset

    with tqdm_progress("inspect") as p:
        rep = inspect_dataset(args.path, limit=args.limit, progress=p)
    if args.json:
        emit_json(rep.to_dict())
    else:
        print(f"{rep.source}: {rep.kind}, {rep.n_images} images ({rep.n_checked} decoded)")
        if rep.error:
            print(f"  error: {rep.error}")
        for name, n in rep.counts.items():
            print(f"  {name:<28} {n}")
        print(f"  sizes: {rep.sizes}  bit depths: {rep.bit_depths}  formats: {rep.formats}")
        if "chexpert" in rep.details:
            print(f"  CheXpert rows: {rep.details['chexpert']}")
        for bad in rep.unreadable:
            print(f"  UNREADABLE {bad['path']}: {bad['reason']}")
        for w in rep.warnings[:20]:
            print(f"  warning: {w}")
    return 0 if rep.ok else 1


def _figure(args: argparse.Namespace) -> int:
    import cv2

    from xmark_core.atomic import atomic_write_bytes
    from xmark_core.cli import emit_json
    from xmark_core.data.figure import findings_figure

    grid = findings_figure(seed=args.seed, index=args.index, size=args.size, outlines=not args.no_outlines)
    ok, buf = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    atomic_write_bytes(Path(args.out), buf.tobytes())
    if args.json:
        emit_json({"out": args.out, "shape": list(grid.shape)})
    else:
        print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="synthesise, inspect and illustrate datasets")
    sub = parser.add_subparsers(dest="data_command", required=True)

    p = sub.add_parser("synth", help="write phantom radiographs as PNG + labels.csv")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=400, help="number of images (findings balanced)")
    p.add_argument("--size", type=int, default=256, help="side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8)
    p.add_argument("--masks", action="store_true", help="also write lung/heart/lesion masks")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_synth)

    p = sub.add_parser("inspect", help="class counts, sizes, bit depths and unreadable files")
    p.add_argument("path", help="folder, CheXpert CSV/folder, or phantom[:n[:size[:seed]]]")
    p.add_argument("--limit", type=int, default=None, help="decode only the first N images")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("figure", help="one phantom image per finding, as a labelled PNG grid")
    p.add_argument("--out", default="docs/phantom_findings.png")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--index", type=int, default=27, help="which phantom patient to show (27: all findings clear)")
    p.add_argument("--no-outlines", action="store_true", help="leave out the mask outline row")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_figure)
