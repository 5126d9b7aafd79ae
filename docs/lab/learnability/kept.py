"""The models a benchmark run kept with ``--keep-models DIR``, as lab scripts load and attack them
(shared by kept_suspects.py and proxy_centred_check.py)."""
import re
from pathlib import Path

from benchmarks.context import CLEAN, BenchContext, model_file, resize_stack
from benchmarks.settings import BenchSettings
from xmark_core.attacks import fine_prune, fine_tune
from xmark_core.generator.model import Marker, load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.suspects import TorchSuspect


def kept_owner(folder: Path, s: BenchSettings) -> Marker:
    """The run's owner marker: its surrogate (``clean_…_seed{s.seed}.pt``) and the owner key's
    generator (``generator_key{s.owner_key}.pt``), whose pairing ``load_marker`` checks."""
    return load_marker(folder / model_file((CLEAN, s.arch, s.input_size, s.seed)),
                       folder / f"generator_key{s.owner_key}.pt", device="cpu")


def kept_suspect(path: Path, classes: list[str]) -> TorchSuspect:
    """A kept classifier as a black-box suspect at its own input size, named after its file."""
    lm = load_checkpoint(path, device="cpu")
    return TorchSuspect(lm.model, classes, lm.input_size, name=path.stem)


def kept_seeds(folder: Path, train_set: str, arch: str, size: int) -> list[int]:
    """Seeds of the kept classifiers ``{train_set}_{arch}_{size}px_seed{S}.pt`` in ``folder``."""
    pat = re.compile(rf"{train_set}_{arch}_{size}px_seed(\d+)\.pt")
    return sorted(int(m.group(1)) for f in folder.iterdir() if (m := pat.fullmatch(f.name)))


def benchmark_attack(sus: TorchSuspect, name: str, ctx: BenchContext) -> TorchSuspect:
    """The benchmark's model attack ``name`` ("finetune" or "fineprune") on ``sus``, with the
    run's settings and seed (benchmarks/attacks.py) on its attacker data."""
    s = ctx.s
    Xa = resize_stack(ctx.X_att, sus.input_size)[:, None]
    if name == "finetune":
        m = fine_tune(sus.model, Xa, ctx.y_att, epochs=s.ft_epochs, lr=s.ft_lr, seed=s.seed)
    else:
        m = fine_prune(sus.model, Xa, fraction=s.prune_fraction, y=ctx.y_att, finetune_epochs=s.ft_epochs,
                       lr=s.ft_lr, seed=s.seed)[0]
    return TorchSuspect(m, s.classes, sus.input_size, name=f"{sus.name}+{name}")
