"""Metrics: the report's pixel accuracy, the ISBI 2012 challenge's scores, multi-class.

* :mod:`keras_unets.metrics.pixel` - :func:`to_uint8`, the 256-threshold
  :func:`threshold_sweep`, :func:`pixel_accuracy`, :func:`best_threshold`,
  per-slice :func:`dice_per_image` / :func:`iou_per_image` (Liu et al.,
  "U-Net School", section IV).
* :mod:`keras_unets.metrics.isbi` - V_rand, V_info, Rand error and pixel
  error of the challenge (Arganda-Carreras et al. 2015).
* :mod:`keras_unets.metrics.multiclass` - :func:`confusion_matrix`,
  :func:`class_scores`, :func:`evaluate_multiclass`.
* :func:`evaluate` (here) - all binary metrics of one volume in one dict.

Conventions (``DESIGN.md``): predictions are ``uint8`` 0-255 made with
:func:`to_uint8`; labels are ``uint8`` {0, 255} with 255 = cell interior.
Pure numpy / OpenCV: this package never imports Keras.
"""
import numpy as np

from keras_unets.metrics.isbi import FINE_THRESHOLDS, ISBI_THRESHOLDS, fine_scores, isbi_scores
from keras_unets.metrics.multiclass import (
    MULTICLASS_KEYS,
    class_scores,
    confusion_matrix,
    evaluate_multiclass,
)
from keras_unets.metrics.pixel import (
    N_THRESHOLDS,
    _check_threshold,
    _nanmean,
    best_threshold,
    dice_per_image,
    iou_per_image,
    pixel_accuracy,
    threshold_sweep,
    to_uint8,
)

__all__ = [
    "N_THRESHOLDS",
    "to_uint8",
    "threshold_sweep",
    "pixel_accuracy",
    "best_threshold",
    "dice_per_image",
    "iou_per_image",
    "evaluate",
    "EVALUATE_KEYS",
    "ISBI_THRESHOLDS",
    "FINE_THRESHOLDS",
    "isbi_scores",
    "fine_scores",
    "confusion_matrix",
    "class_scores",
    "evaluate_multiclass",
    "MULTICLASS_KEYS",
]

#: Keys of the dict returned by :func:`evaluate` that ``DESIGN.md`` fixes.
EVALUATE_KEYS = (
    "pixel_accuracy",
    "threshold",
    "best_threshold",
    "best_accuracy",
    "v_rand",
    "v_info",
    "rand_error",
    "pixel_error",
    "dice",
    "iou",
)


def evaluate(pred, labels, *, threshold=None):
    """All metrics of the report and of the ISBI 2012 challenge for one volume.

    Args:
        pred: ``uint8`` ``(N, H, W)`` probability map on the 0-255 scale (make
            it with :func:`to_uint8`).
        labels: same shape, values {0, 255}, 255 = cell.
        threshold: integer 0..255 at which to report ``pixel_accuracy``,
            ``dice`` and ``iou``; ``None`` uses the best threshold of the
            256-threshold sweep (ties -> lowest, see :func:`best_threshold`).

    Returns:
        dict with (``DESIGN.md``)

        - ``pixel_accuracy``: accuracy of ``pred > threshold`` (report, sec. IV),
        - ``threshold``: the threshold used (int),
        - ``best_threshold``, ``best_accuracy``: best of the 0..255 sweep,
        - ``v_rand``, ``v_info``: ISBI 2013 scores after thinning, max over
          thresholds 0.0..1.0 (:func:`keras_unets.metrics.isbi.isbi_scores`),
        - ``rand_error``, ``pixel_error``: ISBI 2012 errors,
        - ``dice``, ``iou``: mean over slices of the per-slice cell-class
          scores at ``threshold`` (empty-empty slices are ``NaN`` and skipped;
          ``NaN`` if every slice is empty),

        plus ``dice_per_image`` and ``iou_per_image`` (lists) and the
        thresholds (0.0..1.0) at which each ISBI score was reached:
        ``v_rand_threshold``, ``v_info_threshold``, ``rand_error_threshold``,
        ``pixel_error_threshold``. Values are plain Python numbers.
    """
    sweep = threshold_sweep(pred, labels)
    best_t = int(np.argmax(sweep))
    t = best_t if threshold is None else _check_threshold(threshold)
    dice = dice_per_image(pred, labels, t)
    iou = iou_per_image(pred, labels, t)
    isbi = isbi_scores(pred, labels)
    return {
        "pixel_accuracy": float(sweep[t]),
        "threshold": t,
        "best_threshold": best_t,
        "best_accuracy": float(sweep[best_t]),
        "v_rand": isbi.v_rand,
        "v_info": isbi.v_info,
        "rand_error": isbi.rand_error,
        "pixel_error": isbi.pixel_error,
        "dice": _nanmean(dice),
        "iou": _nanmean(iou),
        "dice_per_image": [float(v) for v in dice],
        "iou_per_image": [float(v) for v in iou],
        "v_rand_threshold": isbi.v_rand_threshold,
        "v_info_threshold": isbi.v_info_threshold,
        "rand_error_threshold": isbi.rand_error_threshold,
        "pixel_error_threshold": isbi.pixel_error_threshold,
    }
