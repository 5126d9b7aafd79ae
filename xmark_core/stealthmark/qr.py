"""The owner's claim as a QR module matrix, and the way back from bits to text.

Quiet-zone decision: the matrix ``Q`` laid over the image is the symbol *without* its
quiet zone (the zone carries no information, it is light by definition). The quiet zone
is added only when a recovered matrix is rendered for decoding.

Reader decision: a recovered matrix is decoded twice over the same modules -- as drawn,
and as a *reader's copy* whose fixed patterns (finder squares, separators, timing lines,
alignment square, dark module, level bits: 207 of the 441 modules of a version-1 symbol)
are redrawn. Those modules are identical in every QR symbol of the version and level, so they carry no
part of the claim and an innocent model gains nothing from them; but a decoder that meets
a few wrong finder modules gives up before Reed-Solomon correction is even tried
(measured: 10 random wrong modules of 441 decode 70 % of the time as drawn, 100 % from the
reader's copy). The mask-pattern and data modules are always the model's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import segno

from xmark_core.errors import DataError

QUIET_ZONE = 4  # modules, as ISO/IEC 18004 asks for
READER_HELP = ("Decoded as drawn, or else after redrawing the modules that are identical in every QR "
               "code of this size (finder squares, timing, alignment, level bits): they carry no part "
               "of the claim; every other module is the suspect's own.")
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


@lru_cache(maxsize=16)
def fixed_modules(version: int, error: str) -> tuple[np.ndarray, np.ndarray]:
    """The modules that are the same in every QR symbol of ``version`` and ``error`` level.

    Found by encoding 256 random claims (three modes, random lengths, so that mode, length
    and padding bits vary too) under all eight data masks with segno and keeping the
    modules that never change: finder squares with their separators, timing lines,
    alignment square, the dark module, the format bits that spell the level, and at
    version 2 the first mode bit (0 in numeric, alphanumeric and byte mode alike): 207
    modules at version 1, 241 at version 2. None depends on the claim's text.

    Returns
    -------
    fixed : bool (n, n), True where the module is fixed
    values : bool (n, n), the fixed modules' values (True = dark; meaningless elsewhere)
    """
    rng = np.random.default_rng(0)
    alphabets = ["0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 $%*+-./:", "abcdefghijklmnopqrstuvwxyz"]
    mats = []
    while len(mats) < 256:
        alphabet = list(alphabets[len(mats) % 3])
        text = "".join(rng.choice(alphabet, int(rng.integers(1, 40))))
        try:
            qr = segno.make_qr(text, error=error, version=version, mask=len(mats) % 8, boost_error=False)
        except segno.DataOverflowError:
            continue
        mats.append(np.array([[bool(v) for v in row] for row in qr.matrix], dtype=bool))
    stack = np.stack(mats)
    fixed = (stack == stack[0]).all(axis=0)
    fixed.setflags(write=False)
    values = stack[0].copy()
    values.setflags(write=False)
    return fixed, values


@dataclass(frozen=True)
class CodeReading:
    """What a QR reader makes of a recovered module matrix.

    Attributes
    ----------
    text : decoded text (from the matrix as drawn, else from the reader's copy), or None
    reader_modules : bool (n, n), the matrix with its fixed patterns redrawn
    restored : number of fixed-pattern modules that were wrong in the matrix as drawn
    as_drawn : whether the matrix decoded without redrawing anything
    """

    text: str | None
    reader_modules: np.ndarray
    restored: int
    as_drawn: bool


def read_code(modules: np.ndarray, version: int, error: str) -> CodeReading:
    """Decode a recovered matrix as drawn, and if that fails from its reader's copy.

    Parameters
    ----------
    modules : bool (n, n) recovered QR modules (True = dark)
    version, error : the version and level of the committed symbol (public: they say how
        long the claim is, not what it says)

    Returns
    -------
    CodeReading
    """
    modules = np.asarray(modules, dtype=bool)
    fixed, values = fixed_modules(int(version), str(error).lower())
    if fixed.shape != modules.shape:
        raise DataError(f"a version-{version} symbol has {fixed.shape[0]} modules per side, got {modules.shape}")
    copy = np.where(fixed, values, modules)
    restored = int((modules != values)[fixed].sum())
    text = decode_code(modules)
    if text is not None:
        return CodeReading(text, copy, restored, True)
    return CodeReading(decode_code(copy) if restored else None, copy, restored, False)
