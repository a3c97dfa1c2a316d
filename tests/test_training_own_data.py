"""Training on your own image/mask pairs: ``train(images=..., masks=...)`` and
``keras-unets train --images DIR --masks DIR``.

Tiny models (4 filters, depth 2), 32 px crops, 1-2 epochs of 2 steps; one
learning test on a texture task that a global threshold cannot solve.
"""
import json

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from keras_unets.cli import main
from keras_unets.data.folders import load_folder_pairs, split_val
from keras_unets.training import OptionError, load_run_model, train

TINY = ["--set", "filters=4", "--set", "depth=2", "--profile", "smoke", "--crop", "32",
        "--epochs", "1", "--steps-per-epoch", "2", "--verbose", "0"]
TINY_KW = {"filters": 4, "depth": 2}


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _json_tail(output):
    return json.loads(output[output.index("{"):])


def _blobs(rng, shape, classes=2):
    """A mask ``(H, W)`` of class indices with a few discs of classes 1..classes-1."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros(shape, np.uint8)
    for k in range(1, classes):
        for _ in range(2):
            r = rng.uniform(3, max(4, min(h, w) / 4))
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    return mask


def _image_for(rng, mask, *, dtype=np.uint8, rgb=False):
    base = 60.0 + 50.0 * mask + rng.normal(0, 10, mask.shape)
    if dtype == np.uint16:
        image = np.clip(base * 16 + 300, 0, 65535).astype(np.uint16)
    else:
        image = np.clip(base, 0, 255).astype(np.uint8)
    if rgb:
        image = np.stack([image, image[::-1] // 2 + image // 2, 255 - image], -1).astype(image.dtype)
    return image


def _write_pairs(root, shapes, *, seed=0, classes=2, fg=255, dtype=np.uint8, rgb=False,
                 mask_suffix="", image_ext=".png"):
    """Write image/mask pairs ``img<i>`` into ``root/images`` and ``root/masks``."""
    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i, shape in enumerate(shapes):
        mask = _blobs(rng, shape, classes)
        image = _image_for(rng, mask, dtype=dtype, rgb=rgb)
        if image_ext == ".png":
            cv2.imwrite(str(images / f"img{i}.png"), image)
        else:
            tifffile.imwrite(images / f"img{i}{image_ext}", image)
        stored = np.where(mask > 0, fg, 0).astype(np.uint8) if classes == 2 else mask
        cv2.imwrite(str(masks / f"img{i}{mask_suffix}.png"), stored)
    return images, masks


SIZES = [(40, 56), (48, 40), (24, 40), (36, 36)]  # non-square, one smaller than the crop


def test_binary_255_masks_with_val_folder_cli(tmp_path):
    images, masks = _write_pairs(tmp_path / "train", SIZES, seed=0, fg=255)
    val_images, val_masks = _write_pairs(tmp_path / "val", [(40, 48), (30, 34)], seed=1, fg=255)
    run = tmp_path / "run"
    res = _invoke("train", "unet", "--images", images, "--masks", masks, "--val-images",
                  val_images, "--val-masks", val_masks, "--out", run, *TINY)
    assert res.exit_code == 0, res.output
    summary = _json_tail(res.output)
    assert summary["classes"] == 2 and summary["val_source"] == "folder"
    assert 0 <= summary["best_threshold"] <= 255 and summary["val_slices"] == ["img0", "img1"]
    cfg = json.loads((run / "config.json").read_text())
    data = cfg["data"]
    assert data["kind"] == "folders" and data["images"] == str(images)
    assert data["val_images"] == str(val_images) and data["mask_suffix"] == ""
    assert data["train_stems"] == ["img0", "img1", "img2", "img3"]
    assert data["val_stems"] == cfg["val_stems"] == ["img0", "img1"]
    assert cfg["classes"] == 2 and cfg["channels"] == 1
    assert cfg["intensity"]["name"] == "uint8-or-percentile"
    model = load_run_model(run, "best", compile=False)
    assert model.inputs[0].shape[-1] == 1 and model.outputs[0].shape[-1] == 1
    assert (run / "thresholds.csv").exists() and (run / "threshold_curve_best.png").exists()


def test_binary_01_masks_16bit_val_fraction_seeded(tmp_path):
    shapes = [(40, 56), (48, 40), (24, 40), (36, 36), (44, 50)]
    images, masks = _write_pairs(tmp_path, shapes, seed=2, fg=1, dtype=np.uint16,
                                 mask_suffix="_mask", image_ext=".tif")
    result = train("unet", profile="smoke", images=images, masks=masks, mask_suffix="_mask",
                   val_fraction=0.4, seed=3, epochs=1, steps_per_epoch=2, crop=32,
                   model_kwargs=TINY_KW, out=tmp_path / "run", verbose=0)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    train_stems, val_stems = cfg["data"]["train_stems"], cfg["val_stems"]
    assert len(val_stems) == 2 and len(train_stems) == 3
    assert not set(train_stems) & set(val_stems)
    # the run's seed draws the held-out images
    _, _, expected = split_val(load_folder_pairs(images, masks, mask_suffix="_mask"), 0.4, seed=3)
    assert tuple(val_stems) == expected == result.val_slices
    assert cfg["data"]["val_fraction"] == 0.4 and cfg["data"]["mask_suffix"] == "_mask"
    assert result.val_source == "fraction" and result.classes == 2


def test_three_classes_rgb_arrays_and_deep_supervision(tmp_path):
    rng = np.random.default_rng(4)
    masks = [_blobs(rng, s, classes=3) for s in SIZES]
    images = [_image_for(rng, m, rgb=True) for m in masks]
    result = train("unet", profile="smoke", images=images, masks=masks, val_fraction=0.25,
                   epochs=1, steps_per_epoch=2, crop=32, model_kwargs=TINY_KW,
                   out=tmp_path / "run", verbose=0)
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["classes"] == 3 and cfg["channels"] == 3 and cfg["data"]["kind"] == "arrays"
    model = load_run_model(run, "best", compile=False)
    assert model.inputs[0].shape[-1] == 3 and model.outputs[0].shape[-1] == 3
    state = json.loads((run / "state.json").read_text())
    assert state["monitor"] == "val_mean_dice"
    assert "val_mean_dice" in result.history and "val_dice_2" in result.history
    assert (run / "multiclass.csv").exists() and not (run / "thresholds.csv").exists()
    assert result.classes == 3 and result.best_threshold == -1
    results = json.loads((run / "results.json").read_text())
    assert results["best_mean_dice"] == result.best_mean_dice
    assert "mean Dice" in result.describe()
    compiled = load_run_model(run, "last")
    assert type(compiled.loss).__name__ == "CategoricalCEDiceLoss"

    # deep supervision: the multi-class loss on every head
    ds = train("unetpp_ds", profile="smoke", images=images, masks=masks, epochs=1,
               steps_per_epoch=1, crop=32, model_kwargs=TINY_KW, out=tmp_path / "ds",
               verbose=0)
    head_losses = [k for k in ds.history if k.endswith("_loss") and k.startswith("out")]
    assert len(head_losses) == 2  # depth 2: two heads, each with its loss
    cfg = json.loads((tmp_path / "ds" / "config.json").read_text())
    assert cfg["checkpoint"]["monitor"] is None  # no validation: best = last

    with pytest.raises(OptionError, match="classes"):
        train("unet3p_ds_cgm", profile="smoke", images=images, masks=masks, epochs=1,
              crop=32, model_kwargs=TINY_KW, out=tmp_path / "cgm", verbose=0)
    assert not (tmp_path / "cgm").exists()


def test_resume_own_data_run(tmp_path):
    images, masks = _write_pairs(tmp_path, SIZES, seed=5, fg=255)
    run = tmp_path / "run"
    res = _invoke("train", "unet", "--images", images, "--masks", masks, "--val-fraction", 0.25,
                  "--out", run, *TINY)
    assert res.exit_code == 0, res.output
    first = json.loads((run / "config.json").read_text())
    res = _invoke("train", "unet", "--out", run, "--resume", "--epochs", 2, "--verbose", 0)
    assert res.exit_code == 0, res.output
    summary = _json_tail(res.output)
    assert summary["last_epoch"] == 2 and summary["epochs_run"] == 1
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["val_stems"] == first["val_stems"] and cfg["data"] == first["data"]
    assert cfg["resumed"][0]["at_epoch"] == 1
    # the folders come from config.json: passing others is refused
    res = _invoke("train", "unet", "--out", run, "--resume", "--images", images, "--masks",
                  masks, "--verbose", 0)
    assert res.exit_code != 0 and "config.json" in res.output


def _bad_input(root, case):
    """``(extra CLI args, text the error must hold)`` of one bad data set."""
    if case == "images without masks":
        images, masks = _write_pairs(root, SIZES[:2])
        (masks / "img1.png").unlink()
        return ["--images", images, "--masks", masks], "img1"
    if case == "masks without images":
        images, masks = _write_pairs(root, SIZES[:2])
        (images / "img0.png").unlink()
        return ["--images", images, "--masks", masks], "img0"
    if case == "size mismatch":
        images, masks = _write_pairs(root, SIZES[:2])
        cv2.imwrite(str(masks / "img1.png"), np.zeros((10, 12), np.uint8))
        return ["--images", images, "--masks", masks], "img1"
    if case == "three values in a binary run":
        images, masks = _write_pairs(root, SIZES[:2], classes=3)
        return ["--images", images, "--masks", masks, "--classes", 2], "classes"
    if case == "grey and RGB mixed":
        images, masks = _write_pairs(root, SIZES[:2])
        cv2.imwrite(str(images / "img1.png"), np.dstack([
            np.zeros(SIZES[1], np.uint8), np.full(SIZES[1], 80, np.uint8),
            np.full(SIZES[1], 200, np.uint8)]))
        return ["--images", images, "--masks", masks], "img"
    if case == "empty folder":
        (root / "images").mkdir(parents=True)
        _, masks = _write_pairs(root / "m", SIZES[:2])
        return ["--images", root / "images", "--masks", masks], "images"
    if case == "truncated file":
        images, masks = _write_pairs(root, SIZES[:2])
        data = (images / "img1.png").read_bytes()
        (images / "img1.png").write_bytes(data[: len(data) // 2])
        return ["--images", images, "--masks", masks], "img1"
    if case == "val fraction leaves no training image":
        images, masks = _write_pairs(root, SIZES[:2])
        return ["--images", images, "--masks", masks, "--val-fraction", 0.9], "no training"
    raise AssertionError(case)


BAD = ["images without masks", "masks without images", "size mismatch",
       "three values in a binary run", "grey and RGB mixed", "empty folder", "truncated file",
       "val fraction leaves no training image"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_named_and_nothing_written(tmp_path, case):
    args, text = _bad_input(tmp_path / "data", case)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "unet", *map(str, args), "--out", str(run), *TINY])
    assert res.exit_code != 0 and not isinstance(res.exception, (AssertionError, TypeError))
    assert "Traceback" not in res.output and text in res.output, res.output
    assert not run.exists()


def test_three_values_in_binary_masks_suggest_classes(tmp_path):
    images, masks = _write_pairs(tmp_path, SIZES[:2])
    three = np.zeros(SIZES[0], np.uint8)
    three[:10], three[10:20] = 128, 255
    cv2.imwrite(str(masks / "img0.png"), three)
    res = _invoke("train", "unet", "--images", images, "--masks", masks, "--out",
                  tmp_path / "run", *TINY)
    assert res.exit_code != 0 and "classes" in res.output and "img0" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,flag", [
    (["--val-images", "V", "--val-masks", "W", "--val-fraction", "0.2"], "--val-fraction"),
    (["--split", "kfold"], "--split"),
    (["--val-slices", "20-24"], "--val-slices"),
    (["--data", "D"], "--data"),
])
def test_conflicting_options(tmp_path, args, flag):
    images, masks = _write_pairs(tmp_path, SIZES[:2])
    res = _invoke("train", "unet", "--images", images, "--masks", masks, *args,
                  "--out", tmp_path / "run", *TINY)
    assert res.exit_code != 0 and flag in res.output, res.output
    assert not (tmp_path / "run").exists()


def test_images_without_masks_option(tmp_path):
    images, _ = _write_pairs(tmp_path, SIZES[:2])
    res = _invoke("train", "unet", "--images", images, "--out", tmp_path / "run", *TINY)
    assert res.exit_code != 0 and "--masks" in res.output
    res = _invoke("train", "unet", "--classes", 3, "--out", tmp_path / "run", *TINY)
    assert res.exit_code != 0 and "--classes" in res.output
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------
# Learning: a task that a global intensity threshold cannot solve
# ---------------------------------------------------------------------------
def _texture_set(n, seed, size=48):
    """Discs of fine stripes (+-70 grey levels around 128) on noise of the same mean.

    Foreground and background have the same mean intensity: only the
    texture tells them apart, so any global threshold on the image is near
    chance, while a few 3 x 3 convolutions see the stripes.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(rng.integers(2, 4)):
            r = rng.uniform(6, 10)
            cy, cx = rng.uniform(r, size - r, 2)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * np.pi / 2.0
        stripes = np.where(np.sin(phase) >= 0, 70.0, -70.0)
        image = np.where(mask == 1, 128.0 + stripes + rng.normal(0, 10, mask.shape),
                         128.0 + rng.normal(0, 25, mask.shape))
        images.append(np.clip(np.rint(image), 0, 255).astype(np.uint8))
        masks.append(mask)
    return images, masks


def _scores(pred, masks):
    pred, truth = np.concatenate([p.ravel() for p in pred]), np.concatenate(
        [m.ravel() == 1 for m in masks])
    accuracy = float(np.mean(pred == truth))
    dice = float(2 * np.sum(pred & truth) / (np.sum(pred) + np.sum(truth)))
    return accuracy, dice


def test_learns_texture_that_no_threshold_separates(tmp_path):
    from skimage.filters import threshold_otsu

    from keras_unets.inference import predict_images

    x_train, y_train = _texture_set(16, seed=2)
    x_val, y_val = _texture_set(4, seed=3)
    x_test, y_test = _texture_set(6, seed=4)
    background = 1.0 - float(np.mean(np.concatenate([m.ravel() for m in y_test])))
    # the global threshold (either polarity) is no better than chance
    t = threshold_otsu(np.concatenate([x.ravel() for x in x_test]))
    otsu = max(_scores([x > t for x in x_test], y_test), _scores([x <= t for x in x_test], y_test))
    assert otsu[0] < background and otsu[1] < 0.45

    result = train("unet", profile="smoke", images=x_train, masks=y_train, val_images=x_val,
                   val_masks=y_val, epochs=4, steps_per_epoch=8, batch_size=4, crop=48,
                   learning_rate=1e-2, model_kwargs={"filters": 8, "depth": 2},
                   overrides={"loss": "bce_dice"}, out=tmp_path / "run", verbose=0)
    model = load_run_model(result.run_dir, "best", compile=False)
    pred = [p > 0.5 for p in predict_images(model, x_test, progress=False)]
    accuracy, dice = _scores(pred, y_test)
    assert accuracy > background + 0.08, (accuracy, background)
    assert dice > 0.7 and dice > otsu[1] + 0.3, (dice, otsu)
