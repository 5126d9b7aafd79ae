"""The shipped demo bundle in ``models/``: what is there, and loading it.

``make models`` writes the demo checkpoints (see ``models/MODEL_CARD.md``)::

    models/surrogate.pt           owner's classifier (kind "classifier")
    models/generator.pt           watermark generator (kind "generator")
    models/suspect_malicious.pt   classifier trained on the watermarked release
    models/suspect_clean.pt       classifier trained on clean data only
    models/owner_record.json      owner's private record (key, target, commitment, ...)
    models/proxy.pt               owner's proxy for proxy queries (optional)

The app reads this layout; nothing is trained or downloaded at start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.errors import CheckpointError
from xmark_core.verify.protocol import VerifyConfig

DEMO_FILES: dict[str, str] = {
    "surrogate": "surrogate.pt",
    "generator": "generator.pt",
    "malicious": "suspect_malicious.pt",
    "clean": "suspect_clean.pt",
    "owner_record": "owner_record.json",
}
# Optional: the owner's proxy, trained on its own release (proxy queries; docs/architecture.md, 6).
PROXY_FILE = "proxy.pt"
SUSPECT_LABELS: dict[str, str] = {
    "malicious": "Demo suspect: trained on the watermarked release (Malicious)",
    "clean": "Demo suspect: trained on clean data only (independent)",
}
# Query images are drawn from a phantom seed the demo models never trained on
# (owner_record["demo"]["query_seed"] overrides it).
DEFAULT_QUERY_SEED = 9001
# Phantom images behind the query pool (DemoConfig.query_n): the verification chooses its m
# queries among their non-target images (boundary queries need a pool larger than m).
DEFAULT_QUERY_POOL = 400


def default_models_dir() -> Path:
    """``$XMARK_MODELS`` if set, else ``models/`` at the repository root."""
    env = os.environ.get("XMARK_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models"


@dataclass
class DemoStatus:
    """Which demo files exist in ``root``."""

    root: Path
    present: dict[str, bool]

    @property
    def ready(self) -> bool:
        """True when the X-Mark demo (marker + both suspects + record) is complete."""
        return all(self.present.values())

    @property
    def has_marker(self) -> bool:
        return self.present["surrogate"] and self.present["generator"]

    def message(self) -> str:
        """What is missing and how to make it (empty when ready)."""
        if self.ready:
            return ""
        missing = [DEMO_FILES[k] for k, ok in self.present.items() if not ok]
        return (
            f"The demo models are not available yet: {', '.join(missing)} missing in {self.root}. "
            "Build them with `make models` (trains the phantom demo, deterministic), "
            "or upload your own checkpoints in the sidebar."
        )


def demo_status(root: str | Path | None = None) -> DemoStatus:
    """Check ``root`` (default :func:`default_models_dir`) for the demo files."""
    root = Path(root) if root is not None else default_models_dir()
    return DemoStatus(root=root, present={k: (root / f).is_file() for k, f in DEMO_FILES.items()})


@dataclass
class DemoBundle:
    """The loaded demo: a :class:`~xmark_core.generator.model.Marker` and the suspects' paths.

    Attributes
    ----------
    root : the models folder
    marker : surrogate + generator, ready to ``mark``
    classes : class names of the surrogate
    target : the watermark's target class index
    owner_record : the owner's private record (dict), ``{}`` if absent
    suspects : suspect name (``"malicious"``, ``"clean"``) -> checkpoint path
    proxy : the owner's proxy checkpoint (``proxy.pt``), or None if the bundle has none
    """

    root: Path
    marker: Any
    classes: list[str]
    target: int
    owner_record: dict[str, Any]
    suspects: dict[str, Path] = field(default_factory=dict)
    proxy: Path | None = None

    def path(self, name: str) -> Path:
        """Path of a demo file by its :data:`DEMO_FILES` name (``"generator"``, ``"owner_record"``, ...)."""
        return self.root / DEMO_FILES[name]

    def proxy_for(self, marker: Any) -> Path | None:
        """The demo owner's proxy if ``marker`` is the demo's own (a proxy trained on another
        owner's release would choose queries for the wrong mark), else None."""
        return self.proxy if marker is self.marker else None

    @property
    def query_seed(self) -> int:
        return int(self.owner_record.get("demo", {}).get("query_seed", DEFAULT_QUERY_SEED))

    @property
    def image_size(self) -> int:
        """Side of the demo's phantom images (the release's resolution)."""
        demo = self.owner_record.get("demo", {})
        return int(demo.get("image_size") or self.owner_record.get("image_size") or 128)


def default_query_choice(proxy: Path | None) -> str:
    """The Verify page's preselected query choice: proxy queries where an owner's proxy is at
    hand (they beat boundary queries on every suspect measured; README, Results), else the
    library's default, which needs only the owner's surrogate."""
    return "proxy" if proxy is not None else VerifyConfig.queries


def read_owner_record(path: str | Path) -> dict[str, Any]:
    """Parse an owner record JSON (raises CheckpointError naming the file)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable owner record ({e})") from e
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: an owner record must be a JSON object")
    return record


def load_demo(root: str | Path | None = None, device: str | None = None) -> DemoBundle:
    """Load the demo marker and record from ``root``; suspects are loaded on demand by path.

    Raises
    ------
    CheckpointError
        If a demo file is missing (the message says how to build it) or unreadable.
    """
    from xmark_core.generator.model import load_marker

    status = demo_status(root)
    if not status.has_marker:
        raise CheckpointError(status.message())
    marker = load_marker(status.root / DEMO_FILES["surrogate"], status.root / DEMO_FILES["generator"],
                         device=device)
    record_path = status.root / DEMO_FILES["owner_record"]
    record = read_owner_record(record_path) if record_path.is_file() else {}
    classes = list(marker.info.get("classes") or record.get("classes") or [])
    target = record.get("target", marker.target)
    if target is None:
        raise CheckpointError(f"{status.root}: neither the generator nor the owner record names the target class")
    suspects = {k: status.root / DEMO_FILES[k] for k in SUSPECT_LABELS if status.present[k]}
    proxy = status.root / PROXY_FILE
    return DemoBundle(root=status.root, marker=marker, classes=classes, target=int(target),
                      owner_record=record, suspects=suspects, proxy=proxy if proxy.is_file() else None)


def query_images(
    target: int, m: int, size: int, seed: int = DEFAULT_QUERY_SEED, pool: int = DEFAULT_QUERY_POOL,
) -> tuple[np.ndarray, list[str]]:
    """The held-out query pool: the non-target images of a phantom set of ``pool`` images
    (more if ``m`` queries need it), from which the verification chooses ``m``.

    Returns
    -------
    (images (n, size, size) float32 with n >= m, image ids)
    """
    from xmark_core.data.phantom import FINDINGS, PhantomDataset

    k = len(FINDINGS)
    # Labels cycle through the findings, so m non-target images need m * k / (k - 1) items.
    n = max(int(pool), int(np.ceil(m * k / (k - 1))) + k)
    ds = PhantomDataset(n, size=size, seed=seed)
    idx = np.flatnonzero(ds.labels() != target)
    images = np.stack([ds[int(i)].image for i in idx]).astype(np.float32)
    return images, [f"phantom-{seed}-{int(i)}" for i in idx]
