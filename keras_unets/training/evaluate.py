"""Score a trained run again: :func:`evaluate_run`."""
from keras_unets.training.run_dir import RunDir

__all__ = ["evaluate_run"]


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

    files = RunDir(run_dir)
    meta = files.read_config()
    idx = parse_slices(slices if slices is not None else meta["val_slices"], n_slices=30)
    model = files.load_model(checkpoint, compile=False)
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
        t = files.read_results().get("best_threshold", -1)
        threshold = t if t is not None and t >= 0 else None
    out = evaluate(pred, labels, threshold=threshold)
    out.update({"checkpoint": str(checkpoint), "slices": format_slices(idx), "tta": bool(tta),
                "probabilities": pred})
    return out
