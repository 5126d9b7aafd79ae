"""The models a benchmark run kept with ``--keep-models DIR``, as lab scripts load them (shared by
kept_suspects.py and proxy_centred_check.py)."""
import re
from pathlib import Path

from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.suspects import TorchSuspect


def kept_suspect(path: Path, classes: list[str]) -> TorchSuspect:
    """A kept classifier as a black-box suspect at its own input size, named after its file."""
    lm = load_checkpoint(path, device="cpu")
    return TorchSuspect(lm.model, classes, lm.input_size, name=path.stem)


def kept_seeds(folder: Path, train_set: str, arch: str, size: int) -> list[int]:
    """Seeds of the kept classifiers ``{train_set}_{arch}_{size}px_seed{S}.pt`` in ``folder``."""
    pat = re.compile(rf"{train_set}_{arch}_{size}px_seed(\d+)\.pt")
    return sorted(int(m.group(1)) for f in folder.iterdir() if (m := pat.fullmatch(f.name)))
