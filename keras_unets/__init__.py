"""keras-unets: U-Net, UNet++ and UNet 3+ for Keras 3.

Reproduces the "U-Net School" report (Liu, Shi, Chen) on the ISBI 2012 EM
membrane data. Sub-modules are imported lazily so that ``import keras_unets``
stays cheap and the data/metrics layers work without importing Keras.
"""

__version__ = "0.1.0"

_LAZY = {
    "train": ("keras_unets.training", "train"),
    "evaluate_run": ("keras_unets.training", "evaluate_run"),
    "predict_tiled": ("keras_unets.predict", "predict_tiled"),
}


def __getattr__(name):
    """Lazy top-level API: ``keras_unets.train(...)`` imports Keras on first use."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_unets' has no attribute {name!r}")
