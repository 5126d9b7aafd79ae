"""Bad input gets a DataError naming the file and the problem (or a report from inspect),
never a bare traceback from inside a library."""

import csv
import json
import warnings

import cv2
import numpy as np
import pydicom
import pytest

from xmark_core.cli import main as xmark
from xmark_core.data.chexpert import OBSERVATIONS, CheXpertDataset
from xmark_core.data.folder import FolderDataset
from xmark_core.data.inspection import inspect_dataset
from xmark_core.data.io import ImageWarning, read_image, write_image
from xmark_core.data.open import open_dataset
from xmark_core.errors import DataError


@pytest.fixture(scope="module")
def gray():
    rng = np.random.default_rng(0)
    return (rng.random((40, 50)) * 255).astype(np.uint8)


def png_bytes(arr) -> bytes:
    return cv2.imencode(".png", arr)[1].tobytes()


def expect_data_error(path, *words):
    with pytest.raises(DataError) as e:
        read_image(path)
    msg = str(e.value)
    assert str(path) in msg and e.value.path == str(path)
    for w in words:
        assert w in msg.lower(), msg
    return msg


def test_missing_empty_and_garbage_files(tmp_path):
    expect_data_error(tmp_path / "nope.png", "not found")
    (tmp_path / "empty.png").write_bytes(b"")
    expect_data_error(tmp_path / "empty.png", "empty")
    (tmp_path / "text.png").write_bytes(b"hello, this is not an image at all")
    expect_data_error(tmp_path / "text.png", "unrecognised")
    expect_data_error(tmp_path, "folder")


def test_truncated_and_corrupt_png_jpeg(tmp_path, gray):
    data = png_bytes(gray)
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    expect_data_error(tmp_path / "trunc.png", "truncated")
    jpg = cv2.imencode(".jpg", gray)[1].tobytes()
    (tmp_path / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    expect_data_error(tmp_path / "trunc.jpg", "truncated")
    # complete length, damaged body: the decoder refuses it
    bad = bytearray(data)
    bad[40:-20] = bytes(len(bad) - 60)
    (tmp_path / "corrupt.png").write_bytes(bytes(bad))
    expect_data_error(tmp_path / "corrupt.png", "corrupt")


def test_colour_policy(tmp_path, gray):
    # grayscale saved as RGB: read silently
    cv2.imwrite(str(tmp_path / "rgb_gray.png"), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = read_image(tmp_path / "rgb_gray.png")
    assert np.allclose(same.image, gray / 255.0, atol=1e-6) and same.warnings == []
    # real colour (e.g. a burnt-in red annotation): converted, with a warning naming the file
    colour = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    colour[5:10, 5:30] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / "annotated.png"), colour)
    with pytest.warns(ImageWarning, match="annotated.png"):
        conv = read_image(tmp_path / "annotated.png")
    assert conv.image.shape == gray.shape and len(conv.warnings) == 1
    # opaque RGBA is fine; transparency is refused
    rgba = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
    cv2.imwrite(str(tmp_path / "opaque.png"), rgba)
    assert read_image(tmp_path / "opaque.png").image.shape == gray.shape
    rgba[..., 3] = 128
    cv2.imwrite(str(tmp_path / "transparent.png"), rgba)
    expect_data_error(tmp_path / "transparent.png", "transparency")


def _dicom(tmp_path, name="a.dcm"):
    write_image(tmp_path / name, np.linspace(0, 1, 64 * 64).reshape(64, 64), bit_depth=12)
    return tmp_path / name


def test_dicom_without_pixel_data(tmp_path):
    path = _dicom(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    expect_data_error(path, "no pixel data")


def test_dicom_truncated_pixel_data_and_header(tmp_path):
    path = _dicom(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3000])
    expect_data_error(path, "pixel data")
    (tmp_path / "head.dcm").write_bytes(data[:200])
    expect_data_error(tmp_path / "head.dcm")


def test_empty_folder_and_loose_images(tmp_path, gray):
    with pytest.raises(DataError, match="no images found"):
        FolderDataset(tmp_path)
    (tmp_path / "x.png").write_bytes(png_bytes(gray))
    with pytest.raises(DataError, match="no labels.csv and no class subfolders"):
        FolderDataset(tmp_path)
    with pytest.raises(DataError, match="not found"):
        open_dataset(tmp_path / "missing")


def test_labels_csv_problems(tmp_path, gray):
    (tmp_path / "x.png").write_bytes(png_bytes(gray))
    (tmp_path / "labels.csv").write_text("file,diagnosis\nx.png,No Finding\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['path', 'label'\]") as e:
        FolderDataset(tmp_path)
    assert "labels.csv" in str(e.value)
    (tmp_path / "labels.csv").write_text("path,label\nx.png,Pneumothorax\n")
    (tmp_path / "classes.txt").write_text("No Finding\nCardiomegaly\n")
    with pytest.raises(DataError, match="unknown label.*Pneumothorax"):
        FolderDataset(tmp_path)
    (tmp_path / "labels.csv").write_text("path,label\nx.png,No Finding\ngone.png,No Finding\n")
    with pytest.raises(DataError, match="line 3.*gone.png"):
        FolderDataset(tmp_path)


def _chexpert(tmp_path, header, row):
    (tmp_path / "train.csv").write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    return tmp_path


def test_chexpert_csv_problems(tmp_path):
    _chexpert(tmp_path, ["Path", "Sex"], ["a.jpg", "Male"])
    with pytest.raises(DataError, match="missing column") as e:
        CheXpertDataset(tmp_path)
    assert "train.csv" in str(e.value) and "Frontal/Lateral" in str(e.value)
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]
    _chexpert(tmp_path, header, ["a.jpg", "Male", "50", "Frontal", "PA", "2"] + [""] * 13)
    with pytest.raises(DataError, match=r"line 2, column 'No Finding': value '2'"):
        CheXpertDataset(tmp_path)
    with pytest.raises(DataError, match="unknown observation"):
        CheXpertDataset(tmp_path, observations=["Covid"])
    with pytest.raises(DataError, match="uncertainty"):
        CheXpertDataset(tmp_path, uncertainty="maybe")
    _chexpert(tmp_path, header, ["a.jpg", "Male", "50", "Frontal", "PA", "1"] + [""] * 13)
    with pytest.raises(DataError, match="none of the 1 selected images exist"):
        CheXpertDataset(tmp_path)


def test_bad_phantom_spec_and_single_file():
    with pytest.raises(DataError, match="phantom"):
        open_dataset("phantom:many")
    with pytest.raises(DataError, match="phantom"):
        open_dataset("phantom:0")


def test_inspect_lists_every_unreadable_file(tmp_path, gray):
    folder = tmp_path / "ds"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        (folder / cls / "ok.png").write_bytes(png_bytes(gray))
    data = png_bytes(gray)
    (folder / "a" / "trunc.png").write_bytes(data[:100])
    (folder / "b" / "empty.jpg").write_bytes(b"")
    rep = inspect_dataset(folder)
    assert not rep.ok and rep.n_images == 4 and rep.counts == {"a": 2, "b": 2}
    bad = {b["path"].split("/")[-1]: b["reason"] for b in rep.unreadable}
    assert set(bad) == {"trunc.png", "empty.jpg"}
    assert "truncated" in bad["trunc.png"] and "empty" in bad["empty.jpg"]
    assert rep.sizes == {"40x50": 2}
    # a folder that cannot be opened as a dataset is still scanned file by file
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "x.png").write_bytes(data[:50])
    rep = inspect_dataset(tmp_path / "loose")
    assert not rep.ok and "no labels.csv" in rep.error and len(rep.unreadable) == 1


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert xmark(["data", "inspect", str(tmp_path / "missing"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "not found" in out["error"]
    (tmp_path / "labels.csv").write_text("path\n")
    assert xmark(["data", "synth", "--out", str(tmp_path), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xmark: error:") and "Traceback" not in err


def test_write_rejects_bad_arrays(tmp_path):
    with pytest.raises(DataError, match="grayscale"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3)))
    with pytest.raises(DataError, match="NaN"):
        write_image(tmp_path / "a.png", np.full((4, 4), np.nan))
    with pytest.raises(DataError, match="suffix"):
        write_image(tmp_path / "a.tiff", np.zeros((4, 4)))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_unreadable_csv_encoding(tmp_path):
    (tmp_path / "labels.csv").write_bytes("path,label\nx.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        FolderDataset(tmp_path)


def test_chexpert_csv_with_rows_cut_short(tmp_path):
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(["a.jpg", "Male", "50", "Frontal"])  # missing trailing cells = blank
    ds = CheXpertDataset(tmp_path, check_files=False)
    assert len(ds) == 0 and ds.summary["dropped"]["no_positive"] == 1


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    """A release image or checkpoint written crash-safely must be as readable as one written
    with open(): the temporary file's private 0600 must not leak into the result."""
    import os

    from xmark_core.atomic import atomic_write_text

    atomic_write_text(tmp_path / "a.json", "{}")
    write_image(tmp_path / "b.png", np.zeros((4, 4)))
    with open(tmp_path / "c.txt", "w") as f:
        f.write("x")
    plain = os.stat(tmp_path / "c.txt").st_mode & 0o777
    assert plain & 0o044  # the test's umask lets others read
    for name in ("a.json", "b.png"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == plain, name


def test_cli_help_shows_an_owners_session_that_parses(capsys):
    # The top-level help is the user's first page: its example commands must be real ones.
    from xmark_core.cli import EPILOG, build_parser

    with pytest.raises(SystemExit) as exit_:
        xmark(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert "an owner's session" in shown and "registers its sub-parsers" not in shown
    commands = " ".join(line.strip().rstrip("\\") for line in EPILOG.splitlines()
                        if line.startswith("  ")).split("xmark ")[1:]
    assert [c.split()[0] for c in commands] == ["train-classifier", "train-generator", "embed", "verify"]
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command.replace("|http://HOST:PORT", "").split())
        assert args.command == command.split()[0] and callable(args.func)


def test_embed_threads_must_be_a_count(capsys):
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit) as exit_:
            xmark(["embed", "--threads", bad])
        assert exit_.value.code == 2
        assert "--threads takes a count >= 1, or 0 for torch's default" in capsys.readouterr().err
