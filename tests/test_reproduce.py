"""The reproduction pipeline: writers, figures, profile choice, and a
smoke run of every experiment through to every table and figure file.

The smoke run trains the ``smoke`` profile (tiny models, a few steps) on a
small data folder in the ISBI 2012 layout (30 synthetic labelled slices
cropped to 128 x 128 and written to a temporary folder) so the whole pipeline takes about a minute
on 2 CPU cores.
"""
import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_unets import reproduce as rep

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    path = Path(path)
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------
def test_fmt_and_format_seconds_hand_values():
    assert rep.fmt(0.91891) == "0.9189"
    assert rep.fmt(0.91895, 3) == "0.919"
    assert rep.fmt(31030593) == "31,030,593"
    assert rep.fmt(np.int64(7)) == "7"
    assert rep.fmt(None) == "–" and rep.fmt(float("nan")) == "–"
    assert rep.fmt(True) == "yes"
    assert rep.format_seconds(4.24) == "4.2 s"
    assert rep.format_seconds(95) == "1 min 35 s"
    assert rep.format_seconds(3725) == "1 h 02 min"  # 62 min 5 s
    assert rep.format_seconds(None) == "–"


def test_markdown_table_layout_and_escaping():
    text = rep.markdown_table(["method", "acc"], [["a|b", 0.5], ["c", None]])
    assert text.splitlines() == [
        "| method | acc |",
        "| --- | --- |",
        "| a\\|b | 0.5000 |",
        "| c | – |",
    ]
    with pytest.raises(ValueError, match=r"Received: row lengths \[1\]"):
        rep.markdown_table(["a", "b"], [["only one"]])


def test_write_experiment_writes_three_files_atomically(tmp_path):
    prov = rep.provenance("keras-unets reproduce unet --profile smoke")
    metrics = {"x": np.float32(0.5), "arr": np.arange(3), "nan": float("nan"), "p": tmp_path}
    rep.write_experiment(tmp_path / "exp", metrics=metrics, table_md="# T\n", prov=prov)
    m = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    assert m["x"] == 0.5 and m["arr"] == [0, 1, 2] and m["nan"] is None
    assert m["provenance"]["command"] == "keras-unets reproduce unet --profile smoke"
    table = (tmp_path / "exp" / "table.md").read_text()
    assert table.startswith("# T\n") and "keras-unets reproduce unet --profile smoke" in table
    assert json.loads((tmp_path / "exp" / "provenance.json").read_text())["versions"]["numpy"]
    assert not [p for p in (tmp_path / "exp").iterdir() if ".tmp-" in p.name]


def test_provenance_record():
    prov = rep.provenance("cmd")
    v, m = prov["versions"], prov["machine"]
    assert v["python"].count(".") == 2 and v["numpy"] == np.__version__
    assert v["keras_backend"] in ("tensorflow", "jax", "torch", "numpy")
    assert m["cpu_count"] == os.cpu_count()
    assert f"{os.cpu_count()}-core CPU" in m["description"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["date_utc"])
    commit = prov["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)


def test_provenance_commit_named_by_the_variable_wins_over_git(monkeypatch):
    """A device copy of the tree may carry an older .git (the first lease's did):
    the commit the caller names is recorded, and no dirty flag about another commit."""
    monkeypatch.setenv("KERAS_UNETS_GIT_COMMIT", "5350ca3b0d5d")
    prov = rep.provenance("cmd")
    assert prov["git_commit"] == "5350ca3b0d5d" and prov["git_dirty"] is None


# ---------------------------------------------------------------------------
# Profile choice
# ---------------------------------------------------------------------------
def _fake_nvidia_smi(folder, output, rc=0):
    exe = Path(folder) / "nvidia-smi"
    echo = "".join(f"echo '{line}'\n" for line in output.splitlines())  # shell builtins only
    exe.write_text(f"#!/bin/sh\n{echo}exit {rc}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_default_profile_paper_with_gpu_quick_without(tmp_path, monkeypatch):
    monkeypatch.delenv("PROFILE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    assert rep.detect_gpu() is None
    assert rep.default_profile()[0] == "quick"

    _fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)")
    assert rep.detect_gpu() == "NVIDIA H100 80GB HBM3"
    profile, reason = rep.default_profile()
    assert profile == "paper" and "H100" in reason

    _fake_nvidia_smi(tmp_path, "GPU 0: A (UUID: x)\nGPU 1: A (UUID: y)")
    assert rep.detect_gpu() == "2 x A"

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # GPUs hidden
    assert rep.default_profile()[0] == "quick"

    monkeypatch.setenv("PROFILE", "smoke")  # explicit choice wins
    assert rep.default_profile() == ("smoke", "PROFILE=smoke")
    monkeypatch.setenv("PROFILE", "fast")
    with pytest.raises(ValueError, match="Received: profile='fast'"):
        rep.default_profile()


def test_failing_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    _fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate", rc=9)
    assert rep.detect_gpu() is None


# ---------------------------------------------------------------------------
# Resizing for Table I
# ---------------------------------------------------------------------------
def test_half_resolution_hand_case_and_label_set():
    img = np.array([[[0, 100, 10, 10], [200, 100, 10, 10], [255, 255, 0, 0], [255, 255, 0, 0]]],
                   dtype=np.uint8)
    half = rep.half_resolution(img)
    # INTER_AREA at exactly 2x = mean of each 2x2 block: (0+100+200+100)/4 = 100.
    np.testing.assert_array_equal(half, [[[100, 10], [255, 0]]])
    lab = np.array([[[0, 255, 0, 0], [255, 255, 0, 255], [255, 255, 0, 0], [255, 255, 0, 0]]],
                   dtype=np.uint8)
    # block means 191.25 -> 255, 63.75 -> 0, 255, 0
    np.testing.assert_array_equal(rep.half_resolution(lab, label=True), [[[255, 0], [255, 0]]])
    up = rep.upsample(half, (4, 4))
    assert up.shape == (1, 4, 4) and up.dtype == np.uint8
    with pytest.raises(ValueError, match="Received: shape=\\(4, 4\\), dtype=float64"):
        rep.half_resolution(np.zeros((4, 4)))


def test_half_arm_costs_a_third_of_each_profile():
    for profile in ("quick", "paper"):
        settings = rep.profile_settings(profile, "unet")
        got = rep.half_arm_kwargs(settings, (512, 512))
        assert got["epochs"] == -(-settings["epochs"] // 3)  # ceil(E / 3)
        limit = settings["time_limit_minutes"]
        assert got.get("time_limit_minutes") == (limit / 3 if limit else None)
        assert "crop" not in got or got["crop"] == 256
    # hand cases: 10 epochs, 30 min -> 4 epochs, 10 min; an 80 x 40 crop on
    # 64 x 64 half-size slices -> 40; a 64 crop on 50 x 50 slices -> 50
    assert rep.half_arm_kwargs({"epochs": 10, "time_limit_minutes": 30, "crop": 256},
                               (512, 512)) == {"epochs": 4, "time_limit_minutes": 10.0}
    assert rep.half_arm_kwargs({"epochs": 3, "crop": (80, 40)}, (128, 128)) == {
        "epochs": 1, "crop": 40}
    assert rep.half_arm_kwargs({"epochs": 2, "crop": 64}, (100, 100)) == {
        "epochs": 1, "crop": 50}


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------
def test_figures_are_pngs_and_check_their_input(tmp_path):
    t = np.arange(256)
    curve = 0.78 + 0.14 * np.exp(-((t - 90) / 60.0) ** 2)
    assert _is_png(rep.plot_threshold_curve(curve, tmp_path / "f10.png", report_threshold=87))
    assert _is_png(rep.plot_epoch_curves({"a": [0.8, 0.9, 0.85], "b": [0.7, 0.75, 0.8]},
                                         tmp_path / "f11.png", reference=(0.9189, "report")))
    assert _is_png(rep.plot_pruning(["L1", "L2"], [0.85, 0.9], [0.01, 0.02],
                                    tmp_path / "prune.png", parameters=[100961, 511105]))
    with pytest.raises(ValueError, match=r"Received: shape=\(10,\)"):
        rep.plot_threshold_curve(np.zeros(10), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="same length"):
        rep.plot_pruning(["L1"], [0.8, 0.9], [0.1], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def _fake_experiment(root, exp, metrics, figures):
    """``root/quick/exp`` with ``metrics`` and a placeholder for each listed figure."""
    d = root / "quick" / exp
    (d / "figures").mkdir(parents=True)
    metrics = {**metrics, "experiment": exp, "figures": figures}
    (d / "metrics.json").write_text(json.dumps(metrics))
    for f in figures:
        (d / f).write_bytes(b"placeholder")
    return d


def test_redraw_figures_from_metrics_only(tmp_path):
    """What metrics.json keeps is enough; only listed figures are replaced."""
    curve = [0.90, 0.92, None, 0.91]  # None: a NaN written by json
    u3 = _fake_experiment(tmp_path, "unet3p", {"history": {"val_best_accuracy": curve},
                                               "summary": [{"accuracy_as_report": 0.92}]},
                          ["figures/fig13_test_accuracy_per_epoch.png"])
    # Fig. 10 cannot be redrawn without its 20-24 curve (older results): it stays
    unet = _fake_experiment(tmp_path, "unet", {"history": {"val_best_accuracy": curve,
                                                           "acc": [0.8, 0.85, 0.86, 0.87]},
                                               "threshold_curve_25_29": [0.9] * 256},
                            ["figures/fig10_threshold.png", "figures/fig11_accuracy_per_epoch.png"])
    # a row without a stored curve (older results) draws nothing, and the
    # figure metrics.json does not list is not created
    ho = _fake_experiment(tmp_path, "holdout", {"summary": [{"network": "U-Net"}]}, [])
    before = json.loads((u3 / "metrics.json").read_text())
    log = []
    paths = rep.redraw_figures("quick", results=tmp_path, command="pytest redraw", log=log.append)
    assert sorted(paths) == [unet / "figures/fig11_accuracy_per_epoch.png",
                             u3 / "figures/fig13_test_accuracy_per_epoch.png"]
    assert all(_is_png(p) for p in paths)
    assert (unet / "figures/fig10_threshold.png").read_bytes() == b"placeholder"
    assert not (ho / "figures" / Path(rep.HOLDOUT_FIGURE).name).exists()
    after = json.loads((u3 / "metrics.json").read_text())
    stamp = after.pop("figures_redrawn")
    assert after == before  # the numbers are not touched
    assert stamp["command"] == "pytest redraw" and re.match(r"\d{4}-\d\d-\d\dT", stamp["date_utc"])
    assert "figures_redrawn" not in json.loads((ho / "metrics.json").read_text())
    assert "[holdout] redrew nothing (no figure it can draw)" in log
    assert not list(u3.glob(".redraw-*"))  # the temporary folder is gone


def test_redraw_figures_errors_name_the_folder_and_write_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No metrics\.json under .*quick/\{unet,unetpp,"
                       r"unet3p,holdout\}: nothing to redraw\. Run `keras-unets reproduce all"):
        rep.redraw_figures("quick", results=tmp_path)
    u3 = _fake_experiment(tmp_path, "unet3p", {"history": {"val_best_accuracy": [0.9, 0.91]}},
                          ["figures/fig13_test_accuracy_per_epoch.png"])
    (tmp_path / "quick" / "unetpp").mkdir()
    (tmp_path / "quick" / "unetpp" / "metrics.json").write_text('{"experiment": "unetpp", ')
    with pytest.raises(ValueError, match=r"Cannot read .*unetpp/metrics\.json \(JSONDecodeError: "
                       r".*nothing was redrawn\. Restore it"):
        rep.redraw_figures("quick", results=tmp_path)
    # read before anything is written: the readable experiment is untouched too
    assert (u3 / "figures/fig13_test_accuracy_per_epoch.png").read_bytes() == b"placeholder"
    with pytest.raises(ValueError, match="Unknown profile"):
        rep.redraw_figures("fast", results=tmp_path)


def test_history_column_choice():
    hist = {"loss": [1.0], "out1_acc": [0.7], "out4_acc": [0.8], "val_best_accuracy": [0.9]}
    assert rep._train_accuracy(hist, "out4") == ("out4_acc", [0.8])
    assert rep._train_accuracy({"accuracy": [0.5], "val_accuracy": [0.6]}) == ("accuracy", [0.5])
    assert rep._train_accuracy({"acc": [0.5], "val_acc": [0.6]}) == ("acc", [0.5])
    assert rep._train_accuracy({"loss": [1.0]}) == (None, None)


# ---------------------------------------------------------------------------
# Resumability of a training arm (train() replaced by a recorder)
# ---------------------------------------------------------------------------
@pytest.fixture
def train_calls(monkeypatch):
    """``keras_unets.training.train`` replaced by a recorder: the list of its calls."""
    from keras_unets import training

    calls = []

    class Result:
        last_epoch, best_epoch, best_threshold, best_accuracy = 2, 2, 120, 0.9
        train_seconds, stopped_by_time_limit = 5.0, False
        val_slices, val_source = (25, 26, 27, 28, 29), "test"

    def fake_train(model_name, **kw):
        calls.append((model_name, kw))
        return Result()

    monkeypatch.setattr(training, "train", fake_train, raising=False)
    return calls


def test_train_arm_reuses_finished_and_resumes_interrupted(tmp_path, train_calls):
    calls = train_calls
    exp = tmp_path / "exp"
    first = rep.train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None, epochs=2)
    assert calls[-1][1]["resume"] is None and calls[-1][1]["epochs"] == 2
    assert first["train_seconds"] == 5.0 and (exp / "runs" / "a" / "DONE.json").exists()
    # finished: reused without calling train again
    assert rep.train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None) == first
    assert len(calls) == 1
    # interrupted (a completed epoch but no DONE marker): resumed from its run directory
    run_b = exp / "runs" / "b"
    run_b.mkdir(parents=True)
    (run_b / "state.json").write_text('{"epochs_completed": 1}')
    rep.train_arm(exp, "b", "unetpp", profile="smoke", log=lambda m: None)
    assert calls[-1][0] == "unetpp" and calls[-1][1]["resume"] == run_b


def _fake_run_config(run_dir, seed):
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"model_name": "unet3p",
                                                     "config": {"seed": seed}}))


def test_train_arm_passes_the_seed_and_refuses_a_run_of_another_seed(tmp_path, train_calls):
    exp = tmp_path / "exp"
    rep.train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None, seed=7)
    assert train_calls[-1][1]["seed"] == 7
    rep.train_arm(exp, "b", "unet", profile="smoke", log=lambda m: None)
    assert "seed" not in train_calls[-1][1]  # None: the profile's seed
    # an interrupted run of seed 0 (the smoke profile's): resumed without a seed argument
    _fake_run_config(exp / "runs" / "c", 0)
    (exp / "runs" / "c" / "state.json").write_text('{"epochs_completed": 1}')
    rep.train_arm(exp, "c", "unet3p", profile="smoke", log=lambda m: None)
    assert train_calls[-1][1]["resume"] == exp / "runs" / "c" and "seed" not in train_calls[-1][1]
    n = len(train_calls)
    # ... but not with seed 3: refused before train() is called, nothing written
    before = sorted(p.name for p in (exp / "runs" / "c").iterdir())
    with pytest.raises(rep.SeedMismatchError,
                       match=r"runs/c was trained with seed 0, but seed 3 was asked for.*"
                             r"results/seed-3 of --seed 3"):
        rep.train_arm(exp, "c", "unet3p", profile="smoke", log=lambda m: None, seed=3)
    # a finished run of seed 7 is not reused for the profile's seed 0 either
    (exp / "runs" / "a" / "config.json").write_text(json.dumps({"config": {"seed": 7}}))
    with pytest.raises(rep.SeedMismatchError, match="seed 7, but seed 0 was asked for"):
        rep.train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None)
    assert len(train_calls) == n and sorted(p.name for p in (exp / "runs" / "c").iterdir()) == before
    assert rep.train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None,
                         seed=7)["best_accuracy"] == 0.9  # same seed: reused
    assert len(train_calls) == n


def _fake_finished_run(run_dir, *, seed=0, time_limit_minutes=None):
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(
        {"model_name": "unet3p",
         "config": {"seed": seed, "time_limit_minutes": time_limit_minutes}}))
    (run_dir / "DONE.json").write_text(json.dumps({"arm": run_dir.name, "best_accuracy": 0.9}))


def test_train_arm_time_limit_passed_and_a_finished_run_of_another_limit_refused(
        tmp_path, train_calls):
    exp = tmp_path / "exp"
    quiet = {"profile": "smoke", "log": lambda m: None}
    rep.train_arm(exp, "a", "unet", time_limit_minutes=2.5, **quiet)
    assert train_calls[-1][1]["time_limit_minutes"] == 2.5
    rep.train_arm(exp, "b", "unet", **quiet)
    assert "time_limit_minutes" not in train_calls[-1][1]  # the profile's
    n = len(train_calls)
    # finished runs: the smoke profile's limit is 5 min
    _fake_finished_run(exp / "runs" / "c", time_limit_minutes=5.0)
    assert rep.train_arm(exp, "c", "unet3p", **quiet)["best_accuracy"] == 0.9
    assert rep.train_arm(exp, "c", "unet3p", time_limit_minutes=5, **quiet)["arm"] == "c"
    with pytest.raises(rep.TimeLimitMismatchError,
                       match=r"runs/c is a finished run trained with a time limit of 5 min, "
                             r"but a time limit of 2 min was asked for"):
        rep.train_arm(exp, "c", "unet3p", time_limit_minutes=2, **quiet)
    _fake_finished_run(exp / "runs" / "d", time_limit_minutes=None)  # trained without a limit
    with pytest.raises(rep.RunMismatchError,
                       match="trained with no time limit, but a time limit of 5 min"):
        rep.train_arm(exp, "d", "unet3p", **quiet)
    assert len(train_calls) == n  # refused or reused: train() never called
    assert sorted(p.name for p in (exp / "runs" / "c").iterdir()) == ["DONE.json", "config.json"]
    # an interrupted run (no DONE.json) is resumed under the new limit
    _fake_run_config(exp / "runs" / "e", 0)
    (exp / "runs" / "e" / "state.json").write_text('{"epochs_completed": 1}')
    rep.train_arm(exp, "e", "unet3p", time_limit_minutes=1.5, **quiet)
    assert train_calls[-1][1]["resume"] == exp / "runs" / "e"
    assert train_calls[-1][1]["time_limit_minutes"] == 1.5


def test_time_limit_reaches_every_arm_and_a_third_for_table1_half(tmp_path,
                                                                   synthetic_isbi_dir,
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

    monkeypatch.setattr(rep, "train_arm", fake_train_arm)
    for runner in (rep.run_unet, rep.run_unetpp, rep.run_unet3p, rep.run_holdout):
        with pytest.raises(Stop):
            runner("quick", results=tmp_path, data_dir=synthetic_isbi_dir,
                   log=lambda m: None, time_limit_minutes=3.0)
    assert calls == [("full", 3.0, None), ("half", 1.0, 10), ("ds", 3.0, None),
                     ("no_ds", 3.0, None), ("main", 3.0, None), ("unet", 3.0, None)]
    calls.clear()
    with pytest.raises(Stop):  # no override: the profile's 30 min, and 10 for the half arm
        rep.run_unet("quick", results=tmp_path, data_dir=synthetic_isbi_dir,
                     log=lambda m: None)
    assert calls == [("full", None, None), ("half", 10.0, 10)]


def test_bad_time_limits_and_the_stopped_note(tmp_path):
    assert rep.check_time_limit(None) is None and rep.check_time_limit(2) == 2.0
    for bad in (0, -1, float("nan"), float("inf"), True, "soon", "3"):
        with pytest.raises(ValueError, match=f"positive number of minutes.*received {bad!r}"):
            rep.reproduce(["unet"], "smoke", results=tmp_path, time_limit_minutes=bad,
                          log=lambda _: None)
    assert list(tmp_path.iterdir()) == []
    assert rep._stopped_note({"stopped_by_time_limit": False, "time_limit_minutes": 3}) == ""
    assert rep._stopped_note({"stopped_by_time_limit": True}) == " (time limit)"
    assert rep._stopped_note({"stopped_by_time_limit": True,
                              "time_limit_minutes": 2.5}) == " (time limit of 2.5 min)"


def test_fine_v_rand_cell_and_rows_evaluated_before_it():
    assert rep._fine_cell({"v_rand_fine": 0.98081, "v_rand_fine_threshold": 0.96}) == \
        "0.9808 (th=0.96)"
    # metrics.json written before the column existed, and a slice stack with no cell pixel
    assert rep._fine_cell({"v_rand": 0.9}) == "–"
    assert rep._fine_cell({"v_rand_fine": None, "v_rand_fine_threshold": None}) == "–"


def test_seed_results_root_and_bad_seeds(tmp_path):
    assert rep.default_results() == "results"
    assert rep.default_results(3) == "results/seed-3"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"non-negative integer; received {bad!r}"):
            rep.reproduce(["unet"], "smoke", results=tmp_path, seed=bad, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_summary_of_a_seed_folder_names_its_seed(tmp_path):
    assert rep.results_seed(rep.default_results(3)) == 3
    assert rep.results_seed("results") is None
    assert rep.results_seed(tmp_path / "seed-x") is None
    for root, seed_arg, shown in ((tmp_path / "results", "", "results/quick"),
                                  (tmp_path / "results" / "seed-3", " SEED=3",
                                   "results/seed-3/quick")):
        (root / "quick").mkdir(parents=True)
        text = rep.write_summary("quick", results=root).read_text()
        assert text.startswith("# U-Net School, reproduced (quick profile"
                               + (", seed 3)" if seed_arg else ")"))
        assert f"every `make reproduce-*{seed_arg}` target from `{shown}/*/metrics.json`" in text
        missing = re.search(r"^Not run yet: (.*)$", text, re.M).group(1)
        assert missing == ", ".join(f"{e} (`make reproduce-{e} PROFILE=quick{seed_arg}`)"
                                    for e in ("unet", "unetpp", "unet3p")) + "."


def _fake_metrics(folder, summary):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"summary": summary}))


def test_seed_spread_hand_values_and_summary_section(tmp_path):
    _fake_metrics(tmp_path / "quick" / "holdout", [
        {"network": "UNet 3+", "accuracy": 0.92, "tta_accuracy": 0.925, "epochs": 14,
         "train_seconds": 1800.2, "stopped_by_time_limit": True, "time_limit_minutes": 30.0,
         "v_rand_fine": 0.97},
        {"network": "U-Net", "accuracy": 0.93, "tta_accuracy": 0.931, "epochs": 9,
         "train_seconds": 1790.0, "stopped_by_time_limit": True}])
    _fake_metrics(tmp_path / "seed-1" / "quick" / "holdout", [
        {"network": "UNet 3+", "accuracy": 0.926, "tta_accuracy": None, "epochs": 30,
         "train_seconds": 928.3, "stopped_by_time_limit": False, "v_rand_fine": 0.975}])
    _fake_metrics(tmp_path / "seed-12" / "quick" / "unet3p", [
        {"network": "UNet 3+", "accuracy_as_report": 0.93, "accuracy_blind": 0.929}])
    _fake_metrics(tmp_path / "seed-2" / "quick" / "holdout", [
        {"network": "UNet 3+", "accuracy": 0.923}])
    _fake_metrics(tmp_path / "seed-x" / "quick" / "holdout", [  # not a seed folder
        {"network": "UNet 3+", "accuracy": 0.5}])
    _fake_metrics(tmp_path / "seed-3" / "paper" / "holdout", [  # another profile
        {"network": "UNet 3+", "accuracy": 0.5}])
    roots = rep.seed_roots("quick", tmp_path)
    assert list(roots) == [0, 1, 2, 12] and roots[12] == tmp_path / "seed-12" / "quick"
    seeds, rows = rep.seed_spread("quick", tmp_path)
    assert seeds == [0, 1, 2, 12]
    # U-Net (one seed) and the TTA measure (one seed) and the main run (one seed) are left out
    assert len(rows) == 2
    network, measure, *per_seed, mean, spread = rows[0]
    assert (network, measure) == ("UNet 3+", "hold-out")
    assert per_seed == [0.92, 0.926, 0.923, None]
    assert mean == pytest.approx(0.923, abs=1e-12) and spread == "0.00600"
    # the fine-grid V_rand of the hold-out rows, after the accuracies (seed 2 has none)
    network, measure, *per_seed, mean, spread = rows[1]
    assert (network, measure) == ("UNet 3+", "hold-out V_rand, 0.01 grid")
    assert per_seed == [0.97, 0.975, None, None]
    assert mean == pytest.approx(0.9725, abs=1e-12) and spread == "0.00500"
    text = "\n".join(rep.seed_spread_section("quick", tmp_path))
    assert "## Seed spread (not in the report)" in text
    assert re.search(r"\| UNet 3\+ \| hold-out \| 0\.9200 \| 0\.9260 \| 0\.9230 \| – \| "
                     r"0\.9230 \| 0\.00600 \|", text), text
    assert "| network | measure | seed 0 | seed 1 | seed 2 | seed 12 | mean | max - min |" in text
    # how each seed trained: only UNet 3+'s hold-out has two seeds with a record
    assert rep.seed_training("quick", tmp_path) == ([0, 1, 2, 12], [
        ["UNet 3+", "hold-out", "14 epochs, 30 min 00 s (time limit of 30 min)",
         "30 epochs, 15 min 28 s", None, None]])
    assert ("| UNet 3+ | hold-out | 14 epochs, 30 min 00 s (time limit of 30 min) | "
            "30 epochs, 15 min 28 s | – | – |") in text
    assert "depends on the machine's speed" in text
    # a seed folder's own summary has no spread (no seed folders under it)
    assert rep.seed_spread_section("quick", tmp_path / "seed-1") == []


def test_cli_seed_goes_to_results_seed_n_and_a_mismatch_is_an_error(tmp_path,
                                                                     synthetic_isbi_dir):
    """--seed N without --results uses results/seed-N; a run there of another seed is refused."""
    run = tmp_path / "results" / "seed-5" / "smoke" / "holdout" / "runs" / "unet3p"
    _fake_run_config(run, 9)
    env = dict(os.environ, ISBI2012_DIR=str(synthetic_isbi_dir))
    cli = [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce"]
    out = subprocess.run([*cli, "holdout", "--profile", "smoke", "--networks", "unet3p",
                          "--seed", "5"], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert ("results/seed-5/smoke/holdout/runs/unet3p was trained with seed 9, "
            "but seed 5 was asked for") in out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    out = subprocess.run([*cli, "unet", "--seed", "-2"], capture_output=True, text=True,
                         env=env, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "Invalid value for '--seed'" in out.stderr


def test_cli_time_limit_mismatch_is_an_error_and_bad_limits_a_usage_error(
        tmp_path, synthetic_isbi_dir):
    run = tmp_path / "results" / "smoke" / "unet3p" / "runs" / "main"
    _fake_finished_run(run, time_limit_minutes=5.0)
    env = dict(os.environ, ISBI2012_DIR=str(synthetic_isbi_dir))
    cli = [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce"]
    out = subprocess.run([*cli, "unet3p", "--profile", "smoke", "--time-limit", "0.5"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert ("results/smoke/unet3p/runs/main is a finished run trained with a time limit of "
            "5 min, but a time limit of 0.5 min was asked for") in out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in run.iterdir()) == ["DONE.json", "config.json"]
    for bad in ("0", "-3", "soon"):
        out = subprocess.run([*cli, "unet", "--time-limit", bad], capture_output=True,
                             text=True, env=env, timeout=120, cwd=tmp_path)
        assert out.returncode == 2 and "Invalid value for '--time-limit'" in out.stderr, bad


# ---------------------------------------------------------------------------
# Command line: missing data
# ---------------------------------------------------------------------------
def test_cli_without_data_says_where_to_put_it(tmp_path):
    env = dict(os.environ, ISBI2012_DIR=str(tmp_path / "nowhere"), PROFILE="smoke")
    out = subprocess.run(
        [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce", "unet",
         "--results", str(tmp_path / "results")],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "profile: smoke (PROFILE=smoke)" in out.stdout
    assert "ISBI 2012 data not found" in out.stderr and "nowhere" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "results" / "smoke" / "unet").exists()


# ---------------------------------------------------------------------------
# Smoke run of the whole pipeline
# ---------------------------------------------------------------------------
FIGURES = {
    "unet": ["figures/fig10_threshold.png", "figures/fig11_accuracy_per_epoch.png"],
    "unetpp": ["figures/fig12_training_accuracy.png", "figures/unetpp_pruning.png",
               "figures/unetpp_test_accuracy_per_epoch.png"],
    "unet3p": ["figures/fig13_test_accuracy_per_epoch.png"],
    "holdout": [rep.HOLDOUT_FIGURE],
}
SMOKE_SIZE = 128  # the 30 labelled slices cropped to 128 x 128 around the centre


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive lock across processes (pytest-xdist workers); POSIX flock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no parallel workers to fear
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def smoke_run(synthetic_isbi_full_dir, tmp_path_factory):
    """``reproduce(all, profile="smoke")`` once per test session, even under xdist.

    Returns ``(results/smoke root, log lines, small data folder)``. The data
    is a 128 x 128 crop of 30 synthetic slices in the ISBI 2012 layout. With
    ``pytest -n``, the workers share one run through a lock in the common
    temporary folder instead of each training the five smoke models.
    """
    from keras_unets.data import load_isbi2012, write_stack

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    work = shared / "reproduce-smoke"
    with _file_lock(shared / "reproduce-smoke.lock"):
        done = work / "done.json"
        if not done.exists():
            full = load_isbi2012(synthetic_isbi_full_dir)
            lo = (full.train_images.shape[1] - SMOKE_SIZE) // 2
            cut = slice(lo, lo + SMOKE_SIZE)
            small = work / "isbi_small"
            for name, stack in (("train-volume.tif", full.train_images),
                                ("train-labels.tif", full.train_labels),
                                ("test-volume.tif", full.test_images)):
                write_stack(small / name, np.ascontiguousarray(stack[:, cut, cut]))
            log = []
            # the hold-out in two calls: UNet 3+ with the three experiments,
            # then the other two networks (the first is reused, not retrained)
            path = rep.reproduce([*rep.EXPERIMENTS, "holdout"], "smoke", results=work / "results",
                                 data_dir=small, command="pytest smoke", log=log.append,
                                 networks=["unet3p"])
            assert path == work / "results" / "smoke" / "SUMMARY.md"
            log.append("--- second call ---")
            # ... with the smoke profile's own 5-minute limit given explicitly
            rep.reproduce(["holdout"], "smoke", results=work / "results", data_dir=small,
                          command="pytest smoke holdout", log=log.append, networks="unet,unetpp",
                          time_limit_minutes=5)
            done.write_text(json.dumps(log))
    return work / "results" / "smoke", json.loads(done.read_text()), work / "isbi_small"


@pytest.fixture(scope="module")
def smoke_results(smoke_run):
    """(results/smoke root, log lines) of the smoke run."""
    return smoke_run[0], smoke_run[1]


@pytest.fixture(scope="module")
def small_isbi(smoke_run):
    """The 128 x 128 ISBI-layout data folder the smoke run trained on."""
    return smoke_run[2]


def _metrics(root, exp):
    return json.loads((root / exp / "metrics.json").read_text())


def _check_accuracy(value):
    assert isinstance(value, float) and 0.0 <= value <= 1.0, value


@pytest.mark.parametrize("exp", rep.EXPERIMENTS)
def test_smoke_every_file_is_written(smoke_results, exp):
    root, _ = smoke_results
    d = root / exp
    for name in ("metrics.json", "table.md", "provenance.json"):
        assert (d / name).is_file() and (d / name).stat().st_size > 50, name
    for fig in FIGURES[exp]:
        assert _is_png(d / fig), fig
    m = _metrics(root, exp)
    assert sorted(m["figures"]) == sorted(FIGURES[exp])
    assert m["profile"] == "smoke" and m["provenance"]["command"] == "pytest smoke"
    table = (d / "table.md").read_text()
    for fig in FIGURES[exp]:
        assert f"]({fig})" in table
    assert "## Provenance" in table and "pytest smoke" in table
    for s in m["summary"]:
        for key in ("accuracy_as_report", "accuracy_blind", "accuracy_unbinarised"):
            _check_accuracy(s[key])
        # Binarising at any t < 255 keeps every pixel that raw equality counts
        # (0 stays 0, 255 stays 255), so the tuned accuracy is never lower.
        assert s["accuracy_as_report"] >= s["accuracy_unbinarised"]
        assert 0 <= s["threshold_as_report"] <= 255 and 0 <= s["threshold_blind"] <= 255
        for key in ("v_rand", "v_info", "v_rand_fine", "v_info_fine"):
            assert s[key] is None or 0.0 <= s[key] <= 1.0
        # the 0.01 grid holds the challenge's 0.1 grid: never lower
        for key in ("v_rand", "v_info"):
            assert (s[key] is None) == (s[f"{key}_fine"] is None)
            assert s[key] is None or s[f"{key}_fine"] >= s[key]
        assert s["v_rand_fine_threshold"] is None or 0.0 <= s["v_rand_fine_threshold"] <= 1.0
        assert s["parameters"] > 100 and s["epochs"] == 2
        assert 0 < s["seconds_per_slice"] < 30 and s["train_seconds"] > 0
        for key in ("tta_accuracy_as_report", "tta_accuracy_blind"):
            _check_accuracy(s[key])
        assert 0 <= s["tta_threshold_as_report"] <= 255
        assert 0 <= s["tta_threshold_blind"] <= 255
        assert 0 < s["tta_seconds_per_slice"] < 240


def test_smoke_numbers_match_an_independent_recomputation(smoke_results, small_isbi):
    """The U-Net's 'as the report' accuracy, recomputed with plain numpy."""
    from keras_unets.data import load_split

    root, _ = smoke_results
    s = _metrics(root, "unet")["summary"][0]
    data = load_split(small_isbi)
    model = rep.load_model(root / "unet" / "runs" / "full", "best")
    assert model.count_params() == s["parameters"]
    pred, _ = rep.predict_uint8(model, data.x_test)
    t = s["threshold_as_report"]
    binarised = np.where(pred > t, 255, 0)
    assert np.mean(binarised == data.y_test) == pytest.approx(s["accuracy_as_report"], abs=1e-12)
    # ... and no threshold does better (it is the best of the sweep)
    best = max(np.mean(np.where(pred > u, 255, 0) == data.y_test) for u in range(256))
    assert best == pytest.approx(s["accuracy_as_report"], abs=1e-12)
    # the membrane-only prediction (t = 255) is one of the candidates
    assert s["accuracy_as_report"] >= np.mean(data.y_test == 0)


def test_smoke_tta_numbers_match_an_independent_recomputation(smoke_results, small_isbi):
    """The U-Net's TTA accuracies, recomputed by transforming whole slices by hand.

    Each of the 8 flips / right-angle rotations of every test slice is predicted
    without TTA, mapped back and averaged; then the thresholds are tuned as
    documented (on 25-29 for "as the report", on training slices 20-24 for
    "blind"). Batches differ from predict_tiled's, so a rounding to uint8 may
    flip a few pixels: the accuracies agree to 5e-4.
    """
    from keras_unets.data import load_split
    from keras_unets.metrics import to_uint8
    from keras_unets.predict import predict_tiled

    def by_hand(model, images):
        total = np.zeros(images.shape, np.float64)
        for flip in (False, True):
            for k in range(4):
                x = np.rot90(images[:, :, ::-1] if flip else images, k, axes=(1, 2))
                p = np.asarray(predict_tiled(model, np.ascontiguousarray(x), progress=False))
                p = np.rot90(p, -k, axes=(1, 2))
                total += p[:, :, ::-1] if flip else p
        return to_uint8((total / 8).astype(np.float32))

    def best(pred, labels):
        accs = [np.mean(np.where(pred > u, 255, 0) == labels) for u in range(256)]
        return int(np.argmax(accs)), max(accs)

    root, _ = smoke_results
    s = _metrics(root, "unet")["summary"][0]
    data = load_split(small_isbi)
    run = root / "unet" / "runs" / "full"
    t, acc = best(by_hand(rep.load_model(run, "best"), data.x_test), data.y_test)
    assert acc == pytest.approx(s["tta_accuracy_as_report"], abs=5e-4)
    last = rep.load_model(run, "last")
    t_blind, _ = best(by_hand(last, data.x_train[20:25]), data.y_train[20:25])
    acc_blind = np.mean(np.where(by_hand(last, data.x_test) > t_blind, 255, 0) == data.y_test)
    assert acc_blind == pytest.approx(s["tta_accuracy_blind"], abs=5e-4)


def test_tta_row_of_the_summary():
    s = {"network": "UNet 3+", "accuracy_as_report": 0.9210, "accuracy_blind": 0.9204,
         "tta_accuracy_as_report": 0.92176, "tta_threshold_as_report": 126,
         "tta_accuracy_blind": 0.9201, "tta_threshold_blind": 130,
         "tta_seconds_per_slice": 3.61}
    assert rep._tta_row(s, 0.923) == ["UNet 3+", "0.923", "0.9218 (t=126)", "0.9201 (t=130)",
                                      "+0.0008 / -0.0003", "3610 ms"]
    # metrics written before TTA existed: dashes, and no TTA section at all
    old = {k: v for k, v in s.items() if not k.startswith("tta_")}
    assert rep._tta_row(old, None) == ["UNet 3+", "–", "–", "–", "–", "–"]


def test_trained_at_names_other_code_only():
    same = {"a": {"git_commit": "c" * 40, "git_dirty": False}}
    assert rep._trained_at("c" * 40, same) == ""
    other = {"a": {"git_commit": "c" * 40, "git_dirty": False},
             "b": {"git_commit": "d" * 40, "git_dirty": True}}
    assert rep._trained_at("c" * 40, other) == "; run b trained at commit dddddddddddd (dirty)"
    # a run finished before DONE.json recorded its commit
    assert rep._trained_at("c" * 40, {"a": {}}) == "; run a trained at commit unknown"
    # runs of two older commits, each commit with the runs it trained
    mixed = {"unet": {"git_commit": "d" * 40}, "unetpp": {"git_commit": "d" * 40},
             "unet3p": {"git_commit": "c" * 40}, "x": {"git_commit": "e" * 40}}
    assert rep._trained_at("c" * 40, mixed) == (
        "; runs unet, unetpp trained at commit dddddddddddd; run x trained at commit eeeeeeeeeeee")


def test_smoke_table1(smoke_results):
    root, _ = smoke_results
    m = _metrics(root, "unet")
    assert set(m["table1"]) == {"resize_prediction", "resize_label", "retrain_full"}
    for row in m["table1"].values():
        _check_accuracy(row["raw_accuracy"])
        _check_accuracy(row["best_accuracy"])
        assert row["best_accuracy"] >= row["raw_accuracy"]
    assert m["table1"]["retrain_full"]["best_accuracy"] == m["summary"][0]["accuracy_as_report"]
    assert len(m["threshold_curve_25_29"]) == 256
    assert max(m["threshold_curve_25_29"]) == pytest.approx(m["summary"][0]["accuracy_as_report"])
    half = json.loads((root / "unet" / "runs" / "half" / "DONE.json").read_text())
    assert half["epochs"] == 1  # a third of the smoke profile's 2 epochs, rounded up
    table = (root / "unet" / "table.md").read_text()
    assert "0.6754" in table and "0.7545" in table and "0.6996" in table


def test_smoke_table2_and_pruning(smoke_results):
    root, _ = smoke_results
    m = _metrics(root, "unetpp")
    levels = m["pruning"]
    assert [lv["level"] for lv in levels] == ["L1", "L2", "L3", "L4"]
    params = [lv["parameters"] for lv in levels]
    assert params == sorted(params) and len(set(params)) == 4  # each level adds nodes
    for lv in levels:
        _check_accuracy(lv["accuracy"])
        assert lv["seconds_per_slice"] > 0
    assert m["table2"]["ds"] == {lv["head"]: lv["accuracy"] for lv in levels}
    assert m["table2"]["no_ds"] == m["summary"][0]["accuracy_as_report"]
    assert [s["network"] for s in m["summary"]] == ["UNet++", "UNet++ (deep supervision)"]
    table = (root / "unetpp" / "table.md").read_text()
    assert "0.878" in table and "0.917" in table


def test_smoke_fig13_best_epoch(smoke_results):
    root, _ = smoke_results
    m = _metrics(root, "unet3p")
    curve = m["test_accuracy_per_epoch"]
    assert len(curve) == 2
    assert m["best_epoch"] == int(np.argmax(curve)) + 1


def test_smoke_summary_links_and_rows(smoke_results):
    root, _ = smoke_results
    text = (root / "SUMMARY.md").read_text()
    for network, acc in (("U-Net", "0.9189"), ("UNet++", "0.917"), ("UNet 3+", "0.923")):
        assert re.search(rf"^\| {re.escape(network)} \| {acc} \|", text, re.M), network
    main = text.split("## With test-time augmentation", 1)[0]
    assert "| V_rand | V_rand, 0.01 grid | V_info |" in main
    for s in (s for exp in rep.EXPERIMENTS for s in _metrics(root, exp)["summary"]):
        row = re.search(rf"^\| {re.escape(s['network'])} \|.*$", main, re.M).group(0)
        fine = (rep.fmt(s["v_rand_fine"]) if s["v_rand_fine"] is None else
                f"{s['v_rand_fine']:.4f} (th={s['v_rand_fine_threshold']:.2f})")
        assert f"| {rep.fmt(s['v_rand'])} | {fine} | {rep.fmt(s['v_info'])} |" in row, row
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == sum(len(v) for v in FIGURES.values())
    for link in links:
        assert _is_png(root / link), link
    assert "Not run yet" not in text
    assert "2 epochs" in text and "-core CPU" in text
    tta = text.split("## With test-time augmentation", 1)[1].split("## Figures")[0]
    for network in ("U-Net", "UNet++", "UNet++ (deep supervision)", "UNet 3+"):
        row = re.search(rf"^\| {re.escape(network)} \|.*$", tta, re.M).group(0)
        assert re.search(r"\| 0\.\d{4} \(t=\d+\) \| 0\.\d{4} \(t=\d+\) \| [+-]0\.\d{4} / "
                         r"[+-]0\.\d{4} \| \d+ ms \|$", row), row
    held = text.split("## True hold-out (not in the report)", 1)[1].split("## Figures")[0]
    for network, acc in (("U-Net", "0.9189"), ("UNet++", "0.917"), ("UNet 3+", "0.923")):
        assert re.search(rf"^\| {re.escape(network)} \| {acc} \| 0-19 \| [12] of 2 \| \d+ \| "
                         r"0\.\d{4} \| 0\.\d{4} \(t=\d+\) \| 0\.\d{4} \(t=\d+\) \|",
                         held, re.M), network
    assert "- holdout: `pytest smoke holdout`" in text


def test_smoke_rerun_reuses_finished_runs(smoke_results, small_isbi):
    """A second run of a target reuses every finished training (no retraining)."""
    root, first_log = smoke_results
    first_log = first_log[:first_log.index("--- second call ---")]
    # full, half, ds, no_ds, main and the hold-out's unet3p
    assert sum("training " in line for line in first_log) == 6
    ckpt = root / "unet3p" / "runs" / "main" / "best.keras"
    before = ckpt.stat().st_mtime_ns
    done = json.loads((root / "unet3p" / "runs" / "main" / "DONE.json").read_text())
    log = []
    again = rep.train_arm(root / "unet3p", "main", "unet3p", profile="smoke",
                          data_dir=small_isbi, log=log.append)
    assert again == done and ckpt.stat().st_mtime_ns == before
    assert log == [f"[main] reusing finished run {root / 'unet3p' / 'runs' / 'main'} (2 epochs)"]


def _smoke_env(root, small_isbi):
    return dict(os.environ, PROFILE="smoke", RESULTS=str(root.parent),
                ISBI2012_DIR=str(small_isbi), MPLBACKEND="Agg")


def test_smoke_holdout_trains_without_20_24_and_reuses(smoke_results):
    root, log = smoke_results
    second = log[log.index("--- second call ---") + 1:]
    trained = [line for line in second if "training " in line]
    assert len(trained) == 2 and "[unet] training unet" in trained[0]
    assert "[unetpp] training unetpp" in trained[1]
    m = _metrics(root, "holdout")
    assert m["provenance"]["command"] == "pytest smoke holdout"
    assert [s["network"] for s in m["summary"]] == ["U-Net", "UNet++", "UNet 3+"]
    assert sorted(m["figures"]) == FIGURES["holdout"]
    assert _is_png(root / "holdout" / FIGURES["holdout"][0])
    for name in ("unet", "unetpp", "unet3p"):
        run = root / "holdout" / "runs" / name
        config = json.loads((run / "config.json").read_text())
        assert config["train_slices"] == "0-19" and config["val_slices"] == "20-24"
        assert config["val_source"] == "holdout" and config["model_name"] == name
        assert m["arms"][name]["val_slices"] == [20, 21, 22, 23, 24]
        assert m["arms"][name]["time_limit_minutes"] == 5.0 and config["config"][
            "time_limit_minutes"] == 5.0
    # unet3p trained in the first call and was not retrained by the second
    first = (root / "holdout" / "runs" / "unet3p" / "DONE.json").stat().st_mtime_ns
    assert first < (root / "holdout" / "runs" / "unet" / "DONE.json").stat().st_mtime_ns
    for s in m["summary"]:
        for key in ("accuracy", "tta_accuracy", "accuracy_test_threshold",
                    "accuracy_holdout_slices", "tta_accuracy_test_threshold"):
            _check_accuracy(s[key])
        # the threshold tuned on 25-29 is the best there, so never below the held-out one's
        assert s["accuracy_test_threshold"] >= s["accuracy"]
        assert s["tta_accuracy_test_threshold"] >= s["tta_accuracy"]
        assert 0 <= s["threshold"] <= 255 and 1 <= s["best_epoch"] <= s["epochs"] == 2
        assert 0 <= s["threshold_test"] <= 255 and 0 <= s["tta_threshold_test"] <= 255
        assert s["train_slices"] == "0-19"
        for key in ("v_rand", "v_info"):  # the 0.01 grid holds the challenge's
            assert s[key] is None or s[f"{key}_fine"] >= s[key]


def _committed_holdout(root, dest):
    """``dest/smoke/holdout`` as a clone has it: metrics.json, and the UNet 3+ run only."""
    exp = dest / "smoke" / "holdout"
    exp.mkdir(parents=True)
    shutil.copy(root / "holdout" / "metrics.json", exp)
    shutil.copytree(root / "holdout" / "runs" / "unet3p", exp / "runs" / "unet3p")
    return exp


def test_holdout_carries_rows_whose_run_folder_is_absent(smoke_results, small_isbi, tmp_path):
    """Re-running one network over committed results (no weights) keeps the other rows."""
    root, _ = smoke_results
    exp = _committed_holdout(root, tmp_path)
    before = _metrics(root, "holdout")
    old = {s["network"]: s for s in before["summary"]}
    log = []
    m = rep.run_holdout("smoke", results=tmp_path, data_dir=small_isbi, command="pytest carry",
                        log=log.append, networks=["unet3p"])
    assert not any("training " in line for line in log)  # the UNet 3+ run is reused
    assert [s["network"] for s in m["summary"]] == ["U-Net", "UNet++", "UNet 3+"]
    origin = {"date_utc": before["provenance"]["date_utc"],
              "git_commit": before["provenance"]["git_commit"],
              "machine": before["provenance"]["machine"]["description"],
              "command": "pytest smoke holdout"}
    for s in m["summary"][:2]:
        assert s["carried_from"] == origin
        assert {k: v for k, v in s.items() if k != "carried_from"} == old[s["network"]]
    assert m["arms"]["unet"]["carried_from"] == origin
    assert m["arms"]["unet"]["seed"] == before["arms"]["unet"]["seed"] == 0
    s3 = m["summary"][2]  # evaluated again from its run folder: the same numbers
    assert "carried_from" not in s3 and "carried_from" not in m["arms"]["unet3p"]
    for key in ("accuracy", "tta_accuracy", "accuracy_test_threshold"):
        assert s3[key] == pytest.approx(old["UNet 3+"][key], abs=1e-9)
    assert s3["val_curve"] == old["UNet 3+"]["val_curve"] and len(s3["val_curve"]) == 2
    table = (exp / "table.md").read_text()
    for network in ("U-Net", "UNet++"):
        assert (f"- {network}: carried from the evaluation of {origin['date_utc']} "
                f"(commit {(origin['git_commit'] or 'unknown')[:12]}, ") in table
    assert "UNet 3+: carried" not in table and m["figures"] == FIGURES["holdout"]
    assert "- UNet++: carried from" in rep.write_summary("smoke", results=tmp_path).read_text()
    # carried again, a row keeps the evaluation it came from
    m2 = rep.run_holdout("smoke", results=tmp_path, data_dir=small_isbi, command="again",
                         log=log.append, networks="unet3p")
    assert [s.get("carried_from") for s in m2["summary"]] == [origin, origin, None]


@pytest.mark.parametrize("edit, error, match", [
    (lambda m: m["arms"]["unet"].update(seed=7), rep.SeedMismatchError,
     r"the U-Net row of .*metrics\.json \(its run folder runs/unet is not here\) was trained "
     r"with seed 7, but seed 0 was asked for"),
    (lambda m: m["arms"]["unetpp"].update(time_limit_minutes=30), rep.TimeLimitMismatchError,
     r"the UNet\+\+ row .* was trained with a time limit of 30 min, but a time limit of "
     r"5 min was asked for"),
    (None, ValueError, r"Cannot read the earlier hold-out results .*metrics\.json "
     r"\(JSONDecodeError: .*restore it"),
])
def test_holdout_carry_refuses_mismatched_or_unreadable_rows(smoke_results, small_isbi, tmp_path,
                                                             edit, error, match):
    """Nothing is carried, trained or rewritten: the earlier file stays as it was."""
    root, _ = smoke_results
    exp = _committed_holdout(root, tmp_path)
    path = exp / "metrics.json"
    if edit is None:
        path.write_text(path.read_text()[:-40])  # cut short
    else:
        m = json.loads(path.read_text())
        edit(m)
        path.write_text(json.dumps(m))
    before = path.read_bytes()
    with pytest.raises(error, match=match):
        rep.run_holdout("smoke", results=tmp_path, data_dir=small_isbi, log=lambda m: None,
                        networks=["unet3p"])
    assert path.read_bytes() == before and not (exp / "table.md").exists()


def test_smoke_summary_gets_the_seed_spread_of_a_seed_folder(smoke_results, tmp_path):
    """SUMMARY.md of the smoke results plus a copy as seed 4 (its hold-out shifted by 0.01)."""
    root, _ = smoke_results
    for exp in (*rep.EXPERIMENTS, "holdout"):
        (tmp_path / "smoke" / exp).mkdir(parents=True)
        shutil.copy(root / exp / "metrics.json", tmp_path / "smoke" / exp)
    m = _metrics(root, "holdout")
    for rec in m["summary"]:
        rec["accuracy"] = rec["accuracy"] - 0.01
    _fake_metrics(tmp_path / "seed-4" / "smoke" / "holdout", m["summary"])
    text = rep.write_summary("smoke", results=tmp_path).read_text()
    assert "## Seed spread (not in the report)" in text
    for rec in _metrics(root, "holdout")["summary"]:
        row = (f"| {rec['network']} | hold-out | {rec['accuracy']:.4f} | "
               f"{rec['accuracy'] - 0.01:.4f} | {rec['accuracy'] - 0.005:.4f} | 0.01000 |")
        assert row in text, (row, text)
    assert "as the report |" not in text.split("## Seed spread")[1].split("##")[0]


def test_smoke_holdout_numbers_match_an_independent_recomputation(smoke_results, small_isbi):
    """UNet 3+'s hold-out accuracy: checkpoint and threshold from 20-24 only, by plain numpy."""
    from keras_unets.data import load_isbi2012
    from keras_unets.isbi import isbi_scores

    root, _ = smoke_results
    s = next(s for s in _metrics(root, "holdout")["summary"] if s["network"] == "UNet 3+")
    data = load_isbi2012(small_isbi)
    run = root / "holdout" / "runs" / "unet3p"
    history = rep.read_history(run)["val_best_accuracy"]
    assert s["best_epoch"] == int(np.argmax(history)) + 1  # chosen on 20-24 during training
    model = rep.load_model(run, "best")
    held_x, held_y = data.train_images[20:25], data.train_labels[20:25]
    held, _ = rep.predict_uint8(model, held_x)
    accs = [np.mean(np.where(held > u, 255, 0) == held_y) for u in range(256)]
    t = int(np.argmax(accs))
    assert t == s["threshold"]
    assert max(accs) == pytest.approx(s["accuracy_holdout_slices"], abs=1e-12)
    test, _ = rep.predict_uint8(model, data.train_images[25:30])
    acc = np.mean(np.where(test > t, 255, 0) == data.train_labels[25:30])
    assert acc == pytest.approx(s["accuracy"], abs=1e-12)
    t_test = s["threshold_test"]
    acc_test = np.mean(np.where(test > t_test, 255, 0) == data.train_labels[25:30])
    assert acc_test == pytest.approx(s["accuracy_test_threshold"], abs=1e-12)
    if s["v_rand_fine"] is not None:  # the stored threshold gives the stored score
        at = isbi_scores(test, data.train_labels[25:30], thresholds=(s["v_rand_fine_threshold"],))
        assert at.v_rand == pytest.approx(s["v_rand_fine"], abs=1e-12)


def test_holdout_bad_network_names_fail_before_training(tmp_path, small_isbi):
    with pytest.raises(ValueError, match=r"Expected some of unet, unetpp, unet3p\. Received: "
                                         r"networks=\['unet', 'vnet'\]"):
        rep.reproduce(["holdout"], "smoke", results=tmp_path, data_dir=small_isbi,
                      networks="unet,vnet", log=lambda _: None)
    with pytest.raises(ValueError, match=r"Received: networks=\[\]"):
        rep.check_networks("")
    assert rep.check_networks(" unet3p, unet ") == ("unet3p", "unet")
    with pytest.raises(ValueError, match=r"holdout experiment only\. Received: "
                                         r"experiments=\['unet'\], networks='unet'"):
        rep.reproduce(["unet"], "smoke", results=tmp_path, data_dir=small_isbi,
                      networks="unet", log=lambda _: None)
    assert not (tmp_path / "smoke").exists()
    env = dict(os.environ, ISBI2012_DIR=str(small_isbi))
    cli = [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce"]
    out = subprocess.run([*cli, "holdout", "--profile", "smoke", "--networks", "vnet",
                          "--results", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "Invalid value for --networks" in out.stderr
    assert "networks=['vnet']" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([*cli, "unet", "--profile", "smoke", "--networks", "unet",
                          "--results", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "applies to the holdout experiment only" in out.stderr
    assert not (tmp_path / "smoke").exists()


def test_smoke_figures_redrawn_from_committed_results(smoke_results, tmp_path):
    """As a clone has the results (no run folders): every figure comes back."""
    root, _ = smoke_results
    for exp in (*rep.EXPERIMENTS, "holdout"):
        dest = tmp_path / "smoke" / exp
        shutil.copytree(root / exp, dest, ignore=shutil.ignore_patterns("runs"))
        for fig in FIGURES[exp]:
            (dest / fig).write_bytes(b"placeholder")
    env = dict(os.environ, PROFILE="smoke")
    out = subprocess.run(
        [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce", "figures",
         "--results", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    for exp in (*rep.EXPERIMENTS, "holdout"):
        m = _metrics(tmp_path / "smoke", exp)
        assert m["figures_redrawn"]["command"].endswith("reproduce figures --results "
                                                        + str(tmp_path))
        for fig in FIGURES[exp]:
            assert _is_png(tmp_path / "smoke" / exp / fig), fig
    assert len(_metrics(root, "unet")["threshold_curve_20_24"]) == 256
    assert "[unet3p] redrew figures/fig13_test_accuracy_per_epoch.png" in out.stdout
    # the numbers are the run's own
    assert _metrics(tmp_path / "smoke", "unet3p")["summary"] == _metrics(root, "unet3p")["summary"]


def test_smoke_summary_script(smoke_results, small_isbi):
    """experiments/summary.py in a subprocess rewrites SUMMARY.md from the metrics."""
    root, _ = smoke_results
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "summary.py"),
                          "--results", str(root.parent)],
                         capture_output=True, text=True, env=_smoke_env(root, small_isbi),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "profile: smoke (PROFILE=smoke)" in out.stdout and "| UNet 3+ | 0.923 |" in out.stdout
    assert (root / "SUMMARY.md").read_text() in out.stdout


def test_bench_run_all_runs_every_script_and_reports_failures(tmp_path):
    """bench/run_all.sh on a copy with one passing and one failing fake script."""
    import shutil

    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(ROOT / "bench" / "run_all.sh", bench / "run_all.sh")
    (bench / "bench_ok.py").write_text("open('ran_ok', 'w').write('1')\n")
    (bench / "bench_fail.py").write_text("open('ran_fail', 'w').write('1')\nraise SystemExit(3)\n")
    (bench / "gpu_bench.py").write_text("raise SystemExit('device scripts are not run')\n")
    env = dict(os.environ, PY=sys.executable)
    out = subprocess.run(["bash", str(bench / "run_all.sh")], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 1
    assert (tmp_path / "ran_ok").exists() and (tmp_path / "ran_fail").exists()
    assert "bench/bench_ok.py: ok" in out.stdout
    assert "1 of 2 failed: bench/bench_fail.py" in out.stderr
    assert "device scripts" not in out.stdout + out.stderr
    (bench / "bench_fail.py").unlink()
    out = subprocess.run(["bash", str(bench / "run_all.sh")], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0 and "all 1 scripts ran" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["unet.py", "unetpp.py", "unet3p.py"])
def test_smoke_experiment_scripts_run(smoke_results, small_isbi, script):
    """experiments/<net>.py reuses the smoke trainings and prints its table."""
    root, _ = smoke_results
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / script),
                          "--results", str(root.parent), "--data", str(small_isbi)],
                         capture_output=True, text=True, env=_smoke_env(root, small_isbi),
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reusing finished run" in out.stdout and "report" in out.stdout
    assert out.stdout.strip().endswith("SUMMARY.md")


def test_experiment_script_without_data_exits_with_the_message(tmp_path):
    env = dict(os.environ, ISBI2012_DIR=str(tmp_path / "nowhere"))
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "unet3p.py"),
                          "--profile", "smoke", "--results", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert "ISBI 2012 data not found" in out.stderr and "Traceback" not in out.stderr
