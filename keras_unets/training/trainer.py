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

Configuration flows one way (:mod:`keras_unets.training.config`): profile defaults ->
per-network and per-model overrides -> explicit arguments. The resolved
config is written to ``config.json`` together with the library versions and
the command line.

Run directory (``out``; default ``runs/<model>-<profile>-<timestamp>``):

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
import csv
import datetime as _dt
import json
import math
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from keras_unets.io import atomic_write_json
from keras_unets.training.config import resolve_config, without_retired_keys
from keras_unets.training.loop import train_loop
from keras_unets.training.run_dir import load_run_model, read_history
from keras_unets.training.schedules import compile_model

__all__ = ["TrainResult", "RunSlices", "RunData", "OptionError", "RunExistsError", "train", "train_loop",
           "evaluate_run", "load_run_model"]

_RESUME_CHANGEABLE = ("epochs", "time_limit_minutes")


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


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
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


def _check_model_name(name):
    from keras_unets.models import MODEL_NAMES

    if name not in MODEL_NAMES:
        raise ValueError(
            f"Unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}. "
            f"Received: model_name={name!r}"
        )


def _resolve_val(val_slices):
    """``(train, val, source)`` of the report split (:func:`keras_unets.data.get_split`).

    ``None``: validate on the report's test slices; otherwise the selection is
    held out of the report's training slices.
    """
    from keras_unets.data import get_split, parse_slices

    report = get_split("report")
    if val_slices is None:
        return report.train, report.test, "test"
    val = parse_slices(val_slices, n_slices=30)
    train = tuple(i for i in report.train if i not in val)
    if set(val) <= set(report.test):
        source = "test"
    elif set(val) <= set(report.train):
        source = "holdout"
    else:
        source = "mixed"
    if not train:
        raise ValueError(f"No training slices left after holding out {val_slices!r}.")
    return train, val, source


SPLITS = ("report", "kfold")
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class RunSlices:
    """Which labelled slices a run trains on, validates on and keeps as test slices.

    ``split="report"``: train on 0-24 less ``val_slices`` (default: validate
    on the test slices 25-29, as the report tuned its threshold there);
    ``split="kfold"``: fold ``fold`` of ``folds`` contiguous folds
    (:func:`keras_unets.data.get_split`) validates, every other slice of the
    30 trains, and no slice is kept for testing.
    """

    split: str
    fold: object
    folds: object
    train: tuple
    val: tuple
    test: tuple
    val_source: str

    def describe(self):
        """``"training slices 0-19,22-24; validation 20-21; test 25-29"``."""
        from keras_unets.data import format_slices

        return (f"{self.split} split: training slices {format_slices(self.train)}; "
                f"validation {format_slices(self.val)}; "
                f"test {format_slices(self.test) or 'none'}")

    def to_json(self):
        return {"split": self.split, "fold": self.fold, "folds": self.folds,
                "train_slices": list(self.train), "val_slices": list(self.val),
                "test_slices": list(self.test), "val_source": self.val_source}


def _resolve_slices(split, fold, folds, val_slices):
    """The :class:`RunSlices` of ``split`` (checked: :class:`OptionError` names the argument)."""
    from keras_unets.data import get_split

    split = "report" if split is None else split
    if split not in SPLITS:
        raise OptionError("split", split, f"one of {list(SPLITS)}")
    if split == "report":
        for option, value in (("fold", fold), ("folds", folds)):
            if value is not None:
                raise OptionError(option, value, "left unset with the report split "
                                  "(it picks a fold of the kfold split)")
        train, val, source = _resolve_val(val_slices)
        return RunSlices("report", None, None, train, val, get_split("report").test, source)
    if val_slices is not None:
        raise OptionError("val_slices", val_slices, "left unset with the kfold split "
                          "(the fold's slices are the validation slices)")
    folds = DEFAULT_FOLDS if folds is None else folds
    n = len(get_split("all").train)
    _check_int("folds", folds, 2, f"an int in 2..{n}", maximum=n)
    if fold is None:
        raise OptionError("fold", fold, f"an int in 0..{folds - 1} with the kfold split "
                          f"(the fold to validate on)")
    _check_int("fold", fold, 0, f"an int in 0..{folds - 1} (one of {folds} folds)",
               maximum=folds - 1)
    s = get_split("kfold", n_folds=int(folds), fold=int(fold))
    return RunSlices("kfold", int(fold), int(folds), s.train, s.test, (), "fold")


class OptionError(ValueError):
    """An argument of :func:`train` out of range, before anything is written.

    ``option`` is the argument's name (the CLI shows its own flag for it),
    ``value`` what was received and ``expected`` what would work.
    """

    def __init__(self, option, value, expected):
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(f"{option} must be {expected}. Received: {option}={value!r}")


class RunExistsError(FileExistsError):
    """``out`` already holds a run (``state.json``); resuming it is the way to continue."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        super().__init__(f"{self.run_dir} already holds a run; pass resume="
                         f"{str(self.run_dir)!r} to continue it or choose another out "
                         "directory.")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_int(option, value, minimum, expected, *, maximum=None):
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise OptionError(option, value, expected)


def _check_positive_number(option, value, expected):
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and math.isfinite(value) and value > 0)
    if not ok:
        raise OptionError(option, value, expected)


def _check_options(config):
    """Check the numeric settings of a config (or of explicit arguments) before any write."""
    checks = {
        "epochs": lambda v: _check_int("epochs", v, 1, "an int >= 1, e.g. 40"),
        "steps_per_epoch": lambda v: v is None or _check_int(
            "steps_per_epoch", v, 1, "an int >= 1, or None for one pass over the "
                                     "training slices"),
        "batch_size": lambda v: _check_int("batch_size", v, 1, "an int >= 1, e.g. 2"),
        "crop": lambda v: v is None or _check_int(
            "crop", v, 1, "a positive int (crop size in pixels, e.g. 256), or None "
                          "for whole slices"),
        "seed": lambda v: _check_int("seed", v, 0, "an int >= 0, e.g. 0"),
        "learning_rate": lambda v: _check_positive_number(
            "learning_rate", v, "a finite number > 0, e.g. 1e-4"),
        "time_limit_minutes": lambda v: v is None or _check_positive_number(
            "time_limit_minutes", v, "a finite number of minutes > 0, or None for no "
                                     "limit"),
    }
    for key, check in checks.items():
        if key in config:
            check(config[key])


def _check_crop(crop, slice_size):
    if crop is not None and crop > slice_size:
        raise OptionError("crop", crop, f"at most the slice size {slice_size} "
                          "(or None for whole slices)")


def _check_crop_for_model(model, crop, channels=1):
    """A same-padding model must take ``crop x crop`` tiles (e.g. a multiple of 2**depth)."""
    from keras_unets.inference.predict import check_tile, model_stride

    if channels != 1:  # check_tile runs grey tiles: a colour model is checked by its stride
        stride = model_stride(model)
        if crop % stride:
            below, above = crop // stride * stride, -(-crop // stride) * stride
            raise OptionError("crop", crop, f"a multiple of the model's stride {stride} "
                              f"(e.g. {below or above} or {above})")
        return
    try:
        check_tile(model, crop)
    except ValueError as exc:
        raise OptionError("crop", crop, f"a size the model takes ({exc})") from exc


def _valid_padding_input(model_name, kwargs, config, channels=1):
    """Valid-padding U-Nets train on tiles of the crop size (a valid size)."""
    from keras_unets.models import get_model_info

    padding = kwargs.get("padding", get_model_info(model_name)["preset"].get("padding"))
    if padding == "valid" and "input_shape" not in kwargs:
        size = int(config["crop"] or 512)
        kwargs["input_shape"] = (size, size, int(channels))
    return kwargs


def _build_model(model_name, config, get_model, *, kwargs=None, channels=1):
    """The config's model; a crop an unpadded network cannot take is named as ``crop``."""
    kwargs = dict(config["model_kwargs"]) if kwargs is None else dict(kwargs)
    kwargs = _valid_padding_input(model_name, kwargs, config, channels)
    try:
        return get_model(model_name, **kwargs)
    except ValueError as exc:
        if "input_shape" in kwargs and "input_shape" not in config["model_kwargs"]:
            raise OptionError("crop", config["crop"],
                              f"an input size the unpadded network takes ({exc})") from exc
        raise


def _model_io_sizes(model, crop, channels=1):
    """``(input tile, output size)`` of the model for training crops (``None`` for whole images)."""
    shape = tuple(model.inputs[0].shape)
    tile = shape[1] if shape[1] is not None else crop
    if tile is None:
        return None, None
    out = model.compute_output_shape((1, tile, tile, int(channels)))
    if isinstance(out, dict):
        out = list(out.values())[0]
    elif isinstance(out, (list, tuple)) and isinstance(out[0], (list, tuple)):
        out = out[0]
    return tile, out[1]


class _CenterCropTargets:
    """Wrap a dataset so ``y`` (and weights) match a valid-padding output."""

    def __init__(self, dataset, out_size):
        self.dataset = dataset
        self.out = int(out_size)

    def crop(self, a):
        if isinstance(a, dict):
            return {k: self.crop(v) for k, v in a.items()}
        if a.ndim < 3:  # per-sample targets/weights (CGM ``cls``): not maps
            return a
        h = a.shape[1]
        o = (h - self.out) // 2
        return a[:, o:o + self.out, o:o + self.out]


def _wrap_valid(dataset, out_size):
    import keras

    helper = _CenterCropTargets(dataset, out_size)

    class ValidTargets(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return len(dataset)

        def __getitem__(self, index):
            batch = dataset[index]
            return (batch[0],) + tuple(helper.crop(b) for b in batch[1:])

        def on_epoch_end(self):
            dataset.on_epoch_end()

    return ValidTargets()


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------
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


def _strategy_scope(strategy):
    import contextlib

    import keras

    if strategy in (None, "default"):
        return None, contextlib.nullcontext()
    if strategy != "mirrored":
        raise ValueError(
            f"strategy must be 'default' or 'mirrored'. Received: strategy={strategy!r}"
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "strategy='mirrored' uses tf.distribute.MirroredStrategy and needs "
            "the TensorFlow backend (KERAS_BACKEND=tensorflow). Received: "
            f"backend={keras.backend.backend()!r}"
        )
    import tensorflow as tf

    strat = tf.distribute.MirroredStrategy()
    return strat, strat.scope()


# ---------------------------------------------------------------------------
# Data of a run: ISBI 2012 slices or your own image/mask pairs
# ---------------------------------------------------------------------------
@dataclass
class RunData:
    """What a run trains and validates on.

    ``x_train``/``y_train`` (and ``x_val``/``y_val``, ``None`` without
    validation) are ``uint8`` stacks for ISBI 2012 and lists of images of any
    size for your own data (:mod:`keras_unets.data.folders`). ``classes`` is 2 for
    a binary run (one sigmoid output), else K >= 3 (a K-channel softmax);
    ``record`` is config.json's ``"data"`` entry.
    """

    x_train: object
    y_train: object
    x_val: object
    y_val: object
    channels: int
    classes: int
    record: dict
    val_names: tuple
    val_source: str
    slices: object = None
    intensity: object = None

    @property
    def binary(self):
        return self.classes == 2

    @property
    def own(self):
        return self.slices is None

    def describe(self):
        if self.slices is not None:
            return self.slices.describe()
        val = (f"validation {len(self.val_names)} images ({self.val_source})"
               if self.x_val is not None else "no validation (best.keras = last.keras)")
        kind = "binary" if self.binary else f"{self.classes} classes"
        return (f"{self.record['kind']}: {len(self.x_train)} training images; {val}; "
                f"{self.channels} channel(s), {kind}")

    def meta(self):
        """config.json fields of the data."""
        if self.slices is not None:
            return {**self.slices.to_json(), "data": self.record, "classes": 2, "channels": 1}
        return {"data": self.record, "classes": self.classes, "channels": self.channels,
                "intensity": self.intensity, "val_stems": list(self.val_names),
                "val_source": self.val_source}


_OWN_OPTIONS = ("images", "masks", "val_images", "val_masks", "val_fraction", "classes",
                "mask_suffix")


def _own_data_options(images, masks, val_images, val_masks, val_fraction, classes, mask_suffix,
                      *, isbi_options):
    """The own-data arguments as a dict (``None`` for an ISBI 2012 run), conflicts checked."""
    given = {"images": images, "masks": masks, "val_images": val_images, "val_masks": val_masks,
             "val_fraction": val_fraction, "classes": classes,
             "mask_suffix": mask_suffix or None}
    if images is None and masks is None:
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise OptionError(extra[0], given[extra[0]],
                              "left unset without images= and masks= (your own data; the "
                              "ISBI 2012 run is binary with its own split)")
        return None
    if images is None or masks is None:
        missing = "images" if images is None else "masks"
        raise OptionError(missing, None, "given with "
                          f"{'masks' if missing == 'images' else 'images'}= (a folder, a TIFF "
                          "stack or arrays: one mask per image)")
    for option, value in isbi_options.items():
        if value is not None:
            raise OptionError(option, value, "left unset with your own images (it selects "
                              "ISBI 2012 slices; use val_images=/val_masks= or val_fraction=)")
    if (val_images is None) != (val_masks is None):
        missing = "val_images" if val_images is None else "val_masks"
        raise OptionError(missing, None, "given with the other of val_images=/val_masks=")
    if val_images is not None and val_fraction is not None:
        raise OptionError("val_fraction", val_fraction,
                          "left unset with val_images=/val_masks= (one validation set)")
    if val_fraction is not None:
        ok = (isinstance(val_fraction, (float, int)) and not isinstance(val_fraction, bool)
              and 0.0 < val_fraction < 1.0)
        if not ok:
            raise OptionError("val_fraction", val_fraction, "a number in (0, 1), e.g. 0.2")
    if classes is not None:
        _check_int("classes", classes, 1, "an int: 2 (binary) or K >= 3 classes, or None to "
                   "infer from the masks")
    return given


def _is_path(value):
    return isinstance(value, (str, Path))


def _load_pairs(images, masks, *, mask_suffix, classes, intensity=None):
    from keras_unets.data.folders import from_arrays, load_folder_pairs

    if _is_path(images) and _is_path(masks):
        return load_folder_pairs(images, masks, mask_suffix=mask_suffix or "", classes=classes,
                                 intensity=intensity)
    if _is_path(images) or _is_path(masks):
        raise OptionError("masks" if _is_path(images) else "images", masks if _is_path(
            images) else images, "of the same kind as the other: two folders (or TIFF "
            "stacks), or two arrays / lists of arrays")
    return from_arrays(images, masks, classes=classes, intensity=intensity)


def _check_val_matches(train_set, val_set):
    from keras_unets.data.folders import ChannelsError

    if val_set.channels != train_set.channels:
        raise ChannelsError(
            f"The validation images {val_set.sources[0]} have {val_set.channels} channel(s), "
            f"the training images {train_set.sources[0]} {train_set.channels}; give "
            "validation images of the same kind.")


def _load_own_data(own, seed, saved=None):
    """Read and check every image and mask of the run (training and validation)."""
    train_set = _load_pairs(own["images"], own["masks"], mask_suffix=own["mask_suffix"],
                            classes=own["classes"])
    val_set, source = None, "none"
    if own["val_images"] is not None:
        val_set = _load_pairs(own["val_images"], own["val_masks"],
                              mask_suffix=own["mask_suffix"], classes=train_set.classes)
        _check_val_matches(train_set, val_set)
        source = "folder"
    elif own["val_fraction"] is not None:
        from keras_unets.data.folders import split_val

        train_set, val_set, _ = split_val(train_set, float(own["val_fraction"]), seed=int(seed))
        source = "fraction"
    kind = "folders" if _is_path(own["images"]) else "arrays"
    record = {"kind": kind, "mask_suffix": own["mask_suffix"] or "",
              "val_fraction": own["val_fraction"],
              "train_stems": list(train_set.stems),
              "val_stems": list(val_set.stems) if val_set is not None else []}
    if kind == "folders":
        record.update({k: (str(own[k]) if own[k] is not None else None)
                       for k in ("images", "masks", "val_images", "val_masks")})
    if saved is not None:
        for key in ("train_stems", "val_stems"):
            if saved.get(key) != record[key]:
                raise ValueError(
                    f"The run was trained on {key.split('_')[0]} images {saved.get(key)}, the "
                    f"data given now has {record[key]}: resume with the same images.")
    return RunData(
        x_train=train_set.images, y_train=train_set.masks,
        x_val=val_set.images if val_set is not None else None,
        y_val=val_set.masks if val_set is not None else None,
        channels=train_set.channels, classes=train_set.classes, record=record,
        val_names=tuple(val_set.stems) if val_set is not None else (), val_source=source,
        intensity=dict(train_set.intensity))


def _load_isbi_data(data_dir, slices):
    from keras_unets.data import load_isbi2012

    data = load_isbi2012(data_dir)
    train_idx, val_idx = list(slices.train), list(slices.val)
    return RunData(
        x_train=data.train_images[train_idx], y_train=data.train_labels[train_idx],
        x_val=data.train_images[val_idx], y_val=data.train_labels[val_idx],
        channels=1, classes=2, record={"kind": "isbi2012", "source": data.source},
        val_names=tuple(slices.val), val_source=slices.val_source, slices=slices)


def _resumed_own_options(saved, own):
    """The own-data arguments of a resumed run, from its config.json."""
    record = saved.get("data") or {}
    if record.get("kind") not in ("folders", "arrays"):
        if own is not None:
            raise ValueError("Cannot change the data when resuming: the run trained on ISBI "
                             "2012; leave images=/masks= unset.")
        return None
    if record["kind"] == "arrays":
        if own is None:
            raise ValueError("The run trained on arrays: pass the same images= and masks= "
                             "(and val_images=/val_masks=) again to resume it.")
        own = dict(own)
    else:
        if own is not None:
            raise ValueError("Cannot change the data when resuming: the run reads its folders "
                             "from config.json; leave images=/masks= unset.")
        own = {k: record.get(k) for k in ("images", "masks", "val_images", "val_masks")}
    own.update(val_fraction=record.get("val_fraction"), mask_suffix=record.get("mask_suffix"),
               classes=saved.get("classes"))
    return own


# ---------------------------------------------------------------------------
# train: the steps
# ---------------------------------------------------------------------------
def _explicit_settings(overrides, model_kwargs, **values):
    explicit = dict(overrides or {})
    explicit.update({k: v for k, v in values.items() if v is not None})
    if model_kwargs:
        explicit["model_kwargs"] = dict(model_kwargs)
    return explicit


def _read_saved_run(run_dir, model_name):
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(
            f"Cannot resume: {cfg_path} does not exist (not a run directory)."
        )
    with open(cfg_path, encoding="utf-8") as fh:
        saved = json.load(fh)
    if saved["model_name"] != model_name and model_name is not None:
        raise ValueError(
            f"Run {run_dir} trained {saved['model_name']!r}, not {model_name!r}."
        )
    return saved


def _resumed_config(saved, explicit, cfg_path, split_args):
    config = without_retired_keys(saved["config"], cfg_path)
    for key, value in explicit.items():
        if key in _RESUME_CHANGEABLE:
            config[key] = value
        elif config.get(key) != value:
            raise ValueError(
                f"Cannot change {key!r} when resuming (run has "
                f"{config.get(key)!r}); only {list(_RESUME_CHANGEABLE)} can change."
            )
    for key, value in split_args.items():
        was = saved.get(key, "report" if key == "split" else None)
        if value is not None and value != was:
            raise ValueError(f"Cannot change {key!r} when resuming (run has {was!r}); "
                             f"only {list(_RESUME_CHANGEABLE)} can change.")
    return config


def _model_kwargs_for_data(model_name, config, data):
    """Builder arguments: the data's input channels and output classes."""
    kwargs = dict(config["model_kwargs"])
    if data.own:
        kwargs.setdefault("input_channels", data.channels)
        kwargs.setdefault("num_classes", 1 if data.binary else data.classes)
    return kwargs


def _check_model_for_data(model, data, valid_padding):
    """Before anything is written: the model can train and validate on the data."""
    from keras_unets.models.unet3p import CGM_OUTPUT

    if not data.binary and CGM_OUTPUT in model.output_names:
        raise OptionError("classes", data.classes,
                          "2 with a classification-guided module model (its mask is a "
                          "binary 'is there foreground' branch); for K classes train "
                          "unet3p_ds or unet3p")
    if data.own and data.x_val is not None and valid_padding:
        stackable = data.binary and data.channels == 1 and len(
            {x.shape for x in data.x_val}) == 1
        if not stackable:
            raise OptionError("model_kwargs", {"padding": "valid"}, "a same-padding model "
                              "(padding='same') for validation images of different sizes, "
                              "colour or classes; an unpadded network validates only grey "
                              "binary images of one size")


def _val_stack(data):
    """Validation images as a stack when they are grey and of one size, else lists."""
    x, y = data.x_val, data.y_val
    if data.own and data.channels == 1 and len({a.shape for a in x}) == 1:
        return np.stack(x), np.stack(y)
    return x, y


def _make_dataset(data, config, model, crop_size, steps):
    from keras_unets.augment import Augmenter, SegmentationDataset

    augment = dict(config.get("augment") or {})
    augmenter = None
    if augment or config.get("elastic"):
        augmenter = Augmenter(**augment, elastic=bool(config.get("elastic")))
    weight_maps = None
    if config.get("weight_map"):
        if data.own:
            raise OptionError("weight_map", True, "False with your own data (the U-Net "
                              "weight map is computed for the ISBI 2012 stack)")
        from keras_unets.augment.weightmaps import unet_weight_maps

        weight_maps = unet_weight_maps(data.y_train)
    names = list(model.output_names)
    if data.own:
        crop = None if crop_size is None else int(crop_size)
    else:
        crop = None if crop_size == data.x_train.shape[1] else int(crop_size)
    return SegmentationDataset(
        data.x_train, data.y_train, batch_size=int(config["batch_size"]), crop=crop,
        augmenter=augmenter, weight_maps=weight_maps, steps_per_epoch=steps,
        seed=int(config["seed"]), output_names=names if len(names) > 1 else None,
        classes=None if data.binary else data.classes,
    )


def _validation_callback(data, config, run_dir, val_tile):
    """``(callback, monitor)``: the threshold sweep (binary), K-class Dice, or none."""
    from keras_unets.training.callbacks import MulticlassValidation, ThresholdSweep

    if data.x_val is None:
        return None, None
    logits = bool(config["from_logits"])
    if not data.binary:
        return MulticlassValidation(data.x_val, data.y_val, data.classes,
                                    csv_path=run_dir / "multiclass.csv",
                                    from_logits=logits), "val_mean_dice"
    x_val, y_val = _val_stack(data) if data.own else (data.x_val, data.y_val)
    sweep = ThresholdSweep(
        x_val, y_val, csv_path=run_dir / "thresholds.csv",
        curve_path=run_dir / "threshold_curve.png",
        history_path=run_dir / "accuracy.png", tile=val_tile,
        batch_size=max(1, min(4, int(config["batch_size"]))),
        from_logits=logits,
    )
    return sweep, "val_best_accuracy"


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
    command_line = list(command_line) if command_line is not None else list(sys.argv)
    _check_options(explicit)  # the caller's own values first, named as given
    own = _own_data_options(images, masks, val_images, val_masks, val_fraction, classes,
                            mask_suffix, isbi_options={"data_dir": data_dir, "split": split,
                                                       "fold": fold, "folds": folds,
                                                       "val_slices": val_slices})
    if resume is not None and resume is not False:
        if resume is True and out is None:
            raise ValueError("resume=True needs out=RUN_DIR (the run to continue).")
        run_dir = Path(out if resume is True else resume)
        meta = _read_saved_run(run_dir, model_name)
        model_name, profile = meta["model_name"], meta["profile"]
        config = _resumed_config(meta, explicit, run_dir / "config.json",
                                 {"split": split, "fold": fold, "folds": folds})
        own = _resumed_own_options(meta, own)
        split, fold, folds = meta.get("split", "report"), meta.get("fold"), meta.get("folds")
        mixed_precision = meta.get("mixed_precision", False)
        if strategy in (None, "default"):
            strategy = meta.get("strategy", "default")
    else:
        _check_model_name(model_name)
        config = resolve_config(profile, model_name, **explicit)
        run_dir = Path(out) if out is not None else _default_out(model_name, profile)
        if (run_dir / "state.json").exists():
            raise RunExistsError(run_dir)
        meta = None
    # bad values and bad data fail before anything is written
    _check_model_name(model_name)
    _check_options(config)
    if own is None:
        slices = _resolve_slices(split, fold, folds, config.get("val_slices"))
        data = _load_isbi_data(data_dir, slices)
        _check_crop(config["crop"], data.x_train.shape[1])
    else:
        data = _load_own_data(own, config["seed"], saved=(meta or {}).get("data"))
    run = _Run(model_name=model_name, profile=profile, config=config, run_dir=run_dir,
               data=data, meta=meta, command_line=command_line,
               mixed_precision=bool(mixed_precision), strategy=strategy or "default",
               verbose=verbose)
    return run.execute()


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

        from keras_unets.training.run_dir import recover_run
        from keras_unets.models import get_model

        self.total_epochs = int(self.config["epochs"])
        steps = self.config["steps_per_epoch"]
        if steps is None:  # one pass
            steps = -(-len(self.data.x_train) // int(self.config["batch_size"]))
        self.steps = int(steps)
        if self.resuming:
            # the last committed epoch: half-done commits settled first
            state = recover_run(self.run_dir)
            model = load_run_model(self.run_dir, "last")
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
        from keras_unets.training.run_dir import recover_run

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
        dataset = _make_dataset(data, config, model, crop_size, self.steps)
        dataset.set_epoch(self.initial_epoch)
        self.fit_data = _wrap_valid(dataset, out_size) if self.valid_padding else dataset
        if self.verbose != 0:
            print(f"{self.run_dir}: {data.describe()}", flush=True)
        if not self.resuming:
            if self.run_dir.exists():  # leftovers of a run killed before its first epoch
                recover_run(self.run_dir)
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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", self.meta)

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
        from keras_unets.training.callbacks import TimeLimit
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
        validation, monitor = _validation_callback(self.data, config, self.run_dir,
                                                   self.val_tile)
        if validation is not None:
            callbacks.append(validation)
        limit = None
        if config.get("time_limit_minutes"):
            limit = TimeLimit(float(config["time_limit_minutes"]))
            callbacks.append(limit)
        # the epoch's commit: after every callback that adds to the logs
        callbacks.append(AtomicCheckpoint(
            self.run_dir, monitor=monitor, mode="max",
            state={k: state[k] for k in ("best_value", "best_epoch") if k in state},
            history=self.run_dir / "history.csv"))
        tensorboard = _tensorboard_callback(self.run_dir / "logs")
        if tensorboard is not None:
            callbacks.append(tensorboard)
        return callbacks, limit

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
        from keras_unets.training.run_dir import load_state

        state = load_state(self.run_dir)
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
            history=read_history(self.run_dir / "history.csv"),
            config=copy.deepcopy(self.config), classes=self.data.classes,
            best_mean_dice=mean_dice,
        )
        _write_results(self.run_dir, result, seconds, self._resumed)
        return result


def _best_sweep_row(run_dir, main, best_epoch):
    """``(threshold, accuracy)`` of the best epoch's sweep (and its curve drawn), or ``(-1, nan)``."""
    from keras_unets.training.callbacks import plot_threshold_curve, read_threshold_table

    path = run_dir / "thresholds.csv"
    rows = read_threshold_table(path) if path.exists() else []
    best_row = None
    for r in rows:
        if r["output"] == main and best_epoch is not None and r["epoch"] == best_epoch - 1:
            best_row = r
    if best_row is None:
        return -1, float("nan")
    acc = np.array([best_row[f"acc_{t:03d}"] for t in range(256)])
    plot_threshold_curve({main: acc}, run_dir / "threshold_curve_best.png", main=main,
                         title=f"Best epoch {best_epoch}: accuracy vs threshold")
    return int(best_row["best_threshold"]), float(best_row["best_accuracy"])


def _best_dice(run_dir, best_epoch):
    """The best epoch's mean Dice from ``multiclass.csv`` (None without it)."""
    _, rows = _read_run_csv(run_dir / "multiclass.csv")
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
    previous = {}
    if resuming and (run_dir / "results.json").exists():
        with open(run_dir / "results.json", encoding="utf-8") as fh:
            previous = json.load(fh)
    summary["train_seconds_total"] = float(previous.get("train_seconds_total", 0.0)) + seconds
    atomic_write_json(run_dir / "results.json", summary)


# ---------------------------------------------------------------------------
# evaluate_run
# ---------------------------------------------------------------------------
def evaluate_run(run_dir, *, checkpoint="best", data_dir=None, slices=None, tta=False,
                 threshold=None, tile=None, batch_size=2):
    """Predict the validation slices of a run again and score them.

    Args:
        run_dir: a run directory of :func:`train`.
        checkpoint: ``"best"``, ``"last"`` or a path to a ``.keras`` file.
        slices: labelled slices to score (default: the run's validation slices).
        tta: average the 8 flips/rotations (:func:`keras_unets.inference.predict_tiled`).
        threshold: fixed threshold 0..255; default the run's best threshold
            (``results.json``), else the best on these slices.
        tile: overlap-tile size (default: whole slices for same-padding
            models, the model's input size for valid-padding ones).

    Returns:
        ``keras_unets.metrics.evaluate`` dict plus ``checkpoint``, ``slices``,
        ``tta``, ``probabilities`` (``uint8 (N, H, W)``).
    """
    from keras_unets.data import format_slices, load_isbi2012, parse_slices
    from keras_unets.metrics import evaluate, to_uint8
    from keras_unets.inference.predict import predict_tiled

    run_dir = Path(run_dir)
    with open(run_dir / "config.json", encoding="utf-8") as fh:
        meta = json.load(fh)
    idx = parse_slices(slices if slices is not None else meta["val_slices"], n_slices=30)
    model = load_run_model(run_dir, checkpoint, compile=False)
    data = load_isbi2012(data_dir)
    images, labels = data.train_images[list(idx)], data.train_labels[list(idx)]
    if tile is None:
        fixed = model.inputs[0].shape[1]
        tile = fixed if fixed is not None else (
            images.shape[1] if images.shape[1] == images.shape[2] else None)
    prob = predict_tiled(model, images, tile=tile, tta=tta, batch_size=batch_size,
                         from_logits=bool(meta["config"]["from_logits"]),
                         margin=0 if tile == images.shape[1] else None)
    pred = to_uint8(prob)
    if threshold is None:
        res_path = run_dir / "results.json"
        if res_path.exists():
            with open(res_path, encoding="utf-8") as fh:
                t = json.load(fh).get("best_threshold", -1)
            threshold = t if t is not None and t >= 0 else None
    out = evaluate(pred, labels, threshold=threshold)
    out.update({"checkpoint": str(checkpoint), "slices": format_slices(idx), "tta": bool(tta),
                "probabilities": pred})
    return out
