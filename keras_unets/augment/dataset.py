"""The training batch source: random crops or whole slices, augmented, for ``model.fit``.

:class:`SegmentationDataset` is a ``keras.utils.PyDataset`` of random crops or
whole slices whose randomness is a pure function of ``(seed, epoch, batch
index)``, so it is reproducible and safe with parallel workers.

With named model outputs, ``y`` is a dict; the UNet 3+ classification-guided
module's output (:data:`keras_unets.models.unet3p.CGM_OUTPUT`) gets
:func:`cgm_targets` of the label crops (Huang et al., ICASSP 2020).

Conventions (DESIGN.md): images ``uint8 (N, H, W)``, labels ``uint8 (N, H, W)``
in {0, 255}; batches ``x float32 (B, H, W, 1)`` in [0, 1] and ``y float32
(B, H, W, 1)`` in {0, 1}.
"""
import math
import numbers

import keras
import numpy as np

from keras_unets.augment.augmenter import Augmenter
from keras_unets.models.unet3p import CGM_OUTPUT

__all__ = ["SegmentationDataset", "cgm_targets"]


def cgm_targets(labels):
    """Targets of the UNet 3+ classification-guided module for label crops.

    Huang et al., "UNet 3+", ICASSP 2020, section 2.3: the classification
    branch predicts whether the organ is in the input image and is trained
    with binary cross-entropy; its ``argmax`` over 2 classes masks the
    segmentation (:class:`keras_unets.models.layers.ClassGuidance`: index 1 =
    present). Here the "organ" is the cell class: a crop whose label has any
    cell pixel (255) is "present".

    Args:
        labels: ``uint8`` ``(N, H, W)`` (or ``(N, H, W, 1)``) in {0, 255}, the
            label crops as the network sees them (after augmentation).

    Returns:
        ``float32 (N, 2)`` one-hot ``[absent, present]``: ``[0, 1]`` when the
        crop has a cell pixel, ``[1, 0]`` for an all-membrane crop.

    Example:
        >>> import numpy as np
        >>> labels = np.zeros((2, 4, 4), np.uint8); labels[1, 2, 3] = 255
        >>> cgm_targets(labels).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    labels = np.asarray(labels)
    if labels.ndim == 4 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.ndim != 3:
        raise ValueError(
            "`labels` must be a stack of shape (N, H, W). "
            f"Received: labels.shape={labels.shape}")
    present = (labels.reshape(len(labels), -1) == 255).any(axis=1).astype(np.float32)
    return np.stack([1.0 - present, present], axis=1)


def _as_stack(array, name, dtype=None):
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or array.size == 0:
        raise ValueError(f"`{name}` must be a stack of shape (N, H, W). Received: {name}.shape={array.shape}")
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"`{name}` must be {np.dtype(dtype).name} (N, H, W). Received: dtype={array.dtype}")
    return array


def _check_classes(classes):
    """None for binary {0, 255} labels, else the number of classes K >= 3."""
    if classes is None or (isinstance(classes, numbers.Integral) and not isinstance(classes, bool) and classes in (1, 2)):
        return None
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or not 3 <= classes <= 256:
        raise ValueError(
            "`classes` must be None, 1 or 2 (binary {0, 255} labels) or K in 3..256 (uint8 class "
            f"indices 0..K-1). Received: classes={classes!r}"
        )
    return int(classes)


def _check_label_values(labels, classes, name="labels"):
    if classes is None:
        if not all(np.all((label == 0) | (label == 255)) for label in labels):
            found = np.unique(np.concatenate([np.unique(label) for label in labels]))[:10].tolist()
            raise ValueError(
                f"`{name}` must be 0 (membrane) or 255 (cell) (DESIGN.md). "
                f"Received values (first 10): {found}. For 0/1 labels pass labels * 255; "
                "for class indices pass classes=K."
            )
        return
    top = max(int(label.max()) for label in labels)
    if top >= classes:
        raise ValueError(
            f"`{name}` must hold class indices 0..{classes - 1} for classes={classes}. "
            f"Received: a label value {top}."
        )


def _is_stack(images):
    """A single ``(N, H, W)`` (or ``(N, H, W, 1)``) array: the ISBI-style stack input."""
    return isinstance(images, np.ndarray) and (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 1))


def _check_stack_input(images, labels, weight_maps, crop, classes):
    images = _as_stack(images, "images", np.uint8)
    labels = _as_stack(labels, "labels", np.uint8)
    if images.shape != labels.shape:
        raise ValueError(
            "`images` and `labels` must have the same shape. "
            f"Received: images.shape={images.shape}, labels.shape={labels.shape}"
        )
    _check_label_values(labels, classes)
    if weight_maps is not None:
        weight_maps = _as_stack(weight_maps, "weight_maps")
        if weight_maps.shape != images.shape:
            raise ValueError(
                "`weight_maps` must have the images' shape. "
                f"Received: weight_maps.shape={weight_maps.shape}, images.shape={images.shape}"
            )
        weight_maps = weight_maps.astype(np.float32, copy=False)
    _, height, width = images.shape
    if crop is not None:
        crop = _check_crop(crop)
        if not (crop[0] <= height and crop[1] <= width):
            raise ValueError(
                f"`crop` must be None, an int or (h, w) with 0 < h <= {height} and "
                f"0 < w <= {width}. Received: crop={crop!r}. (Pass the images as a list "
                "to mirror-pad images smaller than the crop.)"
            )
    return images, labels, weight_maps, crop


def _check_crop(crop):
    crop = (int(crop), int(crop)) if isinstance(crop, numbers.Integral) else tuple(int(c) for c in crop)
    if len(crop) != 2 or min(crop) < 1:
        raise ValueError(f"`crop` must be None, an int or (h, w) with h, w > 0. Received: crop={crop!r}")
    return crop


def _pad_to(array, shape):
    """``array`` mirror-padded (centred) to at least ``shape`` (height, width)."""
    dh, dw = max(0, shape[0] - array.shape[0]), max(0, shape[1] - array.shape[1])
    if not (dh or dw):
        return array
    pad = [(dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)] + [(0, 0)] * (array.ndim - 2)
    mode = "symmetric" if min(array.shape[:2]) == 1 else "reflect"  # reflect needs 2 pixels
    return np.pad(array, pad, mode=mode)


def _check_list_input(images, labels, weight_maps, crop, classes, batch_size):
    """Lists of images of any sizes (grey or RGB), labels, weights; small images padded to the crop."""
    images = [np.asarray(image) for image in images]
    labels = [np.asarray(label) for label in labels]
    if not images or len(labels) != len(images):
        raise ValueError(
            "`images` and `labels` must be non-empty lists of the same length. "
            f"Received: {len(images)} images, {len(labels)} labels"
        )
    if weight_maps is not None:
        weight_maps = [np.asarray(w, np.float32) for w in weight_maps]
        if len(weight_maps) != len(images):
            raise ValueError(f"`weight_maps` needs one map per image. Received: {len(weight_maps)} for {len(images)}")
    channels = set()
    for i, (image, label) in enumerate(zip(images, labels)):
        if image.ndim == 3 and image.shape[-1] == 1:
            images[i] = image = image[..., 0]
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
            raise ValueError(
                f"`images[{i}]` must be uint8 (H, W) or (H, W, C). "
                f"Received: dtype={image.dtype}, shape={image.shape}"
            )
        channels.add(1 if image.ndim == 2 else image.shape[-1])
        if label.dtype != np.uint8 or label.shape != image.shape[:2]:
            raise ValueError(
                f"`labels[{i}]` must be uint8 with the same shape as images[{i}] {image.shape[:2]}. "
                f"Received: dtype={label.dtype}, shape={label.shape}"
            )
        if weight_maps is not None and weight_maps[i].shape != image.shape[:2]:
            raise ValueError(
                f"`weight_maps[{i}]` must have the image's shape {image.shape[:2]}. "
                f"Received: shape={weight_maps[i].shape}"
            )
    if len(channels) > 1:
        raise ValueError(f"Every image needs the same number of channels. Received: {sorted(channels)}")
    _check_label_values(labels, classes)
    if crop is None:
        if batch_size > 1 and len({image.shape for image in images}) > 1:
            raise ValueError(
                "Whole images of different sizes cannot share a batch: pass crop=... or "
                f"batch_size=1. Received: sizes {sorted({image.shape[:2] for image in images})[:5]}"
            )
        return images, labels, weight_maps, None
    crop = _check_crop(crop)
    images = [_pad_to(image, crop) for image in images]
    labels = [_pad_to(label, crop) for label in labels]
    if weight_maps is not None:
        weight_maps = [_pad_to(w, crop) for w in weight_maps]
    return images, labels, weight_maps, crop


class SegmentationDataset(keras.utils.PyDataset):
    """Batches of (augmented) random crops or whole slices for ``model.fit``.

    Every random choice of batch ``index`` in epoch ``e`` comes from
    ``np.random.default_rng([seed, 0, e, index])`` and the slice order of
    pass ``c`` over the data from ``np.random.default_rng([seed, 1, c])``:
    batches are a pure function of ``(seed, epoch, index)``, so results are
    reproducible, workers share no random state, and the order in which
    parallel workers produce batches does not matter. :meth:`on_epoch_end`
    advances the epoch (Keras calls it after every epoch; on the TensorFlow
    backend also once before the first, after peeking at two batches to
    build the tensor spec, so fit's first epoch sees dataset epoch 1 there;
    either way the sequence is deterministic). :meth:`set_epoch` jumps.

    Args:
        images: ``uint8 (N, H, W)``; or a list of ``uint8`` ``(H, W)`` or
            ``(H, W, C)`` images of any sizes (e.g.
            :attr:`keras_unets.data.folders.FolderDataset.images`): a batch picks
            its images in shuffled passes as for a stack, then a random crop
            of each; images smaller than the crop are mirror-padded
            (``np.pad(mode="reflect")``, centred) to the crop once, here.
        labels: ``uint8 (N, H, W)`` (or a list of ``(H, W)``) in {0, 255};
            with ``classes=K``, class indices ``0..K-1``.
        batch_size: samples per batch.
        crop: ``None`` (whole slices), an int or ``(h, w)``: random crops.
            With an augmenter the warp is computed for the crop window but
            reads the whole slice, so rotated crops are filled with real
            data and mirror fill only happens at the slice border. A stack
            must be at least the crop (a larger crop is refused there);
            whole images of different sizes need ``batch_size=1``.
        augmenter: optional :class:`Augmenter`.
        weight_maps: optional ``(N, H, W)`` float per-pixel weights (e.g.
            :func:`keras_unets.augment.weightmaps.unet_weight_map`); batches are then
            ``(x, y, sample_weight)`` with ``sample_weight float32 (B, h, w)``.
        steps_per_epoch: batches per epoch (default ``ceil(N / batch_size)``).
            Slices are visited in shuffled passes over the data, continued
            across batches and epochs.
        seed: int >= 0; ``None`` draws one now (stored, so workers agree).
        shuffle: shuffle slice order in each pass (else 0, 1, ..., N-1, ...).
        output_names: optional list of model output names; ``y`` (and the
            weights) become dicts keyed by them (deep supervision). The UNet
            3+ classification-guided module's output ``"cls"``
            (:data:`CGM_OUTPUT`) gets :func:`cgm_targets` of the batch's
            (augmented) label crops, ``float32 (B, 2)`` ``[absent,
            present]``, and sample weights of 1 ``(B,)`` when there are
            weight maps; every other output gets the label map.
        classes: None (or 1, 2): binary {0, 255} labels; K >= 3: class
            indices, warped with nearest neighbour (so they stay indices;
            ``Augmenter(mask_cval=0)`` fills with class 0 under
            ``fill_mode="constant"``) and yielded one-hot. A CGM target is
            then "any non-zero class".
        workers, use_multiprocessing, max_queue_size: passed to ``PyDataset``.

    Batches: ``x float32 (B, h, w, C)`` = image / 255 (C = 1 for grey), ``y
    float32 (B, h, w, 1)`` = label / 255, or ``float32 (B, h, w, K)`` one-hot
    for ``classes=K`` (``y["cls"] float32 (B, 2)`` for a CGM output).
    """

    def __init__(
        self,
        images,
        labels,
        *,
        batch_size=1,
        crop=None,
        augmenter=None,
        weight_maps=None,
        steps_per_epoch=None,
        seed=0,
        shuffle=True,
        output_names=None,
        classes=None,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
        classes = _check_classes(classes)
        if _is_stack(images):
            images, labels, weight_maps, crop = _check_stack_input(images, labels, weight_maps, crop, classes)
        else:
            images, labels, weight_maps, crop = _check_list_input(images, labels, weight_maps, crop, classes,
                                                                  batch_size)
        n = len(images)
        if augmenter is not None and not isinstance(augmenter, Augmenter):
            raise TypeError(f"`augmenter` must be a keras_unets.augment.Augmenter. Received: {type(augmenter)}")
        if steps_per_epoch is None:
            steps_per_epoch = math.ceil(n / batch_size)
        if not isinstance(steps_per_epoch, numbers.Integral) or steps_per_epoch < 1:
            raise ValueError(f"`steps_per_epoch` must be a positive int. Received: steps_per_epoch={steps_per_epoch!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"`seed` must be an int >= 0 (or None). Received: seed={seed!r}")
        if output_names is not None:
            output_names = [str(name) for name in output_names]
            if not output_names:
                raise ValueError("`output_names` must be None or a non-empty list of output names.")
        self.images = images
        self.labels = labels
        self.weight_maps = weight_maps
        self.batch_size = int(batch_size)
        self.crop = crop
        self.augmenter = augmenter
        self.steps_per_epoch = int(steps_per_epoch)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.output_names = output_names
        self.classes = classes
        self.epoch = 0

    def __len__(self):
        return self.steps_per_epoch

    def on_epoch_end(self):
        self.epoch += 1

    def set_epoch(self, epoch):
        """Jump to ``epoch`` (e.g. when resuming training)."""
        self.epoch = int(epoch)

    def slice_indices(self, index, epoch=None):
        """Slices of batch ``index`` in ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.images)
        start = (epoch * self.steps_per_epoch + int(index)) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        out = np.empty(self.batch_size, np.int64)
        for cycle in np.unique(positions // n):
            sel = positions // n == cycle
            order = np.random.default_rng([self.seed, 1, int(cycle)]).permutation(n) if self.shuffle else np.arange(n)
            out[sel] = order[positions[sel] % n]
        return out

    def __getitem__(self, index):
        if not 0 <= index < self.steps_per_epoch:
            raise IndexError(f"Batch index out of range: {index} (this dataset has {self.steps_per_epoch} batches).")
        return self.get_batch(index, self.epoch)

    def get_batch(self, index, epoch):
        """The batch ``index`` of ``epoch`` (a pure function of seed, epoch, index)."""
        rng = np.random.default_rng([self.seed, 0, int(epoch), int(index)])
        xs, ys, ws = [], [], []
        for i in self.slice_indices(index, epoch):
            image, label = self.images[i], self.labels[i]
            height, width = image.shape[:2]
            ch, cw = self.crop if self.crop is not None else (height, width)
            r0 = int(rng.integers(0, height - ch, endpoint=True))
            c0 = int(rng.integers(0, width - cw, endpoint=True))
            weights = self.weight_maps[i] if self.weight_maps is not None else None
            if self.augmenter is not None:
                out = self.augmenter.random_transform(
                    image, label, rng, weights=weights, out_shape=(ch, cw), offset=(r0, c0)
                )
                image, label = out[0], out[1]
                weights = out[2] if weights is not None else None
            else:
                image = image[r0 : r0 + ch, c0 : c0 + cw]
                label = label[r0 : r0 + ch, c0 : c0 + cw]
                if weights is not None:
                    weights = weights[r0 : r0 + ch, c0 : c0 + cw]
            xs.append(image)
            ys.append(label)
            ws.append(weights)
        x = np.stack(xs).astype(np.float32) / 255.0
        if x.ndim == 3:  # grey: add the channel axis
            x = x[..., None]
        labels = np.stack(ys)
        if self.classes is None:
            y = (labels == 255).astype(np.float32)[..., None]
        else:  # class indices -> one-hot (B, h, w, K)
            y = np.eye(self.classes, dtype=np.float32)[labels]
            labels = np.where(labels > 0, 255, 0).astype(np.uint8)  # foreground for the CGM target
        w = np.stack(ws).astype(np.float32) if self.weight_maps is not None else None
        if self.output_names is not None:
            cls = cgm_targets(labels) if CGM_OUTPUT in self.output_names else None
            y = {name: cls if name == CGM_OUTPUT else y for name in self.output_names}
            if w is not None:
                ones = np.ones(len(x), np.float32)
                w = {name: ones if name == CGM_OUTPUT else w for name in self.output_names}
        return (x, y) if w is None else (x, y, w)
