"""Training API: train a named model with a named profile into a run directory.

Public API (stable; :mod:`keras_unets.report` builds on it)::

    train(model_name, *, profile="quick", data_dir=None, out=None, resume=None,
          epochs=None, steps_per_epoch=None, batch_size=None, crop=None,
          seed=None, val_slices=None, split=None, fold=None, folds=None,
          learning_rate=None, mixed_precision=False, strategy="default",
          time_limit_minutes=None, model_kwargs=None, overrides=None,
          verbose="auto", command_line=None) -> TrainResult

    evaluate_run(run_dir, *, checkpoint="best", data_dir=None, slices=None,
                 tta=False, threshold=None, tile=None) -> dict

    load_run_model(run_dir, checkpoint="best") -> keras.Model

Configuration flows one way (:mod:`keras_unets.training.config`): the defaults of
:class:`~keras_unets.training.config.TrainConfig` -> the profile's changes ->
per-network and per-model overrides -> explicit arguments. The resolved
config is written to ``config.json`` together with the library versions and
the command line.

Run directory (``out``; default ``runs/<model>-<profile>-<timestamp>``; its files
are named and written by :class:`keras_unets.training.run_dir.RunDir`):

* ``config.json``: resolved config, split (``split``, ``fold``, ``folds``;
  ``train_slices``, ``val_slices``, ``test_slices`` as lists of ints,
  ``val_source``), versions, command line.
* ``state.json``: epochs completed, best value/epoch: the commit record of
  each epoch (:class:`keras_unets.training.run_dir.AtomicCheckpoint`).
* ``history.csv``: the columns of Keras' ``CSVLogger`` (``epoch`` is Keras'
  0-based index), appended on resume.
* ``thresholds.csv``: per epoch and output, best threshold/accuracy and the
  256 accuracies of ``pred > t`` (:class:`keras_unets.training.callbacks.ThresholdSweep`).
* ``best.keras`` (highest ``val_best_accuracy``) and ``last.keras``, written
  atomically every epoch, with optimizer state.
* ``logs/``: TensorBoard.
* ``threshold_curve.png`` (latest epoch), ``threshold_curve_best.png`` (best
  epoch; the report's Fig. 10) and ``accuracy.png`` (the report's Fig. 11).
* ``results.json``: the :class:`TrainResult` fields.

Resuming (``resume=RUN_DIR``) reloads ``last.keras`` (weights and optimizer
state, learning-rate schedule included), the saved config, and continues at
the next epoch with the data stream of that epoch; a kill loses at most the
epoch that was running. Each epoch's checkpoints, ``history.csv`` and
``thresholds.csv`` rows and ``state.json`` are committed as one step
(:class:`keras_unets.training.run_dir.AtomicCheckpoint`), and a resume first settles
a commit a kill interrupted (:func:`keras_unets.training.run_dir.recover_run`), so
the tables hold every epoch ``0..n-1`` once. ``epochs`` and ``time_limit_minutes`` may be changed
on resume (e.g. to train longer); everything else comes from ``config.json``.

Splits (:func:`keras_unets.data.get_split`, :class:`RunSlices`): ``split="report"``
(default) trains on 0-24 and keeps 25-29 as test slices; validation is by
default on those test slices, as the report tuned its binarisation threshold
there (Liu et al., sec. IV), and ``val_slices="20-24"`` holds out training
slices instead (removed from the 0-24 training set). ``split="kfold"`` with
``fold=N`` of ``folds=K`` (default 5) validates on fold N and trains on every
other slice of the 30, with no test slices. Every run prints its training,
validation and test slices when it starts (unless ``verbose=0``);
``config.json`` and ``results.json`` say which (``val_source``: ``"test"``,
``"holdout"``, ``"mixed"`` or ``"fold"``).

Your own data (``images=``/``masks=``: two folders, two TIFF stacks, or
arrays; :mod:`keras_unets.data.folders`): every image and mask, training and
validation, is read and checked before anything is written. Validation is a
second pair (``val_images=``/``val_masks=``), a seeded ``val_fraction`` of
whole images, or none (``best.keras`` is then ``last.keras``). Binary masks
train one sigmoid channel with the profile's loss and the threshold sweep;
K >= 3 classes a K-channel softmax with
:class:`keras_unets.losses.CategoricalCEDiceLoss`, validated by
:class:`keras_unets.training.callbacks.MulticlassValidation` (``multiclass.csv``; best
checkpoint: highest ``val_mean_dice``). ``config.json`` records ``data``
(kind, folders, mask suffix, training and validation stems), ``classes``,
``channels`` and ``intensity`` (the rule prediction must apply); a resume
reads the same folders again.

Numeric arguments are checked before anything is written
(:class:`OptionError` names the argument, the value and what would work).
"""


import copy
import datetime as _dt
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_unets.training.build import (
    _build_model,
    _check_crop_for_model,
    _check_model_for_data,
    _model_io_sizes,
    _model_kwargs_for_data,
    _strategy_scope,
)
from keras_unets.training.config import resolve_config
from keras_unets.training.datasets import (
    RunData,
    _resumed_own_options,
    _val_stack,
    _wrap_valid,
    load_run_data,
    make_dataset,
)
from keras_unets.training.evaluate import evaluate_run
from keras_unets.training.loop import train_loop
from keras_unets.training.options import (
    OptionError,
    RunExistsError,
    RunSlices,
    _check_model_name,
    _check_options,
    _explicit_settings,
    _own_data_options,
    _resumed_config,
)
from keras_unets.training.results import TrainResult, _best_dice, _best_sweep_row, _write_results
from keras_unets.training.run_dir import RunDir, load_run_model
from keras_unets.training.schedules import compile_model

__all__ = ["TrainResult", "RunSlices", "RunData", "OptionError", "RunExistsError", "train", "train_loop",
           "evaluate_run", "load_run_model"]


def _versions():
    import keras

    out = {
        "keras_unets": _pkg_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for mod in ("tensorflow", "jax", "torch"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", "?")
    return out


def _pkg_version():
    from keras_unets import __version__

    return __version__


def _tensorboard_callback(log_dir):
    """Keras' TensorBoard callback, or None (with a warning) when it cannot write.

    Keras 3's callback writes its event files with ``tensorflow.summary`` on
    every backend, so it needs TensorFlow as well as the ``tensorboard``
    package. A JAX or PyTorch machine without TensorFlow (e.g. the project's
    GPU device image, which has tensorboard) would otherwise stop training in
    ``on_train_begin`` with ``No module named 'tensorflow'``.
    """
    import importlib.util

    import keras

    missing = [name for name in ("tensorboard", "tensorflow")
               if importlib.util.find_spec(name) is None]
    if missing:
        warnings.warn(f"TensorBoard logging disabled: Keras' TensorBoard callback needs "
                      f"{' and '.join(missing)}, not installed (pip install {' '.join(missing)}).")
        return None
    try:
        return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False,
                                           profile_batch=0)
    except Exception as exc:  # noqa: BLE001 - logging must not stop training
        warnings.warn(f"TensorBoard logging disabled: {exc}")
        return None


def _default_out(model_name, profile):
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{model_name}-{profile}-{stamp}"


def _validation_callback(data, config, files, val_tile):
    """``(callback, monitor)``: the threshold sweep (binary), K-class Dice, or none."""
    from keras_unets.training.callbacks import MulticlassValidation, ThresholdSweep

    if data.x_val is None:
        return None, None
    logits = bool(config["from_logits"])
    if not data.binary:
        return MulticlassValidation(data.x_val, data.y_val, data.classes,
                                    csv_path=files.multiclass,
                                    from_logits=logits), "val_mean_dice"
    x_val, y_val = _val_stack(data) if data.own else (data.x_val, data.y_val)
    sweep = ThresholdSweep(
        x_val, y_val, csv_path=files.thresholds, curve_path=files.threshold_curve,
        history_path=files.accuracy_plot, tile=val_tile,
        batch_size=max(1, min(4, int(config["batch_size"]))),
        from_logits=logits, tune=_blind_tune_set(data),
    )
    return sweep, "val_best_accuracy"


def _blind_tune_set(data):
    """Training slices 20-24 of a run validated on the report's test slices, else ``None``.

    They tune the per-epoch "blind" threshold (``val_blind_accuracy`` in
    ``history.csv``): the report's split, with 25-29 used only to measure.
    """
    from keras_unets.data.splits import BLIND_SLICES

    if data.slices is None or data.val_source != "test":
        return None
    train = list(data.slices.train)
    if not all(s in train for s in BLIND_SLICES):
        return None
    idx = [train.index(s) for s in BLIND_SLICES]
    return data.x_train[idx], data.y_train[idx]


def _read_saved_run(run_dir, model_name):
    files = RunDir(run_dir)
    if not files.config.exists():
        raise FileNotFoundError(
            f"Cannot resume: {files.config} does not exist (not a run directory)."
        )
    saved = files.read_config()
    if saved["model_name"] != model_name and model_name is not None:
        raise ValueError(
            f"Run {run_dir} trained {saved['model_name']!r}, not {model_name!r}."
        )
    return saved


def train(
    model_name,
    *,
    profile="quick",
    data_dir=None,
    images=None,
    masks=None,
    val_images=None,
    val_masks=None,
    val_fraction=None,
    classes=None,
    mask_suffix="",
    out=None,
    resume=None,
    epochs=None,
    steps_per_epoch=None,
    batch_size=None,
    crop=None,
    seed=None,
    val_slices=None,
    split=None,
    fold=None,
    folds=None,
    learning_rate=None,
    mixed_precision=False,
    strategy="default",
    time_limit_minutes=None,
    model_kwargs=None,
    overrides=None,
    verbose="auto",
    command_line=None,
):
    """Train ``model_name`` with ``profile`` into a run directory.

    Args:
        model_name: a registered model (``keras_unets.models.MODEL_NAMES``:
            ``unet``, ``unet_report``, ``unetpp``, ``unetpp_ds``, ``unet3p``,
            ``unet3p_ds``, ``unet3p_ds_cgm``, ...). The UNet 3+
            classification-guided module's ``cls`` output is trained with
            binary cross-entropy on "does the crop contain a cell pixel"
            (:func:`keras_unets.augment.cgm_targets`; Huang et al. 2020,
            sec. 2.3) and left out of the threshold sweep.
        profile: ``"paper"``, ``"quick"`` or ``"smoke"``
            (:mod:`keras_unets.training.config`).
        data_dir: ISBI 2012 folder (``keras_unets.data.resolve_data_dir``).
        images, masks: your own data instead of ISBI 2012: two folders (or
            two multi-page TIFF stacks) of image/mask pairs
            (:func:`keras_unets.data.folders.load_folder_pairs`), or arrays /
            lists of arrays (:func:`keras_unets.data.folders.from_arrays`). Any
            size, grey or RGB, 8 or 16 bit; the model gets the images'
            channels and one sigmoid output (binary masks) or a K-channel
            softmax (``classes=K``), trained with
            :class:`keras_unets.losses.CategoricalCEDiceLoss` and validated by
            :class:`keras_unets.training.callbacks.MulticlassValidation` (best
            checkpoint: highest ``val_mean_dice``).
        val_images, val_masks: a separate validation pair of folders (or arrays).
        val_fraction: or hold out this fraction of the images (whole images,
            drawn with the run's seed; the stems go to ``config.json``).
            Neither: no validation, ``best.keras`` is ``last.keras``.
        classes: None (infer from the masks), 2 (binary) or K >= 3.
        mask_suffix: mask file stem = image stem + suffix (e.g. ``"_mask"``).
        out: run directory; default ``runs/<model>-<profile>-<timestamp>``.
        resume: a run directory (or ``True`` with ``out``) to continue from
            its ``last.keras``.
        epochs, steps_per_epoch, batch_size, crop, seed, learning_rate,
        time_limit_minutes: override the profile (``None`` keeps it).
        val_slices: ``None`` (report test slices 25-29) or a selection like
            ``"20-24"`` held out of the training slices (``split="report"``).
        split: ``"report"`` (default; train 0-24, test 25-29) or ``"kfold"``
            (validate on fold ``fold`` of ``folds``, train on the other
            slices, no test slices); kept on resume.
        fold, folds: the k-fold fold ``0..folds-1`` (required with
            ``"kfold"``) and the number of folds ``2..30`` (default 5).
        mixed_precision: Keras ``mixed_float16`` policy (outputs stay float32).
        strategy: ``"default"`` or ``"mirrored"`` (TensorFlow only).
        model_kwargs: extra builder arguments (merged into the profile's).
        overrides: other config keys (:data:`keras_unets.training.config.CONFIG_KEYS`).
        verbose: Keras ``fit`` verbosity (``"auto"``: progress bar).
        command_line: recorded in ``config.json`` (default ``sys.argv``).

    Returns:
        :class:`TrainResult`.

    Raises:
        OptionError: a numeric argument or split argument out of range
            (``epochs`` >= 1, ``steps_per_epoch`` >= 1, ``batch_size`` >= 1,
            ``crop`` a size the model takes, ``learning_rate`` and
            ``time_limit_minutes`` finite and > 0, ``0 <= fold < folds``,
            ``2 <= folds <= 30``), or own-data options that conflict;
            nothing is written.
        keras_unets.data.DataNotFoundError, keras_unets.data.DataFormatError:
            own data that cannot be read or paired (naming the file);
            nothing is written.
        RunExistsError: ``out`` holds a run already (resume it instead).
    """
    explicit = _explicit_settings(
        overrides, model_kwargs, epochs=epochs, steps_per_epoch=steps_per_epoch,
        batch_size=batch_size, crop=crop, seed=seed, val_slices=val_slices,
        learning_rate=learning_rate, time_limit_minutes=time_limit_minutes)
    _check_options(explicit)  # the caller's own values first, named as given
    own = _own_data_options(images, masks, val_images, val_masks, val_fraction, classes,
                            mask_suffix, isbi_options={"data_dir": data_dir, "split": split,
                                                       "fold": fold, "folds": folds,
                                                       "val_slices": val_slices})
    run = _RunSettings(model_name=model_name, profile=profile, explicit=explicit, own=own,
                       split=split, fold=fold, folds=folds,
                       mixed_precision=bool(mixed_precision), strategy=strategy)
    if resume is not None and resume is not False:
        run.resume_from(_resume_dir(resume, out))
    else:
        run.start_new(out)
    # bad values and bad data fail before anything is written
    _check_model_name(run.model_name)
    _check_options(run.config)
    data = load_run_data(data_dir=data_dir, own=run.own, split=run.split, fold=run.fold,
                         folds=run.folds, config=run.config,
                         saved=(run.meta or {}).get("data"))
    command_line = list(command_line) if command_line is not None else list(sys.argv)
    return _Run(model_name=run.model_name, profile=run.profile, config=run.config,
                run_dir=run.run_dir, data=data, meta=run.meta, command_line=command_line,
                mixed_precision=run.mixed_precision, strategy=run.strategy or "default",
                verbose=verbose).execute()


def _resume_dir(resume, out):
    if resume is True and out is None:
        raise ValueError("resume=True needs out=RUN_DIR (the run to continue).")
    return Path(out if resume is True else resume)


@dataclass
class _RunSettings:
    """The settings of a :func:`train` call: a new run's, or those saved in a resumed run."""

    model_name: str
    profile: str
    explicit: dict
    own: object
    split: object
    fold: object
    folds: object
    mixed_precision: bool
    strategy: object
    config: dict = None
    run_dir: Path = None
    meta: object = None

    def start_new(self, out):
        _check_model_name(self.model_name)
        self.config = resolve_config(self.profile, self.model_name, **self.explicit)
        self.run_dir = (Path(out) if out is not None
                        else _default_out(self.model_name, self.profile))
        if RunDir(self.run_dir).has_run:
            raise RunExistsError(self.run_dir)

    def resume_from(self, run_dir):
        """Everything but ``epochs`` and ``time_limit_minutes`` from the run's config.json."""
        self.run_dir = run_dir
        meta = self.meta = _read_saved_run(run_dir, self.model_name)
        self.model_name, self.profile = meta["model_name"], meta["profile"]
        self.config = _resumed_config(meta, self.explicit, RunDir(run_dir).config,
                                      {"split": self.split, "fold": self.fold,
                                       "folds": self.folds})
        self.own = _resumed_own_options(meta, self.own)
        self.split, self.fold = meta.get("split", "report"), meta.get("fold")
        self.folds = meta.get("folds")
        self.mixed_precision = bool(meta.get("mixed_precision", False))
        if self.strategy in (None, "default"):
            self.strategy = meta.get("strategy", "default")


@dataclass
class _Run:
    """One call of :func:`train` after its options and data are checked: the steps."""

    model_name: str
    profile: str
    config: dict
    run_dir: Path
    data: RunData
    meta: object
    command_line: list
    mixed_precision: bool
    strategy: str
    verbose: object

    @property
    def files(self):
        return RunDir(self.run_dir)

    @property
    def resuming(self):
        return self.meta is not None

    def execute(self):
        import keras

        previous_policy = keras.config.dtype_policy()
        if self.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            strat, scope = _strategy_scope(self.strategy)
            with scope:
                model, state = self._model()
            self._prepare(model, strat)
            callbacks, limit = self._callbacks(state)
            seconds = self._loop(model, strat, callbacks)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        return self._results(model, seconds, limit)

    # ------------------------------------------------------------- the model
    def _model(self):
        import keras

        from keras_unets.models import get_model

        self.total_epochs = int(self.config["epochs"])
        steps = self.config["steps_per_epoch"]
        if steps is None:  # one pass
            steps = -(-len(self.data.x_train) // int(self.config["batch_size"]))
        self.steps = int(steps)
        if self.resuming:
            # the last committed epoch: half-done commits settled first
            state = self.files.recover()
            model = self.files.load_model("last")
        else:
            state = {}
            keras.utils.set_random_seed(int(self.config["seed"]))
            kwargs = _model_kwargs_for_data(self.model_name, self.config, self.data)
            model = _build_model(self.model_name, self.config, get_model, kwargs=kwargs,
                                 channels=self.data.channels)
            compile_model(model, self.config, self.total_epochs * self.steps,
                     classes=self.data.classes)
        self.initial_epoch = int(state.get("epochs_completed", 0))
        if self.resuming and self.initial_epoch >= self.total_epochs:
            warnings.warn(f"{self.run_dir} already completed {self.initial_epoch} of "
                          f"{self.total_epochs} epochs.")
        return model, state

    def _prepare(self, model, strat):
        """Crop and tile sizes, the data set, then (checks passed) config.json."""

        data, config = self.data, self.config
        whole = None if data.own else data.x_train.shape[1]
        crop_size = config["crop"] or whole
        if not self.resuming and model.inputs[0].shape[1] is None and crop_size is not None:
            _check_crop_for_model(model, crop_size, data.channels)
        tile, out_size = _model_io_sizes(model, crop_size, data.channels)
        self.valid_padding = out_size is not None and out_size != tile
        if tile != crop_size:  # a fixed-size model trains on crops of its size
            crop_size = tile
        self.val_tile = config.get("val_tile") or (tile if self.valid_padding else None)
        _check_model_for_data(model, data, self.valid_padding)
        dataset = make_dataset(data, config, model, crop_size, self.steps)
        dataset.set_epoch(self.initial_epoch)
        self.fit_data = _wrap_valid(dataset, out_size) if self.valid_padding else dataset
        if self.verbose != 0:
            print(f"{self.run_dir}: {data.describe()}", flush=True)
        if not self.resuming:
            if self.run_dir.exists():  # leftovers of a run killed before its first epoch
                self.files.recover()
            self.meta = self._new_meta(model, strat, crop_size)
            self.meta["resumed"] = []
            self._resumed = False
        else:
            self._resumed = True
            self.meta.setdefault("resumed", []).append({
                "at_epoch": self.initial_epoch,
                "epochs": self.total_epochs,
                "command_line": self.command_line,
                "versions": _versions(),
                "time": _dt.datetime.now().isoformat(timespec="seconds"),
            })
            self.meta["config"] = config
            self.meta.update(data.meta())  # older runs recorded compact strings
        self.files.write_config(self.meta)

    def _new_meta(self, model, strat, crop_size):
        from keras_unets.models import main_output_name

        data = self.data
        meta = {"model_name": self.model_name, "profile": self.profile, "config": self.config,
                **data.meta(), "steps_per_epoch": self.steps,
                "crop": None if crop_size is None else int(crop_size)}
        if not data.own:
            meta["data_source"] = data.record["source"]
        if data.x_val is None:
            meta["checkpoint"] = {"monitor": None, "best": "last.keras (no validation data)"}
        meta.update({
            "mixed_precision": self.mixed_precision,
            "strategy": self.strategy,
            "replicas": int(strat.num_replicas_in_sync) if strat is not None else 1,
            "model_params": int(model.count_params()),
            "output_names": list(model.output_names),
            "main_output": main_output_name(model),
            "versions": _versions(),
            "command_line": self.command_line,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
        })
        return meta

    # --------------------------------------------------------- the callbacks
    def _callbacks(self, state):
        from keras_unets.training.callbacks import EpochClock, TimeLimit
        from keras_unets.training.run_dir import AtomicCheckpoint
        from keras_unets.training.schedules import CosineTimeDecay

        config = self.config
        callbacks = []
        if config.get("lr_schedule") == "cosine_time":
            # same clock as TimeLimit: a resumed call starts a fresh time
            # budget; the step fraction carries over.
            callbacks.append(CosineTimeDecay(
                float(config["learning_rate"]), total_steps=self.total_epochs * self.steps,
                minutes=config.get("time_limit_minutes") or None,
                alpha=float(config.get("lr_min_fraction") or 0.0),
                initial_step=self.initial_epoch * self.steps))
        validation, monitor = _validation_callback(self.data, config, self.files,
                                                   self.val_tile)
        if validation is not None:
            callbacks.append(validation)
        callbacks.append(EpochClock(self._elapsed_before()))
        limit = None
        if config.get("time_limit_minutes"):
            limit = TimeLimit(float(config["time_limit_minutes"]))
            callbacks.append(limit)
        # the epoch's commit: after every callback that adds to the logs
        callbacks.append(AtomicCheckpoint(
            self.run_dir, monitor=monitor, mode="max",
            state={k: state[k] for k in ("best_value", "best_epoch") if k in state},
            history=self.files.history))
        tensorboard = _tensorboard_callback(self.files.logs)
        if tensorboard is not None:
            callbacks.append(tensorboard)
        return callbacks, limit

    def _elapsed_before(self):
        """Seconds a resumed run had trained by its last completed epoch (0 for a new run)."""
        if self.initial_epoch == 0:
            return 0.0
        hist = self.files.read_history()
        pairs = [(e, t) for e, t in zip(hist.get("epoch", []), hist.get("elapsed_seconds", []))
                 if isinstance(t, float) and e < self.initial_epoch]
        return pairs[-1][1] if pairs else 0.0

    def _loop(self, model, strat, callbacks):
        start = time.perf_counter()
        if self.initial_epoch < self.total_epochs:
            if strat is None:
                train_loop(model, self.fit_data, epochs=self.total_epochs,
                           initial_epoch=self.initial_epoch, callbacks=callbacks,
                           verbose=self.verbose)
            else:  # tf.distribute splits each batch across replicas inside fit
                model.fit(self.fit_data, epochs=self.total_epochs,
                          initial_epoch=self.initial_epoch, callbacks=callbacks,
                          verbose=self.verbose)
        return time.perf_counter() - start

    # ----------------------------------------------------------- the results
    def _results(self, model, seconds, limit):
        state = self.files.read_state()
        last_epoch = int(state.get("epochs_completed", self.initial_epoch))
        best_epoch = state.get("best_epoch")
        main = self.meta.get("main_output") or list(model.output_names)[-1]
        if self.data.binary:
            threshold, accuracy = _best_sweep_row(self.run_dir, main, best_epoch)
            mean_dice = None
        else:
            threshold, accuracy, mean_dice = -1, float("nan"), _best_dice(self.run_dir, best_epoch)
        result = TrainResult(
            run_dir=self.run_dir, model_name=self.model_name, profile=self.profile,
            best_threshold=threshold, best_accuracy=accuracy,
            best_epoch=int(best_epoch) if best_epoch else 0,
            epochs_run=last_epoch - self.initial_epoch, last_epoch=last_epoch,
            train_seconds=float(seconds), val_slices=tuple(self.data.val_names),
            val_source=self.data.val_source,
            stopped_by_time_limit=bool(limit is not None and limit.stopped_epoch is not None),
            history=self.files.read_history(),
            config=copy.deepcopy(self.config), classes=self.data.classes,
            best_mean_dice=mean_dice,
        )
        _write_results(self.run_dir, result, seconds, self._resumed)
        return result
