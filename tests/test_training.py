"""train(): run directory, resume, validation slices, strategies.

Tiny: the smoke profile with a depth-2 U-Net (4 filters, 64 px crops) and
2 validation slices, so every train() call takes seconds on a 2-core CPU.
"""
import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_unets.training import read_threshold_table
from keras_unets.training import evaluate_run, load_run_model, train
from keras_unets.training.options import _resolve_val

TINY = {"depth": 2}


def _history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


def test_resolve_val_slices():
    train_idx, val, source = _resolve_val(None)
    assert train_idx == tuple(range(25)) and val == (25, 26, 27, 28, 29)
    assert source == "test"
    train_idx, val, source = _resolve_val("20-24")
    assert train_idx == tuple(range(20)) and val == (20, 21, 22, 23, 24)
    assert source == "holdout"
    with pytest.raises(ValueError, match="No training slices"):
        _resolve_val("0-24")


def test_bad_model_names():
    with pytest.raises(ValueError, match=r"Unknown model 'unet4'.*unetpp_ds"):
        train("unet4", profile="smoke")
    with pytest.raises(ValueError, match="Unknown profile"):
        train("unet", profile="fast")


def test_train_resume_and_evaluate(tmp_path, synthetic_isbi_dir):
    run = tmp_path / "run"
    r1 = train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=run, epochs=1,
               val_slices="20-21", model_kwargs=TINY, verbose=0,
               command_line=["keras-unets", "train", "unet"])
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "state.json", "history.csv", "thresholds.csv",
            "best.keras", "last.keras", "logs", "results.json", "accuracy.png",
            "threshold_curve.png", "threshold_curve_best.png"} <= names
    assert not [n for n in names if ".tmp-" in n], "no temporary files left"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model_name"] == "unet" and cfg["profile"] == "smoke"
    assert cfg["val_slices"] == [20, 21] and cfg["val_source"] == "holdout"
    assert cfg["train_slices"] == list(range(20)) + [22, 23, 24]
    assert cfg["test_slices"] == [25, 26, 27, 28, 29] and cfg["split"] == "report"
    assert cfg["config"]["model_kwargs"] == {"filters": 4, "dropout": 0.0, "depth": 2}
    assert cfg["versions"]["keras"] == keras.__version__
    assert cfg["versions"]["backend"] == "tensorflow"
    assert cfg["command_line"] == ["keras-unets", "train", "unet"]
    assert r1.epochs_run == 1 and r1.last_epoch == 1 and r1.best_epoch == 1
    assert r1.val_slices == (20, 21) and r1.val_source == "holdout"
    rows = read_threshold_table(run / "thresholds.csv")
    assert [r["epoch"] for r in rows] == [0]
    assert r1.best_threshold == rows[0]["best_threshold"]
    assert r1.best_accuracy == pytest.approx(rows[0]["best_accuracy"])
    assert r1.describe("output") == (
        f"1 epoch in {r1.train_seconds:.0f} s; best epoch 1: output accuracy "
        f"{rows[0]['best_accuracy']:.4f} at threshold {rows[0]['best_threshold']}")
    it1 = int(load_run_model(run, "last").optimizer.iterations.numpy())
    assert it1 == 2  # smoke: 2 steps per epoch

    # a kill after the sweep of epoch index 1 but before its checkpoint:
    # stale rows of the unfinished epoch that resume must replace
    with open(run / "history.csv", "a") as fh:
        fh.write("1,0.5,0.5,0.5,7\n")
    with open(run / "thresholds.csv", "a") as fh:
        fh.write("1,output,7,0.5," + ",".join(["0.5"] * 256) + "\n")

    with pytest.raises(ValueError, match="Cannot change 'batch_size'"):
        train("unet", resume=run, data_dir=synthetic_isbi_dir, batch_size=3, verbose=0)
    r2 = train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=2, verbose=0)
    assert r2.epochs_run == 1 and r2.last_epoch == 2
    assert _history_epochs(run) == [0, 1]
    rows = read_threshold_table(run / "thresholds.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["best_threshold"] != 7 or rows[1]["best_accuracy"] != 0.5
    assert int(load_run_model(run, "last").optimizer.iterations.numpy()) == 2 * it1
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_completed"] == 2
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["resumed"][0]["at_epoch"] == 1 and cfg["config"]["epochs"] == 2
    assert len(r2.history["loss"]) == 2
    # the wall clock carries over the resume: epoch 1 ends after epoch 0
    elapsed = r2.history["elapsed_seconds"]
    assert len(elapsed) == 2 and 0 < elapsed[0] < elapsed[1]
    # validation on held-out training slices: no blind threshold (that needs 20-24 in training)
    assert "val_blind_accuracy" not in r2.history

    # evaluate_run re-predicts the validation slices with best.keras: at the
    # run's best threshold it must reproduce the callback's number exactly.
    res = evaluate_run(run, data_dir=synthetic_isbi_dir)
    best = [r for r in rows if r["epoch"] == r2.best_epoch - 1][0]
    assert res["threshold"] == r2.best_threshold
    assert res["pixel_accuracy"] == pytest.approx(best["best_accuracy"], abs=1e-6)
    assert res["slices"] == "20-21" and res["probabilities"].dtype == np.uint8

    with pytest.raises(FileExistsError, match="resume"):
        train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=run, verbose=0)


def test_time_limit_recorded(tmp_path, synthetic_isbi_dir):
    r = train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=tmp_path / "r",
              epochs=3, val_slices="24", model_kwargs=TINY, verbose=0,
              time_limit_minutes=1e-6)
    assert r.stopped_by_time_limit and r.last_epoch == 1
    assert (tmp_path / "r" / "last.keras").exists()


def _run_subprocess(code, tmp_path, timeout=240):
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                         capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_mirrored_strategy_two_logical_cpus(tmp_path, synthetic_isbi_dir):
    stdout = _run_subprocess(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import json
        from keras_unets.training import train
        r = train("unet", profile="smoke", data_dir={str(synthetic_isbi_dir)!r}, out="run",
                  epochs=1, val_slices="24", model_kwargs={{"depth": 2}},
                  strategy="mirrored", verbose=0)
        cfg = json.load(open("run/config.json"))
        print("REPLICAS", cfg["replicas"], r.last_epoch)
    """, tmp_path)
    assert "REPLICAS 2 1" in stdout


def test_mirrored_needs_tensorflow(tmp_path, synthetic_isbi_dir):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    code = f"""
from keras_unets.training import train
try:
    train("unet", profile="smoke", data_dir={str(synthetic_isbi_dir)!r}, out="run",
          strategy="mirrored", verbose=0)
except ValueError as e:
    print("ERR", e)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert "needs the TensorFlow backend" in out.stdout, out.stderr[-2000:]


def test_mixed_precision_float32_outputs(tmp_path, synthetic_isbi_dir):
    r = train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=tmp_path / "mp",
              epochs=1, val_slices="24", model_kwargs=TINY, verbose=0,
              mixed_precision=True)
    assert keras.config.dtype_policy().name == "float32", "global policy restored"
    model = load_run_model(r.run_dir, "last")
    assert model.get_layer("enc0_conv1").dtype_policy.name == "mixed_float16"
    assert model.outputs[0].dtype == "float32"
    assert 0.0 < r.best_accuracy <= 1.0


def test_resume_reads_a_config_with_retired_keys_when_off(tmp_path, synthetic_isbi_dir):
    # run records written before ema_momentum / lr_warmup_fraction were removed
    run = tmp_path / "old"
    train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=run, epochs=1,
          val_slices="24", model_kwargs=TINY, verbose=0)
    meta = json.loads((run / "config.json").read_text())
    meta["config"].update({"ema_momentum": None, "lr_warmup_fraction": 0.0})
    (run / "config.json").write_text(json.dumps(meta))
    assert train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=2, verbose=0).last_epoch == 2
    assert "ema_momentum" not in json.loads((run / "config.json").read_text())["config"]

    meta = json.loads((run / "config.json").read_text())
    meta["config"]["ema_momentum"] = 0.99
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"config\.json sets ema_momentum=0\.99, an option "
                                         r"this version of keras-unets no longer has"):
        train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=3, verbose=0)
    assert json.loads((run / "state.json").read_text())["epochs_completed"] == 2
