"""The data of a run: ISBI 2012 slices or your own image/mask pairs, as one :class:`RunData`.

Training takes a dataset, not slice numbers: :func:`load_run_data` reads and
checks every image and mask of a run (training and validation) into a
:class:`RunData`, and :func:`make_dataset` turns it into the batches
:func:`keras_unets.training.train` fits on.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_unets.training.options import OptionError, _check_crop, _resolve_slices

__all__ = ["RunData", "load_run_data", "make_dataset"]


@dataclass
class RunData:
    """What a run trains and validates on.

    ``x_train``/``y_train`` (and ``x_val``/``y_val``, ``None`` without
    validation) are ``uint8`` stacks for ISBI 2012 and lists of images of any
    size for your own data (:mod:`keras_unets.data.folders`). ``classes`` is 2 for
    a binary run (one sigmoid output), else K >= 3 (a K-channel softmax);
    ``record`` is config.json's ``"data"`` entry.
    """

    x_train: object
    y_train: object
    x_val: object
    y_val: object
    channels: int
    classes: int
    record: dict
    val_names: tuple
    val_source: str
    slices: object = None
    intensity: object = None

    @property
    def binary(self):
        return self.classes == 2

    @property
    def own(self):
        return self.slices is None

    def describe(self):
        if self.slices is not None:
            return self.slices.describe()
        val = (f"validation {len(self.val_names)} images ({self.val_source})"
               if self.x_val is not None else "no validation (best.keras = last.keras)")
        kind = "binary" if self.binary else f"{self.classes} classes"
        return (f"{self.record['kind']}: {len(self.x_train)} training images; {val}; "
                f"{self.channels} channel(s), {kind}")

    def meta(self):
        """config.json fields of the data."""
        if self.slices is not None:
            return {**self.slices.to_json(), "data": self.record, "classes": 2, "channels": 1}
        return {"data": self.record, "classes": self.classes, "channels": self.channels,
                "intensity": self.intensity, "val_stems": list(self.val_names),
                "val_source": self.val_source}


def load_run_data(*, data_dir, own, split, fold, folds, config, saved=None):
    """The :class:`RunData` of a run: ISBI 2012 slices (``own`` is None) or your own pairs.

    ``saved`` is the ``"data"`` record of a resumed run's ``config.json``:
    the images must be the same.
    """
    if own is None:
        slices = _resolve_slices(split, fold, folds, config.get("val_slices"))
        data = _load_isbi_data(data_dir, slices)
        _check_crop(config["crop"], data.x_train.shape[1])
        return data
    return _load_own_data(own, config["seed"], saved=saved)


def _is_path(value):
    return isinstance(value, (str, Path))


def _load_pairs(images, masks, *, mask_suffix, classes, intensity=None):
    from keras_unets.data.folders import from_arrays, load_folder_pairs

    if _is_path(images) and _is_path(masks):
        return load_folder_pairs(images, masks, mask_suffix=mask_suffix or "", classes=classes,
                                 intensity=intensity)
    if _is_path(images) or _is_path(masks):
        raise OptionError("masks" if _is_path(images) else "images", masks if _is_path(
            images) else images, "of the same kind as the other: two folders (or TIFF "
            "stacks), or two arrays / lists of arrays")
    return from_arrays(images, masks, classes=classes, intensity=intensity)


def _check_val_matches(train_set, val_set):
    from keras_unets.data.folders import ChannelsError

    if val_set.channels != train_set.channels:
        raise ChannelsError(
            f"The validation images {val_set.sources[0]} have {val_set.channels} channel(s), "
            f"the training images {train_set.sources[0]} {train_set.channels}; give "
            "validation images of the same kind.")


def _load_own_data(own, seed, saved=None):
    """Read and check every image and mask of the run (training and validation)."""
    train_set = _load_pairs(own["images"], own["masks"], mask_suffix=own["mask_suffix"],
                            classes=own["classes"])
    val_set, source = None, "none"
    if own["val_images"] is not None:
        val_set = _load_pairs(own["val_images"], own["val_masks"],
                              mask_suffix=own["mask_suffix"], classes=train_set.classes)
        _check_val_matches(train_set, val_set)
        source = "folder"
    elif own["val_fraction"] is not None:
        from keras_unets.data.folders import split_val

        train_set, val_set, _ = split_val(train_set, float(own["val_fraction"]), seed=int(seed))
        source = "fraction"
    kind = "folders" if _is_path(own["images"]) else "arrays"
    record = {"kind": kind, "mask_suffix": own["mask_suffix"] or "",
              "val_fraction": own["val_fraction"],
              "train_stems": list(train_set.stems),
              "val_stems": list(val_set.stems) if val_set is not None else []}
    if kind == "folders":
        record.update({k: (str(own[k]) if own[k] is not None else None)
                       for k in ("images", "masks", "val_images", "val_masks")})
    if saved is not None:
        for key in ("train_stems", "val_stems"):
            if saved.get(key) != record[key]:
                raise ValueError(
                    f"The run was trained on {key.split('_')[0]} images {saved.get(key)}, the "
                    f"data given now has {record[key]}: resume with the same images.")
    return RunData(
        x_train=train_set.images, y_train=train_set.masks,
        x_val=val_set.images if val_set is not None else None,
        y_val=val_set.masks if val_set is not None else None,
        channels=train_set.channels, classes=train_set.classes, record=record,
        val_names=tuple(val_set.stems) if val_set is not None else (), val_source=source,
        intensity=dict(train_set.intensity))


def _load_isbi_data(data_dir, slices):
    from keras_unets.data import load_isbi2012

    data = load_isbi2012(data_dir)
    train_idx, val_idx = list(slices.train), list(slices.val)
    return RunData(
        x_train=data.train_images[train_idx], y_train=data.train_labels[train_idx],
        x_val=data.train_images[val_idx], y_val=data.train_labels[val_idx],
        channels=1, classes=2, record={"kind": "isbi2012", "source": data.source},
        val_names=tuple(slices.val), val_source=slices.val_source, slices=slices)


def _resumed_own_options(saved, own):
    """The own-data arguments of a resumed run, from its config.json."""
    record = saved.get("data") or {}
    if record.get("kind") not in ("folders", "arrays"):
        if own is not None:
            raise ValueError("Cannot change the data when resuming: the run trained on ISBI "
                             "2012; leave images=/masks= unset.")
        return None
    if record["kind"] == "arrays":
        if own is None:
            raise ValueError("The run trained on arrays: pass the same images= and masks= "
                             "(and val_images=/val_masks=) again to resume it.")
        own = dict(own)
    else:
        if own is not None:
            raise ValueError("Cannot change the data when resuming: the run reads its folders "
                             "from config.json; leave images=/masks= unset.")
        own = {k: record.get(k) for k in ("images", "masks", "val_images", "val_masks")}
    own.update(val_fraction=record.get("val_fraction"), mask_suffix=record.get("mask_suffix"),
               classes=saved.get("classes"))
    return own


def _val_stack(data):
    """Validation images as a stack when they are grey and of one size, else lists."""
    x, y = data.x_val, data.y_val
    if data.own and data.channels == 1 and len({a.shape for a in x}) == 1:
        return np.stack(x), np.stack(y)
    return x, y


def make_dataset(data, config, model, crop_size, steps):
    from keras_unets.augment import Augmenter, SegmentationDataset

    augment = dict(config.get("augment") or {})
    augmenter = None
    if augment or config.get("elastic"):
        augmenter = Augmenter(**augment, elastic=bool(config.get("elastic")))
    weight_maps = None
    if config.get("weight_map"):
        if data.own:
            raise OptionError("weight_map", True, "False with your own data (the U-Net "
                              "weight map is computed for the ISBI 2012 stack)")
        from keras_unets.augment.weightmaps import unet_weight_maps

        weight_maps = unet_weight_maps(data.y_train)
    names = list(model.output_names)
    if data.own:
        crop = None if crop_size is None else int(crop_size)
    else:
        crop = None if crop_size == data.x_train.shape[1] else int(crop_size)
    return SegmentationDataset(
        data.x_train, data.y_train, batch_size=int(config["batch_size"]), crop=crop,
        augmenter=augmenter, weight_maps=weight_maps, steps_per_epoch=steps,
        seed=int(config["seed"]), output_names=names if len(names) > 1 else None,
        classes=None if data.binary else data.classes,
    )


class _CenterCropTargets:
    """Wrap a dataset so ``y`` (and weights) match a valid-padding output."""

    def __init__(self, dataset, out_size):
        self.dataset = dataset
        self.out = int(out_size)

    def crop(self, a):
        if isinstance(a, dict):
            return {k: self.crop(v) for k, v in a.items()}
        if a.ndim < 3:  # per-sample targets/weights (CGM ``cls``): not maps
            return a
        h = a.shape[1]
        o = (h - self.out) // 2
        return a[:, o:o + self.out, o:o + self.out]


def _wrap_valid(dataset, out_size):
    import keras

    helper = _CenterCropTargets(dataset, out_size)

    class ValidTargets(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return len(dataset)

        def __getitem__(self, index):
            batch = dataset[index]
            return (batch[0],) + tuple(helper.crop(b) for b in batch[1:])

        def on_epoch_end(self):
            dataset.on_epoch_end()

    return ValidTargets()
