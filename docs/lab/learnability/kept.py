"""The models a benchmark run kept with ``--keep-models DIR``, as lab scripts load and attack them
(shared by kept_suspects.py, proxy_centred_check.py, freq_tuning.py, release_variant.py and
real_keys.py)."""
import json
import re
from pathlib import Path

import numpy as np

from benchmarks.context import CLEAN, BenchContext, model_file, resize_stack
from benchmarks.settings import BenchSettings, preset
from xmark_core.attacks import (
    INPUT_ATTACKS,
    TransformedSuspect,
    fine_prune,
    fine_tune,
    input_attack,
)
from xmark_core.generator.model import Marker, load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import choose_queries, proxy_scores
from xmark_core.verify.suspects import TorchSuspect


def run_settings(run_dir: str | Path, **overrides) -> BenchSettings:
    """The settings a benchmark run recorded in ``run_dir/run.json``, with ``overrides``."""
    saved = json.loads((Path(run_dir) / "run.json").read_text())["settings"]
    tuples = {f for f, t in BenchSettings.__annotations__.items() if str(t).startswith("tuple")}
    saved.update(overrides)
    return preset(saved.pop("preset"), **{k: tuple(v) if k in tuples and v is not None else v
                                          for k, v in saved.items()})


def kept_marker(folder: Path, s: BenchSettings, key: int) -> Marker:
    """The marker of ``key``: the run's surrogate (``clean_…_seed{s.seed}.pt``) and the key's
    generator (``generator_key{key}.pt``), whose pairing ``load_marker`` checks."""
    return load_marker(folder / model_file((CLEAN, s.arch, s.input_size, s.seed)),
                       folder / f"generator_key{key}.pt", device="cpu")


def kept_owner(folder: Path, s: BenchSettings) -> Marker:
    """The run's owner marker (:func:`kept_marker` of ``s.owner_key``)."""
    return kept_marker(folder, s, s.owner_key)


def preload(ctx: BenchContext, key: tuple, folders: list[Path]) -> bool:
    """Put the classifier ``key`` (``(train_set, arch, size, seed)``) that the first of ``folders``
    holding it kept into ``ctx``'s cache, so ``ctx.train`` returns it instead of training it;
    False when none holds it."""
    src = next((d for d in folders if (d / model_file(key)).exists()), None)
    if src is not None:
        ctx._keep(key, load_checkpoint(src / model_file(key), device="cpu").model, -1, 0.0)
    return src is not None


def kept_suspect(path: Path, classes: list[str]) -> TorchSuspect:
    """A kept classifier as a black-box suspect at its own input size, named after its file."""
    lm = load_checkpoint(path, device="cpu")
    return TorchSuspect(lm.model, classes, lm.input_size, name=path.stem)


def kept_seeds(folder: Path, train_set: str, arch: str, size: int) -> list[int]:
    """Seeds of the kept classifiers ``{train_set}_{arch}_{size}px_seed{S}.pt`` in ``folder``."""
    pat = re.compile(rf"{train_set}_{arch}_{size}px_seed(\d+)\.pt")
    return sorted(int(m.group(1)) for f in folder.iterdir() if (m := pat.fullmatch(f.name)))


def kept_malicious(folders: list[Path], s: BenchSettings) -> list[TorchSuspect]:
    """Every kept Malicious suspect (X-Mark release, the run's arch and size) in ``folders``, the
    owner's proxies (seeds 7, 8, 9) left out."""
    return [kept_suspect(d / model_file(("xmark", s.arch, s.input_size, sd)), s.classes)
            for d in folders for sd in kept_seeds(d, "xmark", s.arch, s.input_size) if sd not in (7, 8, 9)]


def benchmark_attack(sus: TorchSuspect, name: str, ctx: BenchContext) -> TorchSuspect:
    """The benchmark's attack ``name`` on ``sus``: a model attack ("finetune" or "fineprune")
    with the run's settings and seed (benchmarks/attacks.py) on its attacker data, or a query
    transform (a name of ``INPUT_ATTACKS``: "jpeg", "blur", ...)."""
    s = ctx.s
    if name in INPUT_ATTACKS:
        return TransformedSuspect(sus, input_attack(name), name=f"{sus.name}+{name}")
    Xa = resize_stack(ctx.X_att, sus.input_size)[:, None]
    if name == "finetune":
        m = fine_tune(sus.model, Xa, ctx.y_att, epochs=s.ft_epochs, lr=s.ft_lr, seed=s.seed)
    else:
        m = fine_prune(sus.model, Xa, fraction=s.prune_fraction, y=ctx.y_att, finetune_epochs=s.ft_epochs,
                       lr=s.ft_lr, seed=s.seed)[0]
    return TorchSuspect(m, s.classes, sus.input_size, name=f"{sus.name}+{name}")


def proxy_query_images(owner: Marker, proxy: TorchSuspect, ctx: BenchContext) -> list[np.ndarray]:
    """The benchmark's proxy queries of ``owner`` chosen by ``proxy`` (its target probability's
    rise under the mark, at the run's query gain) from the run's pool."""
    cfg = ctx.verify_config()
    scores = proxy_scores(proxy, owner, ctx.pool, ctx.s.classes[ctx.s.target], cfg.query_gain)
    idx, _ = choose_queries(owner, ctx.pool, cfg, scores=scores)
    return [np.asarray(ctx.pool[int(i)], np.float32) for i in idx]
