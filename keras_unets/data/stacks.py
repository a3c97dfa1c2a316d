"""Reading and writing stacks of 2D grayscale slices (``uint8 (N, H, W)``).

A stack is a multi-page TIFF, a single PNG or TIFF image, or a folder of
numerically named slices ``{i}.png`` (or ``.tif``), read in numeric order
(0, 1, 2, ..., 10, not lexical order). :func:`read_stack` checks that every
slice is 8-bit grayscale and names the file at fault otherwise;
:func:`write_stack` writes atomically (:mod:`keras_unets.io`).

Also the two errors of the data modules: :class:`DataNotFoundError` (nothing
where it was looked for) and :class:`DataFormatError` (a file that holds
something else than expected). Pure numpy / OpenCV / tifffile: no Keras.
"""
import contextlib
import hashlib
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import tifffile

from keras_unets.io import atomic_write

__all__ = [
    "DataNotFoundError",
    "DataFormatError",
    "read_stack",
    "write_stack",
    "stack_indices",
    "pixel_sha256",
]

_TIFF_SUFFIXES = (".tif", ".tiff")
_SLICE_FILE = re.compile(r"^(\d+)\.(png|tif|tiff)$", re.IGNORECASE)


class DataNotFoundError(FileNotFoundError):
    """The ISBI 2012 data (or one of its files) is not where it was looked for."""


class DataFormatError(ValueError):
    """A data file exists but holds something else than what was expected."""


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
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return hashlib.sha256(array.tobytes()).hexdigest()
