"""The experiment runners (keras_unets.report.unet, unetpp, unet3p, holdout): Table I's
half-resolution arm and the time limit each runner passes to its arms."""

import numpy as np
import pytest

from keras_unets.report import holdout, unet, unet3p, unetpp
from keras_unets.report.holdout import run_holdout
from keras_unets.report.runs import profile_settings
from keras_unets.report.unet import half_arm_kwargs, half_resolution, run_unet, upsample
from keras_unets.report.unet3p import run_unet3p
from keras_unets.report.unetpp import run_unetpp


def test_half_resolution_hand_case_and_label_set():
    img = np.array([[[0, 100, 10, 10], [200, 100, 10, 10], [255, 255, 0, 0], [255, 255, 0, 0]]],
                   dtype=np.uint8)
    half = half_resolution(img)
    # INTER_AREA at exactly 2x = mean of each 2x2 block: (0+100+200+100)/4 = 100.
    np.testing.assert_array_equal(half, [[[100, 10], [255, 0]]])
    lab = np.array([[[0, 255, 0, 0], [255, 255, 0, 255], [255, 255, 0, 0], [255, 255, 0, 0]]],
                   dtype=np.uint8)
    # block means 191.25 -> 255, 63.75 -> 0, 255, 0
    np.testing.assert_array_equal(half_resolution(lab, label=True), [[[255, 0], [255, 0]]])
    up = upsample(half, (4, 4))
    assert up.shape == (1, 4, 4) and up.dtype == np.uint8
    with pytest.raises(ValueError, match="Received: shape=\\(4, 4\\), dtype=float64"):
        half_resolution(np.zeros((4, 4)))


def test_half_arm_costs_a_third_of_each_profile():
    for profile in ("quick", "paper"):
        settings = profile_settings(profile, "unet")
        got = half_arm_kwargs(settings, (512, 512))
        assert got["epochs"] == -(-settings["epochs"] // 3)  # ceil(E / 3)
        limit = settings["time_limit_minutes"]
        assert got.get("time_limit_minutes") == (limit / 3 if limit else None)
        assert "crop" not in got or got["crop"] == 256
    # hand cases: 10 epochs, 30 min -> 4 epochs, 10 min; an 80 x 40 crop on
    # 64 x 64 half-size slices -> 40; a 64 crop on 50 x 50 slices -> 50
    assert half_arm_kwargs({"epochs": 10, "time_limit_minutes": 30, "crop": 256},
                           (512, 512)) == {"epochs": 4, "time_limit_minutes": 10.0}
    assert half_arm_kwargs({"epochs": 3, "crop": (80, 40)}, (128, 128)) == {
        "epochs": 1, "crop": 40}
    assert half_arm_kwargs({"epochs": 2, "crop": 64}, (100, 100)) == {
        "epochs": 1, "crop": 50}


def test_time_limit_reaches_every_arm_and_a_third_for_table1_half(tmp_path, synthetic_isbi_dir,
                                                                  monkeypatch):
    """Each runner passes the override to its arms; Table I's half arm gets a third."""
    calls = []

    class Stop(Exception):
        pass

    def fake_train_arm(exp_dir, arm, model_name, **kw):
        calls.append((arm, kw.get("time_limit_minutes"), kw.get("epochs")))
        if arm in ("half", "no_ds", "main", "unet"):  # the runner's last (or first holdout) arm
            raise Stop
        return {"run_dir": str(exp_dir / "runs" / arm)}

    for runner_module in (unet, unetpp, unet3p, holdout):  # each imports train_arm itself
        monkeypatch.setattr(runner_module, "train_arm", fake_train_arm)
    for runner in (run_unet, run_unetpp, run_unet3p, run_holdout):
        with pytest.raises(Stop):
            runner("quick", results=tmp_path, data_dir=synthetic_isbi_dir, log=lambda m: None,
                   time_limit_minutes=3.0)
    assert calls == [("full", 3.0, None), ("half", 1.0, 5), ("ds", 3.0, None),
                     ("no_ds", 3.0, None), ("main", 3.0, None), ("unet", 3.0, None)]
    calls.clear()
    with pytest.raises(Stop):  # no override: the profile's 5 min, a third for the half arm
        run_unet("quick", results=tmp_path, data_dir=synthetic_isbi_dir, log=lambda m: None)
    assert calls == [("full", None, None), ("half", pytest.approx(5.0 / 3), 5)]
