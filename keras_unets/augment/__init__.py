"""Augmentation and the training batch source.

* :mod:`keras_unets.augment.geometry` - affine and elastic coordinate maps,
  :func:`random_transform_parameters` (``ImageDataGenerator``'s draw) and
  the pure warps.
* :mod:`keras_unets.augment.augmenter` - :class:`Augmenter`: one warp for an
  image, its mask and its weight map.
* :mod:`keras_unets.augment.dataset` - :class:`SegmentationDataset`, the
  ``keras.utils.PyDataset`` of (augmented) crops, and :func:`cgm_targets`
  for the UNet 3+ classification-guided module.
* :mod:`keras_unets.augment.weightmaps` - the U-Net paper's loss weight maps
  (:func:`unet_weight_map`, eq. 2).

``geometry``, ``augmenter`` and ``weightmaps`` import no Keras themselves;
the package does (``SegmentationDataset`` is a ``PyDataset``).
"""
from keras_unets.augment.augmenter import Augmenter
from keras_unets.augment.dataset import SegmentationDataset, cgm_targets
from keras_unets.augment.geometry import elastic_displacement, random_transform_parameters
from keras_unets.augment.weightmaps import unet_weight_map, unet_weight_maps

__all__ = [
    "Augmenter",
    "SegmentationDataset",
    "cgm_targets",
    "elastic_displacement",
    "random_transform_parameters",
    "unet_weight_map",
    "unet_weight_maps",
]
