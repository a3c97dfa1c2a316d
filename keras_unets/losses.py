"""The papers' losses, in ``keras.ops`` (tested on the TensorFlow and JAX backends).

Each loss is a pure function ``f(y_true, y_pred, ...)`` plus a thin
serializable ``keras.losses.Loss`` class (registered under the package
``keras_unets``, so compiled models save and load as ``.keras`` files).
Tensors are ``(B, H, W, C)`` (C = 1 for the binary masks of this project);
the per-pixel losses return ``(B, H, W)`` (mean over channels, like Keras'
own ``binary_crossentropy``), so Keras' ``sample_weight`` of shape ``(B, H,
W)`` weights every pixel and the default ``"sum_over_batch_size"`` reduction
averages over all pixels of the batch. Image-level terms (Dice, IoU,
MS-SSIM) are broadcast over the pixels of their image (or of the batch), so
the reduced value is the plain sum of the terms.

* :func:`weighted_binary_crossentropy`: the U-Net paper's weighted
  cross-entropy (Ronneberger et al. 2015, eq. 1) with per-pixel weights such
  as :func:`keras_unets.augment.weightmaps.unet_weight_map`. Two ways to pass the
  weights: Keras' ``sample_weight`` (``(B, H, W)``; what
  :class:`keras_unets.augment.SegmentationDataset` yields), or an explicit
  weight channel (``WeightedBinaryCrossentropy(weight_channel=True)``:
  ``y_true[..., 0]`` is the label and ``y_true[..., 1]`` the weight). The
  result is ``mean(w * bce)`` over the pixels (normalised by the number of
  pixels, not by the sum of weights).
* :func:`bce_dice_loss`: UNet++ (Zhou et al., DLMIA 2018, eq. 1) per output:
  ``0.5 * BCE + (1 - Dice)``, Dice over the flattened batch with ``smooth =
  1``. The official Keras code (MrGiovanni/UNetPlusPlus,
  ``helper_functions.py``) returns ``0.5 * binary_crossentropy - dice_coef``;
  ours is that plus the constant 1 (same gradients, and 0 at a perfect
  prediction).
* :func:`unet3p_hybrid_loss`: UNet 3+ (Huang et al., ICASSP 2020, eq. 3-5):
  ``focal + (1 - MS-SSIM) + IoU loss`` with equal weights.
* :func:`binary_crossentropy_from_logits`: PyTorch's ``BCEWithLogitsLoss``,
  what the report trained UNet 3+ with; the model must then output logits
  (no sigmoid).
* :func:`categorical_ce_dice_loss`: multi-class segmentation (K-channel
  softmax, one-hot targets): ``ce_weight * CE + dice_weight * (1 - mean_k
  Dice_k)``, the cross-entropy + soft Dice sum of nnU-Net (Isensee et al.,
  Nature Methods 2021); Dice per class over the flattened batch with
  ``smooth = 1`` (as :func:`dice_coefficient`), averaged over the K
  classes, background included.
* :func:`deep_supervision_losses`: ``loss`` / ``loss_weights`` dicts for
  ``model.compile`` over named deep-supervision outputs.
"""
from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops

__all__ = [
    "MSSSIM_WEIGHTS",
    "BCEDiceLoss",
    "BinaryCrossentropyFromLogits",
    "BinaryFocalLoss",
    "CategoricalCEDiceLoss",
    "IoULoss",
    "MSSSIMLoss",
    "UNet3PlusHybridLoss",
    "WeightedBinaryCrossentropy",
    "bce_dice_loss",
    "binary_crossentropy_from_logits",
    "binary_focal_loss",
    "categorical_ce_dice_loss",
    "deep_supervision_losses",
    "dice_coefficient",
    "iou_loss",
    "ms_ssim",
    "ms_ssim_loss",
    "msssim_scales",
    "unet3p_hybrid_loss",
    "weighted_binary_crossentropy",
]

# Wang, Simoncelli & Bovik 2003, Table 1 (also UNet 3+'s official msssimLoss.py).
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_PACKAGE = "keras_unets"


def _prepare(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    return y_true, y_pred


def _elementwise_bce(y_true, y_pred, from_logits):
    if from_logits:
        # log(1 + exp(x)) - x * y, written stably: max(x, 0) - x * y + log(1 + exp(-|x|))
        return ops.relu(y_pred) - y_pred * y_true + ops.log1p(ops.exp(-ops.abs(y_pred)))
    eps = keras.config.epsilon()
    p = ops.clip(y_pred, eps, 1.0 - eps)
    return -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))


def weighted_binary_crossentropy(y_true, y_pred, weights=None, *, from_logits=False):
    """Per-pixel (weighted) binary cross-entropy, ``(B, H, W)``.

    ``-w * (y log p + (1 - y) log(1 - p))`` averaged over the channel axis;
    ``p`` is clipped to ``[eps, 1 - eps]`` (``keras.config.epsilon()``) as in
    Keras' ``binary_crossentropy``. ``weights``: ``(B, H, W)`` or
    ``(B, H, W, 1)``, or ``None`` (all 1).

    Example (p = 0.8 where y = 1: -log 0.8 = 0.22314; weight 2 -> 0.44629):
        >>> float(weighted_binary_crossentropy([[[[1.0]]]], [[[[0.8]]]], [[[2.0]]])[0, 0, 0])  # doctest: +ELLIPSIS
        0.4462...
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    loss = _elementwise_bce(y_true, y_pred, from_logits)
    if weights is not None:
        weights = ops.cast(weights, loss.dtype)
        if len(weights.shape) == len(loss.shape) - 1:
            weights = ops.expand_dims(weights, -1)
        loss = loss * weights
    return ops.mean(loss, axis=-1)


def binary_crossentropy_from_logits(y_true, y_pred):
    """``BCEWithLogitsLoss`` per pixel, ``(B, H, W)``; ``y_pred`` are logits.

    ``max(x, 0) - x y + log(1 + exp(-|x|))`` = ``-(y log s(x) + (1 - y) log(1 - s(x)))``.
    """
    return weighted_binary_crossentropy(y_true, y_pred, None, from_logits=True)


def dice_coefficient(y_true, y_pred, *, smooth=1.0):
    """Soft Dice over the flattened batch: ``(2 sum(y p) + s) / (sum y + sum p + s)``.

    As ``dice_coef`` in the official UNet++ code (one scalar per batch).
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


def bce_dice_loss(y_true, y_pred, *, smooth=1.0, bce_weight=0.5):
    """UNet++ loss of one output: ``bce_weight * BCE + (1 - Dice)``, ``(B, H, W)``.

    Zhou et al. 2018, eq. 1: ``L = -1/N sum_b (1/2 Y_b log Yhat_b + 2 Y_b Yhat_b
    / (Y_b + Yhat_b))``. The Dice term is the batch scalar of
    :func:`dice_coefficient`, broadcast over the pixels, so the reduced
    loss is ``0.5 * mean(BCE) + 1 - Dice``: the official
    ``0.5 * binary_crossentropy - dice_coef`` plus 1.
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    bce = weighted_binary_crossentropy(y_true, y_pred)
    return bce_weight * bce + (1.0 - dice_coefficient(y_true, y_pred, smooth=smooth))


def categorical_ce_dice_loss(y_true, y_pred, *, ce_weight=1.0, dice_weight=1.0, smooth=1.0, from_logits=False):
    """Multi-class ``ce_weight * CE + dice_weight * (1 - mean Dice)`` per pixel, ``(B, H, W)``.

    ``y_true``: one-hot ``(B, H, W, K)``; ``y_pred``: softmax probabilities
    (or logits with ``from_logits=True``). CE is ``-sum_k y_k log p_k`` per
    pixel with ``p`` clipped to ``[eps, 1 - eps]`` (Keras'
    ``categorical_crossentropy`` clips the same way). ``Dice_k = (2 sum(y_k
    p_k) + s) / (sum y_k + sum p_k + s)`` over the flattened batch, averaged
    over the K classes and broadcast over the pixels, so the reduced loss is
    ``ce_weight * mean(CE) + dice_weight * (1 - mean_k Dice_k)`` (nnU-Net's
    ``DC_and_CE_loss`` sums the two with weights 1). ``ce_weight=0`` or
    ``dice_weight=0`` leaves one term.
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    if from_logits:
        y_pred = ops.softmax(y_pred, axis=-1)
    eps = keras.config.epsilon()
    ce = -ops.sum(y_true * ops.log(ops.clip(y_pred, eps, 1.0 - eps)), axis=-1)
    axes = tuple(range(len(y_pred.shape) - 1))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    dice = (2.0 * intersection + smooth) / (ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes) + smooth)
    return ce_weight * ce + dice_weight * (1.0 - ops.mean(dice))


def binary_focal_loss(y_true, y_pred, *, alpha=0.25, gamma=2.0, from_logits=False):
    """Binary focal loss (Lin et al., ICCV 2017) per pixel, ``(B, H, W)``.

    ``-alpha_t (1 - p_t)^gamma log(p_t)``, ``p_t = p`` where ``y = 1`` else
    ``1 - p``, ``alpha_t = alpha`` where ``y = 1`` else ``1 - alpha``;
    ``alpha=None`` drops ``alpha_t``. Defaults alpha 0.25, gamma 2 are Lin et
    al.'s; the UNet 3+ paper gives none. Equals
    ``keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True)``.
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    eps = keras.config.epsilon()
    p = ops.clip(y_pred, eps, 1.0 - eps)
    bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
    loss = ops.power(1.0 - p_t, gamma) * bce
    if alpha is not None:
        loss = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * loss
    return ops.mean(loss, axis=-1)


def iou_loss(y_true, y_pred, *, smooth=1e-6):
    """Soft IoU (Jaccard) loss per image, ``(B,)``: ``1 - (I + s) / (U + s)``.

    ``I = sum(y p)``, ``U = sum(y) + sum(p) - I`` over each image, as the
    official UNet 3+ ``iouLoss.py`` (which has no ``smooth``; ours only
    guards the empty/empty case).
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    axes = tuple(range(1, len(y_pred.shape)))
    intersection = ops.sum(y_true * y_pred, axis=axes)
    union = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes) - intersection
    return 1.0 - (intersection + smooth) / (union + smooth)


def _gaussian_window(size, sigma):
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def msssim_scales(height, width, *, filter_size=11, max_scales=5):
    """Number of MS-SSIM scales that fit and the window size used.

    Scale j (0-based) sees ``floor(n / 2**j)`` pixels per side (2x2 average
    pooling); a scale is used when both sides are at least ``filter_size``.
    When not even the first does, one scale with the window shrunk to the
    image (``min(H, W)``) is used, as the official UNet 3+ code does.
    """
    if height is None or width is None:
        return max_scales, filter_size
    scales = 0
    while scales < max_scales and min(height, width) // (2**scales) >= filter_size:
        scales += 1
    if scales == 0:
        return 1, int(min(height, width))
    return scales, filter_size


def _ssim_per_scale(x, y, window, c1, c2):
    """Mean SSIM and mean contrast-structure term per image (inputs (B, H, W, 1))."""
    size = int(window.shape[0])
    ky = ops.convert_to_tensor(window.reshape(size, 1, 1, 1), dtype=x.dtype)
    kx = ops.convert_to_tensor(window.reshape(1, size, 1, 1), dtype=x.dtype)

    def blur(t):
        return ops.conv(ops.conv(t, ky, padding="valid"), kx, padding="valid")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    cs_map = (2.0 * cov + c2) / (var_x + var_y + c2)
    lum_map = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return ops.mean(lum_map * cs_map, axis=(1, 2, 3)), ops.mean(cs_map, axis=(1, 2, 3))


def ms_ssim(
    y_true,
    y_pred,
    *,
    max_val=1.0,
    filter_size=11,
    filter_sigma=1.5,
    k1=0.01,
    k2=0.03,
    power_factors=MSSSIM_WEIGHTS,
):
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) per image, ``(B,)``.

    ``prod_{j<M} cs_j^{w_j} * ssim_M^{w_M}`` over M scales (2x2 average
    pooling between scales), Gaussian window 11 / sigma 1.5 ('valid'), C1 =
    (k1 L)^2, C2 = (k2 L)^2, L = ``max_val`` (1 for masks and
    probabilities); ``cs`` and ``ssim`` are clamped below at 1e-6 before the
    powers (``tf.image.ssim_multiscale`` clamps at 0; the clamp keeps the
    gradient finite). Channels are averaged.

    Small images: five scales need ``min(H, W) >= 11 * 16 = 176`` pixels.
    Smaller images use the scales that fit (:func:`msssim_scales`) with
    the first M weights rescaled to the sum of all ``power_factors`` (1 scale
    = plain SSIM, up to that sum, 1.0001 for the standard weights);
    below 11 pixels the window shrinks to the image. For five scales this
    equals ``tf.image.ssim_multiscale`` (tested).
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    shape = y_pred.shape
    if len(shape) != 4:
        raise ValueError(f"ms_ssim expects (B, H, W, C) tensors. Received: y_pred.shape={tuple(shape)}")
    height, width, channels = shape[1], shape[2], shape[3]
    scales, size = msssim_scales(height, width, filter_size=filter_size, max_scales=len(power_factors))
    weights = np.asarray(power_factors[:scales], np.float64)
    weights = weights * (np.sum(power_factors) / weights.sum())  # unchanged when all scales fit
    window = _gaussian_window(size, filter_sigma)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    x, y = y_true, y_pred
    if channels != 1:  # channels -> batch, so one single-channel window serves all
        x = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (-1, height, width, 1))
        y = ops.reshape(ops.transpose(y, (0, 3, 1, 2)), (-1, height, width, 1))
    result = None
    for j in range(scales):
        ssim, cs = _ssim_per_scale(x, y, window, c1, c2)
        value = ssim if j == scales - 1 else cs
        term = ops.power(ops.maximum(value, 1e-6), float(weights[j]))
        result = term if result is None else result * term
        if j < scales - 1:
            x = ops.average_pool(x, 2, strides=2, padding="valid")
            y = ops.average_pool(y, 2, strides=2, padding="valid")
    if channels != 1:
        result = ops.mean(ops.reshape(result, (-1, channels)), axis=-1)
    return result


def ms_ssim_loss(y_true, y_pred, **kwargs):
    """``1 - MS-SSIM`` per image, ``(B,)`` (UNet 3+ eq. 4)."""
    return 1.0 - ms_ssim(y_true, y_pred, **kwargs)


def unet3p_hybrid_loss(
    y_true,
    y_pred,
    *,
    alpha=0.25,
    gamma=2.0,
    iou_smooth=1e-6,
    from_logits=False,
    **ms_ssim_kwargs,
):
    """UNet 3+ hybrid loss ``focal + (1 - MS-SSIM) + IoU loss`` per pixel, ``(B, H, W)``.

    Huang et al. 2020, eq. 5: ``l_seg = l_fl + l_ms-ssim + l_iou`` (equal
    weights). The per-image MS-SSIM and IoU terms are broadcast over their
    image's pixels, so the mean over the batch's pixels is ``mean(focal) +
    mean_b(1 - MS-SSIM_b) + mean_b(IoU loss_b)``.
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    focal = binary_focal_loss(y_true, y_pred, alpha=alpha, gamma=gamma)
    per_image = ms_ssim_loss(y_true, y_pred, **ms_ssim_kwargs) + iou_loss(y_true, y_pred, smooth=iou_smooth)
    return focal + ops.reshape(per_image, (-1, 1, 1))


# -- serializable classes -------------------------------------------------------


class _ConfigLoss(keras.losses.Loss):
    """Loss whose extra constructor arguments are stored for ``get_config``."""

    _defaults: dict = {}

    def __init__(self, name, reduction, dtype, **params):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._params = dict(params)

    def get_config(self):
        config = super().get_config()
        config.update(self._params)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedBinaryCrossentropy(_ConfigLoss):
    """Per-pixel weighted BCE (U-Net paper, eq. 1).

    Weights come from ``sample_weight`` (``(B, H, W)``, e.g. yielded by
    ``SegmentationDataset(weight_maps=...)``) or, with
    ``weight_channel=True``, from ``y_true[..., 1]`` (``y_true[..., :1]`` is
    the label).
    """

    def __init__(
        self,
        *,
        weight_channel=False,
        from_logits=False,
        name="weighted_bce",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name, reduction, dtype, weight_channel=bool(weight_channel), from_logits=bool(from_logits))
        self.weight_channel = bool(weight_channel)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        weights = None
        if self.weight_channel:
            if y_true.shape[-1] is not None and y_true.shape[-1] < 2:
                raise ValueError(
                    "WeightedBinaryCrossentropy(weight_channel=True) needs y_true with the label "
                    f"in channel 0 and the weight in channel 1. Received: y_true.shape={tuple(y_true.shape)}"
                )
            weights = y_true[..., 1:2]
            y_true = y_true[..., :1]
        return weighted_binary_crossentropy(y_true, y_pred, weights, from_logits=self.from_logits)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryCrossentropyFromLogits(_ConfigLoss):
    """``BCEWithLogitsLoss`` (the report's UNet 3+ loss); the model outputs logits."""

    def __init__(self, *, name="bce_logits", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction, dtype)

    def call(self, y_true, y_pred):
        return binary_crossentropy_from_logits(y_true, y_pred)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BCEDiceLoss(_ConfigLoss):
    """UNet++ ``0.5 * BCE + (1 - Dice)`` (smooth 1, Dice over the batch)."""

    def __init__(self, *, smooth=1.0, bce_weight=0.5, name="bce_dice", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction, dtype, smooth=float(smooth), bce_weight=float(bce_weight))
        self.smooth = float(smooth)
        self.bce_weight = float(bce_weight)

    def call(self, y_true, y_pred):
        return bce_dice_loss(y_true, y_pred, smooth=self.smooth, bce_weight=self.bce_weight)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryFocalLoss(_ConfigLoss):
    """Binary focal loss (Lin et al. 2017), see :func:`binary_focal_loss`."""

    def __init__(
        self, *, alpha=0.25, gamma=2.0, from_logits=False, name="focal", reduction="sum_over_batch_size", dtype=None
    ):
        alpha = None if alpha is None else float(alpha)
        super().__init__(name, reduction, dtype, alpha=alpha, gamma=float(gamma), from_logits=bool(from_logits))
        self.alpha, self.gamma, self.from_logits = alpha, float(gamma), bool(from_logits)

    def call(self, y_true, y_pred):
        return binary_focal_loss(y_true, y_pred, alpha=self.alpha, gamma=self.gamma, from_logits=self.from_logits)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalCEDiceLoss(_ConfigLoss):
    """Multi-class CE + soft Dice (see :func:`categorical_ce_dice_loss`); one-hot targets."""

    def __init__(self, *, ce_weight=1.0, dice_weight=1.0, smooth=1.0, from_logits=False,
                 name="ce_dice", reduction="sum_over_batch_size", dtype=None):
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight <= 0:
            raise ValueError(
                "`ce_weight` and `dice_weight` must be >= 0, not both 0. "
                f"Received: ce_weight={ce_weight!r}, dice_weight={dice_weight!r}"
            )
        super().__init__(name, reduction, dtype, ce_weight=float(ce_weight), dice_weight=float(dice_weight),
                         smooth=float(smooth), from_logits=bool(from_logits))
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.smooth, self.from_logits = float(smooth), bool(from_logits)

    def call(self, y_true, y_pred):
        return categorical_ce_dice_loss(y_true, y_pred, ce_weight=self.ce_weight, dice_weight=self.dice_weight,
                                        smooth=self.smooth, from_logits=self.from_logits)


def _check_ms_ssim_kwargs(kwargs):
    allowed = {"max_val", "filter_size", "filter_sigma", "k1", "k2", "power_factors"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise TypeError(f"Unknown MS-SSIM arguments {sorted(unknown)}. Allowed: {sorted(allowed)}.")
    if "power_factors" in kwargs:
        kwargs["power_factors"] = [float(v) for v in kwargs["power_factors"]]
    return kwargs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MSSSIMLoss(_ConfigLoss):
    """``1 - MS-SSIM`` per image (see :func:`ms_ssim` for small images)."""

    def __init__(self, *, name="ms_ssim", reduction="sum_over_batch_size", dtype=None, **ms_ssim_kwargs):
        ms_ssim_kwargs = _check_ms_ssim_kwargs(ms_ssim_kwargs)
        super().__init__(name, reduction, dtype, **ms_ssim_kwargs)
        self.ms_ssim_kwargs = ms_ssim_kwargs

    def call(self, y_true, y_pred):
        return ms_ssim_loss(y_true, y_pred, **self.ms_ssim_kwargs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class IoULoss(_ConfigLoss):
    """Soft IoU loss per image (UNet 3+ official ``iouLoss.py``)."""

    def __init__(self, *, smooth=1e-6, name="iou", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name, reduction, dtype, smooth=float(smooth))
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        return iou_loss(y_true, y_pred, smooth=self.smooth)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UNet3PlusHybridLoss(_ConfigLoss):
    """UNet 3+ hybrid loss: focal + (1 - MS-SSIM) + IoU loss (equal weights)."""

    def __init__(
        self,
        *,
        alpha=0.25,
        gamma=2.0,
        iou_smooth=1e-6,
        from_logits=False,
        name="unet3p_hybrid",
        reduction="sum_over_batch_size",
        dtype=None,
        **ms_ssim_kwargs,
    ):
        ms_ssim_kwargs = _check_ms_ssim_kwargs(ms_ssim_kwargs)
        alpha = None if alpha is None else float(alpha)
        super().__init__(
            name,
            reduction,
            dtype,
            alpha=alpha,
            gamma=float(gamma),
            iou_smooth=float(iou_smooth),
            from_logits=bool(from_logits),
            **ms_ssim_kwargs,
        )
        self.alpha, self.gamma = alpha, float(gamma)
        self.iou_smooth, self.from_logits = float(iou_smooth), bool(from_logits)
        self.ms_ssim_kwargs = ms_ssim_kwargs

    def call(self, y_true, y_pred):
        return unet3p_hybrid_loss(
            y_true,
            y_pred,
            alpha=self.alpha,
            gamma=self.gamma,
            iou_smooth=self.iou_smooth,
            from_logits=self.from_logits,
            **self.ms_ssim_kwargs,
        )


def deep_supervision_losses(output_names, loss, *, weights=None, normalize=False):
    """``(loss, loss_weights)`` dicts for ``model.compile`` over named outputs.

    Args:
        output_names: the model's output names (e.g. ``model.output_names``,
            ``out1..out4`` for UNet++) or the model itself.
        loss: a loss name, ``Loss`` instance or function; each output gets
            its own copy of an instance.
        weights: ``None`` (equal: 1 each, as UNet++ and UNet 3+ do), a list
            in ``output_names`` order, or a dict by name.
        normalize: divide the weights by their sum (the total is then a
            weighted mean of the per-output losses instead of their sum).

    Example:
        >>> losses, weights = deep_supervision_losses(["out1", "out2"], BCEDiceLoss())
        >>> sorted(losses), weights
        (['out1', 'out2'], {'out1': 1.0, 'out2': 1.0})
    """
    if hasattr(output_names, "output_names"):
        output_names = output_names.output_names
    if isinstance(output_names, str):
        output_names = [output_names]
    names = [str(n) for n in output_names]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"`output_names` must be distinct, non-empty names. Received: {output_names!r}")
    if weights is None:
        values = [1.0] * len(names)
    elif isinstance(weights, dict):
        missing = set(names) - set(weights)
        if missing:
            raise ValueError(f"`weights` lacks outputs {sorted(missing)}. Received keys: {sorted(weights)}")
        values = [float(weights[n]) for n in names]
    else:
        values = [float(w) for w in weights]
        if len(values) != len(names):
            raise ValueError(
                f"`weights` must have one value per output ({len(names)}: {names}). Received: weights={weights!r}"
            )
    if any(not isinstance(v, numbers.Real) or v < 0 for v in values):
        raise ValueError(f"`weights` must be >= 0. Received: {values}")
    if normalize:
        total = sum(values)
        if total <= 0:
            raise ValueError(f"`weights` sum to {total}; cannot normalise.")
        values = [v / total for v in values]

    def copy(item):
        if isinstance(item, keras.losses.Loss):
            return item.__class__.from_config(item.get_config())
        return item

    return {n: copy(loss) for n in names}, dict(zip(names, values))
