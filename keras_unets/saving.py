"""Load a model that keras-unets saved: a ``.keras`` file or a run folder.

Importing this module registers every custom Keras object of the package
(the layers of :mod:`keras_unets.models.layers`, the losses of
:mod:`keras_unets.losses`) so that ``keras.saving.load_model`` finds them
by their registered names (``keras_unets>BilinearUpSampling2D``, ...).
Keras 3 imports the modules of its own packages when it meets an unknown
class, not those of others; ``import keras_unets`` imports this module.
"""
import json
import zipfile
from pathlib import Path

import keras

from keras_unets import losses as _losses  # noqa: F401 - registers the losses
from keras_unets.models import layers as _layers  # noqa: F401 - registers the layers

__all__ = ["load_model", "model_path"]

#: Checkpoints a run folder of :func:`keras_unets.training.train` holds.
CHECKPOINTS = ("best", "last")

_WHAT_WORKS = "pass a .keras file saved by keras-unets or a run folder holding best.keras"


def model_path(path, checkpoint="best"):
    """The ``.keras`` file that ``path`` names: itself, or a run folder's checkpoint.

    Args:
        path: a ``.keras`` file, or a run folder (then ``<checkpoint>.keras``
            in it).
        checkpoint: ``"best"`` or ``"last"``, for a run folder.

    Raises:
        FileNotFoundError: nothing at ``path``, or a folder without the
            checkpoint (the message says what was looked for).
        ValueError: ``path`` is a file but not a zip archive, which every
            ``.keras`` file is.
    """
    path = Path(path)
    if path.is_dir():
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)} for a run "
                             f"folder. Received: checkpoint={checkpoint!r} ({path})")
        file = path / f"{checkpoint}.keras"
        if not file.is_file():
            found = sorted(p.name for p in path.glob("*.keras"))
            holds = (f"the folder holds {', '.join(found)}" if found
                     else "the folder holds no .keras file")
            raise FileNotFoundError(
                f"No checkpoint {file}: {holds} (a run folder of keras-unets train has "
                f"best.keras and last.keras after its first epoch); {_WHAT_WORKS}.")
        return file
    if not path.exists():
        raise FileNotFoundError(
            f"No model at {path}: looked for a .keras file or a run folder there; "
            f"{_WHAT_WORKS}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Could not load the model in {path}: {path} exists but is not a Keras "
            f".keras model archive (received "
            f"{path.stat().st_size} bytes, not a zip); {_WHAT_WORKS}.")
    return path


def _saved_mixed_precision(file):
    """Whether the run folder holding ``file`` trained under ``mixed_float16``."""
    config = file.parent / "config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("mixed_precision", False))
    except (OSError, ValueError, AttributeError):
        return False


def load_model(path, *, compile=True, checkpoint="best"):
    """Load a model saved by keras-unets, with ``safe_mode=True``.

    Args:
        path: a ``.keras`` file, or a run folder of
            :func:`keras_unets.training.train` (then its ``best.keras``, or
            the file that ``checkpoint`` names).
        compile: restore the loss, metrics and optimizer state (``False``
            for inference only).
        checkpoint: ``"best"`` or ``"last"``, for a run folder.

    A checkpoint of a run trained with mixed precision (``config.json``
    beside it) loads under the ``mixed_float16`` policy, as its loss-scale
    optimizer state needs; the global policy is restored afterwards.

    Raises:
        FileNotFoundError: see :func:`model_path`.
        ValueError: not a ``.keras`` archive, or Keras could not load it
            (the file is named and Keras' reason kept).
    """
    file = model_path(path, checkpoint)
    previous = keras.config.dtype_policy()
    try:
        if _saved_mixed_precision(file):
            keras.mixed_precision.set_global_policy("mixed_float16")
        return keras.saving.load_model(file, compile=compile, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"Could not load the model in {file}: {exc}") from exc
    finally:
        keras.mixed_precision.set_global_policy(previous)
