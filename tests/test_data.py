"""Tests for keras_unets.data: reading, validating and splitting ISBI 2012."""
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tifffile

from keras_unets import data as D
from keras_unets.data import stacks
from keras_unets.data import (
    PIXEL_SHA256,
    DataFormatError,
    DataNotFoundError,
    check_labels,
    format_slices,
    get_split,
    load_isbi2012,
    load_split,
    parse_slices,
    pixel_sha256,
    read_stack,
    resolve_data_dir,
    write_stack,
)


# ---------------------------------------------------------------------------
# helpers: tiny synthetic data directories
# ---------------------------------------------------------------------------


def _volume(n=4, h=8, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


def _labels(n=4, h=8, w=6, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.random((n, h, w)) > 0.3).astype(np.uint8) * 255


def _make_tiff_dir(root, images, labels, test):
    root.mkdir(parents=True, exist_ok=True)
    for name, array in (
        ("train-volume.tif", images),
        ("train-labels.tif", labels),
        ("test-volume.tif", test),
    ):
        tifffile.imwrite(root / name, array, photometric="minisblack")
    return root


# ---------------------------------------------------------------------------
# the real data (ISBI2012_DIR)
# ---------------------------------------------------------------------------


@pytest.mark.real_isbi("checks their pixel hashes and membrane fraction")
def test_load_real_tiff_data_matches_published_pixel_hashes(isbi_dir):
    data = load_isbi2012(isbi_dir, expected_shape=D.ISBI2012_SHAPE)
    assert data.source == f"{isbi_dir} [tiff]"
    for key in ("train_images", "train_labels", "test_images"):
        array = getattr(data, key)
        assert array.shape == (30, 512, 512)
        assert array.dtype == np.uint8
        # Hashes from /work/shared/data/isbi2012/README.md.
        assert pixel_sha256(array) == PIXEL_SHA256[key], key
    assert set(np.unique(data.train_labels).tolist()) == {0, 255}
    # README: membrane pixels are 21.96 % of all training labels.
    membrane = np.count_nonzero(data.train_labels == 0) / data.train_labels.size
    assert membrane == pytest.approx(0.2196, abs=5e-5)


# ---------------------------------------------------------------------------
# an ISBI-layout folder (synthetic slices)
# ---------------------------------------------------------------------------


def test_png_layout_gives_the_same_arrays_in_numeric_order(synthetic_isbi_dir, tmp_path):
    # A directory with only the PNG folders (symlinked, not copied).
    (tmp_path / "png").symlink_to(synthetic_isbi_dir / "png", target_is_directory=True)
    assert D.detect_layout(tmp_path) == "png"
    png = load_isbi2012(tmp_path)
    assert png.source == f"{tmp_path} [png]"
    tiff = load_isbi2012(synthetic_isbi_dir)
    assert tiff.source == f"{synthetic_isbi_dir} [tiff]"
    for key in ("train_images", "train_labels", "test_images"):
        np.testing.assert_array_equal(getattr(png, key), getattr(tiff, key))
    # Slice 10 must be the file 10.png (lexical order would put it at index 2).
    ten = cv2.imread(str(synthetic_isbi_dir / "png/train/image/10.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(png.train_images[10], ten)
    assert not np.array_equal(png.train_images[2], ten)


def test_load_split_report_takes_slices_25_to_29_as_test(synthetic_isbi_dir):
    data = load_isbi2012(synthetic_isbi_dir)
    _, h, w = data.train_images.shape
    split = load_split(synthetic_isbi_dir)
    assert split.split == get_split("report")
    assert split.x_train.shape == split.y_train.shape == (25, h, w)
    assert split.x_test.shape == split.y_test.shape == (5, h, w)
    np.testing.assert_array_equal(split.x_test, data.train_images[25:30])
    np.testing.assert_array_equal(split.y_test, data.train_labels[25:30])
    np.testing.assert_array_equal(split.x_train, data.train_images[:25])


def test_load_split_kfold_of_the_30_slices(synthetic_isbi_dir):
    data = load_isbi2012(synthetic_isbi_dir)
    split = load_split(synthetic_isbi_dir, "kfold", n_folds=5, fold=2)
    assert split.split.test == (12, 13, 14, 15, 16, 17)
    np.testing.assert_array_equal(split.y_test, data.train_labels[12:18])
    assert split.x_train.shape[0] == 24


# ---------------------------------------------------------------------------
# read_stack / write_stack
# ---------------------------------------------------------------------------


def test_read_stack_folder_uses_numeric_order_and_ignores_other_files(tmp_path):
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((3, 5), i, np.uint8))
    cv2.imwrite(str(tmp_path / "0_predict.png"), np.full((3, 5), 99, np.uint8))
    (tmp_path / "notes.txt").write_text("not a slice")
    stack = read_stack(tmp_path)
    assert stack.shape == (12, 3, 5) and stack.dtype == np.uint8
    assert stack[:, 0, 0].tolist() == list(range(12))
    assert D.stack_indices(tmp_path) == tuple(range(12))


@pytest.mark.parametrize("name", ["vol.tif", "vol.tiff", "folder", "folder/deeper"])
def test_write_then_read_stack_round_trip(tmp_path, name):
    array = _volume(5, 7, 9)
    out = write_stack(tmp_path / name, array)
    np.testing.assert_array_equal(read_stack(out), array)
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_write_stack_single_png_and_2d_input(tmp_path):
    image = _volume(1, 4, 4)[0]
    write_stack(tmp_path / "one.png", image)
    np.testing.assert_array_equal(read_stack(tmp_path / "one.png"), image[None])
    with pytest.raises(DataFormatError, match="holds one slice"):
        write_stack(tmp_path / "two.png", _volume(2, 4, 4))


def test_write_stack_folder_removes_stale_slices(tmp_path):
    write_stack(tmp_path / "s", _volume(6, 4, 4))
    cv2.imwrite(str(tmp_path / "s" / "1.tif"), np.zeros((4, 4), np.uint8))
    (tmp_path / "s" / "notes.txt").write_text("kept")
    smaller = _volume(3, 4, 4, seed=5)
    write_stack(tmp_path / "s", smaller)
    np.testing.assert_array_equal(read_stack(tmp_path / "s"), smaller)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "0.png", "1.png", "2.png", "notes.txt"
    ]


def test_write_stack_rejects_float_and_bad_shapes(tmp_path):
    with pytest.raises(DataFormatError, match="dtype=float32"):
        write_stack(tmp_path / "p.tif", np.zeros((2, 4, 4), np.float32))
    with pytest.raises(DataFormatError, match=r"shape=\(2, 4, 4, 3\)"):
        write_stack(tmp_path / "p.tif", np.zeros((2, 4, 4, 3), np.uint8))
    assert not (tmp_path / "p.tif").exists()


def test_write_stack_tiff_is_atomic_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "v.tif"
    original = _volume(2, 4, 4)
    write_stack(target, original)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(stacks.tifffile, "imwrite", boom)
    with pytest.raises(OSError, match="disk full"):
        write_stack(target, _volume(2, 4, 4, seed=9))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_stack(target), original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]


def test_read_stack_single_page_tiff_and_rgb_gray_png(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert read_stack(tmp_path / "a.tif").shape == (1, 3, 4)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.png"), np.dstack([gray] * 3))
    np.testing.assert_array_equal(read_stack(tmp_path / "g.png")[0], gray)


def test_read_stack_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataFormatError, match="corrupt.tif"):
        read_stack(bad)
    folder = tmp_path / "slices"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.zeros((4, 4), np.uint8))
    png_bytes = cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes()
    (folder / "1.png").write_bytes(png_bytes[: len(png_bytes) // 2])  # truncated
    with pytest.raises(DataFormatError, match=r"1\.png.*cannot decode"):
        read_stack(folder)
    (folder / "1.png").unlink()
    cv2.imwrite(str(folder / "1.png"), np.zeros((5, 4), np.uint8))
    with pytest.raises(DataFormatError, match=r"1\.png: slice shape \(5, 4\)"):
        read_stack(folder)
    cv2.imwrite(str(tmp_path / "col.png"), np.dstack([np.zeros((2, 2), np.uint8),
                                                      np.ones((2, 2), np.uint8) * 9,
                                                      np.zeros((2, 2), np.uint8)]))
    with pytest.raises(DataFormatError, match="col.png: expected a grayscale"):
        read_stack(tmp_path / "col.png")
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((2, 2), np.uint16))
    with pytest.raises(DataFormatError, match="deep.png.*dtype=uint16"):
        read_stack(tmp_path / "deep.png")
    with pytest.raises(DataNotFoundError, match="nothere.tif"):
        read_stack(tmp_path / "nothere.tif")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="no slice files"):
        read_stack(empty)


def test_read_stack_duplicate_slice_numbers(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((2, 2), np.uint8))
    cv2.imwrite(str(tmp_path / "01.png"), np.zeros((2, 2), np.uint8))
    with pytest.raises(DataFormatError, match="Two files for slice 1"):
        read_stack(tmp_path)


# ---------------------------------------------------------------------------
# directory resolution
# ---------------------------------------------------------------------------


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    a = _make_tiff_dir(tmp_path / "a", _volume(), _labels(), _volume())
    b = _make_tiff_dir(tmp_path / "b", _volume(), _labels(), _volume())
    home = tmp_path / "kh"
    _make_tiff_dir(home / "datasets" / "isbi2012", _volume(), _labels(), _volume())
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv("ISBI2012_DIR", raising=False)
    assert D.default_data_dir() == home / "datasets" / "isbi2012"
    assert resolve_data_dir() == home / "datasets" / "isbi2012"
    monkeypatch.setenv("ISBI2012_DIR", str(b))
    assert resolve_data_dir() == b
    assert resolve_data_dir(a) == a
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.default_data_dir() == tmp_path / "home" / ".keras" / "datasets" / "isbi2012"


def test_missing_directory_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.delenv("ISBI2012_DIR", raising=False)
    with pytest.raises(DataNotFoundError) as info:
        resolve_data_dir()
    msg = str(info.value)
    where = tmp_path / "kh" / "datasets" / "isbi2012"
    for name in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        assert str(where / name) in msg
    assert f"keras-unets data download --dest {where}" in msg
    assert "ISBI2012_DIR" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_missing_data_message_names_the_real_cli_option(tmp_path):
    from keras_unets.cli.reproduce import reproduce
    from keras_unets.cli.train import train_cmd

    with pytest.raises(DataNotFoundError) as info:
        resolve_data_dir(tmp_path / "nowhere")
    msg = str(info.value)
    assert "pass data_dir=... (CLI: keras-unets train/reproduce --data DIR)" in msg
    assert "--data-dir" not in msg
    for command in (train_cmd, reproduce):
        options = {o for p in command.params for o in p.opts}
        assert "--data" in options and "--data-dir" not in options, command.name


def test_truncated_tiff_error_without_a_stray_log_line(tmp_path, caplog, capfd):
    write_stack(tmp_path / "full.tif", _volume(3, 64, 64))
    whole = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(whole[: len(whole) // 2])
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG), pytest.raises(DataFormatError) as info:
        read_stack(tmp_path / "cut.tif")
    # tifffile logs "<tifffile.TiffPages @8> invalid page offset ..." without the filter
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tifffile")] == []
    assert capfd.readouterr() == ("", "")
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'cut.tif'}: cannot read this file as a TIFF")
    assert "; tifffile: " in msg and "invalid page offset" in msg
    assert msg.endswith("is it truncated or not a TIFF?")
    # the filter is scoped to the read
    assert not logging.getLogger("tifffile").filters


def test_incomplete_directory_lists_missing_files(tmp_path):
    write_stack(tmp_path / "train-volume.tif", _volume())
    with pytest.raises(DataNotFoundError, match="missing: train-labels.tif, test-volume.tif"):
        resolve_data_dir(tmp_path)


# ---------------------------------------------------------------------------
# validation of loaded data
# ---------------------------------------------------------------------------


def test_load_tiny_synthetic_data_by_default(tmp_path):
    images, labels, test = _volume(), _labels(), _volume(3, 8, 6, seed=4)
    root = _make_tiff_dir(tmp_path, images, labels, test)
    data = load_isbi2012(root)
    np.testing.assert_array_equal(data.train_images, images)
    np.testing.assert_array_equal(data.train_labels, labels)
    np.testing.assert_array_equal(data.test_images, test)


def test_wrong_shape_names_the_file(tmp_path):
    root = _make_tiff_dir(tmp_path, _volume(), _labels(), _volume())
    with pytest.raises(DataFormatError) as info:
        load_isbi2012(root, expected_shape=D.ISBI2012_SHAPE)
    assert "train-volume.tif" in str(info.value)
    assert "(30, 512, 512)" in str(info.value) and "(4, 8, 6)" in str(info.value)


def test_mismatched_image_and_label_counts(tmp_path):
    root = _make_tiff_dir(tmp_path, _volume(4), _labels(3), _volume(4))
    with pytest.raises(DataFormatError, match=r"train-labels.tif: labels of shape \(3, 8, 6\)"):
        load_isbi2012(root)


def test_non_binary_labels_report_values(tmp_path):
    labels = _labels()
    labels[0, 0, :3] = [0, 128, 7]
    root = _make_tiff_dir(tmp_path, _volume(), labels, _volume())
    with pytest.raises(DataFormatError) as info:
        load_isbi2012(root)
    msg = str(info.value)
    assert "train-labels.tif" in msg and "0, 7, 128, 255" in msg


def test_check_labels():
    ok = np.array([[0, 255]], np.uint8)
    assert check_labels(ok) is ok
    with pytest.raises(DataFormatError, match="look like 0/1 masks"):
        check_labels(np.array([[0, 1]], np.uint8), "y")
    with pytest.raises(DataFormatError, match="dtype=float32"):
        check_labels(np.array([[0.0, 1.0]], np.float32), "y")
    many = np.arange(256, dtype=np.uint8)
    with pytest.raises(DataFormatError, match="256 distinct values"):
        check_labels(many, "y")


def test_png_layout_with_mismatched_test_size(tmp_path):
    for folder, arr in (
        ("png/train/image", _volume(2, 4, 4)),
        ("png/train/label", _labels(2, 4, 4)),
        ("png/test/image", _volume(2, 5, 4)),
    ):
        write_stack(tmp_path / folder, arr)
    with pytest.raises(DataFormatError, match=r"png/test/image: slices of \(5, 4\)"):
        load_isbi2012(tmp_path)


# ---------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------


def test_report_split():
    split = get_split()
    assert split.name == "report"
    assert split.train == tuple(range(25)) and split.test == (25, 26, 27, 28, 29)
    assert get_split("25-29").test == split.test
    assert get_split("25-29").train == split.train
    assert get_split("all") == ("all", tuple(range(30)), ())


def test_kfold_hand_case_and_invariants():
    # 30 slices, 5 folds: contiguous blocks of 6.
    assert get_split("kfold", n_folds=5, fold=0).test == tuple(range(6))
    assert get_split("kfold", n_folds=5, fold=4).test == tuple(range(24, 30))
    # 30 slices, 4 folds: sizes 8, 8, 7, 7.
    sizes = [len(get_split("kfold", n_folds=4, fold=k).test) for k in range(4)]
    assert sizes == [8, 8, 7, 7]
    for n_folds in range(2, 31):
        tests = [get_split("kfold", n_folds=n_folds, fold=k) for k in range(n_folds)]
        covered = sorted(i for s in tests for i in s.test)
        assert covered == list(range(30))  # disjoint and complete
        for s in tests:
            assert set(s.train).isdisjoint(s.test)
            assert sorted(s.train + s.test) == list(range(30))
            assert s.test == tuple(range(s.test[0], s.test[-1] + 1))  # contiguous
        assert max(map(len, (s.test for s in tests))) - min(
            map(len, (s.test for s in tests))
        ) <= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="kfold", n_folds=1), "n_folds must be an int in 2..30"),
        (dict(name="kfold", n_folds=31), "n_folds=31"),
        (dict(name="kfold", n_folds=5, fold=5), r"fold must be an int in 0..4.*fold=5"),
        (dict(name="nope"), "Unknown split 'nope'"),
        (dict(name="report", n_slices=10), "n_slices=10"),
        (dict(name="25-35"), "out of range 0..29"),
    ],
)
def test_get_split_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_split(**kwargs)


def test_parse_and_format_slices():
    assert parse_slices("25-29") == (25, 26, 27, 28, 29)
    assert parse_slices("25-29,3") == (3, 25, 26, 27, 28, 29)
    assert parse_slices(" 1 , 3-4 ") == (1, 3, 4)
    assert parse_slices("2,2,1-2") == (1, 2)
    assert parse_slices(7) == (7,)
    assert parse_slices([5, 1]) == (1, 5)
    assert format_slices((0, 1, 2, 7, 9, 10)) == "0-2,7,9-10"
    for spec in ("0-24", "3,25-29", "0,2,4"):
        assert format_slices(parse_slices(spec)) == spec
    for bad, match in (
        ("", "Cannot parse"),
        ("a-b", "Cannot parse"),
        ("29-25", "Reversed range"),
        ("1,-2", "Cannot parse"),
        ([], "Empty slice selection"),
        (None, "Slices must be"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_slices(bad)
    with pytest.raises(ValueError, match=r"\[30, 31\] out of range 0..29"):
        parse_slices("28-31", n_slices=30)


def test_load_split_names_the_data_when_the_split_does_not_fit(tmp_path):
    root = _make_tiff_dir(tmp_path, _volume(29), _labels(29), _volume(29))
    with pytest.raises(ValueError, match=rf"n_slices=29.*\(data: {tmp_path} \[tiff\], 29"):
        load_split(root)
    assert load_split(root, "0-3").x_test.shape == (4, 8, 6)


def test_load_split_on_synthetic_data(tmp_path):
    images, labels = _volume(30, 4, 4), _labels(30, 4, 4)
    root = _make_tiff_dir(tmp_path, images, labels, _volume(30, 4, 4))
    split = load_split(root, "kfold", n_folds=3, fold=1)
    assert split.split.test == tuple(range(10, 20))
    np.testing.assert_array_equal(split.x_test, images[10:20])
    np.testing.assert_array_equal(split.y_train, np.concatenate([labels[:10], labels[20:]]))


def test_data_modules_do_not_import_keras():
    # ``import keras_unets`` imports Keras (it registers the custom objects);
    # the data modules themselves do not: import them under a bare package
    code = (
        "import importlib.util, sys, types;"
        "spec = importlib.util.find_spec('keras_unets');"
        "pkg = types.ModuleType('keras_unets');"
        "pkg.__path__ = list(spec.submodule_search_locations); pkg.__version__ = '0';"
        "sys.modules['keras_unets'] = pkg;"
        "import keras_unets.data, keras_unets.data.download, keras_unets.cli.data;"
        "bad = [m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules];"
        "assert not bad, bad"
    )
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_tiff_colour_heuristics(tmp_path):
    gray = _volume(2, 6, 5)
    # tifffile stores (H, W, 3) as RGB: equal channels are read back as gray.
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([gray[0]] * 3, axis=-1))
    np.testing.assert_array_equal(read_stack(tmp_path / "rgb.tif"), gray[:1])
    # A (3, H, W) stack written with tifffile's defaults becomes planar RGB:
    # the error says how to write it.
    tifffile.imwrite(tmp_path / "planar.tif", _volume(3, 6, 5))
    with pytest.raises(DataFormatError, match="planar.tif.*minisblack"):
        read_stack(tmp_path / "planar.tif")
    write_stack(tmp_path / "ok.tif", _volume(3, 6, 5))
    np.testing.assert_array_equal(read_stack(tmp_path / "ok.tif"), _volume(3, 6, 5))
