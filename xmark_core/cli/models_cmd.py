"""`xmark models build`: train, embed, verify and ship the demo bundle (``make models``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.demo_build import DemoConfig, build_demo, build_proxy, replace_card_section

    cfg = DemoConfig(n=args.n, seed=args.seed, classifier_epochs=args.epochs)
    cfg.generator = {**cfg.generator, **json.loads(args.generator)}
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    seg = proxy = None
    if args.part in ("all", "xmark"):
        report = build_demo(args.out, cfg, log=log)
    if args.part == "proxy":
        proxy = build_proxy(args.out, cfg, log=log)
    if args.part in ("all", "seg"):
        from xmark_core.cli.progress import tqdm_progress
        from xmark_core.stealthmark.demo import CARD_HEADING, card_section, make_demo_models

        with tqdm_progress("StealthMark demo", "epoch") as p:
            seg = make_demo_models(args.out, progress=lambda stage, d, t: p(d, t))
        log(f"StealthMark demo: {seg['marked']['validation']}")
        replace_card_section(Path(args.out) / "MODEL_CARD.md", CARD_HEADING, card_section(seg))
    if args.json:
        out: dict = {"stealthmark": seg}
        if args.part in ("all", "xmark"):
            out.update(accuracy=report.accuracy, verification=report.verification, quality=report.quality,
                       proxy_verification=report.proxy_verification)
        if proxy is not None:
            out["proxy_verification"] = proxy
        emit_json(out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="demo checkpoints")
    s = p.add_subparsers(dest="models_command", required=True)
    b = s.add_parser("build", help="train and check the demo bundle, then write it to --out")
    b.add_argument("--out", default="models")
    b.add_argument("--n", type=int, default=2400, help="phantom images (default 2400)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--epochs", type=int, default=15, help="classifier epochs")
    b.add_argument("--generator", default="{}", help="JSON overrides of GeneratorTrainConfig (merged into the demo's own)")
    b.add_argument("--part", choices=("all", "xmark", "seg", "proxy"), default="all",
                   help="build both demos (default), only X-Mark's or only StealthMark's; proxy: only the "
                        "owner's proxy for the X-Mark bundle already in --out (re-embeds its release)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_build)
