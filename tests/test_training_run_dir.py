"""Run folders that stay consistent: splits, checked options, strict JSON, atomic epoch commits.

Tiny trainings: the smoke profile (2 steps of 64 px crops) with a depth-2
U-Net and one validation slice; the kill tests copy one trained run.
"""
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from click.testing import CliRunner  # noqa: E402

from keras_unets.training import run_dir as C  # noqa: E402
from keras_unets.training.callbacks import ThresholdSweep  # noqa: E402
from keras_unets.training import read_threshold_table, recover_run  # noqa: E402
from keras_unets.cli import main  # noqa: E402
from keras_unets.data import get_split  # noqa: E402
from keras_unets.io import atomic_write_json, finite_json  # noqa: E402
from keras_unets.training.options import _resolve_slices  # noqa: E402
from keras_unets.training import (  # noqa: E402
    OptionError,
    RunExistsError,
    load_run_model,
    train,
)

TINY = {"depth": 2}
STEPS = 2  # the smoke profile's steps per epoch


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _strict_json(path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def _history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


# ---------------------------------------------------------------------------
# Strict JSON
# ---------------------------------------------------------------------------
def test_atomic_write_json_writes_non_finite_floats_as_null(tmp_path):
    obj = {"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf, "ok": 0.5,
           "np32": np.float32("nan"), "np64": np.float64(np.inf), "int": np.int64(3),
           "flag": np.bool_(True), "nested": [{"t": (1.0, float("nan"))}],
           "array": np.array([1.0, np.nan]), "path": tmp_path}
    target = tmp_path / "a.json"
    atomic_write_json(target, obj)
    assert _strict_json(target) == {
        "nan": None, "inf": None, "ninf": None, "ok": 0.5, "np32": None, "np64": None,
        "int": 3, "flag": True, "nested": [{"t": [1.0, None]}], "array": [1.0, None],
        "path": str(tmp_path)}
    assert finite_json((np.float32(0.25),)) == [0.25]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_write_json_leaves_the_old_file_when_it_cannot_serialise(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    with pytest.raises(TypeError):  # JSON keys are strings
        atomic_write_json(target, {"x": {(1, 2): 3}})
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------
def test_report_split_with_holdout_describes_all_three_sets():
    s = _resolve_slices(None, None, None, "0-4")
    assert s.train == tuple(range(5, 25)) and s.val == tuple(range(5))
    assert s.test == get_split("report").test and s.val_source == "holdout"
    assert s.describe() == "report split: training slices 5-24; validation 0-4; test 25-29"
    s = _resolve_slices("kfold", 2, 3, None)
    assert s.val == get_split("kfold", n_folds=3, fold=2).test == tuple(range(20, 30))
    assert s.describe() == "kfold split: training slices 0-19; validation 20-29; test none"
    assert s.to_json()["test_slices"] == []


@pytest.mark.parametrize("kwargs, option, expected", [
    ({"split": "kfold", "fold": 5, "folds": 5}, "fold", "an int in 0..4 (one of 5 folds)"),
    ({"split": "kfold", "fold": -1}, "fold", "an int in 0..4 (one of 5 folds)"),
    ({"split": "kfold", "fold": 0, "folds": 1}, "folds", "an int in 2..30"),
    ({"split": "kfold", "fold": 0, "folds": 31}, "folds", "an int in 2..30"),
    ({"split": "kfold"}, "fold", "an int in 0..4 with the kfold split"),
    ({"split": "kfold", "fold": 0, "val_slices": "0-4"}, "val_slices", "left unset"),
    ({"fold": 1}, "fold", "left unset with the report split"),
    ({"split": "loo"}, "split", "one of ['report', 'kfold']"),
])
def test_bad_split_arguments_write_nothing(tmp_path, kwargs, option, expected):
    with pytest.raises(OptionError,
                       match=rf"^{option} must be {re.escape(expected)}.*Received: {option}="):
        train("unet", profile="smoke", out=tmp_path / "r", model_kwargs=TINY, verbose=0,
              **kwargs)
    assert not (tmp_path / "r").exists()


def test_kfold_fold_trains_on_the_other_slices_end_to_end(tmp_path, synthetic_isbi_dir):
    run = tmp_path / "fold1"
    res = _invoke("train", "unet", "--profile", "smoke", "--data", synthetic_isbi_dir, "--out", run,
                  "--epochs", 1, "--split", "kfold", "--fold", 1, "--folds", 6,
                  "--set", "depth=2", "--verbose", 2)
    assert res.exit_code == 0, res.output
    assert "kfold split: training slices 0-4,10-29; validation 5-9; test none" in res.output
    cfg = _strict_json(run / "config.json")
    train_s, val_s = set(cfg["train_slices"]), set(cfg["val_slices"])
    assert not train_s & val_s and train_s | val_s == set(range(30))
    assert cfg["val_slices"] == [5, 6, 7, 8, 9] and cfg["test_slices"] == []
    assert (cfg["split"], cfg["fold"], cfg["folds"], cfg["val_source"]) == ("kfold", 1, 6, "fold")
    assert _strict_json(run / "results.json")["val_slices"] == [5, 6, 7, 8, 9]
    # a resume keeps the split and refuses another fold
    with pytest.raises(ValueError, match="Cannot change 'fold' when resuming"):
        train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=2, fold=2, verbose=0)
    r = train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=2, verbose=0)
    assert r.val_slices == (5, 6, 7, 8, 9) and r.last_epoch == 2
    assert _strict_json(run / "config.json")["train_slices"] == cfg["train_slices"]


# ---------------------------------------------------------------------------
# Numeric options: checked before anything is written
# ---------------------------------------------------------------------------
BAD_OPTIONS = [
    # (train() keyword, value, CLI flag, CLI value, what would work)
    ("epochs", 0, "--epochs", "0", "an int >= 1"),
    ("epochs", -1, "--epochs", "-1", "an int >= 1"),
    ("steps_per_epoch", 0, "--steps-per-epoch", "0", "an int >= 1"),
    ("batch_size", 0, "--batch-size", "0", "an int >= 1"),
    ("crop", 0, "--crop", "0", "a positive int"),
    ("crop", 600, "--crop", "600", "at most the slice size 64"),  # the 64-px synthetic slices
    ("crop", 30, "--crop", "30", r"a size the model takes \(.*nearest sizes that work are "
                                 r"28 and 32"),
    ("learning_rate", 0.0, "--lr", "0", "a finite number > 0"),
    ("learning_rate", -1e-3, "--lr", "-1e-3", "a finite number > 0"),
    ("learning_rate", float("nan"), "--lr", "nan", "a finite number > 0"),
    ("learning_rate", float("inf"), "--lr", "inf", "a finite number > 0"),
    ("time_limit_minutes", 0.0, "--time-limit", "0", "a finite number of minutes > 0"),
    ("time_limit_minutes", -5.0, "--time-limit", "-5", "a finite number of minutes > 0"),
    ("seed", -1, "--seed", "-1", "an int >= 0"),
]


@pytest.mark.parametrize("option, value, flag, text, expected", BAD_OPTIONS)
def test_bad_numeric_option_api(tmp_path, synthetic_isbi_dir, option, value, flag, text, expected):
    run = tmp_path / "r"
    with pytest.raises(OptionError, match=rf"^{option} must be {expected}.*Received: "
                                          rf"{option}={value!r}"):
        train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=run, model_kwargs=TINY,
              verbose=0, **{option: value})
    assert not run.exists()


@pytest.mark.parametrize("option, value, flag, text, expected", BAD_OPTIONS)
def test_bad_numeric_option_cli(tmp_path, synthetic_isbi_dir, option, value, flag, text, expected):
    run = tmp_path / "r"
    res = _invoke("train", "unet", "--profile", "smoke", "--data", synthetic_isbi_dir, "--out", run,
                  "--set", "depth=2", "--verbose", 0, f"{flag}={text}")
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{flag}': must be" in res.output
    assert "Traceback" not in res.output and f"Received: {value!r}" in res.output
    assert not run.exists()


def test_bad_value_from_overrides_and_on_resume(tmp_path, synthetic_isbi_dir):
    with pytest.raises(OptionError, match=r"^epochs must be an int >= 1.*Received: epochs=2\.5"):
        train("unet", profile="smoke", out=tmp_path / "r", overrides={"epochs": 2.5},
              model_kwargs=TINY, verbose=0)
    assert not (tmp_path / "r").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"model_name": "unet", "profile": "smoke", "config": {"epochs": 2}}))
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(OptionError, match="Received: epochs=0"):
        train("unet", resume=run, epochs=0, verbose=0)
    assert sorted(p.name for p in run.iterdir()) == before


def test_cli_split_errors_name_the_flags(tmp_path, synthetic_isbi_dir):
    for args, flag in ((["--split", "kfold", "--fold", 5, "--folds", 5], "--fold"),
                       (["--split", "kfold", "--fold", 0, "--folds", 1], "--folds"),
                       (["--fold", 1], "--fold")):
        res = _invoke("train", "unet", "--profile", "smoke", "--data", synthetic_isbi_dir,
                      "--out", tmp_path / "r", "--verbose", 0, *args)
        assert res.exit_code == 2 and f"Invalid value for '{flag}'" in res.output, res.output
        assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------
# "already holds a run": the way to resume, in the caller's terms
# ---------------------------------------------------------------------------
def _fake_run(path):
    path.mkdir()
    (path / "state.json").write_text('{"epochs_completed": 1}')
    return path


def test_existing_run_message_names_resume_argument(tmp_path):
    run = _fake_run(tmp_path / "run")
    with pytest.raises(RunExistsError, match=rf"pass resume='{run}' to continue it"):
        train("unet", profile="smoke", out=run, verbose=0)


def test_existing_run_message_names_resume_option(tmp_path):
    run = _fake_run(tmp_path / "run")
    res = _invoke("train", "unet", "--profile", "smoke", "--out", run)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"pass --resume to continue it (with --out {run})" in res.output
    assert "resume=" not in res.output


# ---------------------------------------------------------------------------
# Atomic epoch commit: a kill anywhere leaves all of an epoch or none of it
# ---------------------------------------------------------------------------
class _Killed(BaseException):
    """Stands for a kill: nothing in the training code catches it."""


def _after(obj, name, monkeypatch, *, calls=1):
    """Make ``obj.name`` raise :class:`_Killed` right after its ``calls``-th call returns."""
    original = getattr(obj, name)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        count["n"] += 1
        if count["n"] == calls:
            raise _Killed(name)
        return out

    monkeypatch.setattr(obj, name, wrapped)


# kill point -> epochs committed when it struck (during epoch index 1 of a
# run that had committed epoch index 0)
KILL_POINTS = {
    "sweep rows written": (lambda m: _after(ThresholdSweep, "_write_rows", m), 1),
    "history row written": (lambda m: _after(C.AtomicCheckpoint, "_write_history", m), 1),
    "pending last.keras saved": (lambda m: _after(C, "_fsync_file", m), 1),
    "pending checkpoints saved": (lambda m: _after(C.AtomicCheckpoint, "_save_pending", m), 1),
    "state.json committed": (lambda m: _after(C.AtomicCheckpoint, "_write_state", m), 2),
    "first checkpoint moved": (lambda m: _after(C, "_move", m), 2),
    "commit done": (lambda m: _after(C.AtomicCheckpoint, "on_epoch_end", m), 2),
}


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, synthetic_isbi_dir):
    run = tmp_path_factory.mktemp("base") / "run"
    train("unet", profile="smoke", data_dir=synthetic_isbi_dir, out=run, epochs=1, val_slices="24",
          model_kwargs=TINY, verbose=0)
    return run


def _check_consistent(run, epochs):
    assert _history_epochs(run) == list(range(epochs))
    rows = read_threshold_table(run / "thresholds.csv")
    assert sorted(r["epoch"] for r in rows) == list(range(epochs))  # one output, once each
    state = _strict_json(run / "state.json")
    assert state["epochs_completed"] == epochs
    # last.keras is the committed epoch's: it has taken exactly epochs x steps steps
    assert int(load_run_model(run, "last").optimizer.iterations.numpy()) == epochs * STEPS
    assert 1 <= state["best_epoch"] <= epochs
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name or ".pending-" in p.name]


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_during_commit_then_resume(point, one_epoch_run, tmp_path, synthetic_isbi_dir, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    arm, committed = KILL_POINTS[point]
    with monkeypatch.context() as m:
        arm(m)
        with pytest.raises(_Killed):
            train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=2, verbose=0)
    assert _strict_json(run / "state.json")["epochs_completed"] == committed
    r = train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=3, verbose=0)
    assert r.epochs_run == 3 - committed and r.last_epoch == 3
    _check_consistent(run, 3)
    rows = read_threshold_table(run / "thresholds.csv")
    assert r.best_threshold == [x for x in rows if x["epoch"] == r.best_epoch - 1][0][
        "best_threshold"]


def test_recover_run_clears_leftovers_of_killed_writes(one_epoch_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    (run / f".state.json.tmp-{os.getpid() + 1}").write_text("{")
    (run / ".last.keras.tmp-99999.keras").write_bytes(b"PK")
    stale = run / ".pending-5"
    stale.mkdir()
    (stale / "last.keras").write_bytes(b"PK")
    keep = run / "notes.tmp-1.txt"  # not a temporary name of ours
    keep.write_text("mine")
    with open(run / "history.csv", "a") as fh:
        fh.write("1,0.5,0.5,0.5,7\n2,0.5")  # rows of uncommitted epochs, one torn
    state = recover_run(run)
    assert state["epochs_completed"] == 1 and _history_epochs(run) == [0]
    names = sorted(p.name for p in run.iterdir())
    assert not [n for n in names if n.startswith(".")] and "notes.tmp-1.txt" in names


@pytest.mark.slow
def test_os_exit_after_commit_rolls_forward(one_epoch_run, tmp_path, synthetic_isbi_dir):
    """A real process death (``os._exit``) between ``state.json`` and moving the checkpoints."""
    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    code = textwrap.dedent(f"""
        import os
        from keras_unets.training import run_dir as C
        from keras_unets.training import train
        write_state = C.AtomicCheckpoint._write_state
        def die(self):
            write_state(self)
            os._exit(9)
        C.AtomicCheckpoint._write_state = die
        train("unet", resume={str(run)!r}, data_dir={str(synthetic_isbi_dir)!r}, epochs=2, verbose=0)
    """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 9, out.stderr[-3000:]
    assert (run / ".pending-2" / "last.keras").exists()
    r = train("unet", resume=run, data_dir=synthetic_isbi_dir, epochs=3, verbose=0)
    assert r.epochs_run == 1
    _check_consistent(run, 3)


def test_run_dir_names_reads_and_writes_every_file(tmp_path):
    from keras_unets.training import RunDir

    files = RunDir(tmp_path / "run")
    names = [files.config, files.state, files.history, files.thresholds, files.multiclass,
             files.results, files.logs, files.checkpoint("best"), files.checkpoint("last")]
    assert [p.name for p in names] == [
        "config.json", "state.json", "history.csv", "thresholds.csv", "multiclass.csv",
        "results.json", "logs", "best.keras", "last.keras"]
    assert not files.has_run and files.read_state() == {} and files.read_results() == {}
    with pytest.raises(FileNotFoundError, match="config.json"):
        files.read_config()
    files.write_config({"model_name": "unet", "config": {"seed": 0}})
    files.write_results({"best_threshold": 128})
    files.write_state({"epochs_completed": 1})
    assert files.read_config() == {"model_name": "unet", "config": {"seed": 0}}
    assert files.read_results() == {"best_threshold": 128}
    assert files.has_run and files.read_state() == {"epochs_completed": 1}
    assert sorted(p.name for p in files.path.iterdir()) == [
        "config.json", "results.json", "state.json"]  # no temporaries left
    assert json.loads(files.config.read_text()) == files.read_config()
