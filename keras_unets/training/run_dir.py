"""The files of a run directory and the epoch commit that writes them together.

A run directory (:func:`keras_unets.training.train`), owned by
:class:`RunDir`, holds ``config.json``,
``state.json`` (the commit record of each epoch), ``history.csv``,
``thresholds.csv`` or ``multiclass.csv``, ``best.keras``/``last.keras`` and
``results.json``. :class:`AtomicCheckpoint` commits an epoch's rows,
checkpoints and state as one step; :func:`recover_run` settles a commit a
kill interrupted; :func:`load_state`, :func:`read_history` and
:func:`load_run_model` read a run back.
"""
import csv
import io
import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from keras_unets.io import atomic_write_json, atomic_write_text, remove_temporaries, temporary_sibling

__all__ = ["RunDir", "AtomicCheckpoint", "RUN_TABLES", "save_model_atomic", "load_state",
           "recover_run", "read_history", "load_run_model"]


class RunDir:
    """Every file of one run directory: their paths, readers and writers.

    The names (``config.json``, ``state.json``, ``history.csv``,
    ``thresholds.csv``, ``multiclass.csv``, ``best.keras``, ``last.keras``,
    ``results.json``, ``logs/`` and the figures) are written here once;
    JSON files are written atomically (:mod:`keras_unets.io`), the epoch
    commit is :class:`AtomicCheckpoint` and :meth:`recover` settles one a kill
    interrupted.
    """

    CONFIG = "config.json"
    STATE = "state.json"
    HISTORY = "history.csv"
    THRESHOLDS = "thresholds.csv"
    MULTICLASS = "multiclass.csv"
    RESULTS = "results.json"
    LOGS = "logs"
    THRESHOLD_CURVE = "threshold_curve.png"
    THRESHOLD_CURVE_BEST = "threshold_curve_best.png"
    ACCURACY_PLOT = "accuracy.png"

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)

    # ------------------------------------------------------------- the paths
    @property
    def config(self):
        return self.path / self.CONFIG

    @property
    def state(self):
        return self.path / self.STATE

    @property
    def history(self):
        return self.path / self.HISTORY

    @property
    def thresholds(self):
        return self.path / self.THRESHOLDS

    @property
    def multiclass(self):
        return self.path / self.MULTICLASS

    @property
    def results(self):
        return self.path / self.RESULTS

    @property
    def logs(self):
        return self.path / self.LOGS

    @property
    def threshold_curve(self):
        return self.path / self.THRESHOLD_CURVE

    @property
    def threshold_curve_best(self):
        return self.path / self.THRESHOLD_CURVE_BEST

    @property
    def accuracy_plot(self):
        return self.path / self.ACCURACY_PLOT

    def checkpoint(self, name):
        """``best.keras`` or ``last.keras`` (``name``: ``"best"``/``"last"``)."""
        return self.path / f"{name}.keras"

    @property
    def has_run(self):
        """True once an epoch was committed (``state.json`` exists)."""
        return self.state.exists()

    # ------------------------------------------------------ reading, writing
    def read_config(self):
        """``config.json`` as a dict (FileNotFoundError naming it when absent)."""
        return _read_json(self.config)

    def write_config(self, meta):
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config, meta)

    def read_results(self):
        """``results.json`` as a dict (``{}`` when absent)."""
        return _read_json(self.results) if self.results.exists() else {}

    def write_results(self, summary):
        atomic_write_json(self.results, summary)

    def read_state(self):
        """``state.json`` as a dict (``{}`` when absent)."""
        return _read_json(self.state) if self.state.exists() else {}

    def write_state(self, state):
        atomic_write_json(self.state, state)

    def read_history(self, *, missing=None):
        return read_history(self.history, missing=missing)

    def recover(self):
        """:func:`recover_run` on this directory; returns its ``state.json``."""
        return recover_run(self.path)

    def load_model(self, checkpoint="best", *, compile=True):
        return load_run_model(self.path, checkpoint, compile=compile)


def _read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_model_atomic(model, path):
    """``model.save`` to a temporary ``.keras`` sibling, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, keep_suffix=True)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


_PENDING_PREFIX = ".pending-"


def _pending_dir(run_dir, epochs_completed):
    return Path(run_dir) / f"{_PENDING_PREFIX}{int(epochs_completed)}"


def _fsync_file(path):
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _format_cell(value):
    """A ``history.csv`` cell as Keras' ``CSVLogger`` writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"[{', '.join(map(str, value.ravel().tolist()))}]"
    return value


class AtomicCheckpoint(keras.callbacks.Callback):
    """Commit every epoch as one step: checkpoints, ``history.csv`` row, ``state.json``.

    ``state.json`` is the commit record, written last and atomically. For the
    epoch that brings the run to ``n`` completed epochs:

    1. rows: :class:`ThresholdSweep` (earlier in the callback list) has
       written the epoch's ``thresholds.csv`` rows; this callback writes its
       ``history.csv`` row (with ``history``: the columns of Keras'
       ``CSVLogger``, ``epoch`` then the sorted log keys);
    2. ``last.keras``, and ``best.keras`` when ``monitor`` improved, are
       saved into the pending folder ``.pending-<n>``;
    3. ``state.json`` gets ``epochs_completed = n``: the epoch is committed;
    4. the pending checkpoints are moved over ``last.keras``/``best.keras``
       and the folder is removed.

    Every file is written to a temporary name and moved into place
    (:mod:`keras_unets.io`). A run killed before step 3 has the previous
    epoch's state and checkpoints, plus rows of an epoch the state does not
    count; killed after it, a pending folder named for the committed epoch.
    :func:`recover_run` settles both before a resume (rows dropped, the
    folder discarded, or moved into place), so a resumed run sees all of an
    epoch or none of it.

    Args:
        run_dir: the run directory.
        monitor: log key deciding ``best.keras`` (``val_best_accuracy``);
            ``None`` (no validation data): every epoch is the best, so
            ``best.keras`` is ``last.keras``.
        mode: ``"max"`` or ``"min"``.
        state: dict of extra fields to keep in ``state.json`` (updated with
            ``epochs_completed``, ``best_value``, ``best_epoch``, ``last_logs``).
        history: path of ``history.csv`` (``None``: no history file). Its
            committed rows are kept; a resumed run appends to them.
    """

    def __init__(self, run_dir, *, monitor="val_best_accuracy", mode="max", state=None,
                 history=None):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'. Received: mode={mode!r}")
        self.run_dir = Path(run_dir)
        self.files = RunDir(run_dir)
        self.monitor = monitor
        self.mode = mode
        self.state = dict(state or {})
        self.best_value = self.state.get("best_value")
        self.best_epoch = self.state.get("best_epoch")
        self.history = Path(history) if history is not None else None
        self._history_header = None
        self._history_rows = None

    def _better(self, value):
        if self.monitor is None:
            return True
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        value = None if value is None else float(value)
        completed = int(epoch) + 1
        if self.history is not None:
            self._write_history(epoch, logs)
        improved = self._better(value)
        save_best = improved or not self.files.checkpoint("best").exists()
        pending = self._save_pending(completed, save_best)
        if save_best:
            self.best_epoch = completed
            if improved:
                self.best_value = value
        self.state.update({
            "epochs_completed": completed,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "last_logs": {k: _jsonable(v) for k, v in logs.items()},
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        self._write_state()
        self._publish(pending)

    # ------------------------------------------------------- steps of a commit
    def _write_history(self, epoch, logs):
        """Step 1: ``history.csv`` with this epoch's row (rows of later epochs dropped)."""
        if self._history_rows is None:
            self._history_header, self._history_rows = _read_csv(self.history)
        header = self._history_header or ["epoch"] + sorted(logs)
        header = header + sorted(k for k in logs if k not in header)
        row = {"epoch": str(int(epoch))}
        row.update({k: _format_cell(v) for k, v in logs.items()})
        rows = [r for r in self._history_rows if _row_epoch(r) is not None
                and _row_epoch(r) < int(epoch)] + [row]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, restval="NA", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.history, buf.getvalue())
        self._history_header, self._history_rows = header, rows

    def _save_pending(self, completed, save_best):
        """Step 2: the epoch's checkpoints into ``.pending-<completed>``."""
        pending = _pending_dir(self.run_dir, completed)
        if pending.exists():
            shutil.rmtree(pending)
        pending.mkdir(parents=True)
        last, best = RunDir(pending).checkpoint("last"), RunDir(pending).checkpoint("best")
        save_model_atomic(self.model, last)
        _fsync_file(last)
        if save_best:
            shutil.copyfile(last, best)
            _fsync_file(best)
        return pending

    def _write_state(self):
        """Step 3, the commit: ``state.json``."""
        self.files.write_state(self.state)

    def _publish(self, pending):
        """Step 4: move the committed checkpoints into place."""
        _roll_forward(pending, self.run_dir)


def _roll_forward(pending, run_dir):
    for name in ("last", "best"):
        src = RunDir(pending).checkpoint(name)
        if src.exists():
            _move(src, RunDir(run_dir).checkpoint(name))
    shutil.rmtree(pending, ignore_errors=True)


def _move(src, dst):
    os.replace(src, dst)


def _row_epoch(row):
    try:
        return int(float(row["epoch"]))
    except (KeyError, TypeError, ValueError):
        return None  # a torn row


def _read_csv(path):
    """``(header, rows)`` of a CSV file with an ``epoch`` column (``(None, [])`` if absent)."""
    if path is None or not Path(path).exists():
        return None, []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = list(reader.fieldnames or []) or None
    return header, rows


def _drop_rows_from(path, first_epoch):
    """Remove the rows of epochs ``>= first_epoch`` (and torn rows) from a CSV file.

    A file left without rows is deleted, so that the next writer picks its
    columns afresh.
    """
    header, rows = _read_csv(path)
    if header is None:
        return
    keep = [r for r in rows if _row_epoch(r) is not None and _row_epoch(r) < first_epoch]
    if not keep:
        Path(path).unlink()
    elif len(keep) != len(rows):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, restval="NA", lineterminator="\n")
        writer.writeheader()
        writer.writerows(keep)
        atomic_write_text(path, buf.getvalue())


RUN_TABLES = (RunDir.HISTORY, RunDir.THRESHOLDS, RunDir.MULTICLASS)


def recover_run(run_dir):
    """Settle a run directory on its last committed epoch; return its ``state.json``.

    Before a run directory is (re)used, undo what a killed
    :class:`AtomicCheckpoint` commit left half done: a pending folder of the
    committed epoch is moved into place (roll forward), any other pending
    folder is discarded (roll back), temporary files of killed writes are
    deleted, and the rows of :data:`RUN_TABLES` for epochs the state does not
    count are dropped. A directory without ``state.json`` has no committed
    epoch: every row goes.
    """
    run_dir = Path(run_dir)
    state = load_state(run_dir)
    committed = int(state.get("epochs_completed", 0))
    for pending in sorted(run_dir.glob(f"{_PENDING_PREFIX}*")):
        if not pending.is_dir():
            continue
        if committed > 0 and pending == _pending_dir(run_dir, committed):
            remove_temporaries(pending)
            _roll_forward(pending, run_dir)
        else:
            shutil.rmtree(pending, ignore_errors=True)
    remove_temporaries(run_dir)
    for name in RUN_TABLES:
        _drop_rows_from(run_dir / name, committed)
    return state


def _jsonable(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return value if math.isfinite(value) else None


def load_state(run_dir):
    """``state.json`` of a run directory as a dict (``{}`` if absent)."""
    return RunDir(run_dir).read_state()


def read_history(path, *, missing=None):
    """A ``history.csv`` as ``{column: [value, ...]}`` (floats where they parse).

    Cells that are not numbers are kept as they are, or replaced by ``missing``
    when it is given (e.g. ``float("nan")``). A missing file gives ``{}``.
    """
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    hist = {}
    for row in rows:
        for k, v in row.items():
            try:
                hist.setdefault(k, []).append(float(v))
            except (TypeError, ValueError):
                hist.setdefault(k, []).append(v if missing is None else missing)
    return hist


def load_run_model(run_dir, checkpoint="best", *, compile=True):
    """Load ``best.keras``/``last.keras`` (or a path) of a run directory.

    :func:`keras_unets.saving.load_model` on ``run_dir`` (``checkpoint``
    ``"best"`` or ``"last"``) or on the file ``checkpoint``.

    Raises:
        FileNotFoundError / ValueError: naming the file and the reason.
    """
    from keras_unets.saving import CHECKPOINTS, load_model

    if checkpoint in CHECKPOINTS:
        return load_model(run_dir, compile=compile, checkpoint=checkpoint)
    return load_model(checkpoint, compile=compile)
