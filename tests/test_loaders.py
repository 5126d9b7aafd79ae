"""Loaders and image I/O on files the tests write themselves: PNG, JPEG, DICOM, folders,
CheXpert CSVs, open_dataset, inspect and the `xmark data` CLI."""

import csv
import json

import cv2
import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixels import set_pixel_data
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

from xmark_core.cli import main as xmark
from xmark_core.data.chexpert import OBSERVATIONS, CheXpertDataset
from xmark_core.data.folder import FolderDataset
from xmark_core.data.inspection import inspect_dataset
from xmark_core.data.io import read_image, write_image
from xmark_core.data.open import open_dataset, parse_phantom_spec
from xmark_core.data.phantom import FINDINGS, PhantomDataset, make_phantom


@pytest.fixture(scope="module")
def picture():
    return make_phantom(0, 1, 96).image


def make_dicom(path, image, photometric="MONOCHROME2", bits=12, slope=2.0, intercept=-100.0,
               window=True, voi_lut=False):
    """A DX DICOM whose stored values encode ``image`` (bright = dense) under its transforms."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Test^Phantom", "P001", "DX"
    top = 2**bits - 1
    raw = np.round(image * (top - 200) + 100).astype(np.int64)  # window-free margin
    if photometric == "MONOCHROME1":
        raw = top - raw
    set_pixel_data(ds, raw.astype(np.uint16 if bits > 8 else np.uint8), photometric, bits)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    lo, hi = 100 * slope + intercept, (top - 100) * slope + intercept
    if window:  # a window exactly spanning the used range: display = image
        ds.WindowCenter, ds.WindowWidth = (lo + hi) / 2 + 0.5, hi - lo + 1
    if voi_lut:
        from pydicom.dataset import Dataset

        item = Dataset()
        item.LUTDescriptor = [top + 1, 0, 16]
        item.LUTData = np.round(np.linspace(0, 65535, top + 1)).astype("<u2").tobytes()
        ds.VOILUTSequence = [item]
    ds.save_as(path, enforce_file_format=True)
    return path


# --- PNG / JPEG -----------------------------------------------------------------------


def test_png_16bit_round_trip_keeps_depth(tmp_path, picture):
    write_image(tmp_path / "a.png", picture, bit_depth=16)
    a = read_image(tmp_path / "a.png")
    assert a.fmt == "png" and a.bit_depth == 16
    assert np.abs(a.image - picture).max() <= 0.5 / 65535 + 1e-7
    raw = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    # writing "like" a 16-bit source keeps 16 bits without being told
    write_image(tmp_path / "b.png", a.image, like=a)
    assert read_image(tmp_path / "b.png").bit_depth == 16
    assert np.array_equal(read_image(tmp_path / "b.png").image, a.image)


def test_png_8bit_and_jpeg(tmp_path, picture):
    write_image(tmp_path / "a.png", picture)
    a = read_image(tmp_path / "a.png")
    assert a.bit_depth == 8 and np.abs(a.image - picture).max() <= 0.5 / 255 + 1e-7
    write_image(tmp_path / "a.jpg", picture, jpeg_quality=95)
    j = read_image(tmp_path / "a.jpg")
    assert j.fmt == "jpeg" and j.bit_depth == 8
    assert np.abs(j.image - picture).mean() < 0.01
    # format comes from the content: a PNG named .jpg is still read as PNG
    (tmp_path / "png_named.jpg").write_bytes((tmp_path / "a.png").read_bytes())
    assert read_image(tmp_path / "png_named.jpg").fmt == "png"


@pytest.mark.parametrize("depth", [8, 16])
def test_png_write_returns_exactly_what_a_read_gives(tmp_path, picture, depth):
    # the release writer trusts this instead of reading each marked PNG back
    noisy = np.clip(picture + np.random.default_rng(0).normal(0, 0.02, picture.shape), -0.1, 1.1)
    got = write_image(tmp_path / "a.png", noisy, bit_depth=depth)
    back = read_image(tmp_path / "a.png").image
    assert got.dtype == back.dtype == np.float32 and np.array_equal(got, back)
    assert write_image(tmp_path / "a.jpg", picture) is None  # lossy: the caller reads back
    assert write_image(tmp_path / "a.dcm", picture, bit_depth=12) is None


# --- DICOM ----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [12, 16])
def test_dicom_monochrome1_and_2_give_the_same_picture(tmp_path, picture, bits):
    m2 = read_image(make_dicom(tmp_path / "m2.dcm", picture, "MONOCHROME2", bits=bits))
    m1 = read_image(make_dicom(tmp_path / "m1.dcm", picture, "MONOCHROME1", bits=bits))
    assert m2.fmt == "dicom" and m2.bit_depth == bits
    assert np.abs(m1.image - m2.image).max() < 2e-3
    # the window spans the stored range, so the display is the picture, linearly
    assert np.corrcoef(m2.image.ravel(), picture.ravel())[0, 1] > 0.9999
    assert np.abs(m2.image - picture).max() < 0.01


def test_dicom_rescale_window_and_voi_lut(tmp_path, picture):
    plain = read_image(make_dicom(tmp_path / "p.dcm", picture, window=False, slope=1.0, intercept=0.0))
    # no window: the full stored range maps to [0, 1]
    assert 0.01 < plain.image.min() and plain.image.max() < 0.99
    narrow = make_dicom(tmp_path / "n.dcm", picture)
    import pydicom

    ds = pydicom.dcmread(narrow)
    ds.WindowWidth = float(ds.WindowWidth) / 4  # a narrow window clips both ends
    ds.save_as(narrow)
    clipped = read_image(narrow).image
    assert (clipped == 0).mean() > 0.05 and (clipped == 1).mean() > 0.05
    lut = read_image(make_dicom(tmp_path / "l.dcm", picture, window=False, voi_lut=True, slope=1.0, intercept=0.0))
    assert np.corrcoef(lut.image.ravel(), picture.ravel())[0, 1] > 0.999


def test_dicom_write_keeps_tags_new_uid_and_untouched_pixels(tmp_path, picture):
    src = read_image(make_dicom(tmp_path / "m1.dcm", picture, "MONOCHROME1"))
    marked = src.image.copy()
    marked[20:40, 30:60] = np.clip(marked[20:40, 30:60] + 0.02, 0, 1)
    write_image(tmp_path / "out.dcm", marked, like=src)
    out = read_image(tmp_path / "out.dcm")
    assert out.dicom.SOPInstanceUID != src.dicom.SOPInstanceUID
    assert out.dicom.file_meta.MediaStorageSOPInstanceUID == out.dicom.SOPInstanceUID
    for tag in ("PatientName", "PatientID", "Modality", "PhotometricInterpretation", "BitsStored", "RescaleSlope"):
        assert out.dicom.get(tag) == src.dicom.get(tag), tag
    assert np.abs(out.image - marked).max() < 1e-3
    untouched = np.ones_like(marked, bool)
    untouched[20:40, 30:60] = False
    assert np.array_equal(out.dicom.pixel_array[untouched], src.dicom.pixel_array[untouched])
    # the source dataset object was not modified
    assert src.dicom.SOPInstanceUID == read_image(tmp_path / "m1.dcm").dicom.SOPInstanceUID


def test_new_dicom_without_template(tmp_path, picture):
    write_image(tmp_path / "new.dcm", picture, bit_depth=16)
    d = read_image(tmp_path / "new.dcm")
    assert d.bit_depth == 16 and np.abs(d.image - picture).max() < 1e-4


# --- folders, CheXpert, open_dataset ----------------------------------------------------


def test_folder_with_labels_csv_and_classes_txt(tmp_path, picture):
    (tmp_path / "img").mkdir()
    rows = [("img/a.png", "Cardiomegaly"), ("img/b.png", "No Finding"), ("img/c.png", "Cardiomegaly")]
    for p, _ in rows:
        write_image(tmp_path / p, picture)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label"), *rows])
    ds = FolderDataset(tmp_path)
    assert ds.classes == ["Cardiomegaly", "No Finding"]  # sorted without classes.txt
    assert ds.labels().tolist() == [0, 1, 0]
    (tmp_path / "classes.txt").write_text("\n".join(FINDINGS) + "\n")
    ds = FolderDataset(tmp_path)
    assert ds.classes == list(FINDINGS) and ds.labels().tolist() == [1, 0, 1]
    r = ds[0]
    assert r.image_id == "img/a.png" and r.label == 1 and r.image.shape == picture.shape


def test_folder_with_class_subfolders(tmp_path, picture):
    for cls, names in (("normal", ["x.png", "y.jpg"]), ("effusion", ["z.png"])):
        for n in names:
            write_image(tmp_path / cls / n, picture)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, FolderDataset)
    assert ds.classes == ["effusion", "normal"]
    assert sorted(ds.image_id(i) for i in range(len(ds))) == ["effusion/z.png", "normal/x.png", "normal/y.jpg"]
    assert sorted(ds.labels().tolist()) == [0, 1, 1]


CHEX_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]


def write_chexpert(root, rows, name="train.csv", release="CheXpert-v1.0-small", picture=None):
    """rows: (patient, view, frontal, {observation: value})"""
    lines = []
    for patient, view, frontal, obs in rows:
        rel = f"{release}/train/patient{patient:05d}/study1/view{view}_{'frontal' if frontal else 'lateral'}.jpg"
        if picture is not None:
            write_image(root / rel, picture)
        values = [obs.get(o, "") for o in OBSERVATIONS]
        lines.append([rel, "Female", "68", "Frontal" if frontal else "Lateral", "PA" if frontal else "", *values])
    with open(root / release / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CHEX_HEADER)
        w.writerows(lines)
    return root / release / name


CHEX_ROWS = [
    (1, 1, True, {"No Finding": "1.0"}),
    (1, 2, False, {"No Finding": "1.0"}),  # lateral
    (2, 1, True, {"Cardiomegaly": "1.0", "Pleural Effusion": "1.0"}),  # two positives
    (3, 1, True, {"Pleural Effusion": "-1.0", "Consolidation": "1.0"}),  # uncertain effusion
    (4, 1, True, {"Consolidation": "0.0", "Edema": "1.0"}),  # no chosen positive
    (5, 1, True, {"Pleural Effusion": "1.0", "Cardiomegaly": "0.0"}),
    (6, 1, True, {"Cardiomegaly": "-1.0"}),  # only uncertain
]


def test_chexpert_layout_policies_and_rules(tmp_path, picture):
    (tmp_path / "CheXpert-v1.0-small").mkdir()
    csv_path = write_chexpert(tmp_path, CHEX_ROWS, picture=picture)
    # root = the folder above the release, as downloaded
    ds = CheXpertDataset(tmp_path, csv=csv_path)
    assert ds.classes == list(FINDINGS)
    names = [ds.classes[i] for i in ds.labels()]
    assert names == ["No Finding", "Cardiomegaly", "Pleural Effusion"]
    assert ds.summary["dropped"] == {
        "lateral": 1, "uncertain": 2, "no_positive": 1, "several_positive": 0, "missing_file": 0
    }
    r = ds[0]
    assert r.image_id == "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"
    assert r.meta["Sex"] == "Female" and r.meta["AP/PA"] == "PA" and r.image.shape == picture.shape
    # root = the release folder itself (paths still start with the release name)
    ds2 = CheXpertDataset(tmp_path / "CheXpert-v1.0-small")
    assert ds2.labels().tolist() == ds.labels().tolist() and ds2[0].image.shape == picture.shape
    ones = CheXpertDataset(tmp_path, csv=csv_path, uncertainty="ones")
    assert [ones.classes[i] for i in ones.labels()] == [
        "No Finding", "Cardiomegaly", "Pleural Effusion", "Pleural Effusion", "Cardiomegaly"
    ]
    zeros = CheXpertDataset(tmp_path, csv=csv_path, uncertainty="zeros", single_label="exclusive")
    assert [zeros.classes[i] for i in zeros.labels()] == ["No Finding", "Consolidation", "Pleural Effusion"]
    assert zeros.summary["dropped"]["several_positive"] == 1 and zeros.summary["dropped"]["no_positive"] == 2
    both = CheXpertDataset(tmp_path, csv=csv_path, frontal_only=False, observations=["No Finding", "Edema"])
    assert both.labels().tolist() == [0, 0, 1]
    assert isinstance(open_dataset(csv_path), CheXpertDataset)
    assert len(open_dataset(tmp_path / "CheXpert-v1.0-small")) == 3


def test_chexpert_missing_images_are_counted(tmp_path, picture):
    (tmp_path / "CheXpert-v1.0-small").mkdir()
    csv_path = write_chexpert(tmp_path, CHEX_ROWS[:1], picture=picture)
    with open(csv_path, "a", newline="") as f:
        csv.writer(f).writerow(["CheXpert-v1.0-small/train/patient09999/study1/view1_frontal.jpg", "Male", "50",
                                "Frontal", "AP", *(["1.0"] + [""] * 13)])
    with pytest.warns(UserWarning, match="missing"):
        ds = CheXpertDataset(tmp_path, csv=csv_path)
    assert len(ds) == 1 and ds.summary["dropped"]["missing_file"] == 1


def test_open_dataset_phantom_spec():
    assert parse_phantom_spec("phantom") == {"n": 400, "size": 256, "seed": 0}
    assert parse_phantom_spec("phantom:20:64:3") == {"n": 20, "size": 64, "seed": 3}
    ds = open_dataset("phantom:8:64")
    assert isinstance(ds, PhantomDataset) and len(ds) == 8 and ds.size == 64


# --- CLI --------------------------------------------------------------------------------


def test_cli_synth_reads_back_with_folder_dataset(tmp_path, capsys):
    out = tmp_path / "synth"
    assert xmark(["data", "synth", "--out", str(out), "--n", "8", "--size", "64", "--seed", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 8 and summary["counts"] == {f: 2 for f in FINDINGS}
    ds = open_dataset(out)
    assert isinstance(ds, FolderDataset) and ds.classes == list(FINDINGS)
    ph = PhantomDataset(8, size=64, seed=2)
    assert ds.labels().tolist() == ph.labels().tolist()
    for i in (0, 5):
        assert np.abs(ds[i].image - ph[i].image).max() <= 0.5 / 255 + 1e-6
    # refuses to write into a non-empty folder without --overwrite, with a clear message
    assert xmark(["data", "synth", "--out", str(out), "--n", "2", "--size", "64"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_inspect_json(tmp_path, capsys):
    out = tmp_path / "s"
    xmark(["data", "synth", "--out", str(out), "--n", "4", "--size", "64", "--bit-depth", "16"])
    capsys.readouterr()
    assert xmark(["data", "inspect", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["kind"] == "folder" and rep["n_images"] == 4 and rep["ok"]
    assert rep["counts"] == {f: 1 for f in FINDINGS}
    assert rep["sizes"] == {"64x64": 4} and rep["bit_depths"] == {"16": 4} and rep["unreadable"] == []
    rep = inspect_dataset("phantom:4:32")
    assert rep.kind == "phantom" and rep.sizes == {"32x32": 4}


def test_cli_figure(tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert xmark(["data", "figure", "--out", str(out), "--size", "64"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] >= 4 * 64 and img.shape[0] > 2 * 64
