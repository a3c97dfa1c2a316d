"""UNet 3+ classification-guided module (CGM) in training.

Huang et al., ICASSP 2020, sec. 2.3: the ``cls`` branch says whether the
organ is in the image and is trained with binary cross-entropy; its argmax
(index 1 = present) masks the segmentation outputs. Here "present" means the
(augmented) label crop has a cell pixel; the target is ``[absent, present]``.

Tiny: hand-made 0/255 labels for the dataset tests, a depth-2 UNet 3+ with
4 filters on 64 px smoke crops for the training ones.
"""
import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from keras_unets.augment import Augmenter, SegmentationDataset, cgm_targets
from keras_unets.training import read_threshold_table
from keras_unets.data import read_stack
from keras_unets.models.unet3p import CGM_OUTPUT
from keras_unets.models.layers import ClassGuidance
from keras_unets.models import get_model
from keras_unets.training.config import resolve_config
from keras_unets.training.datasets import _CenterCropTargets
from keras_unets.training import (
    compile_model,
    evaluate_run,
    load_run_model,
    train,
)

TINY = {"depth": 2}  # outputs out1..out3 + cls
HEADS = ["out1", "out2", "out3"]
NAMES = HEADS + [CGM_OUTPUT]


def _quadrant_data(n=4, size=32):
    """Labels with cells only in the top-left 8 x 8 corner; the rest membrane."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = np.zeros((n, size, size), np.uint8)
    labels[:, :8, :8] = 255
    return images, labels


# ----------------------------------------------------------------- targets
def test_cgm_targets_hand_made():
    labels = np.zeros((3, 5, 5), np.uint8)  # 0: all membrane
    labels[1, 4, 4] = 255  # 1: one cell pixel in a corner
    labels[2] = 255  # 2: all cell
    expected = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    out = cgm_targets(labels)
    assert out.dtype == np.float32 and out.shape == (3, 2)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(cgm_targets(labels[..., None]), expected)
    with pytest.raises(ValueError, match=r"Received: labels.shape=\(5, 5\)"):
        cgm_targets(labels[0])


def test_targets_agree_with_class_guidance():
    # The argmax of the target is what ClassGuidance reads: "present" keeps
    # the map, "absent" empties it.
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[1, 0, 0] = 255
    seg = np.full((2, 4, 4, 1), 0.7, np.float32)
    out = keras.ops.convert_to_numpy(ClassGuidance()([seg, cgm_targets(labels)]))
    np.testing.assert_allclose(out[0], 0.0)
    np.testing.assert_allclose(out[1], 0.7)


# ----------------------------------------------------------------- dataset
def test_dataset_cls_targets_follow_augmented_crops():
    images, labels = _quadrant_data()
    aug = Augmenter(rotation_range=90.0, horizontal_flip=True, vertical_flip=True,
                    fill_mode="constant")
    kw = dict(batch_size=4, crop=12, augmenter=aug, steps_per_epoch=3, seed=5)
    ds = SegmentationDataset(images, labels, output_names=NAMES, **kw)
    plain = SegmentationDataset(images, labels, output_names=["out1"], **kw)
    seen = set()
    for epoch in range(4):
        for index in range(3):
            x, y = ds.get_batch(index, epoch)
            assert set(y) == set(NAMES)
            cls = y[CGM_OUTPUT]
            assert cls.dtype == np.float32 and cls.shape == (4, 2)
            # present iff the augmented crop's label map has a cell pixel
            present = y["out1"].reshape(4, -1).max(axis=1)
            np.testing.assert_array_equal(cls[:, 1], present)
            np.testing.assert_array_equal(cls[:, 0], 1.0 - present)
            for head in HEADS:
                assert y[head].shape == (4, 12, 12, 1)
            # the cls target draws nothing: the rest of the batch is unchanged
            x0, y0 = plain.get_batch(index, epoch)
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y["out1"], y0["out1"])
            # a pure function of (seed, epoch, index)
            np.testing.assert_array_equal(cls, ds.get_batch(index, epoch)[1][CGM_OUTPUT])
            seen.update(present.tolist())
    assert seen == {0.0, 1.0}, "these crops must include both absent and present"


def test_dataset_cls_weights_are_per_sample():
    images, labels = _quadrant_data(n=2)
    labels[1] = 0  # an all-membrane slice: always absent
    weights = np.full(images.shape, 3.0, np.float32)
    ds = SegmentationDataset(images, labels, batch_size=2, crop=16, weight_maps=weights,
                             output_names=["out1", CGM_OUTPUT], shuffle=False, seed=1)
    x, y, w = ds[0]
    np.testing.assert_array_equal(w[CGM_OUTPUT], np.ones(2, np.float32))
    assert w["out1"].shape == (2, 16, 16) and np.all(w["out1"] == 3.0)
    np.testing.assert_array_equal(y[CGM_OUTPUT][1], [1.0, 0.0])


def test_valid_padding_crop_leaves_cls_alone():
    helper = _CenterCropTargets(None, 4)
    y = {"out1": np.zeros((2, 8, 8, 1)), CGM_OUTPUT: np.array([[0.0, 1.0], [1.0, 0.0]])}
    out = helper.crop(y)
    assert out["out1"].shape == (2, 4, 4, 1)
    np.testing.assert_array_equal(out[CGM_OUTPUT], y[CGM_OUTPUT])


# ----------------------------------------------------------------- compile
def _predict(model, x):
    """``{output name: prediction}`` (functional models return a list)."""
    pred = model.predict_on_batch(x)
    if isinstance(pred, dict):
        return pred
    return dict(zip(model.output_names, pred))


def _tiny_cgm():
    keras.utils.set_random_seed(0)
    config = resolve_config("smoke", "unet3p_ds_cgm", model_kwargs=TINY)
    model = get_model("unet3p_ds_cgm", input_shape=(32, 32, 1), **config["model_kwargs"])
    return model, config


def test_cls_loss_is_keras_bce():
    model, config = _tiny_cgm()
    compile_model(model, config, total_steps=1)
    images, labels = _quadrant_data()
    labels[2:] = 0  # two absent, two present
    ds = SegmentationDataset(images, labels, batch_size=4, output_names=list(model.output_names),
                             shuffle=False)
    x, y = ds[0]
    np.testing.assert_array_equal(y[CGM_OUTPUT][:, 1], [1.0, 1.0, 0.0, 0.0])
    res = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    p = np.asarray(_predict(model, x)[CGM_OUTPUT], np.float64)
    # BCE on probabilities, Keras clips to [eps, 1 - eps] with eps = 1e-7 and
    # averages over the 2 units and the batch:
    # -mean(t * log(p) + (1 - t) * log(1 - p)).
    t = y[CGM_OUTPUT].astype(np.float64)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    by_hand = float(-np.mean(t * np.log(pc) + (1 - t) * np.log(1 - pc)))
    assert res["cls_loss"] == pytest.approx(by_hand, rel=1e-4)
    ref = float(keras.losses.BinaryCrossentropy()(y[CGM_OUTPUT], p.astype(np.float32)))
    assert res["cls_loss"] == pytest.approx(ref, rel=1e-5)
    # total = sum of the segmentation losses and the cls loss (weights 1)
    total = sum(res[f"{n}_loss"] for n in NAMES)
    assert res["loss"] == pytest.approx(total, rel=1e-4)
    assert 0.0 <= res["cls_accuracy"] <= 1.0


def test_cgm_refuses_logits_config():
    model, config = _tiny_cgm()
    config = dict(config, from_logits=True, loss="bce_logits")
    with pytest.raises(ValueError, match="from_logits=True"):
        compile_model(model, config, total_steps=1)


def test_threshold_sweep_skips_cls_output():
    from keras_unets.training import ThresholdSweep

    model, _ = _tiny_cgm()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    labels = np.where(rng.random((2, 32, 32)) > 0.5, 255, 0).astype(np.uint8)
    for tile in (None, 32):
        sweep = ThresholdSweep(images, labels, tile=tile)
        probs = sweep.predict(model)
        assert set(probs) == set(HEADS)
        full = _predict(model, images[..., None].astype(np.float32) / 255.0)
        if tile is None:
            for name in HEADS:
                np.testing.assert_allclose(probs[name], full[name][..., 0], rtol=1e-5, atol=1e-6)
        assert "cls" not in sweep.sweep(model)


# ----------------------------------------------------------------- training
def _check_cgm_run(run, data_dir):
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["output_names"] == NAMES and cfg["main_output"] == "out1"
    assert cfg["config"]["from_logits"] is False and cfg["config"]["loss"] == "bce"
    with open(run / "history.csv") as fh:
        header = fh.readline().strip().split(",")
    assert {"cls_loss", "cls_accuracy", "out1_loss", "val_best_accuracy"} <= set(header)
    outputs = {r["output"] for r in read_threshold_table(run / "thresholds.csv")}
    assert outputs == set(HEADS) | {"mean"}, "the cls head is not swept"
    model = load_run_model(run, "best")
    assert list(model.output_names) == NAMES
    x = np.zeros((1, 64, 64, 1), np.float32)
    pred = _predict(model, x)
    assert pred[CGM_OUTPUT].shape == (1, 2) and pred["out1"].shape == (1, 64, 64, 1)
    assert np.all((pred[CGM_OUTPUT] >= 0) & (pred[CGM_OUTPUT] <= 1))
    res = evaluate_run(run, data_dir=data_dir)
    slice_shape = read_stack(data_dir / "train-labels.tif").shape[1:]
    assert res["probabilities"].shape == (1, *slice_shape) and 0.0 <= res["pixel_accuracy"] <= 1.0


def test_train_cgm_smoke(tmp_path, synthetic_isbi_dir):
    run = tmp_path / "cgm"
    r = train("unet3p_ds_cgm", profile="smoke", data_dir=synthetic_isbi_dir, out=run, epochs=1,
              val_slices="24", model_kwargs=TINY, verbose=0)
    assert r.last_epoch == 1 and r.best_epoch == 1
    assert len(r.history["cls_loss"]) == 1 and np.isfinite(r.history["cls_loss"][0])
    _check_cgm_run(run, synthetic_isbi_dir)
    # resume: last.keras brings back the cls loss with the optimizer state
    r2 = train("unet3p_ds_cgm", resume=run, data_dir=synthetic_isbi_dir, epochs=2, verbose=0)
    assert r2.epochs_run == 1 and len(r2.history["cls_loss"]) == 2
    assert np.all(np.isfinite(r2.history["cls_loss"]))


def test_cli_train_cgm_smoke(tmp_path, synthetic_isbi_dir):
    from keras_unets.cli import main

    run = tmp_path / "cli"
    res = CliRunner().invoke(main, [
        "train", "unet3p_ds_cgm", "--profile", "smoke", "--data", str(synthetic_isbi_dir),
        "--out", str(run), "--epochs", "1", "--val-slices", "24", "--set", "depth=2",
        "--verbose", "0"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["model_name"] == "unet3p_ds_cgm" and summary["last_epoch"] == 1
    _check_cgm_run(run, synthetic_isbi_dir)
