"""``keras-unets evaluate PRED --labels LABELS`` for two folders paired by file name.

Binary masks pooled over all pixels of images of different sizes, K-class
label maps (per-class Dice and IoU, confusion matrix), hand-checkable
counts, and the errors (unpaired stems, sizes) through the CLI.
"""
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from keras_unets.cli import main
from keras_unets.data import write_stack
from keras_unets.evaluation import evaluate_folders, is_slice_folder
from keras_unets.metrics import evaluate


def _run(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def _json(*args):
    res = _run(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _write(folder, files):
    folder.mkdir(exist_ok=True)
    for name, array in files.items():
        cv2.imwrite(str(folder / name), array)
    return folder


def _binary_pair(tmp_path):
    """Two images of different sizes with known counts.

    Labels 0/1, predictions 0/255. a (4x6): label foreground = left 3
    columns (12 px); prediction = left 2 columns (8 px), so TP 8, FN 4. b (3x5): label foreground =
    row 0 (5 px); prediction = rows 0-1 (10 px), so TP 5, FP 5.
    Pooled over the 39 pixels: TP 13, FP 5, FN 4.
    """
    la = np.zeros((4, 6), np.uint8)
    la[:, :3] = 1
    pa = np.zeros((4, 6), np.uint8)
    pa[:, :2] = 255
    lb = np.zeros((3, 5), np.uint8)
    lb[0] = 1
    pb = np.zeros((3, 5), np.uint8)
    pb[:2] = 255
    pred = _write(tmp_path / "pred", {"scan a.png": pa, "b.png": pb})
    labels = _write(tmp_path / "labels", {"scan a_mask.png": la, "b_mask.png": lb})
    return pred, labels


def test_binary_folders_of_different_sizes_pool_all_pixels(tmp_path):
    pred, labels = _binary_pair(tmp_path)
    payload = _json(pred, "--labels", labels, "--mask-suffix", "_mask", "--threshold", 127)
    tp, fp, fn, total = 8 + 5, 5, 4, 24 + 15
    assert payload["stems"] == ["b", "scan a"]
    assert payload["classes"] == 2 and payload["images"] == 2
    assert payload["pixel_accuracy"] == pytest.approx((total - fp - fn) / total)
    assert payload["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert payload["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert payload["threshold"] == 127 and payload["threshold_source"] == "given"
    assert "v_rand" not in payload  # two sizes: no ISBI scores
    # 0/255 masks: every threshold below 255 gives the same pooled accuracy; the best is 0
    best = _json(pred, "--labels", labels, "--mask-suffix", "_mask")
    assert best["best_threshold"] == 0 and best["pixel_accuracy"] == payload["pixel_accuracy"]
    assert best["threshold"] == 127 and best["threshold_source"] == "masks"
    table = _run(pred, "--labels", labels, "--mask-suffix", "_mask").output
    assert "Dice (foreground, all pixels)" in table and f"{2 * tp / (2 * tp + fp + fn):.4f}" in table


def test_masks_worse_than_background_are_scored_as_they_are(tmp_path):
    """A mask folder is not re-thresholded: 255 (all background) would score higher."""
    label = np.zeros((10, 10), np.uint8)
    label[:, :2] = 1  # 20 foreground pixels
    pred = np.zeros((10, 10), np.uint8)
    pred[:, 5:] = 255  # 50 false positives, 20 false negatives
    _write(tmp_path / "labels", {"x.png": label})
    _write(tmp_path / "pred", {"x.png": pred})
    payload = _json(tmp_path / "pred", "--labels", tmp_path / "labels")
    assert payload["threshold"] == 127 and payload["threshold_source"] == "masks"
    assert payload["pixel_accuracy"] == pytest.approx(0.3) and payload["dice"] == 0.0
    assert payload["best_threshold"] == 255 and payload["best_accuracy"] == pytest.approx(0.8)


def test_perfect_prediction_scores_one_and_probabilities_are_thresholded(tmp_path):
    rng = np.random.default_rng(0)
    labels = {f"img{i}.png": np.where(rng.random((h, w)) > 0.5, 255, 0).astype(np.uint8)
              for i, (h, w) in enumerate([(12, 9), (7, 16), (30, 30)])}
    _write(tmp_path / "labels", labels)
    _write(tmp_path / "pred", labels)
    payload = _json(tmp_path / "pred", "--labels", tmp_path / "labels")
    assert payload["pixel_accuracy"] == 1.0 and payload["dice"] == 1.0 and payload["iou"] == 1.0
    # probability maps: high where the label is foreground; the best threshold separates them
    probs = {name: np.where(lab > 0, 200, 60).astype(np.uint8) for name, lab in labels.items()}
    _write(tmp_path / "probs", probs)
    payload = _json(tmp_path / "probs", "--labels", tmp_path / "labels", "--sweep")
    assert payload["pixel_accuracy"] == 1.0 and payload["best_threshold"] == 60
    assert len(payload["sweep"]) == 256 and payload["sweep"][100] == 1.0
    assert payload["sweep"][0] < 1.0  # 60 > 0: background counted as foreground


def test_one_size_folders_add_the_isbi_scores(tmp_path):
    rng = np.random.default_rng(1)
    lab = np.where(cv2.GaussianBlur(rng.random((3, 24, 24)), (0, 0), 2.0) > 0.5, 255, 0).astype(np.uint8)
    pred = np.clip(lab.astype(int) + rng.integers(-60, 60, lab.shape), 0, 255).astype(np.uint8)
    _write(tmp_path / "labels", {f"s{i}.png": lab[i] for i in range(3)})
    _write(tmp_path / "pred", {f"s{i}.png": pred[i] for i in range(3)})
    assert not is_slice_folder(tmp_path / "pred")
    payload = _json(tmp_path / "pred", "--labels", tmp_path / "labels")
    full = evaluate(pred, lab)
    for key in ("v_rand", "v_info", "rand_error", "pixel_error", "pixel_accuracy", "best_threshold"):
        assert payload[key] == pytest.approx(full[key]), key


def test_isbi_slice_folders_keep_the_stack_evaluation(tmp_path):
    rng = np.random.default_rng(2)
    lab = np.where(rng.random((2, 10, 12)) > 0.5, 255, 0).astype(np.uint8)
    pred = rng.integers(0, 256, lab.shape, dtype=np.uint8)
    write_stack(tmp_path / "pred", pred)
    write_stack(tmp_path / "labels", lab)
    assert is_slice_folder(tmp_path / "pred")
    payload = _json(tmp_path / "pred", "--labels", tmp_path / "labels")
    assert payload["slices"] == [0, 1] and "stems" not in payload
    assert payload["dice"] == pytest.approx(evaluate(pred, lab)["dice"])  # mean of slices, as before


def test_multiclass_folders_confusion_and_per_class(tmp_path):
    # label 2x3 [[0,1,2],[0,1,2]] and 1x2 [[2,2]]; prediction [[0,1,1],[0,2,2]] and [[2,0]]
    labels = {"p.png": np.array([[0, 1, 2], [0, 1, 2]], np.uint8), "q.png": np.array([[2, 2]], np.uint8)}
    preds = {"p.png": np.array([[0, 1, 1], [0, 2, 2]], np.uint8), "q.png": np.array([[2, 0]], np.uint8)}
    _write(tmp_path / "labels", labels)
    _write(tmp_path / "pred", preds)
    payload = _json(tmp_path / "pred", "--labels", tmp_path / "labels")
    assert payload["classes"] == 3  # inferred from the labels 0..2
    assert payload["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [1, 1, 2]]
    assert payload["pixel_accuracy"] == pytest.approx(5 / 8)
    per = {c["class"]: c for c in payload["per_class"]}
    assert per[0]["dice"] == pytest.approx(2 * 2 / (2 * 2 + 1))  # TP 2, FP 1, FN 0
    assert per[1]["dice"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    assert per[2]["dice"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert per[2]["iou"] == pytest.approx(2 / 5)
    assert payload["mean_dice"] == pytest.approx((per[1]["dice"] + per[2]["dice"]) / 2)
    assert payload["dice"] == payload["mean_dice"]
    assert payload["iou"] == pytest.approx((per[1]["iou"] + per[2]["iou"]) / 2)
    # --classes 4: class 3 absent everywhere -> null
    payload = _json(tmp_path / "pred", "--labels", tmp_path / "labels", "--classes", 4)
    assert payload["per_class"][3] == {"class": 3, "dice": None, "iou": None}
    table = _run(tmp_path / "pred", "--labels", tmp_path / "labels").output
    assert "Confusion matrix" in table and "| 2 | 1 | 1 | 2 |" in table
    # the API gives the same numbers
    result, sweep = evaluate_folders(tmp_path / "pred", tmp_path / "labels")
    assert sweep is None and result["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [1, 1, 2]]


def test_multiclass_tiff_stacks_with_classes(tmp_path):
    lab = np.array([[[0, 1], [2, 2]], [[1, 1], [0, 2]]], np.uint8)
    pred = np.array([[[0, 1], [2, 1]], [[1, 1], [0, 2]]], np.uint8)
    write_stack(tmp_path / "p.tif", pred)
    write_stack(tmp_path / "l.tif", lab)
    payload = _json(tmp_path / "p.tif", "--labels", tmp_path / "l.tif", "--classes", 3)
    assert payload["confusion_matrix"] == [[2, 0, 0], [0, 3, 0], [0, 1, 2]]
    assert payload["slices"] == [0, 1] and payload["pixel_accuracy"] == pytest.approx(7 / 8)


def test_folder_errors_without_traceback(tmp_path):
    pred, labels = _binary_pair(tmp_path)
    # without the suffix nothing pairs: both sides listed
    res = _run(pred, "--labels", labels)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "scan a" in res.output and "b_mask.png" in res.output and "--mask-suffix" in res.output
    # a prediction of another size than its label
    _write(tmp_path / "pred", {"b.png": np.zeros((4, 5), np.uint8)})
    res = _run(pred, "--labels", labels, "--mask-suffix", "_mask")
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "b.png is 4x5 px" in res.output and "b_mask.png is 3x5 px" in res.output
    # a class index beyond the labels' classes
    _write(tmp_path / "mc_l", {"x.png": np.array([[0, 1, 2]], np.uint8)})
    _write(tmp_path / "mc_p", {"x.png": np.array([[0, 1, 5]], np.uint8)})
    res = _run(tmp_path / "mc_p", "--labels", tmp_path / "mc_l")
    assert res.exit_code != 0 and "x.png" in res.output and "class 5" in res.output
    # binary-only options on K classes
    res = _run(tmp_path / "mc_p", "--labels", tmp_path / "mc_l", "--threshold", 9)
    assert res.exit_code != 0 and "binary labels" in res.output
    # labels that are neither binary nor class indices
    _write(tmp_path / "odd", {"x.png": np.array([[0, 128, 255]], np.uint8)})
    res = _run(tmp_path / "mc_p", "--labels", tmp_path / "odd")
    assert res.exit_code != 0 and "128" in res.output and "--classes" in res.output
    # --mask-suffix with stacks
    write_stack(tmp_path / "p.tif", np.zeros((1, 4, 4), np.uint8))
    res = _run(tmp_path / "p.tif", "--labels", tmp_path / "p.tif", "--mask-suffix", "_m")
    assert res.exit_code == 2 and "two folders" in res.output
