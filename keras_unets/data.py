"""ISBI 2012 EM membrane data: locate, read, validate and split.

The data is the training and test volume of the ISBI 2012 challenge
"Segmentation of neuronal structures in EM stacks": 30 serial-section TEM
slices of 512x512 px of the Drosophila first-instar larva ventral nerve cord
(Cardona et al. 2010, PLoS Biol 8(10):e1000502; Arganda-Carreras et al. 2015,
Front. Neuroanat. 9:142), with binary labels where 255 = cell interior and
0 = membrane. The U-Net paper (Ronneberger et al., MICCAI 2015) trained on all
30 slices; the "U-Net School" report held slices 25-29 out as its test set,
which is the default split here (``get_split("report")``).

A data directory holds either the three TIFF volumes of the challenge::

    train-volume.tif   train-labels.tif   test-volume.tif

or the same slices as single PNG files (numeric names, read in numeric order
0, 1, 2, ..., 10, not lexical order)::

    png/train/image/{0..29}.png
    png/train/label/{0..29}.png
    png/test/image/{0..29}.png

Conventions (DESIGN.md): images and labels are ``uint8`` arrays ``(N, H, W)``;
labels are {0, 255}. This module is pure numpy / OpenCV / tifffile and
imports no Keras itself (``import keras_unets``, the package, does).
"""
import contextlib
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import tifffile

from keras_unets.io import atomic_write

__all__ = [
    "DataNotFoundError",
    "DataFormatError",
    "ISBI2012",
    "Split",
    "SplitData",
    "VOLUME_FILES",
    "PNG_DIRS",
    "ISBI2012_SHAPE",
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
ISBI2012_SHAPE = (30, 512, 512)

#: SHA-256 of the decoded pixels (uint8, C order, 30x512x512) of each volume,
#: from the data README. The official TIFFs and the PNG slices decode to them.
PIXEL_SHA256 = {
    "train_images": "200da3d452d726e6c9ca1ce04b869d4edb727320d23b516d01cce707dc8c4760",
    "train_labels": "a7cb64000a1a7e542682927e19c91339f58f9f178e0bcce4e207371116f0ca36",
    "test_images": "1b58fa7ec1d0ff9d39a855622db3ff66a97863036339b0d04be51b2f5a99b0e9",
}

#: Named splits accepted by :func:`get_split`.
SPLIT_NAMES = ("report", "kfold", "all")

_TIFF_SUFFIXES = (".tif", ".tiff")
_SLICE_FILE = re.compile(r"^(\d+)\.(png|tif|tiff)$", re.IGNORECASE)


class DataNotFoundError(FileNotFoundError):
    """The ISBI 2012 data (or one of its files) is not where it was looked for."""


class DataFormatError(ValueError):
    """A data file exists but holds something else than what was expected."""


class ISBI2012(NamedTuple):
    """The ISBI 2012 data as ``uint8`` arrays ``(N, H, W)``.

    ``source`` is the directory the arrays were read from and the layout used,
    as ``"<directory> [tiff]"`` or ``"<directory> [png]"``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    source: str


class Split(NamedTuple):
    """A named split of the 30 labelled slices into train and test indices."""

    name: str
    train: tuple
    test: tuple


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
# Reading and writing stacks
# ---------------------------------------------------------------------------


def _slice_files(folder):
    """``[(index, path), ...]`` of the numerically named slices in ``folder``."""
    found = {}
    for path in Path(folder).iterdir():
        match = _SLICE_FILE.match(path.name)
        if not match or not path.is_file():
            continue
        index = int(match.group(1))
        if index in found:
            raise DataFormatError(
                f"Two files for slice {index} in {folder}: "
                f"{found[index].name} and {path.name}. Keep one."
            )
        found[index] = path
    return sorted(found.items())


def stack_indices(path):
    """Slice indices of a stack: ``0..N-1`` for a file, the names for a folder."""
    path = Path(path)
    if path.is_dir():
        return tuple(index for index, _ in _slice_files(path))
    return tuple(range(read_stack(path).shape[0]))


def _as_grayscale_uint8(array, path):
    """Check that a decoded image is 8-bit grayscale; return (N, H, W) or (H, W)."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise DataFormatError(
            f"{path}: expected 8-bit grayscale (uint8) pixels. Received: "
            f"dtype={array.dtype}, value range [{array.min()}, {array.max()}]. "
            "Save probabilities as uint8 0-255 "
            "(keras_unets.metrics.to_uint8)."
        )
    return array


def _read_png(path):
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataFormatError(
            f"{path}: cannot decode this file as an image (empty, truncated or "
            "not a PNG)."
        )
    if image.ndim == 3:
        channels = image[..., :3]
        if not (
            np.array_equal(channels[..., 0], channels[..., 1])
            and np.array_equal(channels[..., 0], channels[..., 2])
        ):
            raise DataFormatError(
                f"{path}: expected a grayscale image. Received: a colour image "
                f"of shape {image.shape}."
            )
        image = channels[..., 0]
    return _as_grayscale_uint8(image, path)


class _KeepRecords(logging.Filter):
    """Drop a logger's records, keeping their messages."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def filter(self, record):
        self.messages.append(record.getMessage())
        return False


@contextlib.contextmanager
def _tifffile_log_held():
    """Hold tifffile's log lines (e.g. "invalid page offset") back for one read.

    Yields the list of their messages; the error of a failed read carries
    them instead of a stray line on stderr before it.
    """
    logger = logging.getLogger("tifffile")
    held = _KeepRecords()
    logger.addFilter(held)
    try:
        yield held.messages
    finally:
        logger.removeFilter(held)


def _read_tiff(path):
    with _tifffile_log_held() as log:
        try:
            with tifffile.TiffFile(str(path)) as tif:
                series = list(tif.series)
                arrays = [(s.asarray(), s.axes) for s in series]
        except Exception as exc:  # tifffile raises several types for bad files
            said = f"; tifffile: {'; '.join(log)}" if log else ""
            raise DataFormatError(
                f"{path}: cannot read this file as a TIFF ({type(exc).__name__}: "
                f"{exc}{said}); is it truncated or not a TIFF?"
            ) from exc
    if not arrays:
        raise DataFormatError(f"{path}: the TIFF file holds no image.")
    planes = []
    for array, axes in arrays:
        if "S" in axes:  # colour samples: accept only if all are equal (gray)
            samples = np.moveaxis(array, axes.index("S"), -1)
            first = samples[..., 0]
            if not all(
                np.array_equal(first, samples[..., c])
                for c in range(1, min(3, samples.shape[-1]))
            ):
                raise DataFormatError(
                    f"{path}: expected grayscale slices. Received: a colour "
                    f"image of shape {array.shape} (axes {axes}). A stack of "
                    "3 or 4 grayscale slices must be written with "
                    "photometric='minisblack' (keras_unets.data.write_stack "
                    "does this)."
                )
            array = first
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise DataFormatError(
                f"{path}: expected a (N, H, W) volume. Received: shape="
                f"{array.shape} (axes {axes})."
            )
        planes.append(array)
    if len({p.shape[1:] for p in planes}) != 1:
        raise DataFormatError(
            f"{path}: the TIFF pages have different shapes: "
            f"{sorted({p.shape[1:] for p in planes})}."
        )
    array = planes[0] if len(planes) == 1 else np.concatenate(planes)
    return _as_grayscale_uint8(array, path)


def read_stack(path):
    """Read a stack of 2D grayscale slices as ``uint8 (N, H, W)``.

    Args:
        path: a multi-page TIFF, a single PNG or TIFF image, or a folder of
            ``{i}.png`` (or ``{i}.tif``) files, read in numeric order of ``i``
            (0, 1, 2, ..., 10; other files in the folder are ignored).

    Raises:
        DataNotFoundError: ``path`` does not exist or the folder has no slices.
        DataFormatError: a file cannot be decoded, is not 8-bit grayscale, or
            the slices differ in shape; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        files = _slice_files(path)
        if not files:
            raise DataNotFoundError(
                f"{path}: no slice files in this folder; expected files named "
                "0.png, 1.png, ... (or .tif)."
            )
        slices = []
        for _, file in files:
            image = (
                _read_tiff(file)[0]
                if file.suffix.lower() in _TIFF_SUFFIXES
                else _read_png(file)
            )
            if image.ndim != 2:
                raise DataFormatError(
                    f"{file}: expected a single 2D slice. Received: "
                    f"shape={image.shape}."
                )
            if slices and image.shape != slices[0].shape:
                raise DataFormatError(
                    f"{file}: slice shape {image.shape} differs from "
                    f"{files[0][1].name}'s {slices[0].shape}; all slices of a "
                    "stack must have the same height and width."
                )
            slices.append(image)
        return np.stack(slices)
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: no such file or folder; expected a TIFF volume, an "
            "image file, or a folder of numbered PNG slices."
        )
    if path.suffix.lower() in _TIFF_SUFFIXES:
        return _read_tiff(path)
    return _read_png(path)[None]


def _check_stack_array(array, what="array"):
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise DataFormatError(
            f"{what}: expected uint8 values 0-255. Received: dtype={array.dtype}. "
            "Convert probabilities with keras_unets.metrics.to_uint8."
        )
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] == 0:
        raise DataFormatError(
            f"{what}: expected shape (N, H, W) or (H, W) with N >= 1. "
            f"Received: shape={array.shape}."
        )
    return np.ascontiguousarray(array)


def write_stack(path, array):
    """Write ``uint8 (N, H, W)`` (or ``(H, W)``) slices atomically.

    ``path`` ending in ``.tif``/``.tiff`` gets one multi-page TIFF; ending in
    ``.png`` gets a single PNG (one slice only); anything else is a folder of
    ``0.png .. {N-1}.png`` (other numbered slice files in it, e.g. from a
    longer earlier stack, are removed so that :func:`read_stack` reads back
    exactly ``array``; other files are left alone). Each file is
    written to a temporary sibling and moved into place.
    """
    path = Path(path)
    array = _check_stack_array(array, what=f"write_stack({path})")
    suffix = path.suffix.lower()
    if suffix in _TIFF_SUFFIXES:
        with atomic_write(path, "wb") as fh:
            tifffile.imwrite(fh, array, photometric="minisblack")
        return path
    if suffix == ".png":
        if array.shape[0] != 1:
            raise DataFormatError(
                f"write_stack({path}): a .png file holds one slice. Received: "
                f"{array.shape[0]} slices; give a folder path or a .tif path."
            )
        _write_png(path, array[0])
        return path
    if path.exists() and not path.is_dir():
        raise DataFormatError(
            f"write_stack({path}): exists and is not a folder; give a folder, "
            "a .tif or a .png path."
        )
    path.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(array):
        _write_png(path / f"{index}.png", image)
    written = {f"{index}.png" for index in range(array.shape[0])}
    for stale in path.iterdir():
        if _SLICE_FILE.match(stale.name) and stale.name not in written:
            stale.unlink()
    return path


def _write_png(path, image):
    ok, encoded = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise DataFormatError(f"{path}: OpenCV could not encode the slice.")
    with atomic_write(path, "wb") as fh:
        fh.write(encoded.tobytes())


def pixel_sha256(array):
    """SHA-256 hex digest of the pixels (uint8, C order), as in the data README."""
    import hashlib

    array = np.ascontiguousarray(array, dtype=np.uint8)
    return hashlib.sha256(array.tobytes()).hexdigest()


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


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------


def parse_slices(spec, n_slices=None):
    """Parse a slice selection such as ``"25-29,3"`` into sorted indices.

    Ranges are inclusive (``"25-29"`` = 25, 26, 27, 28, 29), as in the
    report's test set. Also accepts an int or an iterable of ints.

    >>> parse_slices("25-29,3")
    (3, 25, 26, 27, 28, 29)

    Raises:
        ValueError: malformed, empty, reversed, negative or (with
            ``n_slices``) out-of-range indices.
    """
    if isinstance(spec, (int, np.integer)):
        indices = [int(spec)]
    elif isinstance(spec, str):
        indices = []
        parts = [part.strip() for part in spec.split(",")]
        for part in parts:
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not match:
                raise ValueError(
                    f"Cannot parse slice selection {spec!r} at {part!r}; use "
                    "indices and inclusive ranges like '25-29' or '0-24,27'. "
                    f"Received: slices={spec!r}"
                )
            start = int(match.group(1))
            stop = int(match.group(2)) if match.group(2) is not None else start
            if stop < start:
                raise ValueError(
                    f"Reversed range {part!r} in slice selection; write it as "
                    f"'{stop}-{start}'. Received: slices={spec!r}"
                )
            indices.extend(range(start, stop + 1))
    else:
        try:
            indices = [int(i) for i in spec]
        except (TypeError, ValueError):
            raise ValueError(
                "Slices must be a string like '25-29', an int or a list of "
                f"ints. Received: slices={spec!r}"
            ) from None
    if not indices:
        raise ValueError(f"Empty slice selection. Received: slices={spec!r}")
    bad = [i for i in indices if i < 0 or (n_slices is not None and i >= n_slices)]
    if bad:
        limit = f"0..{n_slices - 1}" if n_slices is not None else ">= 0"
        raise ValueError(
            f"Slice indices {sorted(set(bad))} out of range {limit}. "
            f"Received: slices={spec!r}"
        )
    return tuple(sorted(set(indices)))


def format_slices(indices):
    """Inverse of :func:`parse_slices`: ``(0, 1, 2, 7)`` -> ``"0-2,7"``."""
    indices = sorted(set(int(i) for i in indices))
    runs = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def get_split(name="report", *, n_folds=5, fold=0, n_slices=ISBI2012_SHAPE[0]):
    """Split the labelled slices into train and test indices.

    Args:
        name: ``"report"`` (default): train 0-24, test 25-29, the held-out
            slices of the "U-Net School" report. ``"kfold"``: fold ``fold`` of
            ``n_folds`` contiguous folds (serial sections are correlated with
            their neighbours, so contiguous folds keep neighbours of a test
            slice out of training as much as possible; fold sizes differ by at
            most one, larger folds first). ``"all"``: train on every slice, no
            test slices (the U-Net paper's setting for the challenge). Any
            other string is read by :func:`parse_slices` as the test slices,
            e.g. ``"20-24"``, with the remaining slices for training.
        n_folds: number of folds for ``"kfold"`` (2..n_slices).
        fold: which fold is the test set (0..n_folds-1).
        n_slices: number of labelled slices (30 in ISBI 2012).

    Returns:
        ``Split(name, train, test)`` with tuples of slice indices.
    """
    if not isinstance(n_slices, (int, np.integer)) or n_slices < 1:
        raise ValueError(f"n_slices must be a positive int. Received: n_slices={n_slices!r}")
    everything = tuple(range(n_slices))
    if isinstance(name, Split):
        return name
    if not isinstance(name, str):
        raise ValueError(
            f"Split name must be one of {SPLIT_NAMES} or a slice selection like "
            f"'25-29'. Received: name={name!r}"
        )
    key = name.strip().lower()
    if key == "report":
        if n_slices != ISBI2012_SHAPE[0]:
            raise ValueError(
                "The 'report' split (train 0-24, test 25-29) needs the 30 ISBI "
                f"2012 slices. Received: n_slices={n_slices}; use 'kfold' or a "
                "slice selection."
            )
        return Split("report", everything[:25], everything[25:])
    if key == "all":
        return Split("all", everything, ())
    if key == "kfold":
        if not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= n_slices:
            raise ValueError(
                f"n_folds must be an int in 2..{n_slices}. Received: n_folds={n_folds!r}"
            )
        if not isinstance(fold, (int, np.integer)) or not 0 <= fold < n_folds:
            raise ValueError(
                f"fold must be an int in 0..{n_folds - 1} for n_folds={n_folds}. "
                f"Received: fold={fold!r}"
            )
        folds = np.array_split(np.arange(n_slices), n_folds)
        test = tuple(int(i) for i in folds[fold])
        train = tuple(i for i in everything if i not in test)
        return Split(f"kfold{n_folds}-{fold}", train, test)
    try:
        test = parse_slices(name, n_slices=n_slices)
    except ValueError as exc:
        raise ValueError(
            f"Unknown split {name!r}: use one of {SPLIT_NAMES} or a slice "
            f"selection like '25-29' for the test slices. ({exc})"
        ) from None
    train = tuple(i for i in everything if i not in test)
    return Split(format_slices(test), train, test)


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
