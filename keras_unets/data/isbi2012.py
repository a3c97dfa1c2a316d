"""ISBI 2012 EM membrane data: locate, load and validate.

The data is the training and test volume of the ISBI 2012 challenge
"Segmentation of neuronal structures in EM stacks": 30 serial-section TEM
slices of 512x512 px of the Drosophila first-instar larva ventral nerve cord
(Cardona et al. 2010, PLoS Biol 8(10):e1000502; Arganda-Carreras et al. 2015,
Front. Neuroanat. 9:142), with binary labels where 255 = cell interior and
0 = membrane. The U-Net paper (Ronneberger et al., MICCAI 2015) trained on all
30 slices; the "U-Net School" report held slices 25-29 out as its test set,
which is the default split of :func:`load_split` (``get_split("report")``,
:mod:`keras_unets.data.splits`).

A data directory holds either the three TIFF volumes of the challenge::

    train-volume.tif   train-labels.tif   test-volume.tif

or the same slices as single PNG files (numeric names, read in numeric order
0, 1, 2, ..., 10, not lexical order)::

    png/train/image/{0..29}.png
    png/train/label/{0..29}.png
    png/test/image/{0..29}.png

Stacks are read by :func:`keras_unets.data.stacks.read_stack`.
Conventions (DESIGN.md): images and labels are ``uint8`` arrays ``(N, H, W)``;
labels are {0, 255}. This module is pure numpy (through
:mod:`keras_unets.data.stacks`, OpenCV / tifffile) and imports no Keras
itself (``import keras_unets``, the package, does).
"""
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from keras_unets.data.splits import ISBI2012_SLICES, Split, get_split
from keras_unets.data.stacks import DataFormatError, DataNotFoundError, read_stack

__all__ = [
    "ENV_VAR",
    "ISBI2012",
    "SplitData",
    "VOLUME_FILES",
    "PNG_DIRS",
    "ISBI2012_SHAPE",
    "PIXEL_SHA256",
    "default_data_dir",
    "resolve_data_dir",
    "detect_layout",
    "check_labels",
    "load_isbi2012",
    "load_split",
]

ENV_VAR = "ISBI2012_DIR"

#: The three volumes of the challenge, keyed by their role.
VOLUME_FILES = {
    "train_images": "train-volume.tif",
    "train_labels": "train-labels.tif",
    "test_images": "test-volume.tif",
}
#: The same volumes as folders of single PNG slices.
PNG_DIRS = {
    "train_images": "png/train/image",
    "train_labels": "png/train/label",
    "test_images": "png/test/image",
}
#: Shape of every ISBI 2012 volume: 30 slices of 512 x 512 px.
ISBI2012_SHAPE = (ISBI2012_SLICES, 512, 512)

#: SHA-256 of the decoded pixels (uint8, C order, 30x512x512) of each volume,
#: from the data README. The official TIFFs and the PNG slices decode to them.
PIXEL_SHA256 = {
    "train_images": "200da3d452d726e6c9ca1ce04b869d4edb727320d23b516d01cce707dc8c4760",
    "train_labels": "a7cb64000a1a7e542682927e19c91339f58f9f178e0bcce4e207371116f0ca36",
    "test_images": "1b58fa7ec1d0ff9d39a855622db3ff66a97863036339b0d04be51b2f5a99b0e9",
}


class ISBI2012(NamedTuple):
    """The ISBI 2012 data as ``uint8`` arrays ``(N, H, W)``.

    ``source`` is the directory the arrays were read from and the layout used,
    as ``"<directory> [tiff]"`` or ``"<directory> [png]"``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    source: str


class SplitData(NamedTuple):
    """Arrays of one split: ``uint8 (N, H, W)`` images and {0, 255} labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    split: Split


# ---------------------------------------------------------------------------
# Locating the data
# ---------------------------------------------------------------------------


def default_data_dir():
    """The user cache directory, following the Keras convention.

    ``$KERAS_HOME/datasets/isbi2012`` when ``KERAS_HOME`` is set, else
    ``~/.keras/datasets/isbi2012`` (as ``keras.utils.get_file`` does).
    """
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home).expanduser() if keras_home else Path.home() / ".keras"
    return base / "datasets" / "isbi2012"


def _where_to_put_files(directory):
    directory = Path(directory)
    tiffs = "\n".join(f"    {directory / name}" for name in VOLUME_FILES.values())
    pngs = "\n".join(
        f"    {directory / folder}/{{0..29}}.png" for folder in PNG_DIRS.values()
    )
    return (
        f"Put the three ISBI 2012 TIFF volumes here:\n{tiffs}\n"
        f"(or the PNG slices here:\n{pngs})\n"
        f"or download them with:\n    keras-unets data download --dest {directory}\n"
        "To use data elsewhere, pass data_dir=... (CLI: keras-unets train/reproduce "
        f"--data DIR) or set {ENV_VAR}."
    )


def detect_layout(directory):
    """Return ``"tiff"`` or ``"png"`` for a complete data directory, else None.

    The TIFF layout wins when both are complete.
    """
    directory = Path(directory)
    if all((directory / name).is_file() for name in VOLUME_FILES.values()):
        return "tiff"
    if all((directory / folder).is_dir() for folder in PNG_DIRS.values()):
        return "png"
    return None


def _missing_report(directory):
    directory = Path(directory)
    tiffs = [n for n in VOLUME_FILES.values() if (directory / n).is_file()]
    pngs = [f for f in PNG_DIRS.values() if (directory / f).is_dir()]
    if not tiffs and not pngs:
        return "it holds neither the TIFF volumes nor the png/ slice folders"
    if len(pngs) > len(tiffs):
        missing = [f + "/" for f in PNG_DIRS.values() if f not in pngs]
    else:
        missing = [n for n in VOLUME_FILES.values() if n not in tiffs]
    return "missing: " + ", ".join(missing)


def resolve_data_dir(data_dir=None):
    """Find the ISBI 2012 data directory.

    Order: the ``data_dir`` argument, else ``$ISBI2012_DIR``, else
    :func:`default_data_dir` (``~/.keras/datasets/isbi2012``).

    Returns:
        The directory as a ``Path``; it holds a complete TIFF or PNG layout.

    Raises:
        DataNotFoundError: the directory does not exist or is incomplete; the
            message says which files to put where and how to download them.
    """
    if data_dir is not None:
        directory, origin = Path(data_dir).expanduser(), "data_dir argument"
    elif os.environ.get(ENV_VAR):
        directory, origin = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        directory, origin = default_data_dir(), "default location"
    if not directory.is_dir():
        raise DataNotFoundError(
            f"ISBI 2012 data not found: {directory} ({origin}) is not a "
            f"directory.\n{_where_to_put_files(directory)}"
        )
    if detect_layout(directory) is None:
        raise DataNotFoundError(
            f"ISBI 2012 data incomplete in {directory} ({origin}): "
            f"{_missing_report(directory)}.\n{_where_to_put_files(directory)}"
        )
    return directory


# ---------------------------------------------------------------------------
# Validation and loading
# ---------------------------------------------------------------------------


def check_labels(labels, name="labels"):
    """Check that ``labels`` is a ``uint8`` array with values in {0, 255}.

    255 = cell interior, 0 = membrane (ISBI polarity). Returns ``labels``.

    Raises:
        DataFormatError: wrong dtype or other values; the message lists the
            values found and, for 0/1 masks, how to fix them.
    """
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        raise DataFormatError(
            f"{name}: labels must be uint8 with values {{0, 255}}. Received: "
            f"dtype={labels.dtype}."
        )
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    extra = [int(v) for v in present if v not in (0, 255)]
    if extra:
        shown = ", ".join(str(v) for v in present[:10])
        more = f", ... ({present.size} distinct values)" if present.size > 10 else ""
        hint = (
            " They look like 0/1 masks: multiply by 255."
            if set(present.tolist()) <= {0, 1}
            else " Binarise them (255 = cell interior, 0 = membrane)."
        )
        raise DataFormatError(
            f"{name}: labels must be binary with values {{0, 255}}. Received "
            f"values: {shown}{more}.{hint}"
        )
    return labels


def _check_volume(array, name, expected_shape):
    if array.ndim != 3:
        raise DataFormatError(
            f"{name}: expected a (N, H, W) volume. Received: shape={array.shape}."
        )
    if expected_shape is not None and tuple(array.shape) != tuple(expected_shape):
        raise DataFormatError(
            f"{name}: expected shape {tuple(expected_shape)} (slices, height, "
            f"width) for ISBI 2012. Received: shape={tuple(array.shape)}. "
            "Pass expected_shape=None to load other data."
        )


def load_isbi2012(data_dir=None, *, expected_shape=None):
    """Load the ISBI 2012 training volume, labels and test volume.

    Args:
        data_dir: the data directory; resolved by :func:`resolve_data_dir`.
        expected_shape: shape every volume must have, e.g.
            :data:`ISBI2012_SHAPE` ``(30, 512, 512)``. The default ``None``
            accepts any ``(N, H, W)`` as long as training images and labels
            have the same shape and the test slices the same size (so that
            resized copies, as in the report's Table I, and tiny synthetic
            data load too); ``keras-unets data check`` is the strict test.

    Returns:
        ``ISBI2012(train_images, train_labels, test_images, source)``, all
        ``uint8 (N, H, W)``; labels in {0, 255} with 255 = cell interior.

    Raises:
        DataNotFoundError: no data (the message says where to put it).
        DataFormatError: wrong shape or slice count, images and labels that do
            not match, non-binary labels or unreadable files (naming the file).
    """
    directory = resolve_data_dir(data_dir)
    layout = detect_layout(directory)
    names = VOLUME_FILES if layout == "tiff" else PNG_DIRS
    volumes = {}
    for key, name in names.items():
        path = directory / name
        volumes[key] = read_stack(path)
        _check_volume(volumes[key], path, expected_shape)
    images, labels = volumes["train_images"], volumes["train_labels"]
    if images.shape != labels.shape:
        raise DataFormatError(
            f"{directory / names['train_labels']}: labels of shape {labels.shape} "
            f"do not match the training images {directory / names['train_images']}"
            f" of shape {images.shape}; each image slice needs one label slice."
        )
    check_labels(labels, name=str(directory / names["train_labels"]))
    test = volumes["test_images"]
    if test.shape[1:] != images.shape[1:]:
        raise DataFormatError(
            f"{directory / names['test_images']}: slices of {test.shape[1:]} px "
            f"differ from the training slices' {images.shape[1:]} px."
        )
    return ISBI2012(images, labels, test, f"{directory} [{layout}]")



def load_split(data_dir=None, split="report", **kwargs):
    """Load the labelled slices of one split.

    Args:
        data_dir: the data directory (see :func:`resolve_data_dir`).
        split: a :class:`Split`, or a name for :func:`get_split`.
        **kwargs: ``n_folds``, ``fold`` for :func:`get_split`;
            ``expected_shape`` for :func:`load_isbi2012`.

    Returns:
        ``SplitData(x_train, y_train, x_test, y_test, split)``: ``uint8``
        ``(N, H, W)`` images and {0, 255} labels taken from the training
        volume (the challenge's test volume has no public labels).
    """
    load_kw = {k: kwargs.pop(k) for k in ("expected_shape",) if k in kwargs}
    data = load_isbi2012(data_dir, **load_kw)
    n = data.train_images.shape[0]
    try:
        split = get_split(split, n_slices=n, **kwargs)
    except ValueError as exc:
        raise ValueError(f"{exc} (data: {data.source}, {n} labelled slices)") from None
    if max(split.train + split.test, default=-1) >= n:
        raise ValueError(
            f"Split {split.name} uses slice {max(split.train + split.test)} but "
            f"the data has {n} labelled slices ({data.source})."
        )
    train, test = list(split.train), list(split.test)
    return SplitData(
        data.train_images[train],
        data.train_labels[train],
        data.train_images[test],
        data.train_labels[test],
        split,
    )
