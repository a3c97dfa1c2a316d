"""Predict a folder of images (or a TIFF stack) with a trained model: ``keras-unets predict``.

:func:`predict_folder` reads the images with :func:`keras_unets.data.folders.read_images`
under the rule the model was trained with (:func:`run_settings`: the run
folder's ``config.json``), predicts each image at its own size
(:func:`keras_unets.inference.predict.predict_images`) and writes, for each
input image ``<stem>``:

* a binary model (one sigmoid channel): ``masks/<stem>.png`` (``uint8``
  0/255, ``P > threshold`` on the 0-255 scale, the run's best threshold of
  ``results.json`` unless one is given, else 127) and
  ``probabilities/<stem>.png`` (``uint8`` ``round(255 * P(foreground))``);
* a K-class model (a K-channel softmax): ``masks/<stem>.png`` (``uint8``
  class index ``0..K-1``, the argmax) and ``probabilities/<stem>.tif``
  (``uint8`` ``(K, H, W)``, one map per class);

each the height and width of its input. A file as input (an ISBI TIFF
stack, or one image) gives two TIFF files instead, ``probabilities.tif``
and ``masks.tif`` (``(N, H, W)``; ``(N, K, H, W)`` probabilities for K
classes), which ``keras-unets evaluate`` reads.
"""
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["RunSettings", "predict_folder", "run_settings"]

_DEFAULT_THRESHOLD = 127


class RunSettings(NamedTuple):
    """What a run folder recorded that prediction needs (None where it says nothing).

    Fields:
        run_dir: the run folder (None for a bare ``.keras`` file or a model).
        classes: 2 (binary) or K >= 3, from ``config.json``.
        channels: input channels (1 or 3), from ``config.json``.
        intensity: the intensity rule (:data:`keras_unets.data.folders.INTENSITY`).
        threshold: ``results.json``'s ``best_threshold`` (0..255).
        from_logits: the model outputs logits (``config.json``'s config).
    """

    run_dir: object = None
    classes: object = None
    channels: object = None
    intensity: object = None
    threshold: object = None
    from_logits: object = None


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded(meta, key):
    """``meta[key]``, else the same key in its ``config`` or ``data`` section."""
    for section in (meta, meta.get("config"), meta.get("data"), meta.get("dataset")):
        if isinstance(section, dict) and section.get(key) is not None:
            return section[key]
    return None


def run_settings(path):
    """The prediction settings recorded beside a checkpoint (see :class:`RunSettings`).

    Args:
        path: a run folder, or a ``.keras`` file (its folder is read when it
            holds a ``config.json`` or ``results.json``).
    """
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    from keras_unets.training.run_dir import RunDir

    files = RunDir(run_dir)
    config, results = files.config, files.results
    if not config.exists() and not results.exists():
        return RunSettings()
    meta = _read_json(config)
    threshold = _read_json(results).get("best_threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 255:
        threshold = None
    from_logits = _recorded(meta, "from_logits")
    classes = _recorded(meta, "classes")
    channels = _recorded(meta, "channels")
    return RunSettings(
        run_dir=run_dir,
        classes=int(classes) if classes is not None else None,
        channels=int(channels) if channels is not None else None,
        intensity=_recorded(meta, "intensity"),
        threshold=threshold,
        from_logits=bool(from_logits) if from_logits is not None else None,
    )


def _main_output_channels(model):
    """Channels K of the model's main output (1 = one sigmoid channel)."""
    from keras_unets.inference.predict import main_output

    names = list(model.output_names)
    tensor = model.outputs[names.index(main_output(model, names))]
    return int(tuple(tensor.shape)[-1] or 1)


def _model_input_channels(model):
    channels = tuple(model.inputs[0].shape)[-1]
    return None if channels is None else int(channels)


def _classes(settings, model_channels, where):
    """2 for a one-channel model, K for a K-channel one; checked against the run's record."""
    classes = 2 if model_channels == 1 else model_channels
    if settings.classes is not None and settings.classes != classes:
        raise ValueError(
            f"{where}: config.json records classes={settings.classes} but the model predicts "
            f"{model_channels} channel{'s' if model_channels > 1 else ''} "
            f"({'binary' if model_channels == 1 else f'{model_channels} classes'}); "
            "the checkpoint does not belong to this run folder."
        )
    return classes


def _write_tiff(path, array, axes):
    import tifffile

    from keras_unets.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        tifffile.imwrite(fh, np.ascontiguousarray(array), photometric="minisblack",
                         metadata={"axes": axes})
    return path


def _write_stack(path, array):
    """:func:`keras_unets.data.write_stack` (a ``.png`` or ``.tif`` path) in a created folder."""
    from keras_unets.data import write_stack

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_stack(path, array)


def predict_folder(model_or_run, input, out, *, threshold=None, tile=None, tta=False,
                   batch_size=4, checkpoint="best", progress=None):
    """Predict every image of ``input`` and write masks and probability maps under ``out``.

    Args:
        model_or_run: a run folder (its ``best.keras``, or ``checkpoint``), a
            ``.keras`` file (its folder's ``config.json`` and ``results.json``
            are read when present) or a Keras model.
        input: a folder of images with any names (PNG, TIFF 8/16-bit/float,
            JPEG; grey or RGB; any sizes), one image file, or a TIFF stack.
        out: output folder (created).
        threshold: binary models: ``P > threshold`` (0..255) -> 255. Default:
            the run's best threshold (``results.json``), else 127.
        tile, tta, batch_size, progress: :func:`~keras_unets.inference.predict.predict_tiled`'s.
        checkpoint: ``"best"`` or ``"last"`` for a run folder.

    Images are read with :func:`keras_unets.data.folders.read_images` under the
    run's intensity rule and channels (``config.json``), else
    :data:`keras_unets.data.folders.INTENSITY` and the model's input channels.

    Returns:
        A JSON-ready summary: ``checkpoint``, ``input``, ``slices`` (images
        predicted), ``classes`` (2 = binary), ``channels``,
        ``tile``, ``tta``, ``threshold`` (None for K classes),
        ``probabilities`` and ``masks`` (the paths written: two folders for
        a folder input, two TIFF files for a file input).

    Raises:
        FileNotFoundError, ValueError: no model at ``model_or_run``, one Keras
            cannot load, a model that does not fit its run's record, a
            ``threshold`` for a K-class model, or a tile the model refuses.
        keras_unets.data.DataNotFoundError: no image in ``input`` (listing
            what was found and the extensions that work).
        keras_unets.data.DataFormatError: an unreadable image, or images
            whose channels differ from the model's (``ChannelsError``).
    """
    from keras_unets.data.folders import INTENSITY, read_images
    from keras_unets.inference.predict import predict_images
    from keras_unets.metrics import to_uint8

    if hasattr(model_or_run, "predict_on_batch"):
        model, settings, name = model_or_run, RunSettings(), getattr(model_or_run, "name", "model")
    else:
        from keras_unets.saving import load_model

        model = load_model(model_or_run, compile=False, checkpoint=checkpoint)
        settings, name = run_settings(model_or_run), str(model_or_run)
    model_channels = _main_output_channels(model)
    classes = _classes(settings, model_channels, settings.run_dir or name)
    if classes > 2 and threshold is not None:
        raise ValueError(
            f"A threshold applies to binary models; {name} predicts {classes} classes "
            f"(each pixel gets the most probable class). Received: threshold={threshold}"
        )
    if classes == 2 and threshold is None:
        threshold = _DEFAULT_THRESHOLD if settings.threshold is None else settings.threshold
    channels = settings.channels or _model_input_channels(model)
    found = read_images(input, channels=channels, intensity=settings.intensity or INTENSITY)
    preds = predict_images(model, found.images, tile=tile, tta=tta, batch_size=batch_size,
                           from_logits=settings.from_logits, progress=progress)
    probs, masks = [], []
    for pred in preds:
        u8 = to_uint8(np.clip(pred, 0.0, 1.0))
        if classes == 2:
            probs.append(u8)
            masks.append(np.where(u8 > threshold, 255, 0).astype(np.uint8))
        else:
            probs.append(np.moveaxis(u8, -1, 0))  # (K, H, W)
            masks.append(np.argmax(pred, axis=-1).astype(np.uint8))
    out = Path(out)
    input_path = Path(input)
    if input_path.is_file():
        written = [out / "probabilities.tif", out / "masks.tif"]
        if classes == 2:
            _write_stack(written[0], np.stack(probs))
        else:
            _write_tiff(written[0], np.stack(probs), "ZCYX")
        _write_stack(written[1], np.stack(masks))
    else:
        written = [out / "probabilities", out / "masks"]
        for stem, prob, mask in zip(found.stems, probs, masks):
            if classes == 2:
                _write_stack(written[0] / f"{stem}.png", prob)
            else:
                _write_tiff(written[0] / f"{stem}.tif", prob, "CYX")
            _write_stack(written[1] / f"{stem}.png", mask)
    return {
        "checkpoint": name,
        "input": str(input),
        "slices": len(found.images),
        "classes": classes,
        "channels": found.channels,
        "tile": tile,
        "tta": bool(tta),
        "threshold": None if threshold is None else int(threshold),
        "probabilities": str(written[0]),
        "masks": str(written[1]),
    }
