"""Turn float images, masks and maps into displayable 8-bit pictures.

All inputs are (H, W) float arrays on the [0, 1] scale of :mod:`xmark_core.quality`;
outputs are uint8 grayscale (H, W) or RGB (H, W, 3) arrays ready for ``st.image`` or a
plotly ``go.Image``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import cv2
import numpy as np

from xmark_core.quality import WINDOW_PRESETS, Window, apply_window

# Distinct, colour-blind-friendly colours (Okabe-Ito) for the phantom's anatomical masks.
MASK_COLORS: dict[str, tuple[int, int, int]] = {
    "left_lung": (86, 180, 233),
    "right_lung": (0, 114, 178),
    "heart": (213, 94, 0),
    "lesion": (240, 228, 66),
}
_FALLBACK_COLORS = [(0, 158, 115), (204, 121, 167), (230, 159, 0)]


def window_of(preset: str | None = None, center: float | None = None, width: float | None = None) -> Window:
    """A display window from a preset name, overridden by explicit ``center``/``width``."""
    base = WINDOW_PRESETS[preset or "full"]
    return Window(base.center if center is None else float(center), base.width if width is None else float(width))


def to_uint8(image: np.ndarray, window: Window | str | None = None) -> np.ndarray:
    """Grayscale uint8 (H, W): the image through a display window (None: full [0, 1] range)."""
    shown = apply_window(image, window) if window is not None else np.clip(image, 0.0, 1.0)
    return np.round(shown * 255.0).astype(np.uint8)


def gray_to_rgb(image8: np.ndarray) -> np.ndarray:
    return np.repeat(image8[..., None], 3, axis=2)


def overlay_masks(
    image: np.ndarray, masks: Mapping[str, np.ndarray], alpha: float = 0.35,
    window: Window | str | None = None, outline: bool = True,
) -> np.ndarray:
    """RGB picture of ``image`` with each boolean mask tinted (and outlined) in its colour.

    Parameters
    ----------
    masks : name -> (H, W) bool; known names get :data:`MASK_COLORS`, others a fallback
    alpha : tint opacity in [0, 1]
    """
    rgb = gray_to_rgb(to_uint8(image, window)).astype(np.float32)
    for k, (name, mask) in enumerate(masks.items()):
        m = np.asarray(mask, dtype=bool)
        if m.shape != image.shape:
            raise ValueError(f"mask {name!r} has shape {m.shape}, image has {image.shape}")
        color = np.array(MASK_COLORS.get(name, _FALLBACK_COLORS[k % len(_FALLBACK_COLORS)]), np.float32)
        rgb[m] = (1 - alpha) * rgb[m] + alpha * color
        if outline and m.any():
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            edge = np.zeros(m.shape, np.uint8)
            cv2.drawContours(edge, contours, -1, 1, 1)
            rgb[edge.astype(bool)] = color
    return np.clip(rgb, 0, 255).astype(np.uint8)


def heatmap_rgb(values: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """RGB uint8 colour map of values in [0, 1] (OpenCV colormap, converted from BGR)."""
    v8 = np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(v8, colormap), cv2.COLOR_BGR2RGB)


def overlay_heatmap(
    image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, outline: np.ndarray | None = None,
    window: Window | str | None = None,
) -> np.ndarray:
    """RGB blend of a windowed image and a [0, 1] map (:func:`xmark_core.saliency.overlay`).

    ``outline`` is an optional boolean region (e.g. where the generator's gate is open)
    whose border is drawn as a white line.
    """
    from xmark_core.saliency import overlay

    if heat.shape != image.shape:
        raise ValueError(f"map shape {heat.shape} differs from image shape {image.shape}")
    shown = apply_window(image, window) if window is not None else image
    out = np.ascontiguousarray(overlay(shown, heat, alpha=alpha))
    if outline is not None:
        contours, _ = cv2.findContours(np.asarray(outline, np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def ssim_loss_rgb(ssim_map: np.ndarray, vmax: float = 0.05) -> np.ndarray:
    """Colour picture of the local SSIM loss ``1 - SSIM`` on a fixed scale [0, vmax].

    A fixed scale (not per-image stretching) keeps pictures of different images comparable:
    dark blue = identical neighbourhood, red = loss of ``vmax`` or more.
    """
    return heatmap_rgb(np.clip((1.0 - ssim_map) / vmax, 0.0, 1.0))


def swipe_composite(left: np.ndarray, right: np.ndarray, position: float, line: bool = True) -> np.ndarray:
    """One picture: ``left`` up to ``position`` (0..1 of the width), ``right`` after it.

    Both are uint8 pictures of the same shape (gray or RGB). A 1-pixel marker line shows
    the split. This is the "swipe" comparison a reader drags across the image.
    """
    if left.shape != right.shape:
        raise ValueError(f"pictures differ in shape: {left.shape} vs {right.shape}")
    out = right.copy()
    cut = int(round(np.clip(position, 0.0, 1.0) * left.shape[1]))
    out[:, :cut] = left[:, :cut]
    if line and 0 < cut < left.shape[1]:
        out[:, cut] = 255 if out.ndim == 2 else (255, 200, 0)
    return out


def png_bytes(picture: np.ndarray) -> bytes:
    """Lossless PNG encoding of a uint8 gray (H, W) or RGB (H, W, 3) picture."""
    pic = picture if picture.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", pic)
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def png_data_uri(picture: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a picture (compact source for plotly ``go.Image``)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode("ascii")

