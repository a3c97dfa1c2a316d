"""``keras-unets predict`` on your own images: keras_unets.inference.predict_folder and the CLI.

Tiny models saved as ``.keras`` files and as fake run folders (config.json
with the run's classes, channels and intensity rule; results.json with the
best threshold); folders of images with arbitrary names, non-square, of
different sizes (one smaller than a tile), 16-bit and RGB. Identity models
make the written maps hand-checkable: their probabilities are the input
images, after the intensity rule.
"""
import json

import cv2
import keras
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from keras import layers

from keras_unets.cli import main
from keras_unets.data import read_stack, write_stack
from keras_unets.data.folders import INTENSITY, normalize_image
from keras_unets.inference import predict_folder, predict_images, run_settings
from keras_unets.models import build_unet


def _invoke(*args):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


def _identity(channels, name):
    inp = keras.Input((None, None, channels))
    return keras.Model(inp, layers.Identity(name="output")(inp), name=name)


def _fake_run(folder, model, *, classes, channels, intensity=None, threshold=None):
    folder.mkdir(parents=True)
    model.save(folder / "best.keras")
    meta = {"model_name": model.name, "config": {"from_logits": False}, "classes": classes,
            "channels": channels, "intensity": intensity or dict(INTENSITY)}
    (folder / "config.json").write_text(json.dumps(meta))
    if threshold is not None:
        (folder / "results.json").write_text(json.dumps({"best_threshold": threshold}))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    grey = build_unet(filters=4, depth=2, num_classes=1, input_channels=1, dropout=0.0)
    rgb3 = build_unet(filters=4, depth=2, num_classes=3, input_channels=3, dropout=0.0)
    grey.save(root / "grey.keras")
    rgb3.save(root / "rgb3.keras")
    stretch = {"name": INTENSITY["name"], "low": 0.0, "high": 100.0}
    return {
        "grey": grey,
        "grey_file": root / "grey.keras",
        "rgb3": rgb3,
        "rgb3_file": root / "rgb3.keras",
        "grey_run": _fake_run(root / "grey_run", grey, classes=2, channels=1, threshold=100),
        # identity runs: the probabilities are the normalised images
        "id_run": _fake_run(root / "id_run", _identity(1, "id1"), classes=2, channels=1,
                            intensity=stretch, threshold=50),
        "id_rgb_run": _fake_run(root / "id_rgb_run", _identity(3, "id3"), classes=3,
                                channels=3),
        "stretch": stretch,
    }


def _grey_folder(folder):
    """Arbitrary names, non-square, three sizes (one smaller than a 16 px tile), 16-bit."""
    rng = np.random.default_rng(1)
    folder.mkdir()
    images = {
        "cell A-01": rng.integers(0, 256, (40, 56), dtype=np.uint8),
        "img_2": rng.integers(0, 256, (24, 20), dtype=np.uint8),
        "tiny": rng.integers(0, 256, (6, 9), dtype=np.uint8),
        "deep16": rng.integers(100, 4000, (33, 18)).astype(np.uint16),
    }
    cv2.imwrite(str(folder / "cell A-01.png"), images["cell A-01"])
    tifffile.imwrite(folder / "img_2.tif", images["img_2"])
    cv2.imwrite(str(folder / "tiny.png"), images["tiny"])
    tifffile.imwrite(folder / "deep16.tiff", images["deep16"])
    (folder / "notes.txt").write_text("not an image")
    return images


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_binary_run_writes_masks_and_probabilities_of_each_size(models, tmp_path):
    images = _grey_folder(tmp_path / "in")
    out = tmp_path / "out"
    res = _invoke(models["grey_run"], tmp_path / "in", "--out", out, "--tile", 16)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["threshold"] == 100  # results.json's best threshold
    assert summary["slices"] == 4 and summary["classes"] == 2 and summary["channels"] == 1
    for sub in ("masks", "probabilities"):
        assert sorted(p.name for p in (out / sub).iterdir()) == sorted(
            f"{stem}.png" for stem in images)
    for stem, image in images.items():
        mask = cv2.imread(str(out / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        prob = cv2.imread(str(out / "probabilities" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == prob.shape == image.shape and mask.dtype == prob.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 255}
        np.testing.assert_array_equal(mask, np.where(prob > 100, 255, 0))
    # the same maps as predict_images on the normalised images, rounded to 0-255
    normalised = [normalize_image(images[s]) for s in ("cell A-01", "img_2", "tiny")]
    expected = predict_images(models["grey"], normalised, tile=16)
    for stem, exp in zip(("cell A-01", "img_2", "tiny"), expected):
        prob = cv2.imread(str(out / "probabilities" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(prob, np.rint(exp * 255).astype(np.uint8))
    # --threshold overrides the run's
    res = _invoke(models["grey_run"], tmp_path / "in", "--out", tmp_path / "o2", "--threshold", 7)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["threshold"] == 7


def test_run_intensity_rule_and_threshold_are_applied(models, tmp_path):
    images = _grey_folder(tmp_path / "in")
    summary = predict_folder(models["id_run"], tmp_path / "in", tmp_path / "out")
    assert summary["threshold"] == 50
    for stem, image in images.items():
        prob = cv2.imread(str(tmp_path / "out" / "probabilities" / f"{stem}.png"),
                          cv2.IMREAD_UNCHANGED)
        # identity model: P = the image after the run's rule (0-100 percentiles: min-max)
        np.testing.assert_array_equal(prob, normalize_image(image, models["stretch"]))
        mask = cv2.imread(str(tmp_path / "out" / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, np.where(prob > 50, 255, 0))
    # the 16-bit image: min -> 0, max -> 255 under the run's rule, not the default 1-99.8
    deep = cv2.imread(str(tmp_path / "out" / "probabilities" / "deep16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.min() == 0 and deep.max() == 255
    assert not np.array_equal(deep, normalize_image(images["deep16"]))
    settings = run_settings(models["id_run"] / "best.keras")
    assert settings.intensity == models["stretch"] and settings.threshold == 50


def test_multiclass_rgb_model_writes_class_maps_and_per_class_tiffs(models, tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    sizes = {"a": (30, 44), "b": (17, 12), "c 3": (5, 7)}
    for i, (stem, (h, w)) in enumerate(sizes.items()):
        cv2.imwrite(str(folder / f"{stem}.png"), cv2.cvtColor(_rgb(h, w, i), cv2.COLOR_RGB2BGR))
    res = _invoke(models["rgb3_file"], folder, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["classes"] == 3 and summary["threshold"] is None and summary["channels"] == 3
    for stem, (h, w) in sizes.items():
        mask = cv2.imread(str(tmp_path / "out" / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        probs = tifffile.imread(tmp_path / "out" / "probabilities" / f"{stem}.tif")
        assert mask.shape == (h, w) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 1, 2}
        assert probs.shape == (3, h, w) and probs.dtype == np.uint8
        assert np.abs(probs.astype(int).sum(axis=0) - 255).max() <= 2  # softmax, rounded
        chosen = np.take_along_axis(probs, mask[None].astype(np.intp), axis=0)[0]
        assert np.all(chosen >= probs.max(axis=0) - 1)  # the argmax (up to rounding)


def test_identity_rgb_run_masks_are_the_argmax_channel(models, tmp_path):
    # hand-checkable: pure red, green and blue stripes -> classes 0, 1, 2
    folder = tmp_path / "rgb"
    folder.mkdir()
    image = np.zeros((9, 12, 3), np.uint8)
    for k in range(3):
        image[3 * k:3 * k + 3, :, k] = 200
    image[..., :] += 10
    tifffile.imwrite(folder / "stripes.tif", image, photometric="rgb")
    predict_folder(models["id_rgb_run"], folder, tmp_path / "out")
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "stripes.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, np.repeat([0, 1, 2], 3)[:, None].repeat(12, axis=1))
    probs = tifffile.imread(tmp_path / "out" / "probabilities" / "stripes.tif")
    np.testing.assert_array_equal(probs, np.moveaxis(image, -1, 0))


def test_tiff_stack_and_isbi_folder_keep_their_names(models, tmp_path):
    rng = np.random.default_rng(2)
    vol = rng.integers(0, 256, (3, 20, 28), dtype=np.uint8)
    write_stack(tmp_path / "vol.tif", vol)
    res = _invoke(models["grey_file"], tmp_path / "vol.tif", "--out", tmp_path / "o1")
    assert res.exit_code == 0, res.output
    prob, mask = read_stack(tmp_path / "o1" / "probabilities.tif"), read_stack(tmp_path / "o1" / "masks.tif")
    assert prob.shape == mask.shape == vol.shape
    assert json.loads(res.output)["threshold"] == 127  # a bare .keras: no run threshold
    np.testing.assert_array_equal(mask, np.where(prob > 127, 255, 0))
    # a {i}.png folder: the same file names out
    write_stack(tmp_path / "isbi", vol)
    res = _invoke(models["grey_file"], tmp_path / "isbi", "--out", tmp_path / "o2")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o2" / "masks").iterdir()) == ["0.png", "1.png", "2.png"]
    np.testing.assert_array_equal(read_stack(tmp_path / "o2" / "probabilities"), prob)
    # a K-class model on a stack: class indices and (N, K, H, W) maps
    rgb = np.stack([_rgb(10, 14, 0), _rgb(10, 14, 1)])
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    summary = predict_folder(models["rgb3"], tmp_path / "rgb.tif", tmp_path / "o3")
    assert summary["classes"] == 3 and summary["slices"] == 2
    assert tifffile.imread(tmp_path / "o3" / "probabilities.tif").shape == (2, 3, 10, 14)
    assert read_stack(tmp_path / "o3" / "masks.tif").max() <= 2


def test_errors_without_traceback(models, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    (empty / "scan.bmp").write_bytes(b"BM")
    res = _invoke(models["grey_run"], empty, "--out", tmp_path / "o")
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "no image files" in res.output and "readme.md" in res.output and "scan.bmp" in res.output
    assert ".png" in res.output and ".tif" in res.output and ".jpg" in res.output
    # RGB images to a grey model
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    cv2.imwrite(str(rgb / "x.png"), _rgb(12, 12, 0))
    res = _invoke(models["grey_run"], rgb, "--out", tmp_path / "o")
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "x.png" in res.output and "takes 1-channel images" in res.output and "3 channels" in res.output
    # grey images to an RGB model
    grey = tmp_path / "grey"
    grey.mkdir()
    cv2.imwrite(str(grey / "y.png"), np.zeros((12, 12), np.uint8))
    res = _invoke(models["rgb3_file"], grey, "--out", tmp_path / "o")
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "y.png" in res.output and "takes 3-channel images" in res.output
    # a threshold for a K-class model
    res = _invoke(models["rgb3_file"], rgb, "--out", tmp_path / "o", "--threshold", 9)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "binary models" in res.output and "3 classes" in res.output
    # no such input
    res = _invoke(models["grey_run"], tmp_path / "nope", "--out", tmp_path / "o")
    assert res.exit_code != 0 and "nope" in res.output and "no such file or folder" in res.output


def test_run_record_that_does_not_fit_the_model_is_refused(models, tmp_path):
    run = _fake_run(tmp_path / "run", models["grey"], classes=4, channels=1)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="classes=4 but the model predicts 1 channel"):
        predict_folder(run, tmp_path / "in", tmp_path / "out")
