"""What a run of :func:`keras_unets.training.train` returns and writes to ``results.json``."""
import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from keras_unets.training.run_dir import RunDir

__all__ = ["TrainResult"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns (also written to ``results.json``).

    ``best_epoch`` is 1-based (the report's "best at epoch 18 of 40");
    ``epochs_run`` counts the epochs of this call, ``last_epoch`` all epochs
    completed in the run directory. With your own data ``val_slices`` holds
    the validation images' stems and ``val_source`` says where they came
    from (``"folder"``, ``"fraction"`` or ``"none"``); ``classes`` is 2 for a
    binary run (``best_threshold``/``best_accuracy`` from the sweep), else K
    (``best_mean_dice`` of the best epoch; no threshold, -1).
    """

    run_dir: Path
    model_name: str
    profile: str
    best_threshold: int
    best_accuracy: float
    best_epoch: int
    epochs_run: int
    last_epoch: int
    train_seconds: float
    val_slices: tuple
    val_source: str
    stopped_by_time_limit: bool
    history: dict = field(default_factory=dict, repr=False)
    config: dict = field(default_factory=dict, repr=False)
    classes: int = 2
    best_mean_dice: object = None

    def describe(self, output=None):
        """One line for logs and notebooks, e.g. ``"3 epochs in 121 s; best
        epoch 2: out1 accuracy 0.9012 at threshold 131"`` (K classes: the
        best epoch's mean Dice)."""
        head = f"{output} accuracy" if output else "accuracy"
        epochs = "epoch" if self.epochs_run == 1 else "epochs"
        if self.classes > 2:
            dice = "n/a" if self.best_mean_dice is None else f"{self.best_mean_dice:.4f}"
            return (f"{self.epochs_run} {epochs} in {self.train_seconds:.0f} s; best epoch "
                    f"{self.best_epoch}: mean Dice {dice} over {self.classes - 1} "
                    "foreground classes")
        return (f"{self.epochs_run} {epochs} in {self.train_seconds:.0f} s; best epoch "
                f"{self.best_epoch}: {head} {self.best_accuracy:.4f} at threshold "
                f"{self.best_threshold}")

    def to_json(self):
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        d["val_slices"] = list(self.val_slices)
        d.pop("config")
        return d


def _best_sweep_row(run_dir, main, best_epoch):
    """``(threshold, accuracy)`` of the best epoch's sweep (and its curve drawn), or ``(-1, nan)``."""
    from keras_unets.training.callbacks import plot_threshold_curve, read_threshold_table

    files = RunDir(run_dir)
    path = files.thresholds
    rows = read_threshold_table(path) if path.exists() else []
    best_row = None
    for r in rows:
        if r["output"] == main and best_epoch is not None and r["epoch"] == best_epoch - 1:
            best_row = r
    if best_row is None:
        return -1, float("nan")
    acc = np.array([best_row[f"acc_{t:03d}"] for t in range(256)])
    plot_threshold_curve({main: acc}, files.threshold_curve_best, main=main,
                         title=f"Best epoch {best_epoch}: accuracy vs threshold")
    return int(best_row["best_threshold"]), float(best_row["best_accuracy"])


def _best_dice(run_dir, best_epoch):
    """The best epoch's mean Dice from ``multiclass.csv`` (None without it)."""
    _, rows = _read_run_csv(RunDir(run_dir).multiclass)
    for row in rows:
        if best_epoch is not None and int(row["epoch"]) == best_epoch - 1:
            value = float(row["mean_dice"])
            return value if math.isfinite(value) else None
    return None


def _read_run_csv(path):
    if not Path(path).exists():
        return None, []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def _write_results(run_dir, result, seconds, resuming):
    summary = result.to_json()
    summary.pop("history")
    files = RunDir(run_dir)
    previous = files.read_results() if resuming else {}
    summary["train_seconds_total"] = float(previous.get("train_seconds_total", 0.0)) + seconds
    files.write_results(summary)
