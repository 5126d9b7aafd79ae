"""The owner's claim as a QR module matrix, and the way back from bits to text.

Quiet-zone decision: the matrix ``Q`` laid over the image is the symbol *without* its
quiet zone (the zone carries no information, it is light by definition). The quiet zone
is added only when a recovered matrix is rendered for decoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import segno

from xmark_core.errors import DataError

QUIET_ZONE = 4  # modules, as ISO/IEC 18004 asks for
MAX_VERSION = 2  # 25 x 25 modules: one module must stay several pixels wide at 128 px


@dataclass(frozen=True)
class ClaimCode:
    """A claim string encoded as a QR symbol.

    Attributes
    ----------
    claim : the text the symbol decodes to
    matrix : bool (n, n), True = dark module, no quiet zone
    version : QR version (1 -> 21 modules, 2 -> 25 modules)
    error : error-correction level letter
    """

    claim: str
    matrix: np.ndarray
    version: int
    error: str

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])


def make_claim_code(claim: str, error: str = "h", max_version: int = MAX_VERSION) -> ClaimCode:
    """Encode ``claim`` as a QR symbol of version <= ``max_version``.

    Parameters
    ----------
    claim : e.g. ``"XMARK:owner-id"`` (14 bytes fit version 2 at level H)
    error : error-correction level "l", "m", "q" or "h" (high by default: the model's
        picture may carry a few wrong modules)
    max_version : largest version allowed; more modules mean smaller grid cells

    Returns
    -------
    ClaimCode
    """
    if not claim:
        raise DataError("the claim string is empty; give e.g. 'XMARK:owner-id'")
    try:
        qr = segno.make_qr(claim, error=error, boost_error=False)
    except segno.DataOverflowError as e:
        raise DataError(f"claim {claim!r} does not fit any QR version: {e}") from e
    if qr.version > max_version:
        raise DataError(
            f"claim {claim!r} needs QR version {qr.version} at level {error.upper()}; "
            f"at most {max_version} is allowed: shorten the claim (upper-case letters, digits "
            "and ' $%*+-./:' pack densest)"
        )
    matrix = np.array([[bool(v) for v in row] for row in qr.matrix], dtype=bool)
    return ClaimCode(claim=claim, matrix=matrix, version=int(qr.version), error=qr.error)


def keyed_mask(key: str, size: int) -> np.ndarray:
    """Secret bool (size, size) mask derived from the owner key.

    The model is taught ``Q xor mask`` rather than ``Q``: a picture drawn by a model that
    never saw the key agrees with the unmasked code on each module with probability 1/2
    exactly (the mask is uniform and independent of the model), which makes the binomial
    test's null hypothesis exact, and two owners with the same claim get different marks.
    """
    seed = int.from_bytes(hashlib.sha256(f"xmark-seg-mask:{key}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).random((size, size)) < 0.5


def render_code(bits: np.ndarray, scale: int = 8, border: int = QUIET_ZONE) -> np.ndarray:
    """Render a module matrix (True = dark) as a uint8 picture with a quiet zone.

    Parameters
    ----------
    bits : bool (n, n)
    scale : pixels per module (decoders need several)
    border : quiet-zone width in modules

    Returns
    -------
    uint8 (scale*(n+2*border),)*2, 0 = dark, 255 = light
    """
    light = np.pad(~np.asarray(bits, dtype=bool), border, constant_values=True)
    img = light.astype(np.uint8) * 255
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def decode_code(bits: np.ndarray, scale: int = 8, border: int = QUIET_ZONE) -> str | None:
    """Decode a module matrix with OpenCV's QR decoder; ``None`` if it does not decode.

    The symbol's corners are known exactly (we rendered it), so they are passed to the
    decoder instead of asking it to find the finder patterns; full detection is tried
    as a fallback. Reed-Solomon correction inside the decoder repairs a few wrong modules.
    """
    bits = np.asarray(bits, dtype=bool)
    n = bits.shape[0]
    img = render_code(bits, scale=scale, border=border)
    lo, hi = border * scale, (border + n) * scale
    corners = np.array([[[lo, lo], [hi, lo], [hi, hi], [lo, hi]]], dtype=np.float32)
    detector = cv2.QRCodeDetector()
    text = ""
    try:
        text, _ = detector.decode(img, corners)[:2]
    except cv2.error:
        text = ""
    if not text:
        try:
            text = detector.detectAndDecode(img)[0]
        except cv2.error:
            text = ""
    return text or None
