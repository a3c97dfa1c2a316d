"""Your own images and masks, one file at a time: decode, channels, intensity, mask values.

The file-level rules of :mod:`keras_unets.data.folders` (its module doc
states them for a user): :func:`normalize_image` and :data:`INTENSITY` (the
intensity rule, Weigert et al. 2018's percentile stretch for anything but
``uint8``), the grey / RGB channel layout of an image, and the value checks
and class inference of masks. Errors are :class:`MaskValuesError` and
:class:`ChannelsError` (both :class:`keras_unets.data.DataFormatError`),
naming the file at fault. Pure numpy / OpenCV / tifffile: no Keras import.
"""
import math

import cv2
import numpy as np
import tifffile

from keras_unets.data.stacks import DataFormatError

__all__ = ["INTENSITY", "MaskValuesError", "ChannelsError", "normalize_image"]

_TIFF_SUFFIXES = (".tif", ".tiff")

#: The intensity rule (plain data, recorded with a run; see
#: :mod:`keras_unets.data.folders`).
INTENSITY = {"name": "uint8-or-percentile", "low": 1.0, "high": 99.8}

_MAX_CLASSES = 256  # class indices are stored as uint8
_SHOWN = 5  # names listed in an error message


class MaskValuesError(DataFormatError):
    """A mask whose values are not binary or not class indices of the run."""


class ChannelsError(DataFormatError):
    """Grey and colour images mixed, or an image with an unusable channel layout."""



# ---------------------------------------------------------------------------
# Decoding files
# ---------------------------------------------------------------------------


def _decode_2d(path):
    """One image file (PNG, JPEG) as ``(H, W)`` or ``(H, W, C)`` in RGB(A) order."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataFormatError(
            f"{path}: cannot decode this file as an image (empty, truncated or not a "
            f"{path.suffix.lstrip('.').upper() or 'known'} image). Re-export it as PNG or TIFF."
        )
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., [2, 1, 0, 3][: image.shape[-1]]]  # OpenCV's BGR(A) -> RGB(A)
    return image


def _decode_tiff(path):
    """All images of a TIFF file as ``(P, H, W)`` or ``(P, H, W, C)``."""
    try:
        with tifffile.TiffFile(str(path)) as tif:
            arrays = [(s.asarray(), s.axes) for s in tif.series]
    except Exception as exc:  # tifffile raises several types for bad files
        raise DataFormatError(f"{path}: cannot read this file as a TIFF ({type(exc).__name__}: {exc}).") from exc
    if not arrays:
        raise DataFormatError(f"{path}: the TIFF file holds no image.")
    stacks = []
    for array, axes in arrays:
        channel_axes = [i for i, a in enumerate(axes) if a in "SC"]
        if len(channel_axes) > 1 or "Y" not in axes or "X" not in axes:
            raise ChannelsError(f"{path}: cannot read a 2D image from TIFF axes {axes} (shape {array.shape}).")
        order = [i for i, a in enumerate(axes) if a not in "YXSC"] + [axes.index("Y"), axes.index("X")] + channel_axes
        array = np.transpose(array, order)
        lead = array.shape[: array.ndim - 2 - len(channel_axes)]
        array = array.reshape((math.prod(lead),) + array.shape[len(lead):])
        stacks.append(array)
    if len({s.shape[1:] for s in stacks}) > 1:
        raise DataFormatError(f"{path}: the TIFF series have different shapes: {[s.shape[1:] for s in stacks]}.")
    return stacks[0] if len(stacks) == 1 else np.concatenate(stacks)


def _decode(path, page=None):
    """The image of ``path`` (``page`` of a stack), ``(H, W)`` or ``(H, W, C)``."""
    if path.suffix.lower() in _TIFF_SUFFIXES:
        pages = _decode_tiff(path)
        if page is None:
            if len(pages) != 1:
                raise DataFormatError(
                    f"{path}: holds {len(pages)} pages; a folder takes one image per file. "
                    "Pass the stack file itself (with its mask stack) to pair page by page."
                )
            return pages[0]
        return pages[page]
    return _decode_2d(path)


def _channel_layout(image, source):
    """``(image, kind)``: kind ``"grey"`` (2D), ``"grey-rgb"`` (3 equal channels) or ``"rgb"``."""
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image, "grey"
    if image.ndim == 3 and image.shape[-1] == 4:
        alpha = image[..., 3]
        if alpha.min() != alpha.max():
            raise ChannelsError(
                f"{source}: an RGBA image with a varying alpha channel (transparency "
                f"{alpha.min()}..{alpha.max()}); save it as RGB or grey without transparency."
            )
        image = image[..., :3]
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ChannelsError(
            f"{source}: expected a grey (H, W) or RGB (H, W, 3) image. Received: shape={image.shape}."
        )
    equal = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])
    return image, "grey-rgb" if equal else "rgb"


def normalize_image(image, intensity=None):
    """Apply the intensity rule (:data:`INTENSITY`): ``uint8`` in, ``uint8`` out.

    ``uint8`` images are returned unchanged; ``bool`` ones become 0/255;
    other integer and float images get the per-image percentile stretch
    (``intensity["low"]`` and ``["high"]`` percentiles of all pixels and
    channels to 0..1, clipped; Weigert et al. 2018) quantised to
    ``round(255 * x)``. A constant image becomes all 0.

    Example:
        >>> x = np.array([[0, 1000], [2000, 4095]], np.uint16)
        >>> normalize_image(x, {"name": "uint8-or-percentile", "low": 0.0, "high": 100.0}).tolist()
        [[0, 62], [125, 255]]
    """
    intensity = _check_intensity(intensity)
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise DataFormatError(f"Cannot normalise an image of dtype {image.dtype}; use integer or float pixels.")
    x = image.astype(np.float64)
    if not np.isfinite(x).all():
        raise DataFormatError("The image holds NaN or infinite values; replace them before training.")
    low, high = np.percentile(x, [intensity["low"], intensity["high"]])
    if high <= low:
        return np.zeros(image.shape, np.uint8)
    x = np.clip((x - low) / (high - low), 0.0, 1.0)
    return np.rint(x * 255.0).astype(np.uint8)


def _check_intensity(intensity):
    if intensity is None:
        return INTENSITY
    if not isinstance(intensity, dict) or intensity.get("name") != INTENSITY["name"]:
        raise ValueError(
            f"Unknown intensity rule {intensity!r}; the rule this package applies is {INTENSITY!r} "
            "(percentiles may differ)."
        )
    low, high = float(intensity["low"]), float(intensity["high"])
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"Intensity percentiles must satisfy 0 <= low < high <= 100. Received: {intensity!r}")
    return {"name": INTENSITY["name"], "low": low, "high": high}


def _resolve_channels(images, kinds, sources, channels=None):
    """Make every image grey ``(H, W)`` or every image RGB ``(H, W, 3)``; return ``(images, channels)``."""
    first = {}
    for kind, source in zip(kinds, sources):
        first.setdefault(kind, source)
    colour = "rgb" in first or (channels is not None and int(channels) == 3 and "grey" not in first)
    if "rgb" in first and "grey" in first:
        raise ChannelsError(
            f"Grey and colour images are mixed: {first['grey']} is grey (one channel) and "
            f"{first['rgb']} is RGB. Every image of a run needs the same channels; convert "
            "the grey images to RGB (or the RGB images to grey)."
        )
    found = 3 if colour else 1
    if channels is not None and int(channels) != found:
        example = first.get("rgb") if found == 3 else next(iter(first.values()))
        raise ChannelsError(
            f"{example}: the model takes {int(channels)}-channel images but this image has "
            f"{found} channel{'s' if found > 1 else ''}. Convert the images "
            f"to {'RGB' if int(channels) == 3 else 'grey'}."
        )
    if not colour:
        images = [image[..., 0] if image.ndim == 3 else image for image in images]
    return images, found


def _read_image(path, page, intensity):
    source = f"{path}[{page}]" if page is not None else str(path)
    image, kind = _channel_layout(_decode(path, page), source)
    try:
        image = normalize_image(image, intensity)
    except DataFormatError as exc:
        raise DataFormatError(f"{source}: {exc}") from None
    return np.ascontiguousarray(image), kind, source


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------


def read_mask(path, page):
    source = f"{path}[{page}]" if page is not None else str(path)
    return _check_mask(_decode(path, page), source), source


def _check_mask(mask, source):
    """A decoded mask as a 2D integer array (equal colour channels allowed)."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] in (1, 3, 4):
        colour = mask[..., : min(3, mask.shape[-1])]
        if not all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
            raise MaskValuesError(
                f"{source}: the mask is a colour image (shape {mask.shape}) with different "
                "channels. Masks hold one value per pixel: 0 and 255 (or 0/1) for binary, "
                "0..K-1 for K classes, saved as a grey PNG or TIFF."
            )
        mask = colour[..., 0]
    if mask.ndim != 2:
        raise MaskValuesError(f"{source}: expected a 2D mask. Received: shape={mask.shape}.")
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        if not np.isfinite(mask).all() or not np.array_equal(mask, np.round(mask)):
            values = np.unique(mask[np.isfinite(mask) & (mask != np.round(mask))])[:_SHOWN]
            raise MaskValuesError(
                f"{source}: the mask holds non-integer values (e.g. {values.tolist()}). "
                "Masks need integer labels: 0/255 or 0/1 for binary, 0..K-1 for K classes."
            )
        mask = mask.astype(np.int64)
    elif not np.issubdtype(mask.dtype, np.integer):
        raise MaskValuesError(f"{source}: masks need integer values. Received: dtype={mask.dtype}.")
    if mask.min() < 0:
        raise MaskValuesError(
            f"{source}: the mask holds negative values (min {mask.min()}); use 0..K-1 class indices."
        )
    return mask


def _values_text(values):
    values = [int(v) for v in values]
    return "{" + ", ".join(str(v) for v in values[:10]) + (f", ... ({len(values)} values)" if len(values) > 10 else "") + "}"


def infer_classes(values, sources, classes):
    """The run's classes (2 = binary, K >= 3) from each mask's value set."""
    union = sorted(set().union(*values))
    if classes is not None:
        if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or not 1 <= classes <= _MAX_CLASSES:
            raise ValueError(
                f"classes must be None (infer), 1 or 2 (binary) or K in 3..{_MAX_CLASSES}. "
                f"Received: classes={classes!r}"
            )
        classes = int(classes)
    if classes in (1, 2):
        seen = set()
        for found, source in zip(values, sources):
            seen |= found
            if len(seen) > 2 or (len(seen) == 2 and 0 not in seen):
                raise MaskValuesError(
                    f"{source}: the mask holds {_values_text(sorted(found))}; with the masks before it "
                    f"the run has values {_values_text(sorted(seen))}. A binary run (classes={classes}) "
                    "takes masks with 0 = background and one foreground value. For class-index masks "
                    f"pass classes={max(seen) + 1} (--classes {max(seen) + 1})."
                )
        return 2
    if classes is not None:
        for found, source in zip(values, sources):
            bad = sorted(v for v in found if v >= classes)
            if bad:
                raise MaskValuesError(
                    f"{source}: the mask holds values {_values_text(sorted(found))}, but classes={classes} "
                    f"takes 0..{classes - 1} only (values {_values_text(bad)} are too large). Pass "
                    f"classes={max(union) + 1} or fix the mask."
                )
        return classes
    if len(union) <= 2 and (0 in union or len(union) == 1):
        return 2
    if len(union) == 2:
        return _raise_two_nonzero(union, values, sources)
    if union == list(range(union[-1] + 1)) and union[-1] < _MAX_CLASSES:
        return union[-1] + 1
    seen = set()
    for found, source in zip(values, sources):
        seen |= found
        if len(seen) > 2:
            break
    missing = sorted(set(range(union[-1] + 1)) - set(union))
    raise MaskValuesError(
        f"The masks hold {len(union)} values {_values_text(union)} ({source} brings the third): "
        f"neither binary (0 and one foreground value) nor class indices 0..K-1 (missing "
        f"{_values_text(missing)}). For K classes pass classes=K (--classes K; here at least "
        f"{union[-1] + 1}); for binary masks with stray values (e.g. anti-aliased edges), binarise them."
    )


def _raise_two_nonzero(union, values, sources):
    source = next(s for found, s in zip(values, sources) if found)
    raise MaskValuesError(
        f"The masks hold the values {_values_text(union)} and no 0 (e.g. {source}). A binary mask "
        "needs 0 = background and one foreground value; for class indices 0..K-1 include the "
        "background class 0, or pass classes=K."
    )


def _encode_masks(masks, classes):
    if classes == 2:
        return [np.where(mask != 0, 255, 0).astype(np.uint8) for mask in masks]
    return [mask.astype(np.uint8) for mask in masks]
