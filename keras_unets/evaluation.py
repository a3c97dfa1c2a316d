"""Score a folder of predicted masks against a folder of label masks, paired by file name.

What ``keras-unets evaluate PRED --labels LABELS`` runs when PRED and LABELS
are folders of images of any names and sizes (PRED = ``OUT/masks`` of
``keras-unets predict``; LABELS = your mask folder, the masks of
``keras_unets.data.folders``). Files pair by stem as in
:func:`keras_unets.data.folders.find_pairs` (``cell_01.png`` with
``cell_01.png``; with ``mask_suffix="_mask"``, ``cell_01_mask.png``).

* **Binary** labels (0 and one foreground value): predictions are ``uint8``
  0-255, masks (0/255, or 0/1) or probability maps (``round(255 P)``).
  Pixel accuracy of ``pred > t`` (at ``threshold``, else the best ``t`` of
  the 256-threshold sweep, as :func:`keras_unets.metrics.evaluate`), Dice
  and IoU of the foreground, each pooled over all pixels of all images
  (images of different sizes count by their pixels). When all images have
  one size, the ISBI 2012 challenge scores (:func:`keras_unets.metrics.isbi.isbi_scores`)
  are added.
* **K classes** (labels ``0..K-1``, ``classes=K`` or inferred as
  :func:`keras_unets.data.folders.load_folder_pairs` does): predictions are class
  indices; :func:`keras_unets.metrics.evaluate_multiclass` (per-class Dice and
  IoU, their foreground mean, pixel accuracy, confusion matrix).

ISBI stacks (TIFF volumes, folders of ``{i}.png`` slices) are scored by
:func:`keras_unets.metrics.evaluate` as before; :func:`is_slice_folder`
tells the two kinds of folder apart.
"""
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_unets.data import DataFormatError

__all__ = ["LabelPairs", "evaluate_folders", "is_slice_folder", "read_label_pairs"]


class LabelPairs(NamedTuple):
    """Predictions and labels read from two folders, in natural order of the stems."""

    stems: tuple
    preds: list
    labels: list
    pred_sources: tuple
    label_sources: tuple


def is_slice_folder(path):
    """True for a folder whose image files are all ISBI slices ``{i}.png`` / ``{i}.tif``."""
    from keras_unets.data import stack_indices
    from keras_unets.data.folders import IMAGE_SUFFIXES

    path = Path(path)
    if not path.is_dir():
        return False
    images = [p for p in path.iterdir()
              if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
    return bool(images) and len(stack_indices(path)) == len(images)


def read_label_pairs(pred, labels, *, mask_suffix=""):
    """Read two folders of masks, paired by stem (:func:`keras_unets.data.folders.find_pairs`).

    Raises:
        keras_unets.data.DataNotFoundError: a missing or empty folder.
        keras_unets.data.folders.PairingError: stems of one folder without a file
            in the other (listing them).
        keras_unets.data.DataFormatError: an unreadable file, a non-integer
            map, or a prediction of another size than its label (naming both).
    """
    from keras_unets.data.folders import find_pairs
    from keras_unets.data.images import read_mask

    for path, what in ((pred, "PRED"), (labels, "LABELS")):
        if Path(path).is_file():
            raise DataFormatError(
                f"{path}: {what} is a file; pairing by name needs two folders (PRED and LABELS), "
                "or give two TIFF stacks."
            )
    pairs = find_pairs(pred, labels, mask_suffix=mask_suffix)
    stems, preds, trues, psrc, lsrc = [], [], [], [], []
    for pair in pairs:
        p, ps = read_mask(pair.image, None)
        t, ts = read_mask(pair.mask, None)
        if p.shape != t.shape:
            raise DataFormatError(
                f"{ps} is {p.shape[0]}x{p.shape[1]} px (height x width) but its label {ts} is "
                f"{t.shape[0]}x{t.shape[1]} px; predict on the full images (keras-unets predict "
                "keeps each image's size)."
            )
        stems.append(pair.stem)
        preds.append(p)
        trues.append(t)
        psrc.append(ps)
        lsrc.append(ts)
    return LabelPairs(tuple(stems), preds, trues, tuple(psrc), tuple(lsrc))


def _binary_predictions(preds, sources):
    """Predictions on the 0-255 scale: 0/1 masks become 0/255; other values must be 0..255."""
    if all(int(p.max(initial=0)) <= 1 for p in preds):
        return [(p * 255).astype(np.uint8) for p in preds]
    for p, source in zip(preds, sources):
        if int(p.max(initial=0)) > 255:
            raise DataFormatError(
                f"{source}: the prediction holds values up to {int(p.max())}; binary predictions "
                "are uint8 0-255 (masks 0/255 or probabilities round(255 P))."
            )
    return [p.astype(np.uint8) for p in preds]


def _score_binary(pairs, threshold, isbi, fine_grid):
    from keras_unets.metrics import _check_threshold, dice_per_image, iou_per_image, threshold_sweep

    preds = _binary_predictions(pairs.preds, pairs.pred_sources)
    labels = [np.where(t != 0, 255, 0).astype(np.uint8) for t in pairs.labels]
    flat_pred = np.concatenate([p.ravel() for p in preds])[None, None]
    flat_true = np.concatenate([t.ravel() for t in labels])[None, None]
    sweep = threshold_sweep(flat_pred, flat_true)  # pooled over all pixels
    best = int(np.argmax(sweep))
    if threshold is not None:
        t = _check_threshold(threshold)
    elif all(np.isin(p, (0, 255)).all() for p in preds):
        t = 127  # masks (keras-unets predict's OUT/masks): scored as they are
    else:
        t = best
    result = {
        "pixel_accuracy": float(sweep[t]),
        "threshold": t,
        "best_threshold": best,
        "best_accuracy": float(sweep[best]),
        "dice": float(dice_per_image(flat_pred, flat_true, t)[0]),
        "iou": float(iou_per_image(flat_pred, flat_true, t)[0]),
    }
    one_size = len({p.shape for p in preds}) == 1
    if fine_grid and not one_size:
        raise ValueError(
            "The ISBI scores (fine_grid, --fine-grid) need images of one size; these predictions "
            f"have {len({p.shape for p in preds})} sizes. Leave the option out for Dice, IoU and "
            "pixel accuracy."
        )
    if (isbi or fine_grid) and one_size:
        from keras_unets.metrics.isbi import fine_scores, isbi_scores

        scores = isbi_scores(np.stack(preds), np.stack(labels))
        result.update({
            "v_rand": scores.v_rand,
            "v_info": scores.v_info,
            "rand_error": scores.rand_error,
            "pixel_error": scores.pixel_error,
            "v_rand_threshold": scores.v_rand_threshold,
            "v_info_threshold": scores.v_info_threshold,
            "rand_error_threshold": scores.rand_error_threshold,
            "pixel_error_threshold": scores.pixel_error_threshold,
        })
        if fine_grid:
            result.update(fine_scores(np.stack(preds), np.stack(labels)))
    return result, sweep


def _score_multiclass(pairs, classes, include_background):
    from keras_unets.metrics import evaluate_multiclass

    for p, source in zip(pairs.preds, pairs.pred_sources):
        if int(p.max(initial=0)) >= classes:
            raise DataFormatError(
                f"{source}: the prediction holds class {int(p.max())}, but the labels have "
                f"{classes} classes (0..{classes - 1}). Predictions of a K-class model are class "
                "indices (keras-unets predict's OUT/masks); pass --classes K if the labels miss "
                "the highest classes."
            )
    return evaluate_multiclass(pairs.preds, pairs.labels, classes,
                               include_background=include_background)


def evaluate_folders(pred, labels, *, mask_suffix="", classes=None, threshold=None,
                     include_background=False, isbi=True, fine_grid=False, pairs=None):
    """Score the masks in folder ``pred`` against the label masks in folder ``labels``.

    Args:
        pred, labels, mask_suffix: folders paired by stem (:func:`read_label_pairs`).
        classes: None (infer from the labels), 1 or 2 (binary), K >= 3.
        threshold: binary: ``pred > threshold`` (0..255). Default: masks
            (every value 0 or 255, as ``keras-unets predict`` writes them) are
            scored as they are (127); probability maps at the best threshold of
            the pooled sweep (``best_threshold``, reported either way).
        include_background: K classes: average Dice and IoU over all classes.
        isbi: binary images of one size: add the ISBI 2012 scores.
        fine_grid: binary images of one size: add V_rand and V_info on the
            0.01 grid (:func:`keras_unets.metrics.isbi.fine_scores`).
        pairs: a :class:`LabelPairs` already read (then the paths are not read).

    Returns:
        ``(result, sweep)``: ``result`` a JSON-ready dict with ``classes``
        (2 = binary), ``images``, ``pixel_accuracy``, ``dice``, ``iou`` and
        for binary ``threshold``, ``best_threshold``, ``best_accuracy`` (and
        the ISBI keys of :func:`keras_unets.metrics.evaluate` when they
        apply), for K classes ``mean_dice``, ``per_class`` and
        ``confusion_matrix``; ``sweep`` the pooled 256-threshold accuracy
        curve (binary) or None. Undefined scores (no foreground anywhere)
        are NaN in a binary result and None in a K-class one.

    Raises:
        ValueError: ``threshold`` for K classes, a bad ``classes``,
            ``fine_grid`` for images of several sizes.
        keras_unets.data.DataNotFoundError, keras_unets.data.DataFormatError:
            see :func:`read_label_pairs`; labels that are neither binary nor
            class indices (:class:`keras_unets.data.folders.MaskValuesError`).
    """
    from keras_unets.data.images import infer_classes

    if pairs is None:
        pairs = read_label_pairs(pred, labels, mask_suffix=mask_suffix)
    values = [set(np.unique(t).tolist()) for t in pairs.labels]
    classes = infer_classes(values, pairs.label_sources, classes)
    if classes == 2:
        result, sweep = _score_binary(pairs, threshold, isbi, fine_grid)
    else:
        if threshold is not None or fine_grid:
            raise ValueError(
                f"A threshold and the ISBI scores (fine_grid) apply to binary labels; these labels "
                f"have {classes} classes (predictions are class indices). Received: "
                f"threshold={threshold}, fine_grid={fine_grid}"
            )
        result, sweep = _score_multiclass(pairs, classes, include_background), None
    return {"classes": classes, "images": len(pairs.stems), **result}, sweep

