"""Training, split by stage.

* :mod:`~keras_unets.training.config`: :class:`TrainConfig` (every key with
  its default), the profiles (their differences) and their resolution into a
  run's config.
* :mod:`~keras_unets.training.options`: the arguments of :func:`train`,
  checked before anything is written (:class:`OptionError`, :class:`RunSlices`).
* :mod:`~keras_unets.training.datasets`: the data of a run (:class:`RunData`:
  ISBI 2012 slices or your own pairs) and the batches it trains on.
* :mod:`~keras_unets.training.build`: the model of a run, built for its data.
* :mod:`~keras_unets.training.trainer`: :func:`train` (options -> data ->
  model -> callbacks -> loop -> results).
* :mod:`~keras_unets.training.results`: :class:`TrainResult` and ``results.json``.
* :mod:`~keras_unets.training.evaluate`: :func:`evaluate_run`.
* :mod:`~keras_unets.training.run_dir`: :class:`RunDir` (every file of a run), the
  epoch commit (:class:`AtomicCheckpoint`, :func:`recover_run`) and readers.
* :mod:`~keras_unets.training.callbacks`: :class:`ThresholdSweep`,
  :class:`MulticlassValidation`, :class:`TimeLimit`, :class:`EpochClock`.
* :mod:`~keras_unets.training.schedules`: learning-rate schedules, optimizer,
  loss and compile.
* :mod:`~keras_unets.training.loop`: :func:`train_loop`.
"""
from keras_unets.training.callbacks import (
    EpochClock,
    MulticlassValidation,
    ThresholdSweep,
    TimeLimit,
    plot_accuracy_per_epoch,
    plot_threshold_curve,
    read_threshold_table,
)
from keras_unets.training.config import (
    CONFIG_KEYS,
    PROFILE_NAMES,
    PROFILES,
    RETIRED_KEYS,
    TrainConfig,
    format_profiles,
    get_profile,
    model_family,
    resolve_config,
    without_retired_keys,
)
from keras_unets.training.loop import train_loop
from keras_unets.training.run_dir import (
    RUN_TABLES,
    AtomicCheckpoint,
    RunDir,
    load_run_model,
    load_state,
    read_history,
    recover_run,
    save_model_atomic,
)
from keras_unets.training.schedules import (
    LOSS_NAMES,
    LR_SCHEDULES,
    CosineTimeDecay,
    compile_model,
    cosine_time_lr,
    make_loss,
    make_optimizer,
)
from keras_unets.training.datasets import RunData
from keras_unets.training.evaluate import evaluate_run
from keras_unets.training.options import OptionError, RunExistsError, RunSlices
from keras_unets.training.results import TrainResult
from keras_unets.training.trainer import train

__all__ = [
    "train", "evaluate_run", "load_run_model", "TrainResult", "RunSlices", "RunData",
    "OptionError", "RunExistsError", "train_loop", "read_history", "load_state",
    "recover_run", "save_model_atomic", "AtomicCheckpoint", "RunDir", "RUN_TABLES",
    "ThresholdSweep", "MulticlassValidation", "TimeLimit", "EpochClock", "read_threshold_table",
    "plot_threshold_curve", "plot_accuracy_per_epoch", "CosineTimeDecay", "cosine_time_lr",
    "make_optimizer", "make_loss", "compile_model", "LOSS_NAMES", "LR_SCHEDULES", "PROFILES",
    "PROFILE_NAMES", "CONFIG_KEYS", "RETIRED_KEYS", "TrainConfig", "format_profiles",
    "get_profile", "model_family", "resolve_config", "without_retired_keys",
]
