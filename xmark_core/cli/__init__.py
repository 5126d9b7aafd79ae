"""``xmark`` command line. Each command group lives in its own module and registers
its sub-parsers through ``register(subparsers)``; this file only dispatches."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from xmark_core.allocator import keep_large_blocks
from xmark_core.errors import XMarkError

# Modules that provide ``register(subparsers)``. A missing one is skipped so the CLI
# keeps working while a group is being built.
COMMAND_MODULES = [
    "xmark_core.cli.data_cmd",
    "xmark_core.cli.train_cmd",
    "xmark_core.cli.embed_cmd",
    "xmark_core.cli.verify_cmd",
    "xmark_core.cli.seg_cmd",
    "xmark_core.cli.models_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xmark", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register(sub)
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
