"""Pixel metrics of the "U-Net School" report, done in one pass.

The report (Liu, Shi, Chen, "U-Net School", section IV) scores a network by
the *pixel accuracy* of its binarised prediction on the held-out slices 25-29
of ISBI 2012: a probability map on the 0-255 scale is binarised with
``pred > t -> 255`` and compared with the 0/255 label, pooled over all pixels
of all slices. Its evaluation script did this with a Python double loop over
pixels, once per threshold (about 0.12 s per 512x512 slice and threshold on
a 2-core CPU, so ~150 s for a 255-threshold sweep of 5
slices). :func:`threshold_sweep` gets the accuracy at all 256 thresholds from
two 256-bin histograms (one per label class) and their cumulative sums, which
is exact (integer counts) and takes milliseconds.

Conventions (``DESIGN.md``): predictions are ``uint8`` 0-255 made with
:func:`to_uint8`; labels are ``uint8`` {0, 255} with 255 = cell interior;
arrays are ``(N, H, W)`` or a single ``(H, W)`` slice.

Also the per-slice Dice and IoU of the cell class (:func:`dice_per_image`,
:func:`iou_per_image`) and the input checks the other metric modules share.

Pure numpy: this module never imports Keras. The ISBI challenge metrics
(V_rand, V_info, Rand error, pixel error) live in
:mod:`keras_unets.metrics.isbi`, the multi-class ones in
:mod:`keras_unets.metrics.multiclass`; :func:`keras_unets.metrics.evaluate`
gathers the binary ones.
"""
import math

import numpy as np

__all__ = [
    "N_THRESHOLDS",
    "to_uint8",
    "threshold_sweep",
    "pixel_accuracy",
    "best_threshold",
    "dice_per_image",
    "iou_per_image",
]

#: Number of binarisation thresholds on the 0-255 scale (t = 0..255).
N_THRESHOLDS = 256

# ----------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------
def _as_stack(array, name):
    """Return ``array`` as an ``(N, H, W)`` ndarray (a 2-D slice gets N = 1)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or array.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty (H, W) slice or (N, H, W) stack. "
            f"Received: {name}.shape={array.shape}"
        )
    return array


def _check_pred_uint8(pred, name="pred"):
    pred = _as_stack(pred, name)
    if pred.dtype != np.uint8:
        raise ValueError(
            f"`{name}` must be a uint8 probability map on the 0-255 scale; "
            f"convert probabilities in [0, 1] with keras_unets.metrics.to_uint8. "
            f"Received: {name}.dtype={pred.dtype}"
        )
    return pred


def _check_labels(labels, name="labels"):
    """Labels as a boolean ``(N, H, W)`` cell mask; they must be {0, 255} or bool."""
    labels = _as_stack(labels, name)
    if labels.dtype == np.bool_:
        return labels
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(
            f"`{name}` must hold the values {{0, 255}} (255 = cell). "
            f"Received: {name}.dtype={labels.dtype}"
        )
    bad = (labels != 0) & (labels != 255)
    if bad.any():
        values = np.unique(labels)
        shown = ", ".join(str(v) for v in values[:8]) + (", ..." if values.size > 8 else "")
        raise ValueError(
            f"`{name}` must be binary with values {{0, 255}} (255 = cell interior, "
            f"0 = membrane); {int(bad.sum())} pixels have other values. "
            f"Received: values {{{shown}}}"
        )
    return labels == 255


def _check_same_shape(pred, labels, pred_name="pred", labels_name="labels"):
    if pred.shape != labels.shape:
        raise ValueError(
            f"`{pred_name}` and `{labels_name}` must have the same (N, H, W) shape. "
            f"Received: {pred_name}.shape={pred.shape}, {labels_name}.shape={labels.shape}"
        )


def _check_threshold(threshold):
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(
        threshold, (int, np.integer)
    ):
        if isinstance(threshold, (float, np.floating)) and float(threshold).is_integer():
            threshold = int(threshold)
        else:
            raise ValueError(
                "`threshold` must be an integer 0..255 on the uint8 scale "
                f"(binarisation is pred > threshold). Received: threshold={threshold!r}"
            )
    threshold = int(threshold)
    if not 0 <= threshold <= 255:
        raise ValueError(
            "`threshold` must be an integer 0..255 on the uint8 scale "
            f"(binarisation is pred > threshold). Received: threshold={threshold}"
        )
    return threshold


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def to_uint8(prob):
    """Probabilities in [0, 1] -> ``uint8`` 0-255 as ``round(prob * 255)``.

    This is how probability maps are stored on disk and fed to the metrics
    (``DESIGN.md``); rounding is numpy's round-half-to-even.

    Args:
        prob: float array of any shape with values in [0, 1].

    Returns:
        ``uint8`` array of the same shape.

    Raises:
        ValueError: if ``prob`` is not a real-valued array, holds NaN, or
            leaves [0, 1].

    >>> to_uint8(np.array([0.0, 0.2, 0.5, 1.0])).tolist()
    [0, 51, 128, 255]
    """
    prob = np.asarray(prob)
    if prob.dtype == np.bool_ or not (
        np.issubdtype(prob.dtype, np.floating) or np.issubdtype(prob.dtype, np.integer)
    ):
        raise ValueError(
            "`prob` must be a real-valued array of probabilities in [0, 1]. "
            f"Received: prob.dtype={prob.dtype}"
        )
    prob = prob.astype(np.float64, copy=False)
    if prob.size:
        if np.isnan(prob).any():
            raise ValueError(
                f"`prob` must not contain NaN. Received: {int(np.isnan(prob).sum())} NaN values"
            )
        lo, hi = float(prob.min()), float(prob.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                "`prob` must hold probabilities in [0, 1] (apply a sigmoid to "
                f"logits first). Received: min={lo:g}, max={hi:g}"
            )
    return np.rint(prob * 255.0).astype(np.uint8)


def _class_histograms(pred, cell):
    """Counts of each pred value 0..255 among membrane (row 0) and cell (row 1) pixels."""
    index = pred.ravel().astype(np.intp) + 256 * cell.ravel()
    return np.bincount(index, minlength=512).reshape(2, 256)


def threshold_sweep(pred, labels):
    """Pixel accuracy of ``pred > t`` for every threshold ``t = 0..255`` in one pass.

    A pixel is right when ``pred > t`` on a cell pixel (label 255) or
    ``pred <= t`` on a membrane pixel (label 0). With ``h0``/``h1`` the
    histograms of ``pred`` over membrane/cell pixels (one ``np.bincount``),

        correct(t) = cumsum(h0)[t] + (n_cell - cumsum(h1)[t]),

    pooled over all slices and divided by the number of pixels: the same
    number as the report's per-pixel loop (Liu et al., "U-Net School",
    sec. IV), for all 256 thresholds at once. Counts are integers, so the
    result equals a brute-force ``mean((pred > t) * 255 == labels)`` exactly.

    Args:
        pred: ``uint8`` ``(N, H, W)`` or ``(H, W)`` probability map, 0-255.
        labels: same shape, values {0, 255} (255 = cell).

    Returns:
        ``float64`` array of shape ``(256,)``; entry ``t`` is the accuracy of
        ``pred > t``. (``t = 255`` predicts everything as membrane.)

    >>> pred = np.array([[0, 100, 200, 255]], np.uint8)
    >>> labels = np.array([[0, 0, 255, 255]], np.uint8)
    >>> sweep = threshold_sweep(pred, labels)
    >>> float(sweep[0]), float(sweep[100]), float(sweep[200])
    (0.75, 1.0, 0.75)
    """
    pred = _check_pred_uint8(pred)
    cell = _check_labels(labels)
    _check_same_shape(pred, cell)
    hist = _class_histograms(pred, cell)
    membrane_right = np.cumsum(hist[0])  # membrane pixels with pred <= t
    cell_right = hist[1].sum() - np.cumsum(hist[1])  # cell pixels with pred > t
    return (membrane_right + cell_right) / float(pred.size)


def pixel_accuracy(pred, labels, threshold=None):
    """The report's pixel accuracy, pooled over all pixels of all slices.

    Args:
        pred: ``uint8`` probability map (0-255), ``(N, H, W)`` or ``(H, W)``.
        labels: same shape, values {0, 255}.
        threshold: integer 0..255: binarise ``pred > threshold -> 255`` first
            (the report's fixed evaluation). ``None``: compare raw values,
            ``mean(pred == labels)``, which is the number the report computed
            before it added binarisation (e.g. its Table I: 0.6754 / 0.7545 /
            0.6996); only pixels predicted exactly 0 or 255 can count as right.

    Returns:
        float in [0, 1].

    >>> pred = np.array([[0, 100, 200, 255]], np.uint8)
    >>> labels = np.array([[0, 0, 255, 255]], np.uint8)
    >>> pixel_accuracy(pred, labels), pixel_accuracy(pred, labels, threshold=150)
    (0.5, 1.0)
    """
    pred = _check_pred_uint8(pred)
    cell = _check_labels(labels)
    _check_same_shape(pred, cell)
    if threshold is None:
        target = np.where(cell, 255, 0).astype(np.uint8)
        return int(np.count_nonzero(pred == target)) / float(pred.size)
    threshold = _check_threshold(threshold)
    return int(np.count_nonzero((pred > threshold) == cell)) / float(pred.size)


def best_threshold(pred, labels):
    """Threshold ``t`` in 0..255 with the highest pixel accuracy of ``pred > t``.

    Ties go to the **lowest** threshold (``np.argmax`` returns the first
    maximum), so the result is deterministic; for a 0/255 binary prediction
    every ``t`` in 0..254 ties and ``t = 0`` is returned. The report found
    ``t = 87`` for its U-Net (Fig. 10).

    Returns:
        ``(t, accuracy)`` as ``(int, float)``.

    >>> pred = np.array([[0, 100, 200, 255]], np.uint8)
    >>> labels = np.array([[0, 0, 255, 255]], np.uint8)
    >>> best_threshold(pred, labels)
    (100, 1.0)
    """
    sweep = threshold_sweep(pred, labels)
    t = int(np.argmax(sweep))
    return t, float(sweep[t])


def _overlap_counts(pred, labels, threshold):
    pred = _check_pred_uint8(pred)
    cell = _check_labels(labels)
    _check_same_shape(pred, cell)
    threshold = _check_threshold(threshold)
    fg = pred > threshold
    inter = np.count_nonzero(fg & cell, axis=(1, 2)).astype(np.float64)
    size_pred = np.count_nonzero(fg, axis=(1, 2)).astype(np.float64)
    size_true = np.count_nonzero(cell, axis=(1, 2)).astype(np.float64)
    return inter, size_pred, size_true


def dice_per_image(pred, labels, threshold=127):
    """Dice coefficient of the cell class (255) for each slice at ``pred > threshold``.

    ``Dice = 2 |P & T| / (|P| + |T|)`` with ``P`` the predicted and ``T`` the
    true cell pixels of one slice. The default ``threshold=127`` keeps
    ``pred >= 128``, i.e. ``prob >= 0.5`` (up to rounding) for maps made with
    :func:`to_uint8`.

    Empty-mask rule (as nnU-Net's evaluation, Isensee et al., Nature Methods
    2021): when a slice has neither predicted nor true cell pixels the score
    is undefined and returned as ``NaN``; callers average with
    ``np.nanmean`` so such slices are skipped (:func:`keras_unets.metrics.evaluate` does).

    Returns:
        ``float64`` array of shape ``(N,)``.

    >>> pred = np.array([[[255, 255, 0, 0]], [[0, 0, 0, 0]]], np.uint8)
    >>> labels = np.array([[[255, 0, 0, 0]], [[0, 0, 0, 0]]], np.uint8)
    >>> dice_per_image(pred, labels).round(4).tolist()
    [0.6667, nan]
    """
    inter, size_pred, size_true = _overlap_counts(pred, labels, threshold)
    denom = size_pred + size_true
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * inter / denom, np.nan)


def iou_per_image(pred, labels, threshold=127):
    """Intersection over union (Jaccard) of the cell class for each slice.

    ``IoU = |P & T| / |P | T|`` at ``pred > threshold``; the same empty-mask
    rule as :func:`dice_per_image` (both empty -> ``NaN``, skipped by
    ``np.nanmean``). ``IoU = Dice / (2 - Dice)`` slice by slice.

    >>> pred = np.array([[[255, 255, 0, 0]]], np.uint8)
    >>> labels = np.array([[[255, 0, 0, 0]]], np.uint8)
    >>> iou_per_image(pred, labels).tolist()
    [0.5]
    """
    inter, size_pred, size_true = _overlap_counts(pred, labels, threshold)
    union = size_pred + size_true - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).all():
        return math.nan
    return float(np.nanmean(values))
