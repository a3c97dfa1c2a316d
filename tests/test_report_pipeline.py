"""keras_unets.report.pipeline: the checks of reproduce() before anything runs, and the
command line and scripts without data."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from keras_unets.report.pipeline import check_time_limit, reproduce
from keras_unets.report.summary import default_results

from report_fakes import ROOT


def test_bad_time_limits(tmp_path):
    assert check_time_limit(None) is None and check_time_limit(2) == 2.0
    for bad in (0, -1, float("nan"), float("inf"), True, "soon", "3"):
        with pytest.raises(ValueError, match=f"positive number of minutes.*received {bad!r}"):
            reproduce(["unet"], "smoke", results=tmp_path, time_limit_minutes=bad,
                      log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_seed_results_root_and_bad_seeds(tmp_path):
    assert default_results() == "results"
    assert default_results(3) == "results/seed-3"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"non-negative integer; received {bad!r}"):
            reproduce(["unet"], "smoke", results=tmp_path, seed=bad, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


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


def test_experiment_script_without_data_exits_with_the_message(tmp_path):
    env = dict(os.environ, ISBI2012_DIR=str(tmp_path / "nowhere"))
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "unet3p.py"),
                          "--profile", "smoke", "--results", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert "ISBI 2012 data not found" in out.stderr and "Traceback" not in out.stderr


def test_bench_run_all_runs_every_script_and_reports_failures(tmp_path):
    """bench/run_all.sh on a copy with one passing and one failing fake script."""
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


def test_wall_clock_record_keeps_each_experiments_latest_time(tmp_path):
    from keras_unets.report.pipeline import WALL_CLOCK, record_wall_clock

    record_wall_clock(tmp_path, {"unet": 300.0, "unetpp": 600.0}, 910.0, command="first")
    record_wall_clock(tmp_path, {"unet": 40.0}, 45.0, command="second")
    record = json.loads((tmp_path / WALL_CLOCK).read_text())
    assert {k: v["seconds"] for k, v in record["experiments"].items()} == {
        "unet": 40.0, "unetpp": 600.0}
    assert record["last_call"]["experiments"] == ["unet"]
    assert record["last_call"]["seconds"] == 45.0
    assert record["last_call"]["provenance"]["command"] == "second"


def _bench_module(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_to_accuracy_bench_reads_epoch_times(tmp_path):
    """bench_time_to_accuracy on two fake seeds: running maximum, minutes to the report."""
    bench = _bench_module("bench_time_to_accuracy")
    hist = {"elapsed_seconds": [60.0, 120.0, 180.0], "val_best_accuracy": [0.90, 0.92, 0.91],
            "val_blind_accuracy": [0.89, 0.915, 0.918]}
    for root in (tmp_path / "quick", tmp_path / "seed-1" / "quick"):
        for exp, history in (("unet", hist), ("unetpp", {"ds": hist, "no_ds": hist}),
                             ("unet3p", dict(hist, val_best_accuracy=[0.90, 0.921, 0.924]))):
            (root / exp).mkdir(parents=True)
            (root / exp / "metrics.json").write_text(json.dumps({"history": history}))
    (tmp_path / "seed-x" / "quick").mkdir(parents=True)  # not a seed folder
    curves = bench.read_curves(tmp_path / "quick")
    assert list(curves["U-Net"]["as_report"]) == [0.90, 0.92, 0.92]  # best epoch so far
    assert list(curves["U-Net"]["minutes"]) == [1.0, 2.0, 3.0]
    assert bench.minutes_to(curves["U-Net"]["minutes"], curves["U-Net"]["as_report"], 0.9189) == 2.0
    assert bench.minutes_to(curves["UNet 3+"]["minutes"], curves["UNet 3+"]["as_report"], 0.923) == 3.0
    assert bench.minutes_to(curves["U-Net"]["minutes"], curves["U-Net"]["as_report"], 0.95) is None
    out, fig = tmp_path / "t.md", tmp_path / "t.png"
    assert bench.main(["--results", str(tmp_path), "--out", str(out), "--figure", str(fig)]) == 0
    text = out.read_text()
    assert "| U-Net | 0.9189 | 2 | 3.0 | 0.9200 | 0.9180 | 2.0, 2.0 |" in text
    assert "| UNet 3+ | 0.923 | 2 | 3.0 | 0.9240 | 0.9180 | 3.0, 3.0 |" in text
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench.main(["--results", str(tmp_path / "none"), "--out", str(out),
                       "--figure", str(fig)]) == 1
