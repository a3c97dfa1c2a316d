"""keras-unets: U-Net, UNet++ and UNet 3+ for Keras 3.

Reproduces the "U-Net School" report (Liu, Shi, Chen) on the ISBI 2012 EM
membrane data.

``import keras_unets`` imports Keras and registers the package's custom
objects (:mod:`keras_unets.models.layers`, :mod:`keras_unets.losses`, through
:mod:`keras_unets.saving`), so that a model saved by keras-unets loads in a
fresh interpreter with ``keras.saving.load_model`` or
:func:`keras_unets.load_model`. Nothing heavier is imported: the training,
prediction and model-building modules load on first use of
``keras_unets.train``, ``keras_unets.evaluate_run`` and
``keras_unets.predict_tiled``.
"""

__version__ = "0.1.0"

from keras_unets.saving import load_model  # noqa: E402 - registers the custom objects

_LAZY = {
    "train": ("keras_unets.training", "train"),
    "evaluate_run": ("keras_unets.training", "evaluate_run"),
    "predict_tiled": ("keras_unets.inference.predict", "predict_tiled"),
}

__all__ = ["__version__", "evaluate_run", "load_model", "predict_tiled", "train"]


def __getattr__(name):
    """Lazy top-level API: ``keras_unets.train(...)`` imports the training code on first use."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_unets' has no attribute {name!r}")
