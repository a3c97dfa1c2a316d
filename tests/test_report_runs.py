"""keras_unets.report.runs: a training arm is trained, reused or resumed, and a run
folder of another seed or time limit is refused (train() replaced by a recorder)."""
import json
import os
import subprocess
import sys

import pytest

from keras_unets.report.runs import (RunMismatchError, SeedMismatchError, TimeLimitMismatchError,
                                      train_arm)

from report_fakes import fake_finished_run, fake_run_config


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
    first = train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None, epochs=2)
    assert calls[-1][1]["resume"] is None and calls[-1][1]["epochs"] == 2
    assert first["train_seconds"] == 5.0 and (exp / "runs" / "a" / "DONE.json").exists()
    # finished: reused without calling train again
    assert train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None) == first
    assert len(calls) == 1
    # interrupted (a completed epoch but no DONE marker): resumed from its run directory
    run_b = exp / "runs" / "b"
    run_b.mkdir(parents=True)
    (run_b / "state.json").write_text('{"epochs_completed": 1}')
    train_arm(exp, "b", "unetpp", profile="smoke", log=lambda m: None)
    assert calls[-1][0] == "unetpp" and calls[-1][1]["resume"] == run_b


def test_train_arm_passes_the_seed_and_refuses_a_run_of_another_seed(tmp_path, train_calls):
    exp = tmp_path / "exp"
    train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None, seed=7)
    assert train_calls[-1][1]["seed"] == 7
    train_arm(exp, "b", "unet", profile="smoke", log=lambda m: None)
    assert "seed" not in train_calls[-1][1]  # None: the profile's seed
    # an interrupted run of seed 0 (the smoke profile's): resumed without a seed argument
    fake_run_config(exp / "runs" / "c", 0)
    (exp / "runs" / "c" / "state.json").write_text('{"epochs_completed": 1}')
    train_arm(exp, "c", "unet3p", profile="smoke", log=lambda m: None)
    assert train_calls[-1][1]["resume"] == exp / "runs" / "c" and "seed" not in train_calls[-1][1]
    n = len(train_calls)
    # ... but not with seed 3: refused before train() is called, nothing written
    before = sorted(p.name for p in (exp / "runs" / "c").iterdir())
    with pytest.raises(SeedMismatchError,
                       match=r"runs/c was trained with seed 0, but seed 3 was asked for.*"
                             r"results/seed-3 of --seed 3"):
        train_arm(exp, "c", "unet3p", profile="smoke", log=lambda m: None, seed=3)
    # a finished run of seed 7 is not reused for the profile's seed 0 either
    (exp / "runs" / "a" / "config.json").write_text(json.dumps({"config": {"seed": 7}}))
    with pytest.raises(SeedMismatchError, match="seed 7, but seed 0 was asked for"):
        train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None)
    assert len(train_calls) == n and sorted(p.name for p in (exp / "runs" / "c").iterdir()) == before
    assert train_arm(exp, "a", "unet", profile="smoke", log=lambda m: None,
                     seed=7)["best_accuracy"] == 0.9  # same seed: reused
    assert len(train_calls) == n


def test_train_arm_time_limit_passed_and_a_finished_run_of_another_limit_refused(
        tmp_path, train_calls):
    exp = tmp_path / "exp"
    quiet = {"profile": "smoke", "log": lambda m: None}
    train_arm(exp, "a", "unet", time_limit_minutes=2.5, **quiet)
    assert train_calls[-1][1]["time_limit_minutes"] == 2.5
    train_arm(exp, "b", "unet", **quiet)
    assert "time_limit_minutes" not in train_calls[-1][1]  # the profile's
    n = len(train_calls)
    # finished runs: the smoke profile's limit is 5 min
    fake_finished_run(exp / "runs" / "c", time_limit_minutes=5.0)
    assert train_arm(exp, "c", "unet3p", **quiet)["best_accuracy"] == 0.9
    assert train_arm(exp, "c", "unet3p", time_limit_minutes=5, **quiet)["arm"] == "c"
    with pytest.raises(TimeLimitMismatchError,
                       match=r"runs/c is a finished run trained with a time limit of 5 min, "
                             r"but a time limit of 2 min was asked for"):
        train_arm(exp, "c", "unet3p", time_limit_minutes=2, **quiet)
    fake_finished_run(exp / "runs" / "d", time_limit_minutes=None)  # trained without a limit
    with pytest.raises(RunMismatchError,
                       match="trained with no time limit, but a time limit of 5 min"):
        train_arm(exp, "d", "unet3p", **quiet)
    assert len(train_calls) == n  # refused or reused: train() never called
    assert sorted(p.name for p in (exp / "runs" / "c").iterdir()) == ["DONE.json", "config.json"]
    # an interrupted run (no DONE.json) is resumed under the new limit
    fake_run_config(exp / "runs" / "e", 0)
    (exp / "runs" / "e" / "state.json").write_text('{"epochs_completed": 1}')
    train_arm(exp, "e", "unet3p", time_limit_minutes=1.5, **quiet)
    assert train_calls[-1][1]["resume"] == exp / "runs" / "e"
    assert train_calls[-1][1]["time_limit_minutes"] == 1.5


def test_cli_seed_goes_to_results_seed_n_and_a_mismatch_is_an_error(tmp_path, synthetic_isbi_dir):
    """--seed N without --results uses results/seed-N; a run there of another seed is refused."""
    run = tmp_path / "results" / "seed-5" / "smoke" / "holdout" / "runs" / "unet3p"
    fake_run_config(run, 9)
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


def test_cli_time_limit_mismatch_is_an_error_and_bad_limits_a_usage_error(tmp_path,
                                                                          synthetic_isbi_dir):
    run = tmp_path / "results" / "smoke" / "unet3p" / "runs" / "main"
    fake_finished_run(run, time_limit_minutes=5.0)
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
