"""Read and write chest radiographs: 8/16-bit PNG, JPEG and DICOM, as float images in [0, 1].

Reading gives the picture a radiologist would see: for DICOM the modality LUT (rescale
slope/intercept), then the VOI LUT or window, then MONOCHROME1 inversion, so bright is
always dense. Writing is atomic and keeps the source's format: PNG keeps its bit depth and
DICOM keeps every tag of the source (``like``) with a new SOP Instance UID. A DICOM written
with ``like`` maps only the *changed* pixels back through the inverse of the display
transform, so untouched pixels keep their original stored values exactly, including raw
values the window had clipped.

Colour policy: an RGB(A) file whose colour channels are identical (a grayscale picture
saved as colour) is read silently as grayscale; one whose channels differ is converted to
luminance (ITU-R BT.601) with an :class:`ImageWarning`, since colour usually means burnt-in
annotations; an alpha channel that is not fully opaque is refused (flatten it first).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from xmark_core.atomic import atomic_path, atomic_write_bytes
from xmark_core.errors import DataError

IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".dcm": "dicom", ".dicom": "dicom"}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageWarning(UserWarning):
    """An image was read, but changed on the way in (e.g. colour converted to grayscale)."""


@dataclass
class LoadedImage:
    """An image read from disk.

    Attributes
    ----------
    image : float32 (H, W) in [0, 1], bright = dense
    bit_depth : significant bits of the stored samples (8, 12, 16, ...)
    fmt : "png", "jpeg" or "dicom"
    dicom : the pydicom Dataset (DICOM only), kept so a written copy keeps its tags
    path : the source file
    warnings : what was changed on reading (colour conversion, ...)
    """

    image: np.ndarray
    bit_depth: int
    fmt: str
    dicom: Any = None
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)


def sniff_format(path: str | Path, head: bytes | None = None) -> str | None:
    """Guess "png", "jpeg" or "dicom" from the first bytes, then the suffix; None if unknown."""
    path = Path(path)
    if head is None:
        with open(path, "rb") as f:
            head = f.read(132)
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if path.suffix.lower() in (".dcm", ".dicom"):
        return "dicom"  # DICOM without the 128-byte preamble: let pydicom try
    return None


def read_image(path: str | Path) -> LoadedImage:
    """Read a PNG (8/16-bit), JPEG or DICOM file as a float32 (H, W) image in [0, 1].

    Parameters
    ----------
    path : image file; the format is recognised from its content, not only its suffix

    Returns
    -------
    LoadedImage

    Raises
    ------
    DataError
        Missing, empty, truncated, corrupt or unsupported files, DICOM without pixel data,
        images with transparency; the message names the file and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    if path.is_dir():
        raise DataError("is a folder, expected an image file", path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror or e}", path) from None
    if not data:
        raise DataError("empty file (0 bytes)", path)
    fmt = sniff_format(path, data[:132])
    if fmt == "png" or fmt == "jpeg":
        return _read_raster(path, data, fmt)
    if fmt == "dicom":
        return _read_dicom(path)
    raise DataError(
        f"unrecognised image format (first bytes {data[:8]!r}); expected PNG, JPEG or DICOM", path
    )


# ---------------------------------------------------------------------------------------
# PNG / JPEG


def _check_complete(path: Path, data: bytes, fmt: str) -> None:
    """Decoders fill a truncated file with grey and only print a warning: catch it here."""
    tail = data[-64:].rstrip(b"\x00")
    if fmt == "png" and b"IEND" not in tail:
        raise DataError("truncated or corrupt PNG (no IEND chunk at the end); re-export the file", path)
    if fmt == "jpeg" and not tail.endswith(b"\xff\xd9"):
        raise DataError("truncated JPEG (no end-of-image marker); re-export the file", path)


def _to_gray(arr: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """Apply the colour policy of this module to a decoded (H, W[, C]) array."""
    if arr.ndim == 2:
        return arr
    channels = arr.shape[2]
    if channels == 1:
        return arr[..., 0]
    if channels in (2, 4):  # gray+alpha or BGRA
        alpha = arr[..., -1]
        if alpha.min() < np.iinfo(arr.dtype).max:
            raise DataError(
                "image has transparency (alpha channel not fully opaque); flatten it onto "
                "a background and save it as grayscale",
                path,
            )
        arr = arr[..., :-1]
        if arr.shape[2] == 1:
            return arr[..., 0]
    if arr.shape[2] != 3:
        raise DataError(f"unsupported number of channels: {channels}", path)
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        return arr[..., 0]
    msg = f"{path}: colour image converted to grayscale (channels differ: burnt-in annotations?)"
    notes.append(msg)
    warnings.warn(msg, ImageWarning, stacklevel=3)
    gray = arr[..., 0] * 0.114 + arr[..., 1] * 0.587 + arr[..., 2] * 0.299  # OpenCV order is BGR
    return np.round(gray).astype(arr.dtype)


def _from_samples(arr: np.ndarray, depth: int) -> np.ndarray:
    """Integer samples to float32 in [0, 1]; the one conversion reader and writer share."""
    return arr.astype(np.float32) * np.float32(1.0 / (2**depth - 1))


def _read_raster(path: Path, data: bytes, fmt: str) -> LoadedImage:
    _check_complete(path, data, fmt)
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise DataError(f"corrupt {fmt.upper()}: {str(e).strip().splitlines()[-1]}", path) from None
    if arr is None or arr.size == 0:
        raise DataError(f"corrupt {fmt.upper()} (the decoder could not read it)", path)
    notes: list[str] = []
    arr = _to_gray(arr, path, notes)
    if arr.dtype == np.uint8:
        depth = 8
    elif arr.dtype == np.uint16:
        depth = 16
    else:
        raise DataError(f"unsupported sample type {arr.dtype}; expected 8- or 16-bit", path)
    image = _from_samples(arr, depth)
    return LoadedImage(image=image, bit_depth=depth, fmt=fmt, path=path, warnings=notes)


# ---------------------------------------------------------------------------------------
# DICOM


def _read_dicom(path: Path) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=path.suffix.lower() in (".dcm", ".dicom"))
    except InvalidDicomError as e:
        raise DataError(f"not a valid DICOM file ({e})", path) from None
    except Exception as e:  # pydicom raises many types on damaged headers
        raise DataError(f"cannot parse DICOM header: {type(e).__name__}: {e}", path) from None
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID", None)
        kind = f" (SOP class {sop.name})" if sop is not None else ""
        raise DataError(f"DICOM has no pixel data{kind}; it is not an image", path)
    stored = _stored_pixels(ds, path)
    notes: list[str] = []
    if stored.ndim == 3:  # colour DICOM (rare for radiographs)
        stored = _to_gray(stored, path, notes)
    transform = _display_transform(ds, path)
    image = transform(stored)
    return LoadedImage(
        image=image, bit_depth=int(ds.get("BitsStored", 16)), fmt="dicom", dicom=ds, path=path, warnings=notes
    )


def _stored_pixels(ds: Any, path: Path) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"multi-frame DICOM ({frames} frames) is not supported; export one frame", path)
    try:
        arr = ds.pixel_array
    except Exception as e:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        hint = ""
        if ts is not None and ts.is_compressed:
            hint = f" (compressed transfer syntax {ts.name}: install a decoder such as pylibjpeg, or decompress the file)"
        raise DataError(f"cannot decode DICOM pixel data: {e}{hint}", path) from None
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 3 and arr.ndim == 3:
        return arr[..., ::-1]  # RGB -> BGR, the order _to_gray expects
    return arr


def _stored_range(ds: Any) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _display_transform(ds: Any, path: Path | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Stored values -> display intensities in [0, 1] (modality LUT, VOI, MONOCHROME1).

    The output range of the VOI step is the one the DICOM standard defines for it, so the
    mapping is the same for every image of a series (no per-image min-max).
    """
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    s_lo, s_hi = _stored_range(ds)

    def modality_range() -> tuple[float, float]:
        if ds.get("ModalityLUTSequence"):
            return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        a, b = s_lo * slope + intercept, s_hi * slope + intercept
        return min(a, b), max(a, b)

    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        lo, hi = 0.0, float(2**bits - 1)

        def voi(values: np.ndarray) -> np.ndarray:
            # a LUT is indexed by integers; modality output is float even for slope 1
            return apply_voi(np.round(values).astype(np.int64), ds)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        lo, hi = modality_range()

        def voi(values: np.ndarray) -> np.ndarray:
            return apply_windowing(values, ds)
    else:
        lo, hi = modality_range()

        def voi(values: np.ndarray) -> np.ndarray:
            return values

    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        lo, hi = float(s_lo), float(s_hi)  # colour: no grayscale LUTs apply

        def pipeline(values: np.ndarray) -> np.ndarray:
            return values.astype(np.float64)
    else:

        def pipeline(values: np.ndarray) -> np.ndarray:
            return voi(apply_modality_lut(values, ds))

    def transform(stored: np.ndarray) -> np.ndarray:
        try:
            out = pipeline(stored)
        except Exception as e:
            raise DataError(f"cannot apply the DICOM grey-scale transform: {e}", path) from None
        img = (np.asarray(out, np.float64) - lo) / max(hi - lo, 1e-12)
        img = np.clip(img, 0.0, 1.0).astype(np.float32)
        return 1.0 - img if photometric == "MONOCHROME1" else img

    return transform


def _inverse_display(ds: Any, target: np.ndarray) -> np.ndarray:
    """Stored values whose display intensity is nearest to ``target`` (monotone transform)."""
    s_lo, s_hi = _stored_range(ds)
    domain = np.arange(s_lo, s_hi + 1, dtype=np.int64)
    curve = _display_transform(ds)(domain.astype(np.int32)).astype(np.float64)
    if curve[-1] < curve[0]:  # MONOCHROME1 or a negative slope: make it increasing
        curve, domain = curve[::-1], domain[::-1]
    # keep the first stored value of every plateau so np.interp sees a strictly rising curve
    keep = np.concatenate([[True], np.diff(curve) > 0])
    values = np.interp(target.astype(np.float64), curve[keep], domain[keep].astype(np.float64))
    return np.round(values).astype(np.int64)


def _write_dicom(path: Path, image: np.ndarray, like: LoadedImage | None, bit_depth: int | None) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.pixels import set_pixel_data
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    if like is not None and like.dicom is not None:
        ds = copy.deepcopy(like.dicom)  # the source dataset stays intact
        if not hasattr(ds, "file_meta"):
            ds.file_meta = FileMetaDataset()
        s_lo, s_hi = _stored_range(ds)
        old = _stored_pixels(like.dicom, like.path or path)
        if old.ndim != 2:
            raise DataError("cannot write back into a colour DICOM; write PNG instead", path)
        if old.shape == image.shape:
            # only changed pixels go through the inverse: the rest keep their exact values
            changed = np.abs(image - like.image) > 0.25 / (2 ** min(int(like.bit_depth), 16))
            new = old.astype(np.int64)
            new[changed] = _inverse_display(ds, image[changed])
        else:
            new = _inverse_display(ds, image)
        bits = int(ds.get("BitsStored", 16))
        dtype = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16}[
            (8 if int(ds.get("BitsAllocated", 16)) <= 8 else 16, int(ds.get("PixelRepresentation", 0)))
        ]
        new = np.clip(new, s_lo, s_hi).astype(dtype)
        set_pixel_data(ds, new, str(ds.PhotometricInterpretation), bits, generate_instance_uid=False)
    else:
        bits = bit_depth or 16
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.Modality = "OT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        stored = np.round(np.clip(image, 0, 1) * (2**bits - 1))
        set_pixel_data(ds, stored.astype(np.uint8 if bits <= 8 else np.uint16), "MONOCHROME2", bits)
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    if "MediaStorageSOPClassUID" not in ds.file_meta and "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def write_image(
    path: str | Path,
    image: np.ndarray,
    like: LoadedImage | None = None,
    bit_depth: int | None = None,
    jpeg_quality: int = 95,
) -> np.ndarray | None:
    """Write a float (H, W) image in [0, 1] atomically as PNG, JPEG or DICOM.

    Parameters
    ----------
    path : target; the format comes from its suffix (.png, .jpg/.jpeg, .dcm/.dicom), or
        from ``like`` when the suffix is none of these
    image : float array (H, W), values outside [0, 1] are clipped
    like : the source image; PNG keeps its bit depth, DICOM keeps all its tags (new SOP
        Instance UID) and its stored-value mapping
    bit_depth : 8 or 16 for PNG (default: ``like``'s depth, else 8); bits for a new DICOM
    jpeg_quality : JPEG quality 0-100 (JPEG is lossy and 8-bit only)

    Returns
    -------
    numpy.ndarray or None
        For PNG (lossless) the image exactly as :func:`read_image` will decode it, which
        spares a read-back; None for JPEG and DICOM (read the file back).
    """
    path = Path(path)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise DataError(f"expected a (H, W) grayscale image, got shape {image.shape}", path)
    if not np.isfinite(image).all():
        raise DataError("image contains NaN or infinite values", path)
    image = np.clip(image, 0.0, 1.0)
    fmt = IMAGE_SUFFIXES.get(path.suffix.lower()) or (like.fmt if like is not None else None)
    if fmt is None:
        raise DataError(f"unknown image suffix {path.suffix!r}; use .png, .jpg or .dcm", path)
    if fmt == "dicom":
        _write_dicom(path, image, like, bit_depth)
        return None
    if fmt == "png":
        depth = bit_depth or (like.bit_depth if like is not None and like.fmt == "png" else None) or 8
        if like is not None and like.fmt == "dicom" and bit_depth is None:
            depth = 16 if like.bit_depth > 8 else 8
        if depth not in (8, 16):
            raise DataError(f"PNG bit depth must be 8 or 16, got {depth}", path)
        dtype = np.uint8 if depth == 8 else np.uint16
        arr = np.round(image * (2**depth - 1)).astype(dtype)
        ok, buf = cv2.imencode(".png", arr)
    else:
        arr = np.round(image * 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    if not ok:
        raise DataError(f"could not encode the image as {fmt.upper()}", path)
    atomic_write_bytes(path, buf.tobytes())
    return _from_samples(arr, depth) if fmt == "png" else None
