"""keras_unets.report.pipeline: the checks of reproduce() before anything runs, and the
command line and scripts without data."""
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
