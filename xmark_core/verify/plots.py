"""Static figures of a verification (matplotlib, no display needed) for the report.

Each function takes the plain numbers of a query log and returns a matplotlib Figure;
:func:`to_svg` turns one into inline SVG text so the HTML report stays one file.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: reports are written by CLIs and servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xmark_core.verify.protocol import stream_label  # noqa: E402

BENIGN, MARKED, ACCENT = "#4C72B0", "#C44E52", "#555555"


def paired_scatter(p_b: np.ndarray, p_w: np.ndarray, tau: float, target_name: str) -> Figure:
    """Each query as a point (P_b, P_w); points above the dashed line beat the margin."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color=ACCENT, lw=1, label="no effect (P_w = P_b)")
    ax.plot([0, 1 - tau], [tau, 1], color=MARKED, lw=1, ls="--", label=f"margin (P_w = P_b + {tau:g})")
    ax.scatter(p_b, p_w, s=14, color=MARKED, alpha=0.7, edgecolors="none", label="one query image")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel=f"P('{target_name}') original image",
           ylabel=f"P('{target_name}') watermarked image", title="Each query: before vs after watermark")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def distributions(p_b: np.ndarray, p_w: np.ndarray, tau: float, target_name: str) -> Figure:
    """Histograms of P_b and P_w, and of the paired differences with the margin."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    bins = np.linspace(0, 1, 21)
    a1.hist(p_b, bins=bins, color=BENIGN, alpha=0.6, label="original")
    a1.hist(p_w, bins=bins, color=MARKED, alpha=0.6, label="watermarked")
    a1.set(xlabel=f"P('{target_name}')", ylabel="queries", title="Suspect's target score")
    a1.legend(fontsize=7, frameon=False)
    d = np.asarray(p_w) - np.asarray(p_b)
    a2.hist(d, bins=np.linspace(-1, 1, 41), color=ACCENT, alpha=0.8)
    a2.axvline(tau, color=MARKED, ls="--", lw=1, label=f"margin {tau:g}")
    if d.size:
        a2.axvline(float(d.mean()), color="black", lw=1.5, label=f"mean {d.mean():.2f}")
    a2.set(xlabel="P_w - P_b", ylabel="queries", title="Effect of the watermark per image")
    a2.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def running_evidence(running_p: np.ndarray, alpha: float, final_p: float | None = None,
                     test: str = "sequential", streams: dict[str, np.ndarray] | None = None,
                     degrees: float = 0.0) -> Figure:
    """Anytime-valid p-value after each query on a log axis, with the level alpha; with the
    key-specificity check also each stream's (thin; ``streams`` from
    :func:`~xmark_core.verify.protocol.stream_running_p`, ``degrees`` the check's angle)."""
    fig, ax = plt.subplots(figsize=(8.4, 3.0))
    n = np.arange(1, len(running_p) + 1)
    floor = 1e-16
    for (name, sp), ls in zip((streams or {}).items(), (":", "--", "-.")):
        ax.semilogy(n, np.maximum(sp, floor), color=ACCENT, lw=0.9, ls=ls, label=stream_label(name, degrees))
    ax.semilogy(n, np.maximum(running_p, floor), color=BENIGN, lw=1.5,
                label="anytime-valid p-value (betting test)")
    ax.axhline(alpha, color=MARKED, ls="--", lw=1, label=f"level alpha = {alpha:g}")
    if final_p is not None and test != "sequential" and len(n):
        ax.scatter([n[-1]], [max(final_p, floor)], color="black", zorder=3, s=25,
                   label=f"final {test} p-value = {final_p:.2g}" + (" (drawn at 1e-16)" if final_p < floor else ""))
    ax.set(xlabel="queries so far", ylabel="p-value (log scale)",
           title="Evidence as queries accumulate (below the dashed line = claim)")
    ax.set_ylim(top=1.5)
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    fig.tight_layout()
    return fig


def to_svg(fig: Figure) -> str:
    """Inline SVG text of ``fig`` (text kept as text; the figure is closed)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "xmark"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]
