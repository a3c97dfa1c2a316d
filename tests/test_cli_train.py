"""CLI: ``keras-unets profiles``, ``train`` (incl. --resume) and ``predict``.

In-process via click's CliRunner; one tiny smoke training shared by the
predict tests (module-scoped fixture).
"""
import json

import numpy as np
import pytest

from click.testing import CliRunner

from keras_unets.cli import main
from keras_unets.data import read_stack, write_stack


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _json_tail(output):
    return json.loads(output[output.index("{"):])


def test_profiles_command():
    res = _invoke("profiles")
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert set(data) == {"paper", "quick", "smoke"}
    res = _invoke("profiles", "--profile", "paper", "--model", "unet3p")
    cfg = json.loads(res.output)["paper"]["unet3p"]
    assert cfg["loss"] == "bce_logits" and cfg["epochs"] == 40
    res = _invoke("profiles", "--profile", "nope")
    assert res.exit_code != 0 and "Unknown profile" in res.output


def test_train_unknown_model_lists_names():
    res = _invoke("train", "unet4", "--profile", "smoke")
    assert res.exit_code != 0
    assert "Unknown model 'unet4'" in res.output and "unet3p_ds" in res.output


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, synthetic_isbi_dir):
    run = tmp_path_factory.mktemp("cli") / "run"
    res = _invoke("train", "unet", "--profile", "smoke", "--data", synthetic_isbi_dir, "--out", run,
                  "--epochs", 1, "--val-slices", "24", "--set", "depth=2",
                  "--verbose", "0")
    assert res.exit_code == 0, res.output
    summary = _json_tail(res.output)
    assert summary["last_epoch"] == 1 and summary["val_slices"] == [24]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["command_line"][:3] == ["keras-unets", "train", "unet"] or cfg[
        "command_line"][0] == "keras-unets"
    return run


def test_train_resume_with_out(smoke_run, synthetic_isbi_dir):
    res = _invoke("train", "unet", "--data", synthetic_isbi_dir, "--out", smoke_run, "--resume",
                  "--epochs", 2, "--verbose", "0")
    assert res.exit_code == 0, res.output
    summary = _json_tail(res.output)
    assert summary["epochs_run"] == 1 and summary["last_epoch"] == 2
    res = _invoke("train", "unet", "--resume")
    assert res.exit_code != 0 and "--out" in res.output


def test_predict_tiff_and_png(smoke_run, synthetic_isbi_dir, tmp_path):
    # TIFF in -> TIFF out; the maps are what evaluate reads
    src = tmp_path / "in.tif"
    vol = read_stack(synthetic_isbi_dir / "train-volume.tif")[24:26]
    write_stack(src, vol)
    out = tmp_path / "pred"
    res = _invoke("predict", smoke_run / "best.keras", src, "--out", out, "--threshold", 100)
    assert res.exit_code == 0, res.output
    prob = read_stack(out / "probabilities.tif")
    mask = read_stack(out / "masks.tif")
    assert prob.shape == vol.shape and prob.dtype == np.uint8
    np.testing.assert_array_equal(mask, np.where(prob > 100, 255, 0))
    res = _invoke("evaluate", out / "probabilities.tif", "--labels",
                  synthetic_isbi_dir / "train-labels.tif", "--slices", "24-25")
    assert res.exit_code == 0, res.output

    # PNG folder in -> PNG folders out, with the input's slice names
    folder = tmp_path / "pngs"
    write_stack(folder / "7.png", vol[0, :64, :56])
    write_stack(folder / "9.png", vol[1, :64, :56])
    res = _invoke("predict", smoke_run / "best.keras", folder, "--out", tmp_path / "p2",
                  "--tile", 48, "--tta")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "p2" / "masks").iterdir()) == ["7.png", "9.png"]
    # default threshold: the run's best threshold from results.json
    best = json.loads((smoke_run / "results.json").read_text())["best_threshold"]
    assert _json_tail(res.output)["threshold"] == best


def test_predict_errors(smoke_run, tmp_path):
    img = tmp_path / "img.png"
    write_stack(img, np.zeros((40, 40), np.uint8))
    res = _invoke("predict", tmp_path / "missing.keras", img, "--out", tmp_path / "o")
    assert res.exit_code != 0 and "missing.keras" in res.output
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    res = _invoke("predict", bad, img, "--out", tmp_path / "o")
    assert res.exit_code != 0 and "Could not load the model in" in res.output
    res = _invoke("predict", smoke_run / "best.keras", img, "--out", tmp_path / "o",
                  "--tile", 30)
    assert res.exit_code != 0
    assert "nearest sizes that work are 28 and 32" in res.output
