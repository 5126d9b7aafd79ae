"""``xmark`` command line.

Each command group lives in its own module and registers its sub-parsers through
``register(subparsers)``; this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from xmark_core.allocator import keep_large_blocks
from xmark_core.errors import XMarkError

DESCRIPTION = """\
X-Mark: watermark a chest X-ray dataset before release, then test a suspicious model as a
black box for having been trained on it (and StealthMark, the same for segmentation models).
Each command has its own --help."""

EPILOG = """\
an owner's session (README, CLI, for every option):
  xmark train-classifier --data DIR --out surrogate.pt
  xmark train-generator --surrogate surrogate.pt --data DIR --target Cardiomegaly --out generator.pt
  xmark embed --data DIR --surrogate surrogate.pt --generator generator.pt --target Cardiomegaly \\
              --rho 0.1 --out release/
  xmark verify --suspect suspect.pt|http://HOST:PORT --surrogate surrogate.pt --generator generator.pt \\
               --owner-record release/owner_record.json --data DIR --out evidence/
Errors exit with status 2 and say what to change."""

# Modules that provide ``register(subparsers)``.
COMMAND_MODULES = [
    "xmark_core.cli.data_cmd",
    "xmark_core.cli.train_cmd",
    "xmark_core.cli.embed_cmd",
    "xmark_core.cli.verify_cmd",
    "xmark_core.cli.seg_cmd",
    "xmark_core.cli.models_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xmark", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def emit_json(obj: Any) -> None:
    """Print a ``--json`` summary on stdout (progress bars go to stderr)."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_large_blocks()
    try:
        return int(args.func(args) or 0)
    except XMarkError as e:
        print(f"xmark: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
