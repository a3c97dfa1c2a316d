"""Tests for keras_unets.data.folders: your own image/mask pairs."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tifffile

from keras_unets.data import DataFormatError, DataNotFoundError
from keras_unets.data.folders import (
    INTENSITY,
    ChannelsError,
    MaskValuesError,
    PairingError,
    find_pairs,
    from_arrays,
    load_folder_pairs,
    normalize_image,
    read_images,
    split_val,
)


def _png(path, array):
    if array.ndim == 3:  # RGB -> OpenCV's BGR
        array = array[..., ::-1]
    assert cv2.imwrite(str(path), np.ascontiguousarray(array))


def _blobs(h, w, seed, values=(0, 255)):
    """A mask with a few rectangles of the non-zero values."""
    rng = np.random.default_rng(seed)
    mask = np.full((h, w), values[0], np.uint8)
    for value in values[1:]:
        r, c = rng.integers(0, h // 2), rng.integers(0, w // 2)
        mask[r:r + h // 3, c:c + w // 3] = value
    return mask


def _pairs(tmp_path, sizes=((20, 30), (33, 17), (24, 24)), values=(0, 255), mask_suffix="",
           image_ext=".png", image_fn=None):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        image = image_fn(h, w, i) if image_fn else rng.integers(0, 256, (h, w), dtype=np.uint8)
        if image_ext in (".tif", ".tiff"):
            tifffile.imwrite(images / f"cell_{i + 1}{image_ext}", image)
        else:
            _png(images / f"cell_{i + 1}{image_ext}", image)
        _png(masks / f"cell_{i + 1}{mask_suffix}.png", _blobs(h, w, i, values))
    return images, masks


# ---------------------------------------------------------------------------
# pairing
# ---------------------------------------------------------------------------


def test_pairs_by_stem_natural_order_and_suffix(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    for stem in ("img10", "img2", "img1"):
        _png(images / f"{stem}.png", np.zeros((4, 4), np.uint8))
        tifffile.imwrite(masks / f"{stem}_mask.tif", np.zeros((4, 4), np.uint8))
    (images / "notes.txt").write_text("ignored")
    (images / ".DS_Store").write_text("ignored")
    pairs = find_pairs(images, masks, mask_suffix="_mask")
    assert [p.stem for p in pairs] == ["img1", "img2", "img10"]
    assert pairs[2].mask.name == "img10_mask.tif" and pairs[2].page is None
    # same folder for images and masks, told apart by the suffix
    both = tmp_path / "both"
    both.mkdir()
    for stem in ("a", "b"):
        _png(both / f"{stem}.png", np.zeros((4, 4), np.uint8))
        _png(both / f"{stem}_mask.png", np.zeros((4, 4), np.uint8))
    assert [(p.stem, p.mask.name) for p in find_pairs(both, both, mask_suffix="_mask")] == [
        ("a", "a_mask.png"), ("b", "b_mask.png")]
    with pytest.raises(PairingError, match="mask_suffix"):
        find_pairs(both, both)


def test_unpaired_images_and_masks_are_listed(tmp_path):
    images, masks = _pairs(tmp_path, mask_suffix="_mask")
    with pytest.raises(PairingError) as err:
        find_pairs(images, masks)  # suffix forgotten
    msg = str(err.value)
    assert "3 of 3 images" in msg and "cell_1.png" in msg and "cell_1_mask.png" in msg
    assert "mask_suffix='_mask'" in msg
    (masks / "cell_1_mask.png").unlink()
    _png(masks / "stray_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(PairingError) as err:
        find_pairs(images, masks, mask_suffix="_mask")
    msg = str(err.value)
    assert "1 of 3 images" in msg and "cell_1" in msg and "cell_1_mask.tif" in msg
    assert "stray_mask.png" in msg and "no image" in msg


def test_duplicate_stems_and_missing_or_empty_folders(tmp_path):
    images, masks = _pairs(tmp_path)
    _png(images / "cell_1.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(PairingError, match="cell_1.png and cell_1.tif"):
        find_pairs(images, masks)
    (images / "cell_1.tif").unlink()
    with pytest.raises(DataNotFoundError, match="no such file"):
        find_pairs(tmp_path / "nope", masks)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(DataNotFoundError, match=r"found: readme.md.*\.png, \.tif, \.tiff, \.jpg"):
        find_pairs(empty, masks)
    with pytest.raises(DataNotFoundError, match="no mask files"):
        find_pairs(images, empty)


def test_tiff_stacks_pair_by_page(tmp_path):
    rng = np.random.default_rng(1)
    volume = rng.integers(0, 256, (3, 12, 10), dtype=np.uint8)
    labels = np.stack([_blobs(12, 10, i) for i in range(3)])
    tifffile.imwrite(tmp_path / "vol.tif", volume, photometric="minisblack")
    tifffile.imwrite(tmp_path / "lab.tif", labels, photometric="minisblack")
    ds = load_folder_pairs(tmp_path / "vol.tif", tmp_path / "lab.tif")
    assert ds.stems == ("vol_0", "vol_1", "vol_2")
    assert ds.sources[1].endswith("vol.tif[1]")
    np.testing.assert_array_equal(np.stack(ds.images), volume)
    np.testing.assert_array_equal(np.stack(ds.masks), labels)
    tifffile.imwrite(tmp_path / "short.tif", labels[:2], photometric="minisblack")
    with pytest.raises(PairingError, match="2 pages.*3"):
        find_pairs(tmp_path / "vol.tif", tmp_path / "short.tif")
    with pytest.raises(PairingError, match="two multi-page TIFF"):
        find_pairs(tmp_path / "vol.tif", tmp_path)
    # a stack inside a folder pair is refused with the way out
    images, masks = tmp_path / "fi", tmp_path / "fm"
    images.mkdir()
    masks.mkdir()
    tifffile.imwrite(images / "a.tif", volume, photometric="minisblack")
    tifffile.imwrite(masks / "a.tif", labels, photometric="minisblack")
    with pytest.raises(DataFormatError, match="3 pages.*stack file itself"):
        load_folder_pairs(images, masks)


# ---------------------------------------------------------------------------
# reading images, channels, intensity
# ---------------------------------------------------------------------------


def test_variable_sizes_and_binary_masks_in_any_two_values(tmp_path):
    for values in ((0, 1), (0, 255), (0, 7)):
        images, masks = _pairs(tmp_path / str(values[1]), values=values)
        ds = load_folder_pairs(images, masks)
        assert ds.classes == 2 and ds.binary and ds.output_channels == 1 and ds.channels == 1
        assert [im.shape for im in ds.images] == [(20, 30), (33, 17), (24, 24)]
        for mask, i in zip(ds.masks, range(3)):
            assert mask.dtype == np.uint8
            np.testing.assert_array_equal(mask, np.where(_blobs(*mask.shape, i, values) != 0, 255, 0))
    assert ds.describe()["sizes"] == [[20, 30], [24, 24], [33, 17]]


def test_sixteen_bit_and_float_images_get_the_percentile_stretch(tmp_path):
    rng = np.random.default_rng(3)

    def image_fn(h, w, i):  # a 12-bit camera in a 16-bit file, one hot pixel
        x = rng.integers(100, 4000, (h, w)).astype(np.uint16)
        x[0, 0] = 65535
        return x

    images, masks = _pairs(tmp_path, image_fn=image_fn, image_ext=".tif")
    ds = load_folder_pairs(images, masks)
    raw = tifffile.imread(images / "cell_1.tif").astype(np.float64)
    lo, hi = np.percentile(raw, [1.0, 99.8])
    expected = np.rint(np.clip((raw - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(ds.images[0], expected)
    assert ds.images[0].max() == 255 and ds.images[0].min() == 0  # the hot pixel did not squash the range
    assert ds.intensity == INTENSITY
    # 16-bit PNG too, and float TIFF: same rule
    _png(tmp_path / "sixteen.png", raw.astype(np.uint16))
    np.testing.assert_array_equal(read_images(tmp_path / "sixteen.png").images[0], expected)
    tifffile.imwrite(tmp_path / "float.tif", (raw / 7.0).astype(np.float32))
    assert np.abs(read_images(tmp_path / "float.tif").images[0].astype(int) - expected).max() <= 1
    # uint8 is untouched; a constant image becomes 0; percentiles are part of the rule
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert normalize_image(x) is x
    assert normalize_image(np.full((3, 3), 9, np.uint16)).max() == 0
    with pytest.raises(ValueError, match="Unknown intensity rule"):
        normalize_image(x, {"name": "zscore"})


def test_rgb_images_grey_in_rgb_and_alpha(tmp_path):
    rng = np.random.default_rng(4)
    images, masks = _pairs(tmp_path, image_fn=lambda h, w, i: rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    ds = load_folder_pairs(images, masks)
    assert ds.channels == 3 and ds.images[1].shape == (33, 17, 3)
    rgb = cv2.imread(str(images / "cell_2.png"))[..., ::-1]
    np.testing.assert_array_equal(ds.images[1], rgb)  # RGB order, not OpenCV's BGR
    # opaque alpha is dropped
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(images / "cell_2.png"), rgba[..., [2, 1, 0, 3]])
    np.testing.assert_array_equal(load_folder_pairs(images, masks).images[1], rgb)
    rgba[0, 0, 3] = 10
    cv2.imwrite(str(images / "cell_2.png"), rgba[..., [2, 1, 0, 3]])
    with pytest.raises(ChannelsError, match="cell_2.png.*alpha"):
        load_folder_pairs(images, masks)
    # grey saved as three equal channels counts as grey
    grey_dir = tmp_path / "g"
    gi, gm = _pairs(grey_dir, image_fn=lambda h, w, i: np.repeat(rng.integers(0, 256, (h, w, 1), dtype=np.uint8), 3, 2))
    ds = load_folder_pairs(gi, gm)
    assert ds.channels == 1 and ds.images[0].ndim == 2
    assert read_images(gi, channels=3).images[0].shape == (20, 30, 3)  # an RGB model gets them as stored


def test_grey_and_rgb_mixed_names_one_of_each(tmp_path):
    rng = np.random.default_rng(5)
    images, masks = _pairs(tmp_path, image_fn=lambda h, w, i: rng.integers(0, 256, (h, w, 3) if i == 2 else (h, w),
                                                                            dtype=np.uint8))
    with pytest.raises(ChannelsError, match=r"cell_1.png is grey.*cell_3.png is RGB"):
        load_folder_pairs(images, masks)
    with pytest.raises(ChannelsError, match="Grey and colour"):
        read_images(images)
    grey = tmp_path / "grey"
    grey.mkdir()
    _png(grey / "a.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(ChannelsError, match="3-channel"):
        read_images(grey, channels=3)


def test_jpeg_images_and_unreadable_files(tmp_path):
    images, masks = _pairs(tmp_path, image_ext=".jpg")
    assert len(load_folder_pairs(images, masks).images) == 3
    good = (images / "cell_1.jpg").read_bytes()
    png = tmp_path / "images2"
    png_images, png_masks = _pairs(png)
    data = (png_images / "cell_2.png").read_bytes()
    (png_images / "cell_2.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFormatError, match="cell_2.png: cannot decode"):
        load_folder_pairs(png_images, png_masks)
    (png_images / "cell_2.png").write_bytes(b"")
    with pytest.raises(DataFormatError, match="cell_2.png"):
        load_folder_pairs(png_images, png_masks)
    (png_images / "cell_2.png").write_bytes(good)
    (png_masks / "cell_3.png").write_bytes(b"not a tiff")
    (png_masks / "cell_3.png").rename(png_masks / "cell_3.tif")
    with pytest.raises(DataFormatError, match="cell_3.tif: cannot read this file as a TIFF"):
        load_folder_pairs(png_images, png_masks)


def test_size_mismatch_names_both_files(tmp_path):
    images, masks = _pairs(tmp_path)
    _png(masks / "cell_2.png", np.zeros((33, 18), np.uint8))
    with pytest.raises(DataFormatError, match=r"cell_2.png: the mask is 33x18 px.*images/cell_2.png is 33x17"):
        load_folder_pairs(images, masks)


# ---------------------------------------------------------------------------
# masks: classes
# ---------------------------------------------------------------------------


def test_three_class_masks_inferred_or_given(tmp_path):
    images, masks = _pairs(tmp_path, values=(0, 1, 2))
    ds = load_folder_pairs(images, masks)
    assert ds.classes == 3 and not ds.binary and ds.output_channels == 3
    np.testing.assert_array_equal(ds.masks[0], _blobs(20, 30, 0, (0, 1, 2)))
    assert load_folder_pairs(images, masks, classes=5).classes == 5  # classes absent from the data
    with pytest.raises(MaskValuesError, match=r"cell_1.png.*binary run \(classes=2\).*--classes 3"):
        load_folder_pairs(images, masks, classes=2)
    with pytest.raises(MaskValuesError, match=r"masks\[0\].*\{0, 1, 2, 3\}.*classes=4"):
        from_arrays([np.zeros((2, 2))], [np.array([[0, 1], [2, 3]])], classes=1)


def test_mask_values_that_are_neither_binary_nor_indices(tmp_path):
    images, masks = _pairs(tmp_path, values=(0, 128, 255))
    with pytest.raises(MaskValuesError) as err:
        load_folder_pairs(images, masks)
    msg = str(err.value)
    assert "{0, 128, 255}" in msg and "cell_1.png" in msg and "classes=K" in msg
    with pytest.raises(MaskValuesError, match=r"values \{255\} are too large"):
        load_folder_pairs(images, masks, classes=200)
    with pytest.raises(MaskValuesError, match="no 0"):
        from_arrays([np.zeros((2, 2))], [np.array([[1, 2], [1, 2]])])
    with pytest.raises(MaskValuesError, match=r"masks\[0\].*non-integer"):
        from_arrays([np.zeros((2, 2))], [np.array([[0, 0.5], [1, 1]])])
    assert from_arrays([np.zeros((2, 2))], [np.array([[0, 1.0], [1, 1]])]).masks[0].max() == 255
    rgb_mask = np.zeros((20, 30, 3), np.uint8)
    rgb_mask[..., 0] = 255
    _png(masks / "cell_1.png", rgb_mask)
    with pytest.raises(MaskValuesError, match="cell_1.png: the mask is a colour image"):
        load_folder_pairs(images, masks)
    with pytest.raises(ValueError, match="classes must be"):
        from_arrays([np.zeros((2, 2))], [np.zeros((2, 2), int)], classes=0)


def test_from_arrays_matches_the_folder_reader(tmp_path):
    images, masks = _pairs(tmp_path, values=(0, 1))
    ds = load_folder_pairs(images, masks)
    raw = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(images.iterdir())]
    raw_masks = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(masks.iterdir())]
    arrays = from_arrays(raw, raw_masks, stems=ds.stems)
    for a, b in zip(arrays.images + arrays.masks, ds.images + ds.masks):
        np.testing.assert_array_equal(a, b)
    assert arrays.classes == ds.classes == 2
    stack = from_arrays(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 8), np.uint8))
    assert stack.channels == 1 and stack.stems == ("0", "1", "2")  # all-equal channels: grey
    with pytest.raises(PairingError, match="2 images and 3 masks"):
        from_arrays([np.zeros((2, 2))] * 2, [np.zeros((2, 2), int)] * 3)


# ---------------------------------------------------------------------------
# validation split, prediction input
# ---------------------------------------------------------------------------


def test_split_val_is_seeded_by_whole_images():
    ds = from_arrays([np.full((4 + i, 5), i, np.uint8) for i in range(10)], [np.zeros((4 + i, 5), int) for i in range(10)])
    train, val, stems = split_val(ds, 0.25, seed=7)
    assert len(val.images) == 3 and len(train.images) == 7  # 2.5 rounds up
    assert set(stems) | set(train.stems) == set(ds.stems) and not set(stems) & set(train.stems)
    for image, stem in zip(val.images, val.stems):
        assert image.shape == (4 + int(stem), 5)
    assert split_val(ds, 0.25, seed=7)[2] == stems
    assert any(split_val(ds, 0.25, seed=s)[2] != stems for s in range(8, 12))
    with pytest.raises(ValueError, match="0.04 of 10 images.*0 validation images"):
        split_val(ds, 0.04)
    with pytest.raises(ValueError, match="leaving no training image"):
        split_val(ds.subset([0, 1]), 0.8)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        split_val(ds, 1.0)


def test_read_images_folder_and_errors(tmp_path):
    images, _ = _pairs(tmp_path)
    found = read_images(images)
    assert found.stems == ("cell_1", "cell_2", "cell_3") and found.channels == 1
    assert [im.shape for im in found.images] == [(20, 30), (33, 17), (24, 24)]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.bmp").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match=r"found: x.bmp.*\.png"):
        read_images(empty)
    with pytest.raises(DataNotFoundError, match="no such file"):
        read_images(tmp_path / "missing")


def test_module_imports_no_keras():
    # ``import keras_unets`` imports Keras (it registers the custom objects);
    # the folders module itself does not: import it under a bare package
    code = (
        "import importlib.util, sys, types;"
        "spec = importlib.util.find_spec('keras_unets');"
        "pkg = types.ModuleType('keras_unets');"
        "pkg.__path__ = list(spec.submodule_search_locations); pkg.__version__ = '0';"
        "sys.modules['keras_unets'] = pkg;"
        "import keras_unets.data.folders; print('keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
