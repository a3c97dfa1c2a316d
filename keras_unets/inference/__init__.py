"""Inference: overlap-tile prediction and prediction of folders of images.

* :mod:`keras_unets.inference.tiling`: the pure tiling maths (numpy only).
* :mod:`keras_unets.inference.predict`: :func:`predict_tiled` (one image or
  a stack of one size) and :func:`predict_images` (a list of any sizes).
* :mod:`keras_unets.inference.folder`: :func:`predict_folder`, what
  ``keras-unets predict`` runs: a folder (or TIFF stack) of images in, masks
  and probability maps out, with the run's intensity rule and threshold.
"""
from keras_unets.inference.folder import predict_folder, run_settings
from keras_unets.inference.predict import check_tile, model_stride, predict_images, predict_tiled
from keras_unets.inference.tiling import (
    DIHEDRAL,
    TilePlan,
    mirror_pad,
    tile_bounds,
    tile_plan,
    tile_starts,
)

__all__ = [
    "DIHEDRAL",
    "TilePlan",
    "check_tile",
    "mirror_pad",
    "model_stride",
    "predict_folder",
    "predict_images",
    "predict_tiled",
    "run_settings",
    "tile_bounds",
    "tile_plan",
    "tile_starts",
]
