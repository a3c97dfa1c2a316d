"""Multi-class segmentation metrics: confusion matrix, per-class Dice and IoU.

Class-index maps ``0..K-1`` (the argmax of a K-channel softmax), images of
any sizes: :func:`confusion_matrix`, :func:`class_scores` (per-class Dice
and IoU) and :func:`evaluate_multiclass` (JSON-ready, nnU-Net's foreground
mean; Isensee et al., Nature Methods 2021). Pure numpy: no Keras.
"""
import math

import numpy as np

from keras_unets.metrics.pixel import _nanmean

__all__ = ["MULTICLASS_KEYS", "confusion_matrix", "class_scores", "evaluate_multiclass"]

#: Keys of the dict returned by :func:`evaluate_multiclass`.
MULTICLASS_KEYS = ("pixel_accuracy", "dice", "iou", "mean_dice", "per_class", "confusion_matrix")


def _label_maps(maps, name):
    """A list of integer ``(H, W)`` maps from an ``(H, W)``, ``(N, H, W)`` array or a list."""
    if isinstance(maps, np.ndarray):
        maps = [maps] if maps.ndim == 2 else list(maps)
    maps = [np.asarray(m) for m in maps]
    if not maps:
        raise ValueError(f"`{name}` is empty; give at least one (H, W) class-index map.")
    for i, m in enumerate(maps):
        if m.ndim != 2 or not (np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_):
            raise ValueError(
                f"`{name}[{i}]` must be an integer (H, W) map of class indices (argmax of the "
                f"probabilities). Received: dtype={m.dtype}, shape={m.shape}"
            )
    return maps


def confusion_matrix(pred_labels, true_labels, classes):
    """Pixel counts ``cm[true, pred]``, ``int64 (K, K)``, pooled over all maps.

    Args:
        pred_labels, true_labels: class indices ``0..K-1``: one ``(H, W)``
            map, an ``(N, H, W)`` stack or lists of maps of any sizes (each
            prediction the size of its label).
        classes: K.

    Example:
        >>> confusion_matrix(np.array([[0, 1], [1, 2]]), np.array([[0, 1], [2, 2]]), 3).tolist()
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    classes = int(classes)
    if classes < 2:
        raise ValueError(f"`classes` must be >= 2. Received: classes={classes}")
    preds, trues = _label_maps(pred_labels, "pred_labels"), _label_maps(true_labels, "true_labels")
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predictions for {len(trues)} labels; give one per label.")
    cm = np.zeros(classes * classes, np.int64)
    for i, (p, t) in enumerate(zip(preds, trues)):
        if p.shape != t.shape:
            raise ValueError(f"Prediction {i} has shape {p.shape} but its label {t.shape}.")
        for name, m in (("pred_labels", p), ("true_labels", t)):
            if m.size and (m.min() < 0 or m.max() >= classes):
                raise ValueError(
                    f"`{name}[{i}]` holds values {int(m.min())}..{int(m.max())}; class indices must be "
                    f"0..{classes - 1} for classes={classes}."
                )
        cm += np.bincount(t.astype(np.int64).ravel() * classes + p.astype(np.int64).ravel(),
                          minlength=classes * classes)
    return cm.reshape(classes, classes)


def class_scores(cm):
    """Per-class ``(dice, iou)``, ``float64 (K,)`` each, from a confusion matrix.

    ``Dice_k = 2 TP / (2 TP + FP + FN)``, ``IoU_k = TP / (TP + FP + FN)``. A
    class absent from both prediction and label (``TP + FP + FN = 0``) has
    no score: NaN, and it is left out of means, as nnU-Net does (Isensee et
    al., Nature Methods 2021).
    """
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        present = (tp + fp + fn) > 0
        dice = np.where(present, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(present, tp / (tp + fp + fn), np.nan)
    return dice, iou


def _json_float(value):
    return None if math.isnan(value) else float(value)


def evaluate_multiclass(pred_labels, true_labels, classes, *, include_background=False):
    """Multi-class metrics, JSON-ready.

    Args:
        pred_labels, true_labels, classes: as :func:`confusion_matrix`.
        include_background: average Dice and IoU over all K classes; by
            default over the foreground classes ``1..K-1`` (class 0 =
            background, nnU-Net's foreground mean).

    Returns:
        dict with ``pixel_accuracy`` (correct pixels / all pixels),
        ``mean_dice`` (mean Dice over the averaged classes that are present,
        see :func:`class_scores`; None if none is), ``dice`` (the same value,
        under the key :func:`keras_unets.metrics.evaluate` uses), ``iou`` (mean IoU, same rule),
        ``per_class`` (``[{"class": k, "dice": ..., "iou": ...}]`` for every
        class, None where absent) and ``confusion_matrix`` (``[true][pred]``
        pixel counts, lists of ints).
    """
    cm = confusion_matrix(pred_labels, true_labels, classes)
    dice, iou = class_scores(cm)
    start = 0 if include_background else 1
    mean_dice, mean_iou = _nanmean(dice[start:]), _nanmean(iou[start:])
    total = int(cm.sum())
    return {
        "pixel_accuracy": float(np.trace(cm) / total) if total else math.nan,
        "dice": _json_float(mean_dice),
        "iou": _json_float(mean_iou),
        "mean_dice": _json_float(mean_dice),
        "per_class": [{"class": k, "dice": _json_float(d), "iou": _json_float(j)}
                      for k, (d, j) in enumerate(zip(dice, iou))],
        "confusion_matrix": cm.tolist(),
    }
