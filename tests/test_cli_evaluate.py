"""Tests of ``keras-unets evaluate`` (click's CliRunner on small files)."""
import json
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from keras_unets.cli import main
from keras_unets.data import write_stack
from keras_unets.metrics import evaluate, pixel_accuracy, threshold_sweep, to_uint8


def make_volume(n=6, h=32, w=40, seed=0):
    """Labels with blob-shaped cells and a blurred, noised probability map."""
    rng = np.random.default_rng(seed)
    labels = np.stack(
        [
            np.where(cv2.GaussianBlur(rng.random((h, w)), (0, 0), 2.0) > 0.48, 255, 0)
            for _ in range(n)
        ]
    ).astype(np.uint8)
    prob = np.stack([cv2.GaussianBlur(l / 255.0, (0, 0), 1.0) for l in labels])
    prob = np.clip(prob + rng.normal(0, 0.1, prob.shape), 0, 1)
    return to_uint8(prob), labels


def run(args):
    result = CliRunner().invoke(main, ["evaluate", *map(str, args)])
    return result


def run_json(args):
    result = run([*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def assert_same_result(payload, expected):
    for key, value in expected.items():
        if isinstance(value, list):
            assert payload[key] == pytest.approx(value), key
        else:
            assert payload[key] == value, key


@pytest.fixture
def volume(tmp_path):
    pred, labels = make_volume()
    return {
        "pred": pred,
        "labels": labels,
        "pred_tif": write_stack(tmp_path / "pred.tif", pred),
        "labels_tif": write_stack(tmp_path / "labels.tif", labels),
        "pred_png": write_stack(tmp_path / "pred_png", pred),
        "labels_png": write_stack(tmp_path / "labels_png", labels),
        "tmp": tmp_path,
    }


def test_tiff_volumes_json_matches_api(volume):
    payload = run_json([volume["pred_tif"], "--labels", volume["labels_tif"]])
    expected = evaluate(volume["pred"], volume["labels"])
    assert_same_result(payload, expected)
    assert payload["slices"] == list(range(6))
    assert payload["threshold_source"] == "best"


def test_png_folders_and_mixed_formats(volume):
    expected = evaluate(volume["pred"], volume["labels"])
    for pred_path, labels_path in (
        (volume["pred_png"], volume["labels_png"]),
        (volume["pred_tif"], volume["labels_png"]),
        (volume["pred_png"], volume["labels_tif"]),
    ):
        payload = run_json([pred_path, "--labels", labels_path])
        assert_same_result(payload, expected)


def test_slices_select_labels_and_full_pred(volume):
    sel = [2, 3, 4]
    expected = evaluate(volume["pred"][sel], volume["labels"][sel])
    # PRED with as many slices as LABELS: the same slices are taken from both
    payload = run_json([volume["pred_tif"], "--labels", volume["labels_tif"], "--slices", "2-4"])
    assert_same_result(payload, expected)
    assert payload["slices"] == sel
    # PRED with exactly the selected slices: used as is
    short = write_stack(volume["tmp"] / "pred_2-4.tif", volume["pred"][sel])
    payload = run_json([short, "--labels", volume["labels_tif"], "--slices", "2-4"])
    assert_same_result(payload, expected)


def test_slices_from_png_folder_use_file_names(volume):
    # a label folder holding only slices 10.png..15.png: --slices are names
    folder = volume["tmp"] / "named"
    folder.mkdir()
    for k, image in enumerate(volume["labels"]):
        cv2.imwrite(str(folder / f"{10 + k}.png"), image)
    sel = [1, 3]
    expected = evaluate(volume["pred"][sel], volume["labels"][sel])
    short = write_stack(volume["tmp"] / "short.tif", volume["pred"][sel])
    payload = run_json([short, "--labels", folder, "--slices", "11,13"])
    assert_same_result(payload, expected)
    result = run([short, "--labels", folder, "--slices", "2,3"])
    assert result.exit_code != 0
    assert "no slice file for slices [2, 3]" in result.output and "10-15" in result.output


def test_threshold_option(volume):
    payload = run_json([volume["pred_tif"], "--labels", volume["labels_tif"], "--threshold", 100])
    assert payload["threshold"] == 100
    assert payload["threshold_source"] == "given"
    assert payload["pixel_accuracy"] == pixel_accuracy(volume["pred"], volume["labels"], 100)
    assert payload["best_threshold"] == int(np.argmax(threshold_sweep(volume["pred"], volume["labels"])))


def test_sweep_option_and_table(volume):
    payload = run_json([volume["pred_tif"], "--labels", volume["labels_tif"], "--sweep"])
    sweep = threshold_sweep(volume["pred"], volume["labels"])
    assert payload["sweep"] == sweep.tolist()
    result = run([volume["pred_tif"], "--labels", volume["labels_tif"], "--sweep"])
    assert result.exit_code == 0, result.output
    best = int(np.argmax(sweep))
    assert f"| {best} (best) | {sweep[best]:.4f} |" in result.output
    assert "| 128 |" in result.output


def test_table_output(volume):
    result = run([volume["pred_tif"], "--labels", volume["labels_tif"], "--slices", "0-5"])
    assert result.exit_code == 0, result.output
    expected = evaluate(volume["pred"], volume["labels"])
    out = result.output
    assert "Slices: 0-5 (6)" in out
    for name, key in (
        ("pixel accuracy (report)", "pixel_accuracy"),
        ("V_rand (thinned, ISBI 2013)", "v_rand"),
        ("V_info (thinned, ISBI 2013)", "v_info"),
        ("Rand error (ISBI 2012)", "rand_error"),
        ("pixel error (ISBI 2012)", "pixel_error"),
        ("Dice (cell, mean of slices)", "dice"),
        ("IoU (cell, mean of slices)", "iou"),
    ):
        line = next(l for l in out.splitlines() if l.startswith(f"| {name}"))
        assert f"| {expected[key]:.4f} |" in line, line
    assert f"pred > {expected['threshold']} (best)" in out


def test_fine_grid_option(tmp_path, volume):
    """--fine-grid adds V_rand / V_info over 0.00..1.00: here the best threshold is 0.93.

    Two cells split by a one-pixel membrane of P(cell) = 237/255 in each
    slice: every challenge threshold up to 0.9 merges them (see
    tests/test_isbi.py), 0.93 separates them exactly.
    """
    labels = np.full((2, 32, 32), 255, np.uint8)
    labels[:, :, 16] = 0
    pred = labels.copy()
    pred[:, :, 16] = 237
    args = [write_stack(tmp_path / "p.tif", pred), "--labels",
            write_stack(tmp_path / "l.tif", labels), "--fine-grid"]
    payload = run_json(args)
    assert payload["v_rand"] < 0.7 and payload["v_rand_threshold"] == 0.0
    assert payload["v_rand_fine"] == 1.0 and payload["v_rand_fine_threshold"] == 0.93
    assert payload["v_info_fine"] == pytest.approx(1.0) and payload["v_info_fine_threshold"] == 0.93
    out = run(args).output
    assert re.search(r"^\| V_rand \(0\.01 grid\) +\| 1\.0000 \| prob > 0\.93 +\|$", out, re.M), out
    assert re.search(r"^\| V_info \(0\.01 grid\) +\| 1\.0000 \| prob > 0\.93 +\|$", out, re.M), out
    # without the flag: the challenge's grid only, as before
    plain = run_json([volume["pred_tif"], "--labels", volume["labels_tif"]])
    assert not any(k.endswith("_fine") for k in plain)
    assert "0.01 grid" not in run([volume["pred_tif"], "--labels", volume["labels_tif"]]).output


def test_empty_masks_give_json_null(tmp_path):
    zeros = np.zeros((2, 8, 8), np.uint8)
    pred = write_stack(tmp_path / "p.tif", zeros)
    labels = write_stack(tmp_path / "l.tif", zeros)
    payload = run_json([pred, "--labels", labels])
    assert payload["dice"] is None and payload["iou"] is None
    assert payload["v_rand"] is None  # no cell pixel in the ground truth
    assert payload["pixel_accuracy"] == 1.0


# ----------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------
def test_missing_files(volume):
    missing = volume["tmp"] / "nope.tif"
    result = run([missing, "--labels", volume["labels_tif"]])
    assert result.exit_code != 0
    assert "nope.tif" in result.output and "no such file" in result.output
    result = run([volume["pred_tif"], "--labels", volume["tmp"] / "nolabels"])
    assert result.exit_code != 0 and "nolabels" in result.output


def test_slice_count_mismatch(volume):
    three = write_stack(volume["tmp"] / "three.tif", volume["pred"][:3])
    result = run([three, "--labels", volume["labels_tif"]])
    assert result.exit_code != 0
    assert "3 slices" in result.output and "has 6" in result.output and "--slices" in result.output
    result = run([three, "--labels", volume["labels_tif"], "--slices", "0-1"])
    assert result.exit_code != 0
    assert "PRED must have 2 slices" in result.output


def test_shape_mismatch(volume):
    wide = write_stack(volume["tmp"] / "wide.tif", np.zeros((6, 32, 41), np.uint8))
    result = run([wide, "--labels", volume["labels_tif"]])
    assert result.exit_code != 0
    assert "32x41" in result.output and "32x40" in result.output


def test_non_binary_labels(volume):
    labels = volume["labels"].copy()
    labels[0, 0, :3] = 128
    bad = write_stack(volume["tmp"] / "bad_labels.tif", labels)
    result = run([volume["pred_tif"], "--labels", bad])
    assert result.exit_code != 0
    assert "{0, 255}" in result.output and "128" in result.output
    assert "bad_labels.tif" in result.output


def test_bad_options(volume):
    args = [volume["pred_tif"], "--labels", volume["labels_tif"]]
    result = run([*args, "--sweep", "--threshold", 3])
    assert result.exit_code == 2 and "not both" in result.output
    result = run([*args, "--threshold", 300])
    assert result.exit_code == 2
    result = run([*args, "--slices", "4-2"])
    assert result.exit_code == 2 and "Reversed range" in result.output
    result = run([*args, "--slices", "5-9"])
    assert result.exit_code != 0 and "has 6 slices" in result.output


def test_float_prediction_file_is_refused(volume):
    import tifffile

    path = volume["tmp"] / "float.tif"
    tifffile.imwrite(path, volume["pred"].astype(np.float32) / 255)
    result = run([path, "--labels", volume["labels_tif"]])
    assert result.exit_code != 0
    assert "float.tif" in result.output and "to_uint8" in result.output
