"""Tests of keras_unets.metrics: the report's pixel accuracy and its sweep.

Three ways each: hand-derived cases (derivation in comments), invariants, and
an independent reference (a brute-force count of ``pred > t`` per threshold).
"""
import math

import numpy as np
import pytest

from keras_unets import metrics
from keras_unets.metrics import (
    EVALUATE_KEYS,
    best_threshold,
    dice_per_image,
    evaluate,
    iou_per_image,
    pixel_accuracy,
    threshold_sweep,
    to_uint8,
)


def brute_force_accuracy(pred, labels, t):
    """The report's evaluation, vectorised: binarise pred > t -> 255, compare."""
    binary = np.where(pred > t, 255, 0)
    return np.mean(binary == labels)


def random_case(rng, shape):
    pred = rng.integers(0, 256, size=shape, dtype=np.uint8)
    labels = np.where(rng.random(shape) < 0.7, 255, 0).astype(np.uint8)
    return pred, labels


# ----------------------------------------------------------------------------
# to_uint8
# ----------------------------------------------------------------------------
def test_to_uint8_hand_values():
    # round(p * 255): 0.2 * 255 = 51, 0.5 * 255 = 127.5 -> 128 (half to even),
    # 1/255 -> 1, 0.999 * 255 = 254.745 -> 255
    prob = np.array([0.0, 1 / 255, 0.2, 0.5, 0.999, 1.0])
    out = to_uint8(prob)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 1, 51, 128, 255, 255]


def test_to_uint8_keeps_shape_and_float32():
    prob = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    out = to_uint8(prob)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, np.round(prob.astype(np.float64) * 255))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([0.5, 1.2]), "max=1.2"),
        (np.array([-0.1, 0.5]), "min=-0.1"),
        (np.array([np.nan, 0.5]), "NaN"),
        (np.array(["a"]), "dtype"),
        (np.array([True, False]), "dtype"),
    ],
)
def test_to_uint8_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        to_uint8(bad)


# ----------------------------------------------------------------------------
# threshold_sweep / pixel_accuracy / best_threshold
# ----------------------------------------------------------------------------
def test_sweep_hand_case():
    # pixels: (pred, label) = (0, 0), (100, 0), (200, 255), (255, 255)
    # t = 0:   pred > 0 -> [F, T, T, T]; right: p0 (membrane kept), p2, p3 -> 3/4
    # t = 100: [F, F, T, T] -> all 4 right
    # t = 199: same as 100; t = 200: [F, F, F, T] -> 3/4; t = 255: none -> 2/4
    pred = np.array([[0, 100, 200, 255]], np.uint8)
    labels = np.array([[0, 0, 255, 255]], np.uint8)
    sweep = threshold_sweep(pred, labels)
    assert sweep.shape == (256,) and sweep.dtype == np.float64
    assert sweep[0] == 0.75
    assert sweep[100] == 1.0 and sweep[199] == 1.0
    assert sweep[200] == 0.75 and sweep[254] == 0.75
    assert sweep[255] == 0.5
    assert best_threshold(pred, labels) == (100, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 7, 5), (3, 16, 16), (31, 17)])
def test_sweep_equals_brute_force_exactly(seed, shape):
    rng = np.random.default_rng(seed)
    pred, labels = random_case(rng, shape)
    sweep = threshold_sweep(pred, labels)
    brute = np.array([brute_force_accuracy(pred, labels, t) for t in range(256)])
    # exact equality: both are integer counts divided by the pixel count
    np.testing.assert_array_equal(sweep, brute)
    for t in (0, 17, 128, 254, 255):
        assert pixel_accuracy(pred, labels, threshold=t) == brute[t]


def test_sweep_one_class_labels():
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 256, size=(2, 8, 8), dtype=np.uint8)
    for value in (0, 255):
        labels = np.full(pred.shape, value, np.uint8)
        brute = [brute_force_accuracy(pred, labels, t) for t in range(256)]
        np.testing.assert_array_equal(threshold_sweep(pred, labels), brute)


def test_sweep_invariants():
    rng = np.random.default_rng(3)
    pred, labels = random_case(rng, (2, 20, 20))
    sweep = threshold_sweep(pred, labels)
    # t = 255 predicts everything as membrane: accuracy = membrane fraction
    assert sweep[255] == np.mean(labels == 0)
    # pooled over slices = pixel-weighted mean of the per-slice sweeps
    per_slice = [threshold_sweep(p, l) for p, l in zip(pred, labels)]
    np.testing.assert_allclose(sweep, np.mean(per_slice, axis=0), rtol=0, atol=1e-15)
    # a 2-D slice is a stack of one
    np.testing.assert_array_equal(threshold_sweep(pred[0], labels[0]), per_slice[0])


def test_perfect_prediction_sweep():
    labels = np.array([[[0, 255], [255, 0]]], np.uint8)
    sweep = threshold_sweep(labels.copy(), labels)
    # labels used as a prediction: right for every t in 0..254
    assert np.all(sweep[:255] == 1.0)
    assert best_threshold(labels, labels) == (0, 1.0)


def test_best_threshold_ties_go_lowest():
    # binary prediction 0/255: every t in 0..254 gives the same accuracy
    pred = np.array([[0, 255, 255, 0]], np.uint8)
    labels = np.array([[0, 255, 0, 0]], np.uint8)
    t, acc = best_threshold(pred, labels)
    assert t == 0 and acc == 0.75
    # a plateau in the middle: 100..149 all perfect -> 100
    pred = np.array([[100, 150]], np.uint8)
    labels = np.array([[0, 255]], np.uint8)
    assert best_threshold(pred, labels) == (100, 1.0)


def test_pixel_accuracy_raw_equality():
    # threshold=None compares raw values: only 0 and 255 predictions can match
    # pixels: (0,0) right, (3,0) wrong, (255,255) right, (254,255) wrong -> 0.5
    pred = np.array([[0, 3, 255, 254]], np.uint8)
    labels = np.array([[0, 0, 255, 255]], np.uint8)
    assert pixel_accuracy(pred, labels) == 0.5
    assert pixel_accuracy(pred, labels, threshold=3) == 1.0  # 3 > 3 is False


def test_pixel_accuracy_float_integer_threshold_ok():
    pred = np.array([[0, 200]], np.uint8)
    labels = np.array([[0, 255]], np.uint8)
    assert pixel_accuracy(pred, labels, threshold=127.0) == 1.0


@pytest.mark.parametrize("threshold", [-1, 256, 0.5, "87", True])
def test_pixel_accuracy_rejects_bad_threshold(threshold):
    pred = np.zeros((1, 2, 2), np.uint8)
    with pytest.raises(ValueError, match="threshold"):
        pixel_accuracy(pred, pred, threshold=threshold)


def test_errors_name_what_was_received():
    pred = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"same \(N, H, W\) shape.*\(2, 4, 4\).*\(2, 4, 5\)"):
        threshold_sweep(pred, np.zeros((2, 4, 5), np.uint8))
    labels = np.zeros((2, 4, 4), np.uint8)
    labels[0, 0, 0] = 1
    with pytest.raises(ValueError, match=r"\{0, 255\}.*1 pixels.*values \{0, 1\}"):
        threshold_sweep(pred, labels)
    with pytest.raises(ValueError, match="to_uint8.*float32"):
        threshold_sweep(pred.astype(np.float32), np.zeros_like(pred))
    with pytest.raises(ValueError, match="shape"):
        threshold_sweep(np.zeros((1, 1, 4, 4), np.uint8), np.zeros((1, 1, 4, 4), np.uint8))


def test_labels_may_be_boolean():
    rng = np.random.default_rng(9)
    pred, labels = random_case(rng, (2, 6, 6))
    np.testing.assert_array_equal(
        threshold_sweep(pred, labels), threshold_sweep(pred, labels == 255)
    )


# ----------------------------------------------------------------------------
# Dice / IoU
# ----------------------------------------------------------------------------
def test_dice_iou_hand_cases():
    # slice 0: P = {0, 1}, T = {0}: |P&T| = 1 -> Dice 2/3, IoU 1/2
    # slice 1: P = {}, T = {}: both empty -> NaN (nnU-Net rule)
    # slice 2: P = {2}, T = {}: Dice 0, IoU 0
    # slice 3: identical -> 1
    pred = np.array(
        [[[255, 255, 0, 0]], [[0, 0, 0, 0]], [[0, 0, 200, 0]], [[0, 255, 0, 255]]], np.uint8
    )
    labels = np.array(
        [[[255, 0, 0, 0]], [[0, 0, 0, 0]], [[0, 0, 0, 0]], [[0, 255, 0, 255]]], np.uint8
    )
    dice = dice_per_image(pred, labels, threshold=127)
    iou = iou_per_image(pred, labels, threshold=127)
    np.testing.assert_allclose(dice[[0, 2, 3]], [2 / 3, 0.0, 1.0])
    np.testing.assert_allclose(iou[[0, 2, 3]], [0.5, 0.0, 1.0])
    assert math.isnan(dice[1]) and math.isnan(iou[1])


def test_dice_iou_relation_and_threshold():
    rng = np.random.default_rng(4)
    pred, labels = random_case(rng, (4, 12, 12))
    for t in (0, 90, 200):
        dice = dice_per_image(pred, labels, threshold=t)
        iou = iou_per_image(pred, labels, threshold=t)
        np.testing.assert_allclose(iou, dice / (2 - dice), rtol=1e-12)
        # independent count on one slice
        p, g = pred[1] > t, labels[1] == 255
        assert dice[1] == pytest.approx(2 * (p & g).sum() / (p.sum() + g.sum()))


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------
def test_evaluate_keys_and_threshold_choice():
    rng = np.random.default_rng(7)
    pred, labels = random_case(rng, (2, 24, 24))
    result = evaluate(pred, labels)
    assert set(EVALUATE_KEYS) <= set(result)
    sweep = threshold_sweep(pred, labels)
    assert result["best_threshold"] == int(np.argmax(sweep))
    assert result["threshold"] == result["best_threshold"]
    assert result["pixel_accuracy"] == result["best_accuracy"] == sweep.max()
    fixed = evaluate(pred, labels, threshold=200)
    assert fixed["threshold"] == 200
    assert fixed["pixel_accuracy"] == sweep[200]
    assert fixed["best_threshold"] == result["best_threshold"]
    assert fixed["dice"] == pytest.approx(np.nanmean(dice_per_image(pred, labels, 200)))
    for key in EVALUATE_KEYS:
        assert isinstance(result[key], (int, float)), key


def test_evaluate_perfect_prediction():
    labels = np.zeros((2, 16, 16), np.uint8)
    labels[:, 2:7, 2:7] = 255
    labels[:, 9:14, 3:12] = 255
    labels[1, :, 8] = 0
    result = evaluate(labels.copy(), labels)
    assert result["pixel_accuracy"] == 1.0
    assert result["v_rand"] == 1.0 and result["v_info"] == pytest.approx(1.0)
    assert result["rand_error"] == 0.0 and result["pixel_error"] == 0.0
    assert result["dice"] == 1.0 and result["iou"] == 1.0


def test_evaluate_dice_skips_empty_slices():
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[0, 2:6, 2:6] = 255
    pred = labels.copy()  # slice 1: both empty -> NaN, skipped in the mean
    result = evaluate(pred, labels, threshold=127)
    assert result["dice"] == 1.0
    assert math.isnan(result["dice_per_image"][1])


@pytest.mark.real_isbi("checks the shape and membrane share of slices 25-29")
def test_isbi_slices_report_baselines(isbi_dir):
    """On the report's test slices 25-29: label as prediction, and all-cell."""
    from keras_unets.data import read_stack

    tif = isbi_dir / "train-labels.tif"
    labels = read_stack(tif if tif.exists() else isbi_dir / "png" / "train" / "label")[25:30]
    assert labels.shape == (5, 512, 512)
    sweep = threshold_sweep(labels, labels)
    assert np.all(sweep[:255] == 1.0)
    membrane = np.mean(labels == 0)
    # "everything is cell" (pred = 255 > t for t < 255) scores the cell fraction
    all_cell = np.full_like(labels, 255)
    np.testing.assert_array_equal(threshold_sweep(all_cell, labels)[:255], 1 - membrane)
    # README: membrane is ~22 % of the training labels
    assert 0.15 < membrane < 0.30
    assert metrics.pixel_accuracy(all_cell, labels) == 1 - membrane


def test_docstring_examples():
    import doctest

    from keras_unets.metrics import multiclass, pixel

    failures = tried = 0
    for module in (metrics, pixel, multiclass):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        failures, tried = failures + result.failed, tried + result.attempted
    assert tried > 0 and failures == 0


def test_bench_loop_is_the_same_metric():
    """bench/bench_sweep.py's re-implementation of the report's loop agrees exactly."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_sweep.py"
    spec = importlib.util.spec_from_file_location("bench_sweep", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(11)
    pred, labels = random_case(rng, (2, 9, 13))
    sweep = threshold_sweep(pred, labels)
    for t in (0, 87, 200, 255):
        loop = np.mean([bench.report_loop_accuracy(p, l, t) for p, l in zip(pred, labels)])
        assert loop == pytest.approx(sweep[t], abs=1e-15)
