"""`xmark models build`: train, embed, verify and ship the demo bundle (``make models``)."""

from __future__ import annotations

import argparse
import json
import sys


def _build(args: argparse.Namespace) -> int:
    from xmark_core.cli import emit_json
    from xmark_core.demo_build import DemoConfig, build_demo

    cfg = DemoConfig(n=args.n, seed=args.seed, classifier_epochs=args.epochs,
                     generator=json.loads(args.generator))
    report = build_demo(args.out, cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    if args.json:
        emit_json({"accuracy": report.accuracy, "verification": report.verification,
                   "quality": report.quality})
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="demo checkpoints")
    s = p.add_subparsers(dest="models_command", required=True)
    b = s.add_parser("build", help="train and check the demo bundle, then write it to --out")
    b.add_argument("--out", default="models")
    b.add_argument("--n", type=int, default=2400, help="phantom images (default 2400)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--epochs", type=int, default=15, help="classifier epochs")
    b.add_argument("--generator", default="{}", help="JSON overrides of GeneratorTrainConfig")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_build)
