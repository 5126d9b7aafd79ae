"""A labelled grid of phantom radiographs, one per finding, for the README."""

from __future__ import annotations

import cv2
import numpy as np

from xmark_core.data.phantom import FINDINGS, cardiothoracic_ratio, make_phantom

# BGR outline colours: lungs green/cyan, heart red, lesion yellow
OUTLINE_COLOURS = {
    "right_lung": (80, 220, 80),
    "left_lung": (220, 200, 60),
    "heart": (60, 60, 230),
    "lesion": (0, 220, 255),
}


def _caption(width: int, text: str, height: int) -> np.ndarray:
    band = np.full((height, width, 3), 255, np.uint8)
    scale = height / 40.0
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (max(2, (width - tw) // 2), (height + th) // 2)
    cv2.putText(band, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), max(1, int(scale * 1.5)), cv2.LINE_AA)
    return band


def findings_figure(seed: int = 0, index: int = 27, size: int = 256, outlines: bool = True) -> np.ndarray:
    """One patient rendered with each finding: a BGR uint8 grid.

    Parameters
    ----------
    seed, index : the patient (same anatomy and acquisition in every column)
    size : side of each tile in pixels
    outlines : add a second row with the lung, heart and lesion mask outlines

    Returns
    -------
    np.ndarray
        (H, W, 3) uint8 image: caption row, image row, optional outline row.
    """
    cap_h = max(24, size // 7)
    pad = max(2, size // 64)
    columns = []
    for f in FINDINGS:
        s = make_phantom(seed, index, size, f)
        tile = cv2.cvtColor(np.round(s.image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        ctr = cardiothoracic_ratio(s.masks)
        parts = [_caption(size, f, cap_h), tile]
        if outlines:
            over = tile.copy()
            for key, colour in OUTLINE_COLOURS.items():
                contours, _ = cv2.findContours(s.masks[key].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(over, contours, -1, colour, max(1, size // 256), cv2.LINE_AA)
            parts += [np.full((pad, size, 3), 255, np.uint8), over, _caption(size, f"masks, CTR {ctr:.2f}", cap_h)]
        columns.append(np.vstack(parts))
        columns.append(np.full((columns[-1].shape[0], pad, 3), 255, np.uint8))
    return np.hstack(columns[:-1])
