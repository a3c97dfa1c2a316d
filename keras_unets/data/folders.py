"""Your own data: image/mask pairs from two folders (or two TIFF stacks).

The ISBI 2012 loader (:mod:`keras_unets.data.isbi2012`) reads one fixed layout. This
module reads any set of 2D images and their masks:

* **Pairing** (:func:`find_pairs`): images in one folder, masks in another,
  paired by file stem (``cell_01.tif`` with ``cell_01.png``; with
  ``mask_suffix="_mask"``, ``cell_01_mask.png``). Images may be PNG, TIFF
  (8-bit, 16-bit or float) or JPEG; masks PNG or TIFF (JPEG's lossy
  compression changes label values, so it is refused). Or two multi-page
  TIFF files, an image stack and a mask stack (ISBI's ``train-volume.tif``
  and ``train-labels.tif``), paired page by page. Pairs come in natural
  order of the stems (``img2`` before ``img10``), so a run is deterministic.
* **Images**: any size, non-square, different sizes in one folder; grey or
  RGB. Grey images stored as RGB with three equal channels count as grey. A
  constant alpha channel (fully opaque) is dropped; a varying one is an
  error. Every image of a run must agree: true colour images mixed with
  single-channel ones are an error naming one file of each.
* **Intensity** (:data:`INTENSITY`, recorded with a run so that prediction
  applies the same rule, :func:`normalize_image`): ``uint8`` images are kept
  as they are (the network sees ``image / 255``, as for ISBI 2012). Any
  other type (``uint16``, other integers, float) gets a per-image percentile
  stretch: the 1st and 99.8th percentiles of the image (all channels
  together, which keeps the colour balance) map to 0 and 1, values outside
  are clipped. This is the normalisation of CARE (Weigert et al., "Content-
  aware image restoration: pushing the limits of fluorescence microscopy",
  Nature Methods 15:1090-1097, 2018; their ``normalize(x, 1, 99.8)``):
  16-bit microscopy rarely fills the type's range (a 12-bit camera uses
  0-4095 of 0-65535, and offset and gain differ between acquisitions), so
  dividing by 65535 would leave a dim, acquisition-dependent image, while
  per-image percentiles are robust to a few hot pixels and to gain. The
  stretched image is then quantised to ``uint8`` ``round(255 * x)``, so the
  rest of the pipeline (``uint8`` images, the OpenCV augmenter, ``x = image
  / 255``) is unchanged; 256 grey levels after a robust stretch keep what a
  segmentation network needs.
* **Masks**: binary with any two values, 0 and one foreground value
  (``{0, 1}``, ``{0, 255}``, ...), stored as the package's ``{0, 255}``
  labels (255 = foreground, what :class:`keras_unets.augment.SegmentationDataset`,
  :class:`keras_unets.training.callbacks.ThresholdSweep` and :mod:`keras_unets.metrics`
  take); or class indices ``0..K-1`` (``uint8``), 0 = background.
  ``classes=None`` infers: masks with at most two values (one of them 0) are
  binary; more values are K classes when they are exactly ``0..max``
  (K = max + 1); anything else (e.g. ``{0, 128, 255}``) is an error that
  suggests ``classes=K``. ``classes=1`` or ``2`` asks for binary,
  ``classes=K >= 3`` for K classes (values must be below K).
* **Model outputs**: a binary run trains one sigmoid channel (``P(foreground)``,
  the builders' ``num_classes=1``); K >= 3 classes train a K-channel softmax
  (``num_classes=K``). :attr:`FolderDataset.output_channels` says which.

Errors are :class:`keras_unets.data.DataNotFoundError` (a path or folder
with nothing to read) or :class:`keras_unets.data.DataFormatError` (and its
subclasses :class:`PairingError`, :class:`MaskValuesError`,
:class:`ChannelsError`); each names the file at fault, what was found and
what would work. The rules for one file (decoding, channels, intensity, mask
values) live in :mod:`keras_unets.data.images`; this module lists, pairs and
loads. Pure numpy / OpenCV / tifffile: no Keras import.
"""
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from keras_unets.data.images import (
    _SHOWN,
    _TIFF_SUFFIXES,
    INTENSITY,
    ChannelsError,
    MaskValuesError,
    _channel_layout,
    _check_intensity,
    _check_mask,
    _decode_2d,
    _decode_tiff,
    _encode_masks,
    infer_classes,
    _read_image,
    read_mask,
    _resolve_channels,
    normalize_image,
)
from keras_unets.data.stacks import DataFormatError, DataNotFoundError

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_SUFFIXES",
    "INTENSITY",
    "PairingError",
    "MaskValuesError",
    "ChannelsError",
    "Pair",
    "FolderDataset",
    "ImageList",
    "find_pairs",
    "normalize_image",
    "load_folder_pairs",
    "from_arrays",
    "split_val",
    "read_images",
]

#: File types read as images, and as masks (JPEG is lossy: no masks).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
MASK_SUFFIXES = (".png", ".tif", ".tiff")


class PairingError(DataFormatError):
    """Images without masks, masks without images, or two files for one stem."""



class Pair(NamedTuple):
    """One image and its mask; ``page`` is the page of a TIFF stack, else None."""

    stem: str
    image: Path
    mask: Path
    page: object = None


class FolderDataset(NamedTuple):
    """Images and masks of one run, as lists (sizes may differ).

    Fields:
        images: ``uint8`` ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB) arrays.
        masks: ``uint8`` ``(H, W)``: ``{0, 255}`` (binary) or ``0..K-1``.
        stems: a name per pair (file stem, or ``<stack>_<page>``).
        sources: where each image came from (``path`` or ``path[page]``).
        channels: 1 or 3.
        classes: 2 for a binary run, else K >= 3.
        intensity: the intensity rule (:data:`INTENSITY`).
    """

    images: list
    masks: list
    stems: tuple
    sources: tuple
    channels: int
    classes: int
    intensity: dict

    @property
    def binary(self):
        """True for two classes: ``{0, 255}`` masks, one sigmoid output."""
        return self.classes == 2

    @property
    def output_channels(self):
        """Model output channels (the builders' ``num_classes``): 1 if binary, else K."""
        return 1 if self.binary else self.classes

    def subset(self, indices):
        """The pairs at ``indices`` (in that order), as a new dataset."""
        indices = [int(i) for i in indices]
        return self._replace(
            images=[self.images[i] for i in indices],
            masks=[self.masks[i] for i in indices],
            stems=tuple(self.stems[i] for i in indices),
            sources=tuple(self.sources[i] for i in indices),
        )

    def describe(self):
        """JSON-ready summary (for a run's config)."""
        sizes = sorted({tuple(int(s) for s in image.shape[:2]) for image in self.images})
        return {
            "n_images": len(self.images),
            "channels": self.channels,
            "classes": self.classes,
            "binary": self.binary,
            "output_channels": self.output_channels,
            "intensity": dict(self.intensity),
            "sizes": [list(s) for s in sizes[:10]],
            "stems": list(self.stems),
        }


class ImageList(NamedTuple):
    """Images to predict: ``stems``, normalised ``uint8`` ``images``, ``sources``, ``channels``."""

    stems: tuple
    images: list
    sources: tuple
    channels: int


# ---------------------------------------------------------------------------
# Listing and pairing
# ---------------------------------------------------------------------------


def _natural_key(text):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", text)] + [(2, 0, text)]


def _list_files(folder, suffixes, what):
    """``{stem: path}`` of the files in ``folder`` with one of ``suffixes``."""
    found, others = {}, []
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in suffixes:
            others.append(path.name)
            continue
        if path.stem in found:
            raise PairingError(
                f"{folder}: two {what} files for the name {path.stem!r}: "
                f"{found[path.stem].name} and {path.name}. Keep one."
            )
        found[path.stem] = path
    return found, others


def _no_files_error(folder, others, suffixes, what):
    seen = ", ".join(others[:_SHOWN]) + (f", ... ({len(others)} files)" if len(others) > _SHOWN else "")
    return DataNotFoundError(
        f"{folder}: no {what} files in this folder (found: {seen or 'nothing'}). "
        f"{what.capitalize()} files must end in {', '.join(suffixes)}."
    )


def _shown(names):
    names = list(names)
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _tiff_pages(path):
    """Number of 2D images in a TIFF file (pages of its first series; colour samples not counted)."""
    try:
        with tifffile.TiffFile(str(path)) as tif:
            shapes = [(tuple(s.shape), s.axes) for s in tif.series]
    except Exception as exc:  # tifffile raises several types for bad files
        raise DataFormatError(f"{path}: cannot read this file as a TIFF ({type(exc).__name__}: {exc}).") from exc
    if not shapes:
        raise DataFormatError(f"{path}: the TIFF file holds no image.")
    return sum(math.prod(n for n, a in zip(shape, axes) if a not in "YXSC") for shape, axes in shapes)


def find_pairs(images, masks, *, mask_suffix=""):
    """Pair images with masks by file stem, or two TIFF stacks page by page.

    Args:
        images: a folder of images (PNG, TIFF, JPEG), or a multi-page TIFF.
        masks: a folder of masks (PNG, TIFF), or a multi-page TIFF (when
            ``images`` is one). May be the ``images`` folder itself when
            ``mask_suffix`` is set (files ending in it are the masks).
        mask_suffix: the mask of ``<stem>.<ext>`` is ``<stem><mask_suffix>.<ext2>``.

    Returns:
        A list of :class:`Pair`, in natural order of the stems. Pages of a
        stack are named ``<image stack stem>_<page>`` (zero-padded).

    Raises:
        DataNotFoundError: a path does not exist, or a folder has no images.
        PairingError: images without masks or masks without images (the
            first stems of each and the names that were tried), two files
            with one stem, or stacks of different page counts.
    """
    images, masks = Path(images).expanduser(), Path(masks).expanduser()
    for path, what in ((images, "images"), (masks, "masks")):
        if not path.exists():
            raise DataNotFoundError(
                f"{path}: no such file or folder ({what}). Give a folder of {what} "
                "or a multi-page TIFF stack."
            )
    if images.is_file() or masks.is_file():
        return _stack_pairs(images, masks)
    image_files, others = _list_files(images, IMAGE_SUFFIXES, "image")
    if images == masks:
        if not mask_suffix:
            raise PairingError(
                f"{images}: images and masks are in the same folder; pass mask_suffix "
                "(--mask-suffix, e.g. '_mask') to tell the masks apart, or put the masks "
                "in their own folder."
            )
        image_files = {s: p for s, p in image_files.items()
                       if not (s.endswith(mask_suffix) and p.suffix.lower() in MASK_SUFFIXES)}
    if not image_files:
        raise _no_files_error(images, others, IMAGE_SUFFIXES, "image")
    mask_files, mask_others = _list_files(masks, MASK_SUFFIXES, "mask")
    if not mask_files:
        raise _no_files_error(masks, mask_others, MASK_SUFFIXES, "mask")
    by_image_stem = {}
    orphans = []
    for stem, path in mask_files.items():
        if mask_suffix and not stem.endswith(mask_suffix):
            if images != masks:
                orphans.append(path.name)
            continue
        base = stem[: len(stem) - len(mask_suffix)] if mask_suffix else stem
        if base in image_files:
            by_image_stem[base] = path
        else:
            orphans.append(path.name)
    unpaired = [s for s in image_files if s not in by_image_stem]
    problems = []
    if unpaired:
        unpaired.sort(key=_natural_key)
        tried = ", ".join(f"{unpaired[0]}{mask_suffix}{ext}" for ext in MASK_SUFFIXES)
        problems.append(
            f"{len(unpaired)} of {len(image_files)} images in {images} have no mask in "
            f"{masks}: {_shown(unpaired)} (for {unpaired[0]} these names were tried: "
            f"{tried}; mask_suffix={mask_suffix!r})"
        )
    if orphans:
        orphans.sort(key=_natural_key)
        problems.append(
            f"{len(orphans)} masks in {masks} have no image in {images}: {_shown(orphans)} "
            f"(a mask is named <image stem>{mask_suffix}.png or .tif)"
        )
    if problems:
        hint = "" if mask_suffix else " If the masks are named like cell_01_mask.png, pass mask_suffix='_mask' (--mask-suffix)."
        raise PairingError("Cannot pair images with masks: " + "; ".join(problems) + "." + hint)
    stems = sorted(image_files, key=_natural_key)
    return [Pair(s, image_files[s], by_image_stem[s]) for s in stems]


def _stack_pairs(images, masks):
    for path, what in ((images, "images"), (masks, "masks")):
        if not path.is_file() or path.suffix.lower() not in _TIFF_SUFFIXES:
            raise PairingError(
                f"{path}: give two folders (images and masks) or two multi-page TIFF files "
                f"(an image stack and a mask stack). Received for {what}: "
                f"{'a folder' if path.is_dir() else 'a ' + (path.suffix or 'suffixless') + ' file'}; "
                f"images={images}, masks={masks}."
            )
    n_images, n_masks = _tiff_pages(images), _tiff_pages(masks)
    if n_images != n_masks:
        raise PairingError(
            f"{masks}: the mask stack has {n_masks} pages and the image stack {images} has "
            f"{n_images}; each image page needs one mask page."
        )
    width = len(str(n_images - 1))
    return [Pair(f"{images.stem}_{i:0{width}d}", images, masks, i) for i in range(n_images)]


def _check_sizes(images, masks, image_sources, mask_sources):
    for image, mask, isrc, msrc in zip(images, masks, image_sources, mask_sources):
        if image.shape[:2] != mask.shape:
            raise DataFormatError(
                f"{msrc}: the mask is {mask.shape[0]}x{mask.shape[1]} px (height x width) but its "
                f"image {isrc} is {image.shape[0]}x{image.shape[1]} px; each mask needs its image's size."
            )


def _build(images, kinds, masks, stems, sources, mask_sources, classes, intensity):
    if not images:
        raise DataNotFoundError("No images were given; pass at least one image and its mask.")
    images, channels = _resolve_channels(images, kinds, sources)
    _check_sizes(images, masks, sources, mask_sources)
    values = [set(np.unique(mask).tolist()) for mask in masks]
    classes = infer_classes(values, mask_sources, classes)
    return FolderDataset(
        images=images,
        masks=_encode_masks(masks, classes),
        stems=tuple(stems),
        sources=tuple(sources),
        channels=channels,
        classes=classes,
        intensity=_check_intensity(intensity),
    )


# ---------------------------------------------------------------------------
# Public loaders
# ---------------------------------------------------------------------------


def load_folder_pairs(images, masks, *, mask_suffix="", classes=None, intensity=None):
    """Read image/mask pairs (:func:`find_pairs`) into a :class:`FolderDataset`.

    Args:
        images, masks, mask_suffix: as :func:`find_pairs`.
        classes: None (infer from the masks), 1 or 2 (binary), or K >= 3.
        intensity: the intensity rule (default :data:`INTENSITY`).

    Raises:
        DataNotFoundError, PairingError: see :func:`find_pairs`.
        DataFormatError: an unreadable or truncated file, a mask of another
            size than its image (each naming the file).
        ChannelsError: grey and colour images mixed (naming one of each).
        MaskValuesError: masks that are not binary or class indices, or
            values not fitting ``classes`` (naming the file and its values).
    """
    intensity = _check_intensity(intensity)
    pairs = find_pairs(images, masks, mask_suffix=mask_suffix)
    stacks = {}

    def pages(path):  # a stack file is decoded once
        if path not in stacks:
            stacks[path] = _decode_tiff(path)
        return stacks[path]

    imgs, kinds, sources, msks, mask_sources = [], [], [], [], []
    for pair in pairs:
        if pair.page is None:
            image, kind, source = _read_image(pair.image, None, intensity)
            mask, mask_source = read_mask(pair.mask, None)
        else:
            source = f"{pair.image}[{pair.page}]"
            image, kind = _channel_layout(pages(pair.image)[pair.page], source)
            image = np.ascontiguousarray(normalize_image(image, intensity))
            mask_source = f"{pair.mask}[{pair.page}]"
            mask = _check_mask(pages(pair.mask)[pair.page], mask_source)
        imgs.append(image)
        kinds.append(kind)
        sources.append(source)
        msks.append(mask)
        mask_sources.append(mask_source)
    return _build(imgs, kinds, msks, [p.stem for p in pairs], sources, mask_sources, classes, intensity)


def _as_list(array, name):
    if isinstance(array, np.ndarray):
        if array.ndim not in (3, 4):
            raise DataFormatError(
                f"`{name}` must be a stack (N, H, W) or (N, H, W, C), or a list of images "
                f"(a single image goes in a list). Received: shape={array.shape}."
            )
        return list(array)
    return [np.asarray(a) for a in array]


def from_arrays(images, masks, classes=None, *, stems=None, intensity=None):
    """A :class:`FolderDataset` from numpy arrays (notebooks, tests).

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` array, or a list of ``(H,
            W)`` / ``(H, W, C)`` arrays of any sizes; any dtype (the
            intensity rule applies).
        masks: ``(N, H, W)`` array or a list of ``(H, W)`` integer masks.
        classes: None (infer), 1 or 2 (binary) or K >= 3.
        stems: names of the images (default ``"0", "1", ...``).
        intensity: the intensity rule (default :data:`INTENSITY`).
    """
    intensity = _check_intensity(intensity)
    images, masks = _as_list(images, "images"), _as_list(masks, "masks")
    if len(images) != len(masks):
        raise PairingError(f"{len(images)} images and {len(masks)} masks; give one mask per image.")
    stems = [str(i) for i in range(len(images))] if stems is None else [str(s) for s in stems]
    if len(stems) != len(images) or len(set(stems)) != len(stems):
        raise ValueError(f"`stems` must be {len(images)} distinct names. Received: {stems!r}")
    imgs, kinds = [], []
    for i, image in enumerate(images):
        image, kind = _channel_layout(image, f"images[{i}]")
        imgs.append(np.ascontiguousarray(normalize_image(image, intensity)))
        kinds.append(kind)
    sources = [f"images[{i}]" for i in range(len(images))]
    mask_sources = [f"masks[{i}]" for i in range(len(masks))]
    msks = [_check_mask(mask, source) for mask, source in zip(masks, mask_sources)]
    return _build(imgs, kinds, msks, stems, sources, mask_sources, classes, intensity)


def split_val(dataset, fraction, seed=0):
    """Hold out whole images for validation, seeded.

    ``round(fraction * N)`` images (halves round up) drawn with
    ``np.random.default_rng(seed)``, kept in the dataset's order.

    Returns:
        ``(train, val, val_stems)``: two :class:`FolderDataset` and the
        tuple of held-out stems (to record in a run's config).

    Raises:
        ValueError: ``fraction`` outside (0, 1), or one that leaves no
            training image or no validation image (with the numbers).
    """
    n = len(dataset.images)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"The validation fraction must be in (0, 1), e.g. 0.2. Received: fraction={fraction!r}")
    n_val = int(math.floor(fraction * n + 0.5))
    if n_val < 1:
        raise ValueError(
            f"A validation fraction of {fraction} of {n} images is {fraction * n:.2f}, which rounds to "
            f"0 validation images; use a fraction of at least {0.5 / n:.3g} (1 image), or more images."
        )
    if n_val >= n:
        raise ValueError(
            f"A validation fraction of {fraction} of {n} images holds out {n_val}, leaving no training "
            f"image; use a fraction below {(n - 0.5) / n:.3g} (at most {n - 1} held out)."
        )
    chosen = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    val = [i for i in range(n) if i in chosen]
    train = [i for i in range(n) if i not in chosen]
    val_set = dataset.subset(val)
    return dataset.subset(train), val_set, val_set.stems


def read_images(path, *, channels=None, intensity=None):
    """Images to predict: a folder (any names) or one file (a TIFF stack: every page).

    Args:
        path: a folder of PNG/TIFF/JPEG images, or one image or stack file.
        channels: the model's input channels (1 or 3) to check against;
            None accepts what the images agree on.
        intensity: the rule the model was trained with (default :data:`INTENSITY`).

    Returns:
        :class:`ImageList` ``(stems, images, sources, channels)``, natural
        order of the file names; ``uint8`` images.

    Raises:
        DataNotFoundError: no such path, or no image in the folder (listing
            what was found and the extensions that work).
        DataFormatError, ChannelsError: an unreadable file, grey and colour
            mixed, or images whose channels differ from ``channels``.
    """
    intensity = _check_intensity(intensity)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such file or folder; give a folder of images or one image file.")
    if path.is_dir():
        files, others = _list_files(path, IMAGE_SUFFIXES, "image")
        if not files:
            raise _no_files_error(path, others, IMAGE_SUFFIXES, "image")
        stems = sorted(files, key=_natural_key)
        items = [_read_image(files[s], None, intensity) for s in stems]
    else:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataFormatError(f"{path}: not an image file; images end in {', '.join(IMAGE_SUFFIXES)}.")
        if path.suffix.lower() in _TIFF_SUFFIXES:
            pages = _decode_tiff(path)
        else:
            pages = [_decode_2d(path)]
        if len(pages) == 1:
            stems = [path.stem]
            sources = [str(path)]
        else:
            width = len(str(len(pages) - 1))
            stems = [f"{path.stem}_{i:0{width}d}" for i in range(len(pages))]
            sources = [f"{path}[{i}]" for i in range(len(pages))]
        items = []
        for page, source in zip(pages, sources):
            image, kind = _channel_layout(page, source)
            items.append((np.ascontiguousarray(normalize_image(image, intensity)), kind, source))
    images = [item[0] for item in items]
    sources = [item[2] for item in items]
    images, found = _resolve_channels(images, [item[1] for item in items], sources, channels)
    return ImageList(tuple(stems), images, tuple(sources), found)
