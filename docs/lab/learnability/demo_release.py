"""Shared by the lab scripts: the demo's generator retrained, 64 px suspects trained on a
release (checkpoints cached), and an image carrying a turned mark as a release stores it."""
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from xmark_core.data.base import resize, to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import Marker, load_marker
from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
from xmark_core.nets.checkpoint import load_checkpoint, save_checkpoint
from xmark_core.nets.train import TrainConfig, train_classifier
from xmark_core.quality import psnr
from xmark_core.verify.suspects import TorchSuspect

CLASSES = list(FINDINGS)
TARGET = CLASSES.index("Cardiomegaly")
SPLIT_CACHE = Path("/tmp/exp/suspects_split")  # split_key.py's suspects and clean models
FULL_SCALE = "4000x256e20"  # split_key.py's full scale: 4000 phantoms at 256 px, 20 epochs


def demo_generator(gen_file: Path, **overrides) -> Marker:
    """The demo's generator (shipped surrogate, key 189, the library's recipe with
    ``overrides``), trained once and cached in ``gen_file``."""
    sur = load_checkpoint(Path("models") / "surrogate.pt").model
    if not gen_file.exists():
        X, y = to_arrays(PhantomDataset(2400, size=128, seed=0), 64)
        gen_file.parent.mkdir(parents=True, exist_ok=True)
        save_generator(gen_file, train_generator(sur, X, y, TARGET, GeneratorTrainConfig(key=189, seed=0, **overrides)))
    return Marker(surrogate=sur, generator=load_checkpoint(gen_file).model, input_size=64, target=TARGET)


def kept_tag(kept: Path) -> str:
    """What a kept run's folder adds to a tag: its name's last ``_`` part (e.g. ``gate05``)."""
    return kept.name.rsplit("_", 1)[-1]


def full_selected_by(marker: Marker, select: str, clean_set: Callable[[], tuple]) -> "SelectedBy":
    """:func:`selected_by` at ``split_key.py``'s full scale, with its cache (clean models trained on ``clean_set()``)."""
    return selected_by(marker, select, SPLIT_CACHE, FULL_SCALE, clean_set, 20)


def kept_marker(kept: Path) -> Marker:
    """The owner's marker of a benchmark run kept with ``--keep-models``: its surrogate and key 189's generator."""
    return load_marker(kept / "clean_smallcnn_64px_seed0.pt", kept / "generator_key189.pt", device="cpu")


def release_suspects(marker: Marker, seeds: list[int], cache: Path, tag: str, config: dict) -> Iterator[tuple[int, Path]]:
    """(seed, checkpoint) of a 64 px smallcnn per seed, trained (15 epochs) on the demo set
    (2400 phantoms at 128 px, rho 0.1) released with ``marker``; the release is embedded only
    when a suspect is not cached yet."""
    cache.mkdir(parents=True, exist_ok=True)
    release = None
    for seed in seeds:
        f = cache / f"{tag}_{seed}.ckpt"
        if not f.exists():
            if release is None:
                X, y, _, _, res = marked_release(PhantomDataset(2400, size=128, seed=0), marker)
                release = (X, y)
                print(f"{tag}: {res.n_marked} marked, PSNR {res.psnr_mean:.2f} dB, SSIM {res.ssim_mean:.4f}",
                      flush=True)
            _fit_suspect(f, release, seed, 15, config)
        yield seed, f


def cached_suspects(seeds: list[int], cache: Path, tag: str, make_release: Callable[[], tuple],
                    epochs: int = 15, config: dict | None = None, input_size: int = 64,
                    train: dict | None = None) -> dict:
    """seed -> classifier (eval mode; ``input_size`` px; a smallcnn unless ``train`` names another
    ``arch``) trained on ``make_release()``'s (X, y),
    cached as ``cache/{tag}_{seed}.ckpt``; the release is built only when a suspect is not
    cached yet. ``train``: other ``TrainConfig`` fields (``arch``, ``augment``, ...)."""
    cache.mkdir(parents=True, exist_ok=True)
    release, models = None, {}
    for seed in seeds:
        f = cache / f"{tag}_{seed}.ckpt"
        if not f.exists():
            if release is None:
                release = make_release()
            _fit_suspect(f, release, seed, epochs, config or {}, input_size, train)
        models[seed] = load_checkpoint(f).model.eval()
    return models


def _fit_suspect(f: Path, release: tuple, seed: int, epochs: int, config: dict, input_size: int = 64,
                 train: dict | None = None) -> None:
    """Train a classifier (smallcnn unless ``train`` names another ``arch``) at ``input_size`` on
    ``release`` (X, y) and save it to ``f``."""
    cfg = TrainConfig(input_size=input_size, epochs=epochs, seed=seed, **(train or {}))
    net = train_classifier(*release, CLASSES, cfg).model
    save_checkpoint(f, net, kind="classifier", arch=cfg.arch, arch_kwargs=net.arch_kwargs,
                    classes=CLASSES, input_size=input_size, config={"seed": seed, **config, **(train or {})})


def turned_release_image(marker: Marker, image: np.ndarray, degrees: float,
                         side: int = 64) -> tuple[np.ndarray, float]:
    """``image`` marked with ``marker``'s carrier turned by ``degrees``, stored as a 16-bit
    release file would be, at ``side`` px; and the stored mark's PSNR (dB)."""
    stored = (np.round(marker.turned(degrees).mark(image) * 65535.0) / 65535.0).astype(np.float32)
    return resize(stored, side), psnr(image, stored)


def marked_release(ds, marker, side: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, object]:
    """``ds`` released with ``marker`` (rho 0.1, seed 0, hardest first by its ``target_scores``),
    at ``side`` px: (released X, y, clean X, indices of the marked images, the ``EmbedResult``)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = embed_release(ds, marker, TARGET, Path(tmp) / "e", rho=0.1, seed=0)
        X, y = to_arrays(open_dataset(str(Path(tmp) / "e" / "release")), side)
    clean, _ = to_arrays(ds, side)
    marked = np.flatnonzero(np.abs(X - clean).max(axis=(1, 2, 3)) > 1e-3)  # not 16-bit rounding
    assert len(marked) == res.n_marked, (len(marked), res.n_marked)
    return X, y, clean, marked, res


class SelectedBy:
    """``marker`` whose "hardest" selection is scored by the mean target probability of ``models``
    (clean classifiers at 64 px; ``None`` stands for the marker's surrogate) instead of its
    surrogate alone; the marks are the marker's own."""

    def __init__(self, marker, models) -> None:
        self.marker, self.models = marker, models

    def __getattr__(self, name):
        return getattr(self.marker, name)

    @property
    def nets(self) -> list:
        """The models as modules, the marker's surrogate in place of ``None``."""
        return [self.marker.surrogate if m is None else m for m in self.models]

    def member_scores(self, images, target=None, batch_size=64) -> list[np.ndarray]:
        """Each model's target probability of ``images``, in the order of ``models``."""
        t = TARGET if target is None else target
        stack = np.stack([np.asarray(im, np.float32) for im in images])
        return [self.marker.target_scores(images, t, batch_size) if m is None
                else TorchSuspect(m, CLASSES, 64).predict(stack)[:, t] for m in self.models]

    def target_scores(self, images, target=None, batch_size=64) -> np.ndarray:
        return np.mean(self.member_scores(images, target, batch_size), axis=0)


def selected_by(marker: Marker, select: str, cache: Path, scale: str, clean_set: Callable[[], tuple],
                epochs: int) -> SelectedBy:
    """``marker`` selecting by the clean models ``select`` names (``+``-joined archs, ``surrogate``
    for its own), each seed 0, trained on ``clean_set()`` and cached as ``clean_{arch}_{scale}_0.ckpt``."""
    return SelectedBy(marker, [None if arch == "surrogate" else
                               cached_suspects([0], cache, f"clean_{arch}_{scale}", clean_set, epochs,
                                               train={"arch": arch})[0] for arch in select.split("+")])
