"""Data: image stacks, the ISBI 2012 data set, its splits, and your own folders.

* :mod:`keras_unets.data.stacks` - :func:`read_stack` / :func:`write_stack`
  (multi-page TIFF, single PNG/TIFF, folder of numbered PNG slices) and the
  errors :class:`DataNotFoundError` / :class:`DataFormatError`.
* :mod:`keras_unets.data.splits` - :func:`get_split` (``report``, ``kfold``,
  ``all`` or a slice selection), :func:`parse_slices`, :func:`format_slices`.
* :mod:`keras_unets.data.isbi2012` - where the ISBI 2012 data lives
  (:func:`resolve_data_dir`) and :func:`load_isbi2012` / :func:`load_split`.
* :mod:`keras_unets.data.download` - :func:`download_isbi2012`,
  :func:`check_data_dir`.
* :mod:`keras_unets.data.folders` - image/mask pairs of your own data.

Pure numpy / OpenCV / tifffile: importing this package imports no Keras.
"""
from keras_unets.data.isbi2012 import (
    ENV_VAR,
    ISBI2012,
    ISBI2012_SHAPE,
    PIXEL_SHA256,
    PNG_DIRS,
    VOLUME_FILES,
    SplitData,
    check_labels,
    default_data_dir,
    detect_layout,
    load_isbi2012,
    load_split,
    resolve_data_dir,
)
from keras_unets.data.splits import (
    ISBI2012_SLICES,
    SPLIT_NAMES,
    Split,
    format_slices,
    get_split,
    parse_slices,
)
from keras_unets.data.stacks import (
    DataFormatError,
    DataNotFoundError,
    pixel_sha256,
    read_stack,
    stack_indices,
    write_stack,
)

__all__ = [
    "DataNotFoundError",
    "DataFormatError",
    "ENV_VAR",
    "ISBI2012",
    "Split",
    "SplitData",
    "VOLUME_FILES",
    "PNG_DIRS",
    "ISBI2012_SHAPE",
    "ISBI2012_SLICES",
    "PIXEL_SHA256",
    "SPLIT_NAMES",
    "default_data_dir",
    "resolve_data_dir",
    "detect_layout",
    "read_stack",
    "write_stack",
    "stack_indices",
    "pixel_sha256",
    "check_labels",
    "load_isbi2012",
    "get_split",
    "parse_slices",
    "format_slices",
    "load_split",
]
