"""Synthetic PA chest radiograph phantom: deterministic, any size, with findings and masks.

The picture is built the way a radiograph forms: an attenuation map ``A`` (sum of tissue
line integrals: soft tissue, air in the lungs and airways, bone, vessels) is turned into a
display intensity ``1 - exp(-k A)``, windowed, with signal-dependent quantum noise, detector
blur and a small patient rotation/shift. Bright means attenuating (bone, heart, abdomen);
the aerated lungs are dark.

Geometry lives in normalised coordinates ``u`` (left to right) and ``v`` (top to bottom),
both in [-1, 1], so one (seed, index) gives the same patient at every size; only the
per-pixel noise depends on the size. Laterality follows radiology convention: the
*patient's* right lung (mask ``right_lung``) is on the image's left.

Random draws come from two streams so that the same (seed, index) rendered with another
finding shows the same patient and acquisition: anatomy/acquisition/noise from one stream,
the finding from the other.

Findings (one per image) and how they change the anatomy:

* ``No Finding``: cardiothoracic ratio (CTR) drawn in :data:`CTR_NORMAL` (below 0.5);
* ``Cardiomegaly``: CTR in :data:`CTR_ENLARGED` (above 0.5), the heart growing mostly
  to the patient's left and down (left ventricle);
* ``Pleural Effusion``: fluid at one lung base replacing air, with a meniscus rising
  to the chest wall and a hazy upper edge; small ones only blunt the costophrenic
  angle, large ones hide the hemidiaphragm; mask ``lesion`` = the fluid;
* ``Consolidation``: patchy airspace opacity (clustered blobs broken up by noise) in
  one lung, faint to dense; mask ``lesion`` = the opacity.

Borderline cases (CTR near 0.5, small effusions, faint consolidations) are deliberate:
the task is learnable but not trivial (see the README's phantom section for the
measured accuracy of a small CNN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from xmark_core.data.base import Record

FINDINGS: tuple[str, ...] = ("No Finding", "Cardiomegaly", "Pleural Effusion", "Consolidation")
MASK_KEYS: tuple[str, ...] = ("left_lung", "right_lung", "heart", "lesion")

# Cardiothoracic ratio ranges. A clinical CTR above 0.5 is cardiomegaly; both ranges reach
# close to the threshold so some cases are borderline (the task must not be trivial).
CTR_NORMAL = (0.39, 0.49)
CTR_ENLARGED = (0.515, 0.63)

_SHIFT = 3  # sub-pixel bits for OpenCV drawing
_LOWRES = 48  # grid of the smooth random fields, fixed so patients do not change with size


@dataclass
class PhantomSample:
    """One rendered phantom radiograph.

    Attributes
    ----------
    image : float32 (H, W) in [0, 1]
    label : index of ``finding`` in :data:`FINDINGS`
    finding : one of :data:`FINDINGS`
    masks : bool (H, W) arrays ``left_lung``, ``right_lung`` (patient sides), ``heart`` and
        ``lesion`` (effusion fluid or consolidation; empty for the other findings)
    meta : drawn parameters (``ctr`` target, effusion side/height, consolidation density, ...)
    """

    image: np.ndarray
    label: int
    finding: str
    masks: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def _finding_name(finding: str | int | None, index: int) -> str:
    if finding is None:
        return FINDINGS[index % len(FINDINGS)]
    if isinstance(finding, (int, np.integer)):
        if not 0 <= int(finding) < len(FINDINGS):
            raise ValueError(f"finding index {finding} out of range 0..{len(FINDINGS) - 1}")
        return FINDINGS[int(finding)]
    if finding not in FINDINGS:
        raise ValueError(f"unknown finding {finding!r}; choose one of {list(FINDINGS)}")
    return finding


# ---------------------------------------------------------------------------------------
# small helpers on normalised coordinates


def _px(points: np.ndarray, size: int) -> np.ndarray:
    """Normalised (u, v) points -> fixed-point pixel coordinates for cv2 drawing."""
    p = (points + 1.0) * (size / 2.0) - 0.5
    return np.round(p * (1 << _SHIFT)).astype(np.int32)


def _bands(lines: np.ndarray, half_width: float) -> np.ndarray:
    """Polygons (K, 2N, 2) outlining bands of ``half_width`` around polylines (K, N, 2).

    Filling polygons is much faster in OpenCV than drawing thick anti-aliased polylines.
    """
    tangent = np.gradient(lines, axis=1)
    normal = np.stack([-tangent[..., 1], tangent[..., 0]], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-9
    return np.concatenate([lines + half_width * normal, (lines - half_width * normal)[:, ::-1]], 1)


def _fill_bands(layer: np.ndarray, lines: np.ndarray, half_width: float, value: int) -> None:
    """Fill the bands of neighbouring lines in two passes: fillPoly treats overlapping
    polygons of one call as holes, and only neighbours (adjacent ribs) can touch."""
    polys = _px(_bands(lines, half_width).astype(np.float32), layer.shape[0])
    for part in (polys[0::2], polys[1::2]):
        cv2.fillPoly(layer, list(part), value, cv2.LINE_8, _SHIFT)


def _thick(t: float, size: int) -> int:
    return max(1, int(round(t * size / 2.0)))


def _clip01(x: np.ndarray) -> np.ndarray:
    """Clip a float32 array to [0, 1] in place (OpenCV: several times faster than np.clip)."""
    cv2.threshold(x, 1.0, 1.0, cv2.THRESH_TRUNC, dst=x)
    cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)
    return x


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """0 outside (d <= 0), rising linearly to 1 at d >= width."""
    return _clip01(np.ascontiguousarray(d * np.float32(1.0 / width), dtype=np.float32))


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 6) -> np.ndarray:
    """Smooth zero-mean unit-ish random field, drawn on a coarse grid and upsampled."""
    g = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)


def _lowres(field_lr: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(field_lr, (size, size), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------------------------------
# anatomy and acquisition parameters


@dataclass
class _Anatomy:
    W: float  # half-width of the thorax at the lung bases (lateral lung edge), u units
    apex: tuple[float, float]  # v of the right / left lung apex
    apex_u: float  # |u| of the apices
    cp: tuple[float, float]  # v of the right / left costophrenic angle
    dome: tuple[float, float]  # v of the right / left diaphragm dome top
    dome_u: tuple[float, float]  # |u| of the dome tops
    med: np.ndarray  # mediastinum control points: v, right |u|, left u
    ctr: float
    heart_h: float
    heart_right: float  # share of the heart width right of the midline
    spine_u: float
    body_extra: float
    breast: float
    rib_spacing: float
    rib_first: float
    carina_v: float
    hila: tuple[float, float]  # v of the right / left hilum
    vessel_gain: float
    texture_gain: float
    gastric: float
    k: float  # display: intensity = 1 - exp(-k A), windowed to [a_lo, a_hi]
    a_hi: float
    a_lo: float
    gamma: float
    noise: float
    blur: float
    angle: float
    shift: tuple[float, float]
    zoom: float
    heel: float


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    u = rng.uniform
    W = u(0.70, 0.82)
    apex = u(-0.84, -0.74)
    cp = u(0.36, 0.52)
    dome_drop = u(0.02, 0.09)  # the left hemidiaphragm sits lower than the right
    dome_r = cp - u(0.13, 0.22)
    med = np.array(
        [
            [-1.00, u(0.10, 0.13), u(0.10, 0.13)],
            [-0.58, u(0.09, 0.12), u(0.11, 0.14)],
            [-0.46, u(0.10, 0.13), u(0.16, 0.21)],  # aortic knob on the left
            [-0.34, u(0.10, 0.13), u(0.12, 0.15)],
            [-0.26, u(0.11, 0.14), u(0.14, 0.17)],  # pulmonary trunk
            [1.00, 0.12, 0.14],
        ],
        np.float32,
    )
    return _Anatomy(
        W=W,
        apex=(apex, apex + u(-0.02, 0.03)),
        apex_u=u(0.30, 0.37),
        cp=(cp, cp + dome_drop * 0.6),
        dome=(dome_r, dome_r + dome_drop),
        dome_u=(u(0.32, 0.44), u(0.36, 0.48)),
        med=med,
        ctr=u(*CTR_NORMAL),
        heart_h=u(0.55, 0.68),
        heart_right=u(0.28, 0.38),
        spine_u=u(-0.015, 0.015),
        body_extra=u(0.10, 0.20),
        breast=u(0.04, 0.14) if rng.random() < 0.45 else 0.0,
        rib_spacing=u(0.112, 0.128),
        rib_first=u(-0.86, -0.80),
        carina_v=u(-0.40, -0.32),
        hila=(u(-0.24, -0.16), u(-0.28, -0.20)),
        vessel_gain=u(0.7, 1.3),
        texture_gain=u(0.6, 1.4),
        gastric=u(0.3, 1.0) if rng.random() < 0.6 else 0.0,
        k=u(0.9, 1.4),
        a_hi=u(1.45, 1.75),
        a_lo=u(0.0, 0.10),
        gamma=u(0.85, 1.2),
        noise=u(0.006, 0.022),
        blur=u(0.0015, 0.005),
        angle=u(-4.0, 4.0),
        shift=(u(-0.04, 0.04), u(-0.04, 0.04)),
        zoom=u(0.95, 1.05),
        heel=u(-0.06, 0.06),
    )


def _heart_shape(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit right (atrium) and left (ventricle) border profiles over s in [0, 1] top to base."""

    inside = (s >= 0) & (s <= 1)
    # right atrium: a convex arc; left border: nearly straight from the pulmonary trunk
    # down to the ventricle, then a round apex meeting the diaphragm
    d = np.where(s < 0.6, (s - 0.6) / 0.6, (s - 0.6) / 0.6)
    right = np.sqrt(np.clip(1.0 - d * d, 0.0, None))
    up = 1.0 - np.clip(1.0 - s / 0.75, 0.0, 1.0) ** 1.5
    down = np.sqrt(np.clip(1.0 - ((s - 0.75) / 0.42) ** 2, 0.0, None))
    left = np.where(s < 0.75, up, down)
    return right * inside, left * inside


_S_FINE = np.linspace(0.0, 1.0, 513)
_R_FINE, _L_FINE = _heart_shape(_S_FINE)


# ---------------------------------------------------------------------------------------
# rendering


class _Renderer:
    """Coordinate grid and boundary profiles of one patient at one size."""

    def __init__(self, an: _Anatomy, size: int):
        self.an, self.S = an, size
        self.g = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)
        self.X = self.g[None, :]
        self.Y = self.g[:, None]

    def box(self, cu: float, cv: float, ru: float, rv: float):
        """Row/column slices and coordinates of the box around an ellipse (centre, radii)."""
        g, S = self.g, self.S

        def span(c, r):
            i0 = int(np.clip(np.floor((c - r + 1.0) * S / 2.0), 0, S))
            i1 = int(np.clip(np.ceil((c + r + 1.0) * S / 2.0) + 1, 0, S))
            return slice(i0, max(i0, i1))

        rs, cs = span(cv, rv), span(cu, ru)
        return rs, cs, g[None, cs], g[rs, None]

    def heart_profile(self, ctr: float, right_share: float, height: float):
        """Heart borders per row: (right border u, left border u, valid rows, base v)."""
        an, v = self.an, self.g
        base = an.dome[1] + 0.05
        top = base - height
        f = right_share
        unit = float(np.max(f * _R_FINE + (1.0 - f) * _L_FINE))
        width = ctr * 2.0 * an.W / unit
        r, lv = _heart_shape((v - top) / (base - top))
        right = an.spine_u - f * width * r
        left = an.spine_u + (1.0 - f) * width * lv
        return right.astype(np.float32), left.astype(np.float32), (r + lv) > 0, base

    def lung_profiles(self, side: int, h_right, h_left, h_rows, base: float):
        """Lateral and medial borders (u per row) and diaphragm (v per column) of one lung.

        ``side`` is -1 for the patient's right lung (image left), +1 for the left lung.
        """
        an, v = self.an, self.g
        i = 0 if side < 0 else 1
        apex, cp = an.apex[i], an.cp[i]
        t = np.clip((v - apex) / (cp - apex), 0.0, None)
        g_lat = np.sqrt(1.0 - (1.0 - np.clip(t / 0.9, 0.0, 1.0)) ** 2)
        g_med = np.sqrt(1.0 - (1.0 - np.clip(t / 0.22, 0.0, 1.0)) ** 2)
        m = np.interp(v, an.med[:, 0], an.med[:, 1 + i])
        lateral = an.spine_u + side * (an.apex_u + (an.W - an.apex_u) * g_lat)
        medial = an.spine_u + side * (an.apex_u - (an.apex_u - m) * g_med)
        if side < 0:
            medial = np.where(h_rows, np.minimum(medial, h_right), medial)
            lateral = np.where(v < apex, 9.0, lateral)
        else:
            medial = np.where(h_rows, np.maximum(medial, h_left), medial)
            lateral = np.where(v < apex, -9.0, lateral)
        # diaphragm: dome falling steeply to the costophrenic angle, gently to the heart
        dome_v, dome_u = an.dome[i], an.spine_u + side * an.dome_u[i]
        cp_u = an.spine_u + side * an.W
        row = min(max(int((base - 0.01 + 1.0) * self.S / 2.0), 0), self.S - 1)
        card_u = float(h_right[row] if side < 0 else h_left[row])
        if not h_rows[row] or (card_u - dome_u) * side >= 0:
            card_u = an.spine_u + side * 0.12
        card_v = max(base, dome_v + 0.02)
        u = self.g
        lat_part = dome_v + (cp - dome_v) * ((u - dome_u) / (cp_u - dome_u)) ** 2
        med_part = dome_v + (card_v - dome_v) * np.clip((u - dome_u) / (card_u - dome_u), 0, 1) ** 2
        dia = np.where((u - dome_u) * side > 0, lat_part, med_part)
        return lateral.astype(np.float32), medial.astype(np.float32), dia.astype(np.float32)

    def lung(self, side: int, lateral, medial, dia, apex: float):
        """Lung mask and projected air thickness (thin at the lateral pleura, crisp elsewhere).

        Computed inside the lung's bounding box only: the rest of the image is zero.
        """
        S, g = self.S, self.g
        rows = np.flatnonzero((g > apex) & (g < dia.max()))
        inner = lateral[rows], medial[rows]
        lo, hi = min(inner[0].min(), inner[1].min()), max(inner[0].max(), inner[1].max())
        cols = np.flatnonzero((g > lo) & (g < hi))
        mask = np.zeros((S, S), bool)
        depth = np.zeros((S, S), np.float32)
        if len(rows) == 0 or len(cols) == 0:
            return mask, depth
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        X, Y = g[None, c0:c1], g[r0:r1, None]
        lat, med = lateral[r0:r1, None], medial[r0:r1, None]
        d_lat, d_med = (X - lat, med - X) if side < 0 else (lat - X, X - med)
        d_dia = dia[None, c0:c1] - Y
        d_top = np.broadcast_to(Y - apex, d_lat.shape)
        mask[r0:r1, c0:c1] = (d_lat > 0) & (d_med > 0) & (d_dia > 0) & (d_top > 0)
        depth[r0:r1, c0:c1] = (
            cv2.sqrt(_ramp(d_lat, 0.18)) * _ramp(d_med, 0.05) * _ramp(d_dia, 0.025) * _ramp(d_top, 0.10)
        )
        return mask, depth

    def bones(self, rng: np.random.Generator, lat_r, lat_l) -> np.ndarray:
        """Ribs (posterior and anterior), clavicles, scapular borders and the spine."""
        an, S = self.an, self.S
        post = np.zeros((S, S), np.uint8)
        ant = np.zeros((S, S), np.uint8)
        other = np.zeros((S, S), np.uint8)
        spine = np.zeros((S, S), np.uint8)
        # each rib: an elliptic arc from its head at the spine, nearly flat medially, curving
        # down along the chest wall (posterior part), then running down and inwards (anterior)
        t = np.linspace(0.0, 1.0, 28, dtype=np.float32)[None, :]
        k = np.arange(10, dtype=np.float32)[:, None]
        y0 = an.rib_first + k * an.rib_spacing + rng.uniform(-0.01, 0.01, (10, 1))
        rows = np.clip(((y0[:, 0] + 0.15 + 1.0) * S / 2.0).astype(int), 0, S - 1)
        b = 0.11 + 0.05 * k / 9 + rng.uniform(-0.01, 0.01, (10, 1))
        posts, ants = [], []
        for side, lat in ((-1, lat_r), (1, lat_l)):
            reach = np.maximum(np.abs(lat[rows] - an.spine_u), 0.3)[:, None] + 0.025
            cx = 0.22 + 0.03 * k / 9
            a = reach - cx
            phi_s = np.arcsin(np.clip((cx - 0.055) / a, 0.0, 0.95))
            phi = -phi_s + t * (np.pi / 2 + 0.6 + phi_s)
            x = an.spine_u + side * (cx + a * np.sin(phi))
            lateral_share = (np.sin(phi) + np.sin(phi_s)) / (1.0 + np.sin(phi_s))
            y = y0 + b * (np.cos(phi_s) - np.cos(phi)) + 0.10 * lateral_share
            posts.append(np.stack([x, y], -1))
            xe, ye = x[:, -1:], y[:, -1:]
            xa = xe + (an.spine_u + side * 0.24 - xe) * t
            ya = ye + 0.24 * t + 0.04 * np.sin(np.pi * t)
            ants.append(np.stack([xa, ya], -1))
        posts = np.concatenate(posts)
        _fill_bands(post, posts, 0.025, 255)
        _fill_bands(post, posts, 0.011, 150)  # denser cortex at the rib margins
        _fill_bands(ant, np.concatenate(ants), 0.025, 255)
        # clavicles: S-shaped, sternal end low and medial, acromial end high and lateral
        tt = np.linspace(0.0, 1.0, 20, dtype=np.float32)
        clav, scap = [], []
        for side in (-1, 1):
            x = an.spine_u + side * (0.09 + 0.62 * tt)
            y = -0.66 - 0.17 * tt + 0.03 * np.sin(2 * np.pi * tt) + 0.02 * rng.standard_normal()
            clav.append(np.stack([x, y], -1))
            scap.append(np.array([[side * 0.55, -0.78], [side * 0.60, -0.55], [side * 0.72, -0.25], [side * 0.80, -0.12]]))
        clav = np.stack(clav)
        _fill_bands(other, clav, 0.026, 255)
        _fill_bands(other, clav, 0.011, 190)
        cv2.polylines(ant, list(_px(np.stack(scap).astype(np.float32), S)), False, 140, _thick(0.025, S), cv2.LINE_8, _SHIFT)
        # spine: vertebral bodies with end plates, pedicles (rings), spinous processes
        step = 2.0 / 13.0
        yc = -1.05 + step * np.arange(16, dtype=np.float32)
        hw = 0.062 + 0.0025 * np.arange(16, dtype=np.float32)
        bodies = np.stack(
            [
                np.stack([an.spine_u - hw, yc - 0.4 * step], -1),
                np.stack([an.spine_u + hw, yc - 0.4 * step], -1),
                np.stack([an.spine_u + hw, yc + 0.4 * step], -1),
                np.stack([an.spine_u - hw, yc + 0.4 * step], -1),
            ],
            1,
        )
        cv2.fillPoly(spine, list(_px(bodies, S)), 160, cv2.LINE_8, _SHIFT)
        ang = np.linspace(0, 2 * np.pi, 12, endpoint=False, dtype=np.float32)
        ring = np.stack([np.cos(ang) * 0.018, np.sin(ang) * 0.03], -1)
        ped = [ring + np.array([an.spine_u + s * 0.7 * h, y - 0.15 * step]) for s in (-1, 1) for y, h in zip(yc, hw)]
        cv2.polylines(spine, list(_px(np.stack(ped).astype(np.float32), S)), True, 230, _thick(0.012, S), cv2.LINE_8, _SHIFT)
        spin = np.stack([ring * np.array([0.6, 1.0]) + np.array([an.spine_u, y + 0.15 * step]) for y in yc]).astype(np.float32)
        cv2.fillPoly(spine, list(_px(spin, S)), 200, cv2.LINE_8, _SHIFT)
        f32 = cv2.CV_32F
        b = cv2.addWeighted(post, 0.13 / 255, ant, 0.05 / 255, 0.0, dtype=f32)
        b = cv2.addWeighted(other, 0.30 / 255, spine, 0.20 / 255, 0.0, dtype=f32) + b
        return b

    def vessels(self, rng: np.random.Generator) -> np.ndarray:
        """Pulmonary vessels: branching trees from each hilum, tapering and fading outwards."""
        an, S = self.an, self.S
        layer = np.zeros((S, S), np.uint8)
        for side, hv in ((-1, an.hila[0]), (1, an.hila[1])):
            hu = an.spine_u + side * rng.uniform(0.17, 0.22)
            c = _px(np.array([[hu, hv]], np.float32), S)[0]
            axes = (int(0.045 * S / 2 * (1 << _SHIFT)), int(0.08 * S / 2 * (1 << _SHIFT)))
            cv2.ellipse(layer, (int(c[0]), int(c[1])), axes, 0, 0, 360, 170, -1, cv2.LINE_AA, _SHIFT)
            # roots: upper lobe (up and out), middle, lower lobe (down and out, larger upright)
            dirs = np.array([-1.2, -0.35, 0.35, 0.95, 1.35]) + rng.normal(0, 0.12, 5)
            ang = np.where(side > 0, dirs, np.pi - dirs)
            start = np.tile(np.array([[hu, hv]], np.float32), (5, 1))
            length, thick, value = 0.15, 0.026, 255.0
            for _level in range(6):
                d = np.stack([np.cos(ang), np.sin(ang)], 1) * (length * rng.uniform(0.7, 1.3, (len(ang), 1)))
                end = start + d
                segs = _px(np.stack([start, end], 1).astype(np.float32), S)
                # thin branches: 1-px lines dimmed by their width (the layer is blurred later)
                px = thick * S / 2.0
                val = int(value * min(1.0, px))
                cv2.polylines(layer, list(segs), False, val, max(1, int(round(px))), cv2.LINE_8, _SHIFT)
                spread = rng.uniform(0.25, 0.55, len(ang))
                ang = np.concatenate([ang - spread, ang + spread]) + rng.normal(0, 0.12, 2 * len(ang))
                start = np.concatenate([end, end])
                length, thick, value = length * 0.74, thick * 0.72, value * 0.82
        return layer.astype(np.float32) * (1.0 / 255)

    def airways(self) -> np.ndarray:
        """Trachea and main bronchi (air: dark inside the mediastinum)."""
        an, S = self.an, self.S
        layer = np.zeros((S, S), np.uint8)
        c = an.spine_u + 0.01
        lines = np.array(
            [
                [[c - 0.01, -1.05], [c, an.carina_v]],
                [[c, an.carina_v], [c - 0.12, an.carina_v + 0.11]],
                [[c, an.carina_v], [c + 0.15, an.carina_v + 0.15]],
            ],
            np.float32,
        )
        pts = _px(lines, S)
        cv2.polylines(layer, [pts[0]], False, 255, _thick(0.07, S), cv2.LINE_AA, _SHIFT)
        cv2.polylines(layer, list(pts[1:]), False, 200, _thick(0.045, S), cv2.LINE_AA, _SHIFT)
        return layer.astype(np.float32) * (1.0 / 255)


# ---------------------------------------------------------------------------------------
# findings


def _effusion(rng: np.random.Generator, R: _Renderer, side: int, mask: np.ndarray):
    """Fluid at a lung base: meniscus rising laterally, blunted costophrenic angle."""
    an = R.an
    i = 0 if side < 0 else 1
    # height of the fluid at the chest wall above the costophrenic angle: small ones only
    # blunt the angle, larger ones climb over the dome and hide the hemidiaphragm
    small = rng.random() < 0.3
    height = rng.uniform(0.10, 0.18) if small else rng.uniform(0.25, 0.55)
    level = an.cp[i] - height
    meniscus = rng.uniform(0.06, 0.16)
    lat_u = an.spine_u + side * an.W
    med_u = an.spine_u + side * 0.12
    rel = np.clip((R.X - med_u) / (lat_u - med_u), 0.0, 1.0)
    surface = level + meniscus * (1.0 - rel**3)  # concave upwards, highest at the chest wall
    fill = _ramp(R.Y - surface, rng.uniform(0.05, 0.12))  # hazy top: the layer thins
    lesion = mask & (fill > 0.5)
    meta = {"effusion_side": "right" if side < 0 else "left", "effusion_height": float(height)}
    return fill, lesion, meta


def _consolidation(rng: np.random.Generator, R: _Renderer, side: int, lateral, medial, mask):
    """Patchy airspace opacity: clustered blobs broken up by noise, confined to one lung."""
    an, S = R.an, R.S
    i = 0 if side < 0 else 1
    zone_v = rng.uniform(an.apex[i] + 0.25, an.cp[i] - 0.15)
    row = int(np.clip((zone_v + 1.0) * S / 2.0, 0, S - 1))
    lo, hi = sorted((float(lateral[row]), float(medial[row])))
    cu = rng.uniform(lo + 0.25 * (hi - lo), hi - 0.2 * (hi - lo))
    radius = rng.uniform(0.11, 0.24)
    n = _LOWRES
    gl = (np.arange(n, dtype=np.float32) + 0.5) * (2.0 / n) - 1.0
    Xl, Yl = gl[None, :], gl[:, None]
    op = np.zeros((n, n), np.float32)
    for _ in range(int(rng.integers(5, 12))):
        bu = cu + rng.normal(0, radius * 0.8)
        bv = zone_v + rng.normal(0, radius * 0.7)
        br = radius * rng.uniform(0.25, 0.55)
        op += np.exp(-((Xl - bu) ** 2 + (Yl - bv) ** 2) / (2 * br * br)).astype(np.float32)
    noise = cv2.GaussianBlur(rng.standard_normal((n, n)).astype(np.float32), (0, 0), 0.8)
    op = np.clip((op * (1.0 + 0.9 * noise) - 0.3) / 0.7, 0.0, 1.0)
    field_s = _lowres(op, S) * mask
    density = float(rng.uniform(0.25, 0.75))
    lesion = field_s > 0.3
    meta = {"consolidation_density": density, "consolidation_side": "right" if side < 0 else "left"}
    return field_s * density, lesion, meta


def make_phantom(seed: int, index: int, size: int = 256, finding: str | int | None = None) -> PhantomSample:
    """Render one synthetic PA chest radiograph.

    Parameters
    ----------
    seed, index : the patient and the acquisition are a deterministic function of these
    size : output side in pixels (64 to 1024 intended)
    finding : a name or index in :data:`FINDINGS`; ``None`` picks ``FINDINGS[index % 4]``

    Returns
    -------
    PhantomSample
        float32 image in [0, 1], label, bool masks of lungs, heart and lesion, and the drawn
        parameters in ``meta``.
    """
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    if int(index) < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    name = _finding_name(finding, index)
    seed32 = int(seed) & 0xFFFFFFFF
    rng = np.random.default_rng([seed32, int(index), 0xA])  # patient + acquisition
    frng = np.random.default_rng([seed32, int(index), 0xF])  # the finding only
    an = _draw_anatomy(rng)
    meta: dict[str, Any] = {"seed": int(seed), "index": int(index)}

    ctr, right_share, height = an.ctr, an.heart_right, an.heart_h
    if name == "Cardiomegaly":  # mostly left-ventricular: grows to the left and down
        ctr = float(frng.uniform(*CTR_ENLARGED))
        right_share -= frng.uniform(0.0, 0.06)
        height += frng.uniform(0.02, 0.08)
    meta["ctr_target"] = float(ctr)

    R = _Renderer(an, size)
    X, Y = R.X, R.Y
    h_right, h_left, h_rows, base = R.heart_profile(ctr, right_share, height)
    lat_r, med_r, dia_r = R.lung_profiles(-1, h_right, h_left, h_rows, base)
    lat_l, med_l, dia_l = R.lung_profiles(1, h_right, h_left, h_rows, base)
    mask_r, depth_r = R.lung(-1, lat_r, med_r, dia_r, an.apex[0])
    mask_l, depth_l = R.lung(1, lat_l, med_l, dia_l, an.apex[1])
    heart = h_rows[:, None] & (X > h_right[:, None]) & (X < h_left[:, None])

    # soft tissue: a cylinder-like torso with neck and shoulders at the top
    bw = np.interp(
        R.g,
        [-1.0, -0.93, -0.86, -0.78, -0.60, 0.0, 1.0],
        [0.26, 0.38, 0.80, 1.10, an.W + an.body_extra + 0.04, an.W + an.body_extra, an.W + an.body_extra - 0.03],
    ).astype(np.float32)
    q = X * (1.0 / bw[:, None])
    A = cv2.sqrt(_clip01(1.0 - q * q)) * (1.0 + an.heel * Y)

    # lungs replace tissue by air; parenchymal mottling and vessels on top
    depth = depth_r + depth_l
    lung_soft = np.minimum(depth, 1.0)
    texture = 1.0 + 0.08 * an.texture_gain * _smooth_field(rng, size, 9)
    air = depth * texture
    vessels = R.vessels(rng)
    bones = R.bones(rng, lat_r, lat_l)
    airway = R.airways()

    lesion = np.zeros((size, size), bool)
    if name == "Pleural Effusion":
        side = -1 if frng.random() < 0.5 else 1
        fill, lesion, extra = _effusion(frng, R, side, mask_r if side < 0 else mask_l)
        opacity = float(frng.uniform(0.8, 1.0))
        meta.update(extra, effusion_opacity=opacity)
        air -= (opacity * fill * (depth_r if side < 0 else depth_l)) * texture
    elif name == "Consolidation":
        side = -1 if frng.random() < 0.5 else 1
        args = (lat_r, med_r, mask_r) if side < 0 else (lat_l, med_l, mask_l)
        opac, lesion, extra = _consolidation(frng, R, side, *args)
        meta.update(extra)
        air *= 1.0 - opac

    A -= 0.74 * air
    A += (0.11 * an.vessel_gain) * cv2.GaussianBlur(vessels, (0, 0), max(0.5, 0.0025 * size)) * lung_soft
    A -= 0.20 * airway * (1.0 - lung_soft)
    # bone shows best against aerated lung; dense abdomen and mediastinum swamp it
    A += cv2.GaussianBlur(bones, (0, 0), max(0.6, 0.0025 * size)) * (0.55 + 0.45 * lung_soft)
    if an.breast > 0:  # breast shadows over the lower zones, sharp lower edge
        for s in (-1, 1):
            rs, cs, xs, ys = R.box(an.spine_u + s * 0.50, an.cp[0] - 0.02, 0.36, 0.30)
            d = 1.0 - ((xs - (an.spine_u + s * 0.50)) / 0.36) ** 2 - ((ys - (an.cp[0] - 0.02)) / 0.30) ** 2
            A[rs, cs] += an.breast * cv2.sqrt(_clip01(d)) * (ys > an.cp[0] - 0.22)
    if an.gastric > 0:  # stomach bubble under the left hemidiaphragm, flat air-fluid level
        gu, gv = an.spine_u + 0.33, an.dome[1] + 0.09
        rs, cs, xs, ys = R.box(gu, gv, 0.11, 0.06)
        d = ((xs - gu) / 0.11) ** 2 + ((ys - gv) / 0.06) ** 2
        A[rs, cs] -= 0.22 * an.gastric * ((d < 1.0) & (ys < gv + 0.02))

    # acquisition: quantum noise (stronger where fewer photons arrive), detector blur, window
    noise = rng.random((size, size), dtype=np.float32)
    noise += rng.random((size, size), dtype=np.float32)
    noise -= 1.0
    # per-pixel noise grows with the pixel count, as if every size were binned from one
    # detector: a 64 px image is as quiet as a 256 px one shrunk to 64 px
    sigma = an.noise * 2.449 * float(np.clip(np.sqrt(size / 256.0), 0.4, 2.0))
    A += (np.float32(sigma) * cv2.exp(np.float32(0.5 * an.k) * A)) * noise
    A = cv2.GaussianBlur(A, (0, 0), max(0.35, an.blur * size / 2.0))
    lo = 1.0 - np.exp(-an.k * an.a_lo)
    hi = 1.0 - np.exp(-an.k * an.a_hi)
    img = cv2.exp(np.float32(-an.k) * A)
    img = _clip01((np.float32(1.0 - lo) - img) * np.float32(1.0 / (hi - lo)))
    img = cv2.pow(img, an.gamma)

    # positioning: small rotation, shift and magnification, applied to image and masks
    M = cv2.getRotationMatrix2D((size / 2.0 - 0.5, size / 2.0 - 0.5), an.angle, an.zoom)
    M[:, 2] += np.array(an.shift) * size / 2.0
    img = cv2.warpAffine(img, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    stack = cv2.merge([m.view(np.uint8) for m in (mask_l, mask_r, heart, lesion)])
    stack = cv2.warpAffine(stack, M, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
    masks = {key: m.view(bool) for key, m in zip(MASK_KEYS, cv2.split(stack))}
    meta.update(angle=an.angle, zoom=an.zoom)
    return PhantomSample(image=_clip01(img), label=FINDINGS.index(name), finding=name, masks=masks, meta=meta)


def cardiothoracic_ratio(masks: dict[str, np.ndarray]) -> float:
    """Widest horizontal heart extent over the widest extent of both lungs (from the masks)."""
    heart = masks["heart"]
    lungs = masks["left_lung"] | masks["right_lung"]
    cols_h = np.flatnonzero(heart.any(axis=0))
    cols_l = np.flatnonzero(lungs.any(axis=0))
    if len(cols_h) == 0 or len(cols_l) == 0:
        return float("nan")
    rows = np.flatnonzero(heart.any(axis=1))
    width_h = max(np.ptp(np.flatnonzero(heart[r])) + 1 for r in rows)
    return float(width_h / (np.ptp(cols_l) + 1))


class PhantomDataset:
    """``n`` phantom radiographs with balanced findings (``FINDINGS[i % 4]``), rendered on demand.

    Parameters
    ----------
    n : number of images
    size : side in pixels
    seed : dataset seed; image ``i`` is ``make_phantom(seed, i, size)``
    """

    def __init__(self, n: int, size: int = 256, seed: int = 0):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.size, self.seed = int(n), int(size), int(seed)
        self.classes = list(FINDINGS)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Record:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} images")
        i = int(i) % self.n
        s = make_phantom(self.seed, i, self.size)
        meta = dict(s.meta, masks=s.masks, finding=s.finding)
        return Record(image=s.image, label=s.label, image_id=f"phantom-{self.seed}-{i}", meta=meta)

    def labels(self) -> np.ndarray:
        return np.arange(self.n, dtype=np.int64) % len(FINDINGS)

    def __repr__(self) -> str:
        return f"PhantomDataset(n={self.n}, size={self.size}, seed={self.seed})"
