"""The options of :func:`keras_unets.training.train`, checked before anything is written.

:class:`OptionError` names the argument, the value and what would work;
:class:`RunSlices` and :func:`_resolve_slices` turn the ISBI 2012 split
arguments (``split``, ``fold``, ``folds``, ``val_slices``) into slices;
the own-data arguments and the settings of a resumed run are checked here too.
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_unets.training.config import without_retired_keys

__all__ = ["OptionError", "RunExistsError", "RunSlices", "SPLITS", "DEFAULT_FOLDS"]

_RESUME_CHANGEABLE = ("epochs", "time_limit_minutes")


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


def _explicit_settings(overrides, model_kwargs, **values):
    explicit = dict(overrides or {})
    explicit.update({k: v for k, v in values.items() if v is not None})
    if model_kwargs:
        explicit["model_kwargs"] = dict(model_kwargs)
    return explicit


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
