"""Multi-class and own-data training pieces: dataset batches, loss, metrics, validation callback."""
import math

import keras
import numpy as np
import pytest

from keras_unets.augment import Augmenter, SegmentationDataset
from keras_unets.data.folders import from_arrays
from keras_unets.training import MulticlassValidation
from keras_unets.losses import CategoricalCEDiceLoss, categorical_ce_dice_loss
from keras_unets.metrics import class_scores, confusion_matrix, evaluate_multiclass
from keras_unets.models import build_unet


def _class_map(h, w, seed, classes=3):
    """Rectangles of classes 1..K-1 on background 0."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for k in range(1, classes):
        r, c = rng.integers(0, max(1, h // 2)), rng.integers(0, max(1, w // 2))
        mask[r:r + max(1, h // 3), c:c + max(1, w // 3)] = k
    return mask


# ---------------------------------------------------------------------------
# SegmentationDataset: lists, RGB, small images, classes
# ---------------------------------------------------------------------------


def test_list_of_equal_images_gives_the_stack_batches_bit_for_bit():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 40, 40), dtype=np.uint8)
    labels = np.where(rng.random((5, 40, 40)) > 0.5, 255, 0).astype(np.uint8)
    aug = Augmenter(rotation_range=20, horizontal_flip=True, elastic=True)
    kwargs = dict(batch_size=2, crop=24, augmenter=aug, seed=3, steps_per_epoch=3)
    stack = SegmentationDataset(images, labels, **kwargs)
    listed = SegmentationDataset(list(images), list(labels), **kwargs)
    for epoch in range(2):
        for index in range(3):
            for a, b in zip(stack.get_batch(index, epoch), listed.get_batch(index, epoch)):
                np.testing.assert_array_equal(a, b)


def test_rgb_multiclass_batches_of_variable_sizes_and_small_images():
    rng = np.random.default_rng(1)
    sizes = [(40, 56), (21, 33), (12, 70)]  # the last two are smaller than the crop on one axis
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    masks = [_class_map(h, w, i) for i, (h, w) in enumerate(sizes)]
    aug = Augmenter(rotation_range=30, zoom_range=0.2, elastic=True, elastic_sigma=4)
    ds = SegmentationDataset(images, masks, classes=3, batch_size=3, crop=32, augmenter=aug, seed=0,
                             steps_per_epoch=4)
    for index in range(4):
        x, y = ds[index]
        assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32
        assert y.shape == (3, 32, 32, 3) and y.dtype == np.float32
        np.testing.assert_array_equal(y.sum(axis=-1), 1.0)  # one-hot: warps kept class indices
        assert set(np.unique(y)) <= {0.0, 1.0}
    # without augmentation a crop is a window of the (mirror-padded) image, same window in the mask
    ds = SegmentationDataset(images, masks, classes=3, batch_size=1, crop=32, seed=2, steps_per_epoch=6)
    padded = {i: ds.images[i] for i in range(3)}
    assert padded[1].shape == (32, 33, 3) and padded[2].shape == (32, 70, 3)
    np.testing.assert_array_equal(padded[1][5:26], images[1])  # centred: 11 rows -> 5 above, 6 below
    np.testing.assert_array_equal(padded[1][4], images[1][1])  # mirrored, edge row not repeated
    for index in range(6):
        x, y = ds[index]
        crop = np.rint(x[0] * 255).astype(np.uint8)
        label = np.argmax(y[0], axis=-1)
        hits = [(i, r, c) for i, im in padded.items() for r in range(im.shape[0] - 31)
                for c in range(im.shape[1] - 31) if np.array_equal(im[r:r + 32, c:c + 32], crop)]
        assert hits
        i, r, c = hits[0]
        np.testing.assert_array_equal(label, ds.labels[i][r:r + 32, c:c + 32])


def test_dataset_rejects_bad_multiclass_input():
    images = [np.zeros((8, 8), np.uint8), np.zeros((9, 8), np.uint8)]
    masks = [np.zeros((8, 8), np.uint8), np.full((9, 8), 3, np.uint8)]
    with pytest.raises(ValueError, match="0..2 for classes=3.*value 3"):
        SegmentationDataset(images, masks, classes=3, crop=8)
    with pytest.raises(ValueError, match="0 \\(membrane\\) or 255.*classes=K"):
        SegmentationDataset(images, masks, crop=8)
    with pytest.raises(ValueError, match="batch_size=1"):
        SegmentationDataset(images, [np.zeros((8, 8), np.uint8), np.zeros((9, 8), np.uint8)], batch_size=2)
    with pytest.raises(ValueError, match="classes"):
        SegmentationDataset(images, masks, classes=300)
    with pytest.raises(ValueError, match=r"labels\[1\]"):
        SegmentationDataset(images, [masks[0], masks[0]], classes=4, crop=4)


def test_folder_dataset_feeds_the_dataset():
    rng = np.random.default_rng(2)
    ds = from_arrays([rng.integers(0, 4096, (20 + i, 30), dtype=np.uint16) for i in range(3)],
                     [_class_map(20 + i, 30, i) for i in range(3)])
    data = SegmentationDataset(ds.images, ds.masks, classes=ds.classes, crop=16, batch_size=2)
    x, y = data[0]
    assert x.shape == (2, 16, 16, 1) and y.shape == (2, 16, 16, ds.output_channels)


# ---------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------


def _golden():
    # One image of 1 x 2 pixels, K = 3 classes.
    # pixel 1: class 0, p = (0.5, 0.25, 0.25); pixel 2: class 2, p = (0.2, 0.2, 0.6).
    y = np.array([[[[1, 0, 0], [0, 0, 1]]]], np.float32)
    p = np.array([[[[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]]], np.float32)
    return y, p


def test_categorical_ce_dice_golden_value():
    y, p = _golden()
    # CE per pixel: -ln 0.5 and -ln 0.6; mean (ln 2 + ln(5/3)) / 2 = 0.601986.
    ce = (math.log(2) + math.log(5 / 3)) / 2
    # Dice_k = (2 I_k + 1) / (sum y_k + sum p_k + 1), smooth 1, over the batch:
    #   k = 0: I = 0.5, sum y = 1, sum p = 0.7  -> 2 / 2.7
    #   k = 1: I = 0,   sum y = 0, sum p = 0.45 -> 1 / 1.45
    #   k = 2: I = 0.6, sum y = 1, sum p = 0.85 -> 2.2 / 2.85
    dice = (2 / 2.7 + 1 / 1.45 + 2.2 / 2.85) / 3  # 0.734109
    assert float(CategoricalCEDiceLoss()(y, p)) == pytest.approx(ce + 1 - dice, rel=1e-5)  # 0.867877
    assert float(CategoricalCEDiceLoss(dice_weight=0)(y, p)) == pytest.approx(ce, rel=1e-5)
    assert float(CategoricalCEDiceLoss(ce_weight=0)(y, p)) == pytest.approx(1 - dice, rel=1e-5)
    per_pixel = np.asarray(categorical_ce_dice_loss(y, p))
    np.testing.assert_allclose(per_pixel, [[[math.log(2) + 1 - dice, math.log(5 / 3) + 1 - dice]]], rtol=1e-5)
    logits = np.log(p)  # softmax(log p) = p since each p sums to 1
    assert float(CategoricalCEDiceLoss(from_logits=True)(y, logits)) == pytest.approx(ce + 1 - dice, rel=1e-5)
    with pytest.raises(ValueError, match="not both 0"):
        CategoricalCEDiceLoss(ce_weight=0, dice_weight=0)


def test_categorical_ce_dice_perfect_prediction_and_save_load(tmp_path):
    y, _ = _golden()
    assert float(CategoricalCEDiceLoss()(y, y)) == pytest.approx(0.0, abs=1e-5)
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same", activation="softmax")(inputs))
    model.compile(optimizer="adam", loss=CategoricalCEDiceLoss(ce_weight=0.5, smooth=2.0))
    rng = np.random.default_rng(0)
    x = rng.random((2, 8, 8, 1)).astype(np.float32)
    target = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (2, 8, 8))]
    model.fit(x, target, epochs=1, verbose=0)
    before = model.evaluate(x, target, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, CategoricalCEDiceLoss)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, target, verbose=0) == pytest.approx(before, rel=1e-5)
    assert loaded.loss.ce_weight == 0.5 and loaded.loss.smooth == 2.0


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------


def test_multiclass_metrics_by_hand():
    true = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(pred, true, 4)
    # rows = true, columns = pred: 0->0 once, 0->1 once; 1->1 twice; 2->2 once, 2->0 once
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    dice, iou = class_scores(cm)
    # class 0: TP 1, FP 1, FN 1 -> Dice 2/4, IoU 1/3; class 1: TP 2, FP 1, FN 0 -> 4/5, 2/3
    # class 2: TP 1, FP 0, FN 1 -> 2/3, 1/2; class 3 in neither: NaN
    np.testing.assert_allclose(dice[:3], [0.5, 0.8, 2 / 3])
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0.5])
    assert math.isnan(dice[3]) and math.isnan(iou[3])
    result = evaluate_multiclass(pred, true, 4)
    assert result["pixel_accuracy"] == pytest.approx(4 / 6)
    assert result["mean_dice"] == result["dice"] == pytest.approx((0.8 + 2 / 3) / 2)  # foreground, class 3 skipped
    assert result["iou"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert result["per_class"][3] == {"class": 3, "dice": None, "iou": None}
    assert result["confusion_matrix"][0] == [1, 1, 0, 0]
    everything = evaluate_multiclass(pred, true, 4, include_background=True)
    assert everything["mean_dice"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    import json

    json.dumps(result)  # JSON-ready: no NaN, no numpy types
    assert evaluate_multiclass(np.zeros((2, 2), int), np.zeros((2, 2), int), 3)["mean_dice"] is None


def test_multiclass_metrics_invariants():
    rng = np.random.default_rng(5)
    trues = [rng.integers(0, 3, (h, w)) for h, w in ((5, 7), (9, 4), (6, 6))]
    preds = [np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 3, t.shape)) for t in trues]
    cm = confusion_matrix(preds, trues, 3)
    assert cm.sum() == sum(t.size for t in trues)
    flat = confusion_matrix(np.concatenate([p.ravel() for p in preds])[None],
                            np.concatenate([t.ravel() for t in trues])[None], 3)
    np.testing.assert_array_equal(cm, flat)  # images of any sizes pool like one long image
    perfect = evaluate_multiclass(trues, trues, 3)
    assert perfect["pixel_accuracy"] == perfect["mean_dice"] == perfect["iou"] == 1.0
    swapped = evaluate_multiclass(trues, preds, 3)  # Dice and IoU are symmetric in pred and label
    assert swapped["mean_dice"] == pytest.approx(evaluate_multiclass(preds, trues, 3)["mean_dice"])
    with pytest.raises(ValueError, match="0..2 for classes=3"):
        confusion_matrix([np.full((2, 2), 3)], [np.zeros((2, 2), int)], 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix([np.zeros((2, 3), int)], [np.zeros((2, 2), int)], 3)


# ---------------------------------------------------------------------------
# the validation callback
# ---------------------------------------------------------------------------


def test_multiclass_validation_callback_logs_and_csv(tmp_path):
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(3)
    sizes = [(16, 24), (20, 12)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    masks = [_class_map(h, w, i) for i, (h, w) in enumerate(sizes)]
    model = build_unet(filters=4, depth=2, num_classes=3, input_channels=3, dropout=0.0)
    model.compile(optimizer="adam", loss=CategoricalCEDiceLoss())
    csv_path = tmp_path / "multiclass.csv"
    callback = MulticlassValidation(images, masks, 3, csv_path=csv_path)
    data = SegmentationDataset(images, masks, classes=3, crop=16, batch_size=2, seed=0)
    history = model.fit(data, epochs=2, verbose=0, callbacks=[callback])
    expected = evaluate_multiclass(callback.predict(), masks, 3)
    logs = history.history
    assert set(logs) >= {"val_mean_dice", "val_mean_iou", "val_pixel_accuracy", "val_dice_0", "val_dice_1", "val_dice_2"}
    assert logs["val_pixel_accuracy"][-1] == pytest.approx(expected["pixel_accuracy"])
    dice_1 = expected["per_class"][1]["dice"]
    assert (math.isnan(logs["val_dice_1"][-1]) if dice_1 is None else logs["val_dice_1"][-1] == pytest.approx(dice_1))
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("epoch,pixel_accuracy,mean_dice,mean_iou,dice_0,dice_1,dice_2,iou_0")
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1"]
    # a resumed run from epoch 1 drops that row and redoes it
    resumed = MulticlassValidation(images, masks, 3, csv_path=csv_path)
    resumed.set_initial_epoch(1)
    assert [line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]] == ["0"]
    with pytest.raises(ValueError, match="one mask per image"):
        MulticlassValidation(images, masks[:1], 3)
    two = build_unet(filters=4, depth=2, num_classes=2, input_channels=3, dropout=0.0)
    with pytest.raises(ValueError, match="predicts 2 channels for classes=3"):
        callback.predict(two)
