"""Plotly figure builders for the app: linked image panels, histograms, live verification.

Each function takes arrays and returns a ``plotly.graph_objects.Figure``; nothing here
knows about Streamlit, so figures can also be written to HTML reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from xmark_core.app_support.imaging import png_data_uri
from xmark_core.verify.protocol import stream_label

P_B_COLOR = "#0072B2"  # benign queries (blue)
P_W_COLOR = "#D55E00"  # watermarked queries (vermillion)
STREAM_COLOR = "#7F7F7F"  # the streams of a claim under its running p-value (grey)


def linked_images(
    pictures: Sequence[np.ndarray], titles: Sequence[str], cols: int = 2, height: int = 520,
) -> go.Figure:
    """Image panels whose zoom and pan are linked: zoom one, all follow.

    Parameters
    ----------
    pictures : uint8 gray (H, W) or RGB (H, W, 3) pictures of the same size
    titles : one title per picture
    cols : panels per row
    height : figure height in pixels (per row of panels)

    Returns
    -------
    Figure with one ``go.Image`` per panel; every x axis matches ``x`` and every y axis
    matches ``y`` so box-zoom, pan and double-click reset act on all panels.
    """
    if len(pictures) != len(titles):
        raise ValueError("one title per picture")
    shapes = {p.shape[:2] for p in pictures}
    if len(shapes) != 1:
        raise ValueError(f"linked panels need pictures of one size, got {sorted(shapes)}")
    rows = (len(pictures) + cols - 1) // cols
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=list(titles),
        horizontal_spacing=0.02, vertical_spacing=0.06,
    )
    h, w = next(iter(shapes))
    for k, pic in enumerate(pictures):
        fig.add_trace(
            go.Image(source=png_data_uri(pic), name=titles[k],
                     hovertemplate="x=%{x}<br>y=%{y}<extra>" + titles[k] + "</extra>"),
            row=k // cols + 1, col=k % cols + 1,
        )
    fig.update_xaxes(matches="x", showticklabels=False, range=[-0.5, w - 0.5])
    fig.update_yaxes(matches="y", showticklabels=False, range=[h - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(height=height * rows, margin=dict(l=5, r=5, t=30, b=5), dragmode="zoom")
    return fig


def histogram(
    values: np.ndarray, title: str, xlabel: str, threshold: float | None = None,
    threshold_label: str = "threshold", nbins: int = 40,
) -> go.Figure:
    """Histogram of per-image values with an optional vertical threshold line."""
    fig = go.Figure(go.Histogram(x=np.asarray(values, float), nbinsx=nbins, marker_color=P_B_COLOR))
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="crimson",
                      annotation_text=threshold_label, annotation_position="top")
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title="images", height=320,
                      margin=dict(l=40, r=10, t=40, b=40), bargap=0.05)
    return fig


def class_counts(classes: Sequence[str], counts: Sequence[int]) -> go.Figure:
    """Bar chart of images per class."""
    fig = go.Figure(go.Bar(x=list(classes), y=list(counts), marker_color=P_B_COLOR,
                           text=list(counts), textposition="auto"))
    fig.update_layout(title="Images per class", yaxis_title="images", height=300,
                      margin=dict(l=40, r=10, t=40, b=40))
    return fig


def verification_figure(
    p_b: np.ndarray, p_w: np.ndarray, running_p: np.ndarray, running_wsr: np.ndarray,
    tau: float, alpha: float, m: int | None = None, p_label: str = "running p-value",
    streams: dict[str, np.ndarray] | None = None, degrees: float = 0.0,
) -> go.Figure:
    """The four live panels of a verification run, redrawn as queries return.

    Parameters
    ----------
    p_b, p_w : (n,) the suspect's target-class probability on each benign / watermarked query
    running_p : (n,) p-value after each query (NaN where not yet defined)
    running_wsr : (n,) share of watermarked queries classified as the target so far
    tau, alpha : the test's margin and level (drawn as reference lines)
    m : planned number of queries (fixes the x range so the plot does not rescale)
    streams, degrees : with the key-specificity check, each stream's running p-value
        (:func:`~xmark_core.verify.protocol.stream_running_p`) and the check's angle: drawn
        thin under ``running_p``, so one sees which stream the claim waits for
    """
    p_b, p_w = np.asarray(p_b, float), np.asarray(p_w, float)
    n = len(p_b)
    q = np.arange(1, n + 1)
    xmax = max(m or n, n, 2)
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.16, horizontal_spacing=0.1,
        subplot_titles=(
            "Each query: P_w against P_b",
            "Distributions of P_b and P_w",
            f"{p_label[0].upper()}{p_label[1:]} and α",
            "Watermark success rate (WSR)",
        ),
    )
    fig.add_trace(go.Scatter(x=p_b, y=p_w, mode="markers", name="query",
                             marker=dict(color=P_W_COLOR, size=6, opacity=0.7),
                             hovertemplate="P_b=%{x:.3f}<br>P_w=%{y:.3f}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1 - tau], y=[tau, 1], mode="lines", name=f"P_w = P_b + τ (τ = {tau:g}); above: lifted",
                             line=dict(color="gray", dash="dash")), row=1, col=1)
    fig.update_xaxes(range=[-0.02, 1.02], title_text="P_b (benign)", row=1, col=1)
    fig.update_yaxes(range=[-0.02, 1.02], title_text="P_w (watermarked)", row=1, col=1)

    bins = dict(start=0.0, end=1.0, size=0.05)
    fig.add_trace(go.Histogram(x=p_b, xbins=bins, name="P_b", marker_color=P_B_COLOR, opacity=0.6),
                  row=1, col=2)
    fig.add_trace(go.Histogram(x=p_w, xbins=bins, name="P_w", marker_color=P_W_COLOR, opacity=0.6),
                  row=1, col=2)
    fig.update_xaxes(range=[0, 1], title_text="target-class probability", row=1, col=2)
    fig.update_yaxes(title_text="queries", row=1, col=2)

    rp = np.clip(np.asarray(running_p, float), 1e-16, 1.0)
    for (name, sp), dash in zip((streams or {}).items(), ("dot", "dash", "dashdot")):
        fig.add_trace(go.Scatter(x=q, y=np.clip(np.asarray(sp, float), 1e-16, 1.0), mode="lines",
                                 name=stream_label(name, degrees), line=dict(width=1, dash=dash, color=STREAM_COLOR)),
                      row=2, col=1)
    fig.add_trace(go.Scatter(x=q, y=rp, mode="lines+markers", name=p_label,
                             line=dict(color="black"), marker=dict(size=4)), row=2, col=1)
    fig.add_trace(go.Scatter(x=[1, xmax], y=[alpha, alpha], mode="lines", name=f"α = {alpha}",
                             line=dict(color="crimson", dash="dash")), row=2, col=1)
    finite = rp[np.isfinite(rp)]
    low = min(alpha / 10, float(finite.min()) / 2 if finite.size else alpha / 10)
    fig.update_yaxes(type="log", range=[np.log10(max(low, 1e-16)), 0.05], dtick=1, title_text="p (log scale)",
                     row=2, col=1)
    fig.update_xaxes(range=[0, xmax + 1], title_text="queries", row=2, col=1)

    fig.add_trace(go.Scatter(x=q, y=np.asarray(running_wsr, float), mode="lines", name="WSR",
                             line=dict(color=P_W_COLOR)), row=2, col=2)
    fig.update_yaxes(range=[0, 1.02], title_text="WSR", row=2, col=2)
    fig.update_xaxes(range=[0, xmax + 1], title_text="queries", row=2, col=2)

    fig.update_layout(barmode="overlay", height=640, margin=dict(l=50, r=10, t=50, b=40),
                      legend=dict(orientation="h", y=-0.12))
    return fig


def ssim_psnr_scatter(ssim: np.ndarray, psnr: np.ndarray, labels: Sequence[str]) -> go.Figure:
    """SSIM against PSNR, one point per image (hover shows the image id)."""
    fig = go.Figure(go.Scatter(x=np.asarray(psnr, float), y=np.asarray(ssim, float), mode="markers",
                               text=list(labels), marker=dict(color=P_W_COLOR, size=6),
                               hovertemplate="%{text}<br>PSNR=%{x:.2f} dB<br>SSIM=%{y:.4f}<extra></extra>"))
    fig.update_layout(title="SSIM vs PSNR per watermarked image", xaxis_title="PSNR (dB)",
                      yaxis_title="SSIM", height=320, margin=dict(l=50, r=10, t=40, b=40))
    return fig


def detector_histogram(triggered: np.ndarray, clean: np.ndarray, threshold: float) -> go.Figure:
    """StealthMark detector scores on stamped vs clean queries, with the fixed threshold."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=np.asarray(clean, float), name="clean queries", marker_color=P_B_COLOR, opacity=0.6))
    fig.add_trace(go.Histogram(x=np.asarray(triggered, float), name="stamped queries", marker_color=P_W_COLOR,
                               opacity=0.6))
    fig.add_vline(x=threshold, line_dash="dash", line_color="black", annotation_text="threshold (fixed in advance)")
    fig.update_layout(barmode="overlay", height=300, margin=dict(l=40, r=10, t=30, b=40),
                      xaxis_title="detector score (uncertainty on dark-bit minus light-bit cells)",
                      yaxis_title="queries", legend=dict(orientation="h", y=-0.3))
    return fig
