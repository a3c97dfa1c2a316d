"""Paired image/mask augmentation with elastic warps, and the training batch source.

The report augments with Keras' ``ImageDataGenerator`` (rotation, shift and
horizontal flip). Used the usual way (two generators, one for the images and
one for the masks, sharing a seed) the two streams drift apart, masks come
back with interpolated non-binary values, and ``apply_transform`` is slow
(scipy; 8.5 ms per 512x512 image on a 2-core CPU, ``bench/bench_augment.py``). :class:`Augmenter` keeps
``ImageDataGenerator``'s keyword arguments and its random draw
(:func:`random_transform_parameters` draws what ``get_random_transform``
draws), and fixes all three:

* each sample's transform is drawn **once**; the affine part (rotation about
  the centre, shifts, shear, zoom, flips: the matrix convention of
  ``apply_affine_transform``) and the elastic part are composed into **one**
  coordinate map, which is applied to the image (bilinear or bicubic) and to
  the mask (nearest neighbour) by :func:`cv2.remap`, so the two cannot drift
  apart and the mask keeps its label set. Without an elastic part the map is
  the 2x3 affine matrix itself, handed to :func:`cv2.warpAffine`; flips and
  whole-pixel shifts inside the image are exact numpy slices;
* the elastic deformation is the U-Net paper's (Ronneberger et al., MICCAI
  2015, section 3.1): "random displacement vectors on a coarse 3 by 3 grid
  [...] sampled from a Gaussian distribution with 10 pixels standard
  deviation. Per-pixel displacements are then computed using bicubic
  interpolation";
* borders are mirrored by default (``fill_mode="mirror"``, the U-Net paper's
  mirror extrapolation, OpenCV ``BORDER_REFLECT_101``).

:class:`SegmentationDataset` is a ``keras.utils.PyDataset`` of random crops or
whole slices whose randomness is a pure function of ``(seed, epoch, batch
index)``, so it is reproducible and safe with parallel workers.

Conventions (DESIGN.md): images ``uint8 (N, H, W)``, labels ``uint8 (N, H, W)``
in {0, 255}; batches ``x float32 (B, H, W, 1)`` in [0, 1] and ``y float32
(B, H, W, 1)`` in {0, 1}.

Differences from ``ImageDataGenerator.apply_transform`` (all deliberate):

* the rotation/zoom/shear centre is the true image centre ``((W-1)/2,
  (H-1)/2)``. ``apply_affine_transform`` centres its (column, row) matrix at
  ``(H/2 - 0.5, W/2 - 0.5)``, which is the same for square images and off
  centre for non-square ones. Like ``ImageDataGenerator``, the drawn ``tx``
  (from ``height_shift_range``, scaled by the height) moves the image along
  the columns and ``ty`` along the rows; for square images and equal shift
  ranges (the report's use) this is immaterial. For square images the
  geometry equals ``apply_transform``'s (tested).
* ``fill_mode`` also accepts ``"mirror"`` (default); the scipy names map to
  OpenCV borders: ``"reflect"`` -> ``BORDER_REFLECT`` (``dcba|abcd``, what
  scipy calls reflect), ``"mirror"`` -> ``BORDER_REFLECT_101`` (``dcb|abcd``),
  ``"nearest"`` -> ``BORDER_REPLICATE``, ``"constant"`` -> ``BORDER_CONSTANT``
  (image ``cval``, mask ``mask_cval``), ``"wrap"`` -> ``BORDER_WRAP``.
* brightness and channel shift act on the image only, after the warp:
  brightness multiplies the grey values (``ImageEnhance.Brightness``, the
  U-Net paper's "gray value variations"), the channel shift adds an offset
  clipped to the image's own range (``apply_channel_shift``).
"""
from __future__ import annotations

import functools
import math
import numbers
import threading

import cv2
import keras
import numpy as np

__all__ = [
    "Augmenter",
    "CGM_OUTPUT",
    "SegmentationDataset",
    "cgm_targets",
    "elastic_displacement",
    "random_transform_parameters",
]

FILL_MODES = {
    "mirror": cv2.BORDER_REFLECT_101,
    "reflect": cv2.BORDER_REFLECT,
    "nearest": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
    "wrap": cv2.BORDER_WRAP,
}
INTERPOLATIONS = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}
# ImageDataGenerator arguments that normalise or rescale whole data sets. The
# dataset does the scaling to [0, 1] itself, so these are refused instead of
# being silently ignored.
_UNSUPPORTED_IDG_ARGS = (
    "featurewise_center",
    "samplewise_center",
    "featurewise_std_normalization",
    "samplewise_std_normalization",
    "zca_whitening",
    "zca_epsilon",
    "rescale",
    "preprocessing_function",
    "data_format",
    "validation_split",
    "interpolation_order",
    "dtype",
)
_MAX_SEED = 2**32 - 1  # np.random.seed accepts [0, 2**32 - 1]


def _normalise_zoom_range(zoom_range):
    if isinstance(zoom_range, numbers.Real) and not isinstance(zoom_range, bool):
        return [1 - zoom_range, 1 + zoom_range]
    if (
        isinstance(zoom_range, (list, tuple))
        and len(zoom_range) == 2
        and all(isinstance(v, numbers.Real) for v in zoom_range)
    ):
        return [zoom_range[0], zoom_range[1]]
    raise ValueError(
        "`zoom_range` should be a float or a tuple or list of two floats. "
        f"Received: zoom_range={zoom_range!r}"
    )


def random_transform_parameters(config, img_shape, random_state):
    """``ImageDataGenerator.get_random_transform``'s draw, from a given ``RandomState``.

    Draws the same parameters, in the same order, from the same numpy
    ``RandomState`` calls, so ``random_transform_parameters(cfg, shape,
    np.random.RandomState(s))`` equals ``ImageDataGenerator(**cfg)
    .get_random_transform(shape, seed=s)`` (tested), without touching numpy's
    global random state (which ``get_random_transform`` seeds) and without
    Keras' legacy ``ImageDataGenerator``.

    Args:
        config: dict with ``rotation_range``, ``height_shift_range``,
            ``width_shift_range``, ``shear_range``, ``zoom_range`` (a pair),
            ``horizontal_flip``, ``vertical_flip``, ``channel_shift_range``,
            ``brightness_range``.
        img_shape: ``(rows, cols, channels)`` (channels last).
        random_state: ``np.random.RandomState``.
    """
    rs = random_state
    theta = rs.uniform(-config["rotation_range"], config["rotation_range"]) if config["rotation_range"] else 0

    def _shift(shift_range, size):
        if not shift_range:
            return 0
        try:  # 1-D array-like or int: a choice of values, random sign
            value = rs.choice(shift_range)
            value *= rs.choice([-1, 1])
        except ValueError:  # float: uniform in [-r, r]
            value = rs.uniform(-shift_range, shift_range)
        if np.max(shift_range) < 1:
            value *= size
        return value

    tx = _shift(config["height_shift_range"], img_shape[0])
    ty = _shift(config["width_shift_range"], img_shape[1])
    shear = rs.uniform(-config["shear_range"], config["shear_range"]) if config["shear_range"] else 0
    zoom = config["zoom_range"]
    if zoom[0] == 1 and zoom[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = rs.uniform(zoom[0], zoom[1], 2)
    flip_horizontal = (rs.random_sample() < 0.5) * config["horizontal_flip"]
    flip_vertical = (rs.random_sample() < 0.5) * config["vertical_flip"]
    channel_shift_intensity = None
    if config["channel_shift_range"] != 0:
        channel_shift_intensity = rs.uniform(-config["channel_shift_range"], config["channel_shift_range"])
    brightness = None
    if config["brightness_range"] is not None:
        brightness = rs.uniform(config["brightness_range"][0], config["brightness_range"][1])
    return {
        "theta": theta,
        "tx": tx,
        "ty": ty,
        "shear": shear,
        "zx": zx,
        "zy": zy,
        "flip_horizontal": flip_horizontal,
        "flip_vertical": flip_vertical,
        "channel_shift_intensity": channel_shift_intensity,
        "brightness": brightness,
    }


@functools.lru_cache(maxsize=64)
def _cubic_weights(n, nodes):
    """(n, nodes) float32 matrix interpolating ``nodes`` grid values to ``n`` pixels.

    The nodes sit evenly from the first to the last pixel (node k at pixel
    ``k * (n - 1) / (nodes - 1)``), so every node value is reproduced exactly
    where a node falls on a pixel (the corners always do). Cubic convolution
    (Keys 1981) with ``a = -0.75``, the kernel of OpenCV's ``INTER_CUBIC``;
    nodes beyond the grid are replicated. Applied along both axes this is
    bicubic interpolation.
    """
    a = -0.75

    def kernel(t):
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        if t < 2:
            return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
        return 0.0

    weights = np.zeros((n, nodes), np.float64)
    scale = (nodes - 1) / (n - 1) if n > 1 else 0.0
    for i in range(n):
        u = i * scale
        i0 = math.floor(u)
        frac = u - i0
        for j in range(i0 - 1, i0 + 3):
            w = kernel(frac - (j - i0))
            if w:
                weights[i, min(max(j, 0), nodes - 1)] += w
    weights.setflags(write=False)
    return weights.astype(np.float32)


def elastic_displacement(coarse, shape):
    """Per-pixel displacement field from coarse grid displacements.

    Args:
        coarse: ``(2, gy, gx)`` displacements in pixels (``[0]`` along x =
            columns, ``[1]`` along y = rows) at grid nodes spread evenly from
            border to border.
        shape: ``(H, W)`` of the output field.

    Returns:
        ``(dx, dy)``, each ``float32 (H, W)``: bicubic interpolation of the
        coarse field (U-Net paper, section 3.1); exact at the nodes.
    """
    coarse = np.asarray(coarse, np.float32)
    if coarse.ndim != 3 or coarse.shape[0] != 2 or min(coarse.shape[1:]) < 2:
        raise ValueError(
            "`coarse` must have shape (2, grid_rows, grid_cols) with at least 2 "
            f"nodes per axis. Received: shape={coarse.shape}"
        )
    h, w = int(shape[0]), int(shape[1])
    wy = _cubic_weights(h, coarse.shape[1])
    wx = _cubic_weights(w, coarse.shape[2])
    dx = (wy @ coarse[0]) @ wx.T
    dy = (wy @ coarse[1]) @ wx.T
    return dx, dy


_WORKSPACES = threading.local()


def _workspace(key):
    """A per-thread reusable ``float32`` buffer of shape ``key[1:]``.

    Fresh multi-megabyte arrays can cost page faults on every call; the map
    products write straight into these reused buffers instead. Per thread,
    so PyDataset worker threads never share one.
    """
    cache = getattr(_WORKSPACES, "buffers", None)
    if cache is None:
        cache = _WORKSPACES.buffers = {}
    buf = cache.get(key)
    if buf is None:
        if len(cache) > 12:  # many window sizes: start over
            cache.clear()
        buf = cache[key] = np.empty(key[1:], np.float32)
    return buf


def _affine_matrix(params, out_shape):
    """3x3 matrix mapping output (col, row, 1) to source (col, row, 1).

    Same construction as ``apply_affine_transform``: rotation @ shift @ shear
    @ zoom in (col, row) coordinates, about the image centre; flips are applied
    to the output afterwards, as ``apply_transform`` does, so they come first
    in the output-to-source chain.
    """
    h, w = out_shape
    matrix = np.eye(3)
    theta = params.get("theta", 0) or 0
    if theta:
        t = np.deg2rad(theta)
        matrix = matrix @ np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    tx, ty = params.get("tx", 0) or 0, params.get("ty", 0) or 0
    if tx or ty:
        matrix = matrix @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)
    shear = params.get("shear", 0) or 0
    if shear:
        s = np.deg2rad(shear)
        matrix = matrix @ np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zx, zy = params.get("zx", 1), params.get("zy", 1)
    if zx != 1 or zy != 1:
        matrix = matrix @ np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]], np.float64)
    if not np.array_equal(matrix, np.eye(3)):
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        to_centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
        from_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
        matrix = to_centre @ matrix @ from_centre
    if params.get("flip_horizontal", False):
        matrix = matrix @ np.array([[-1, 0, w - 1], [0, 1, 0], [0, 0, 1]], np.float64)
    if params.get("flip_vertical", False):
        matrix = matrix @ np.array([[1, 0, 0], [0, -1, h - 1], [0, 0, 1]], np.float64)
    return matrix


def _fill_maps(matrix, coarse, out):
    """Write the coordinate maps of a 2x3 affine ``matrix`` plus a coarse elastic field into ``out``.

    ``out``: ``(map_x, map_y)``, ``float32 (h, w)``; ``coarse``: ``(2, gy,
    gx)`` or None. See :meth:`Augmenter.coordinate_map`.
    """
    h, w = out[0].shape
    k = 2 if coarse is None else 2 + coarse.shape[2]
    left = np.empty((h, k), np.float32)
    right = np.empty((k, w), np.float32)
    left[:, -2] = 1.0
    right[-1] = 1.0
    rows = np.arange(h, dtype=np.float64)
    cols = np.arange(w, dtype=np.float64)
    if coarse is not None:
        wy = _cubic_weights(h, coarse.shape[1])
        right[:-2] = _cubic_weights(w, coarse.shape[2]).T
    for target, i in zip(out, (0, 1)):
        left[:, -1] = matrix[i, 1] * rows + matrix[i, 2]
        right[-2] = matrix[i, 0] * cols
        if coarse is not None:
            np.matmul(wy, coarse[i], out=left[:, :-2])
        np.matmul(left, right, out=target)
    return out


def _exact_window(matrix, in_shape, out_shape):
    """Index of the source window when the 2x3 ``matrix`` is a flip/whole-pixel shift inside the image.

    Such warps read every output pixel from exactly one source pixel, so
    slicing gives the bit-exact result (what any interpolation gives there)
    without resampling. Returns ``(row_slice, col_slice)`` or None.
    """
    if matrix[0, 1] != 0 or matrix[1, 0] != 0:
        return None
    index = []
    for axis, size_in, size_out in ((1, in_shape[0], out_shape[0]), (0, in_shape[1], out_shape[1])):
        step, start = matrix[axis, axis], matrix[axis, 2]
        if step not in (1, -1) or start != round(start):
            return None
        start = int(start)
        stop = start + int(step) * (size_out - 1)
        if not (0 <= min(start, stop) and max(start, stop) < size_in):
            return None
        end = stop + int(step)
        index.append(slice(start, end if end >= 0 else None, int(step)))
    return tuple(index)


def _warp_padding(matrix, out_shape, in_shape, margin):
    """``(top, bottom, left, right)`` padding that keeps every read of a warp inside the image, or None.

    OpenCV's interpolating warps take a vectorised path for output pixels
    whose source neighbourhood lies inside the image and a slow scalar one
    for the rest; with shifts of 10 % of the width a good part of a 512x512
    output is border. Padding first with :func:`cv2.copyMakeBorder` (the same
    border rule, so the same values) and shifting the warp by the padding
    keeps every read inside: ~0.25 ms saved per 512x512 uint8 image on a
    2-core CPU. ``matrix``: the 2x3 output-to-source affine part; ``margin``:
    extra pixels (interpolation support, elastic displacement). All zeros
    when every read already falls inside; None when more than the image
    itself would be padded on a side (the warp then keeps its border rule).
    """
    h, w = out_shape
    height, width = in_shape
    corners = matrix @ np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], np.float64)
    left = max(0, math.ceil(-corners[0].min() + margin))
    right = max(0, math.ceil(corners[0].max() - (width - 1) + margin))
    top = max(0, math.ceil(-corners[1].min() + margin))
    bottom = max(0, math.ceil(corners[1].max() - (height - 1) + margin))
    if max(left, right) > width or max(top, bottom) > height:
        return None
    return top, bottom, left, right


def _pad(array, padding, border, cval):
    """``array`` padded by ``(top, bottom, left, right)`` with OpenCV's ``border`` rule (no copy for zeros)."""
    if not any(padding):
        return array
    dtype = array.dtype
    source = array.view(np.uint8) if dtype == np.bool_ else array
    padded = cv2.copyMakeBorder(source, *padding, border, value=cval)
    if padded.ndim < array.ndim:  # cv2 drops a trailing channel of 1
        padded = padded[..., None]
    return padded.view(np.bool_) if dtype == np.bool_ else padded


def _cv2_warp(array, warp):
    """``warp(array)`` (a cv2.warpAffine or cv2.remap call) for every dtype OpenCV warps.

    Booleans travel as uint8; a trailing channel of 1 that OpenCV drops is
    restored.
    """
    dtype = array.dtype
    if dtype == np.bool_:
        array = array.view(np.uint8)
    elif dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        raise ValueError(
            "Arrays to warp must be uint8, uint16, int16, float32, float64 or bool. "
            f"Received: dtype={dtype}"
        )
    out = warp(array)
    if out.ndim < array.ndim:  # cv2 drops a trailing channel of 1
        out = out[..., None]
    return out.view(np.bool_) if dtype == np.bool_ else out


def _check_2d(array, name):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(
            f"`{name}` must be one image of shape (H, W) or (H, W, C). "
            f"Received: {name}.shape={array.shape}"
        )
    return array


class Augmenter:
    """Paired random augmentation of an image and its mask (and weight map).

    Takes ``ImageDataGenerator``'s augmentation keyword arguments and draws
    each sample's parameters once as its ``get_random_transform`` does
    (:func:`random_transform_parameters`); adds the
    U-Net paper's elastic deformation; applies everything as one
    warp to image and mask together (:func:`cv2.warpAffine` with the 2x3
    matrix when there is no elastic part, else one :func:`cv2.remap`
    coordinate map; exact slicing for flips and whole-pixel shifts).

    Args:
        rotation_range, width_shift_range, height_shift_range, shear_range,
        zoom_range, channel_shift_range, brightness_range, horizontal_flip,
        vertical_flip, cval: as in ``ImageDataGenerator``.
        fill_mode: ``"mirror"`` (default, ``BORDER_REFLECT_101``),
            ``"reflect"``, ``"nearest"``, ``"constant"`` or ``"wrap"``.
        mask_cval: mask value outside the image with ``fill_mode="constant"``.
        elastic: add the U-Net elastic deformation.
        elastic_grid: coarse grid nodes per axis, int or ``(rows, cols)``;
            the paper's 3 x 3 by default. Nodes run from border to border.
        elastic_sigma: standard deviation in pixels of each node's x and y
            displacement (paper: 10).
        order: image interpolation, 0 (nearest), 1 (bilinear) or 3 (bicubic);
            the mask (and a weight map) always nearest neighbour.

    Images of shape ``(H, W, 1)`` come back as ``(H, W)``.

    Example:
        >>> aug = Augmenter(rotation_range=10, horizontal_flip=True, elastic=True)
        >>> rng = np.random.default_rng(0)
        >>> img = np.zeros((64, 64), np.uint8); msk = np.full((64, 64), 255, np.uint8)
        >>> out_img, out_msk = aug.random_transform(img, msk, rng)
        >>> sorted(np.unique(out_msk).tolist())
        [255]
    """

    def __init__(
        self,
        *,
        rotation_range=0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        brightness_range=None,
        shear_range=0.0,
        zoom_range=0.0,
        channel_shift_range=0.0,
        fill_mode="mirror",
        cval=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        elastic=False,
        elastic_grid=3,
        elastic_sigma=10.0,
        order=1,
        mask_cval=0,
        **unsupported,
    ):
        if unsupported:
            names = sorted(unsupported)
            known = [n for n in names if n in _UNSUPPORTED_IDG_ARGS]
            hint = (
                " These ImageDataGenerator arguments normalise whole data sets; "
                "SegmentationDataset scales images to [0, 1] itself."
                if known
                else ""
            )
            raise TypeError(
                f"Augmenter got unsupported keyword arguments {names}.{hint} "
                "Supported: rotation_range, width_shift_range, height_shift_range, "
                "brightness_range, shear_range, zoom_range, channel_shift_range, "
                "fill_mode, cval, horizontal_flip, vertical_flip, elastic, "
                "elastic_grid, elastic_sigma, order, mask_cval."
            )
        if fill_mode not in FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {sorted(FILL_MODES)}. Received: fill_mode={fill_mode!r}")
        if order not in INTERPOLATIONS:
            raise ValueError(
                "`order` must be 0 (nearest), 1 (bilinear) or 3 (bicubic). " f"Received: order={order!r}"
            )
        if isinstance(elastic_grid, numbers.Integral):
            elastic_grid = (int(elastic_grid), int(elastic_grid))
        elastic_grid = tuple(int(g) for g in elastic_grid)
        if len(elastic_grid) != 2 or min(elastic_grid) < 2:
            raise ValueError(
                "`elastic_grid` must be an int >= 2 or a pair of them (nodes per "
                f"axis, the paper's 3). Received: elastic_grid={elastic_grid!r}"
            )
        if not elastic_sigma >= 0:
            raise ValueError(f"`elastic_sigma` must be >= 0 pixels. Received: elastic_sigma={elastic_sigma!r}")
        if brightness_range is not None and (
            not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2
        ):
            raise ValueError(
                "`brightness_range` should be a tuple or list of two floats. "
                f"Received: brightness_range={brightness_range!r}"
            )
        self.config = {
            "rotation_range": rotation_range,
            "width_shift_range": width_shift_range,
            "height_shift_range": height_shift_range,
            "brightness_range": brightness_range,
            "shear_range": shear_range,
            "zoom_range": _normalise_zoom_range(zoom_range),
            "channel_shift_range": channel_shift_range,
            "horizontal_flip": horizontal_flip,
            "vertical_flip": vertical_flip,
        }
        self.zoom_range = zoom_range
        self.fill_mode = fill_mode
        self.cval = cval
        self.mask_cval = mask_cval
        self.elastic = bool(elastic)
        self.elastic_grid = elastic_grid
        self.elastic_sigma = float(elastic_sigma)
        self.order = order

    def get_config(self):
        """Constructor arguments (plain data, e.g. for a run's config.json)."""
        config = {k: v for k, v in self.config.items() if k != "zoom_range"}
        config.update(
            zoom_range=self.zoom_range,
            fill_mode=self.fill_mode,
            cval=self.cval,
            mask_cval=self.mask_cval,
            elastic=self.elastic,
            elastic_grid=list(self.elastic_grid),
            elastic_sigma=self.elastic_sigma,
            order=self.order,
        )
        return config

    # -- drawing -----------------------------------------------------------
    def get_random_transform(self, shape, rng):
        """Draw one sample's transform parameters.

        Args:
            shape: ``(H, W)`` of the output (shifts scale with it).
            rng: ``np.random.Generator`` (or an int seed). One 32-bit seed is
                drawn from it and seeds :func:`random_transform_parameters`
                (what ``get_random_transform`` draws with that seed), so the
                result depends on ``rng`` alone.

        Returns:
            ``ImageDataGenerator``'s parameter dict, plus ``"elastic"``: the
            ``(2, gy, gx)`` coarse displacements (x then y) when elastic
            warps are on.
        """
        rng = np.random.default_rng(rng)
        h, w = int(shape[0]), int(shape[1])
        seed = int(rng.integers(0, _MAX_SEED, endpoint=True))
        params = random_transform_parameters(self.config, (h, w, 1), np.random.RandomState(seed))
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
        if self.elastic:
            params["elastic"] = rng.normal(0.0, self.elastic_sigma, size=(2, *self.elastic_grid)).astype(np.float32)
        return params

    # -- applying ----------------------------------------------------------
    def source_matrix(self, params, out_shape, *, offset=(0, 0)):
        """2x3 ``float64`` matrix: output ``(col, row, 1)`` -> source ``(col, row)``.

        The affine part of the warp (rotation, shifts, shear, zoom and flips
        about the output window's centre, as ``apply_affine_transform``)
        followed by the window ``offset`` ``(row0, col0)``. Without an elastic
        part this is the whole warp; :meth:`apply_transform` hands it to
        :func:`cv2.warpAffine` (``WARP_INVERSE_MAP``).
        """
        m = _affine_matrix(params, (int(out_shape[0]), int(out_shape[1])))[:2].copy()
        m[0, 2] += offset[1]
        m[1, 2] += offset[0]
        return m

    @staticmethod
    def _coarse_field(params):
        """The elastic coarse field of ``params`` (validated), or None if absent or all zero."""
        coarse = params.get("elastic")
        if coarse is None:
            return None
        coarse = np.asarray(coarse, np.float32)
        if coarse.ndim != 3 or coarse.shape[0] != 2 or min(coarse.shape[1:]) < 2:
            raise ValueError(
                "params['elastic'] must have shape (2, grid_rows, grid_cols). "
                f"Received: shape={coarse.shape}"
            )
        return coarse if coarse.any() else None

    def coordinate_map(self, params, out_shape, *, offset=(0, 0), out=None):
        """Source coordinates ``(map_x, map_y)`` (``float32 (h, w)``) of every output pixel.

        Output pixel ``(row, col)`` takes the source value at ``(map_y[row,
        col], map_x[row, col])``: the affine matrix (centred on the output)
        then the elastic displacement, then ``offset`` (``(row0, col0)`` of
        the output window in the source, for crops). ``out``: optional pair
        of ``float32 (h, w)`` arrays to write into.

        Both the affine part (``a * col + (b * row + c)``, rank 2) and the
        bicubic elastic field (``Wy @ coarse @ Wx.T``, rank <= grid size) are
        low-rank in (row, col), so each map is one small matrix product
        ``[Wy @ coarse, 1, b * row + c] @ [Wx.T; a * col; 1]`` written
        straight into the output buffer (no per-pixel temporaries).
        """
        h, w = int(out_shape[0]), int(out_shape[1])
        if out is None:
            out = (np.empty((h, w), np.float32), np.empty((h, w), np.float32))
        return _fill_maps(self.source_matrix(params, (h, w), offset=offset), self._coarse_field(params), out)

    def apply_transform(self, image, mask=None, params=None, *, weights=None, out_shape=None, offset=(0, 0)):
        """Apply drawn parameters to an image and, with the same warp, its mask.

        One geometric warp serves image, mask and weights, so they cannot
        drift apart. Three equivalent ways to apply it, fastest first:

        * flips and whole-pixel shifts whose source window lies inside the
          image: exact numpy slicing (a copy);
        * other affine warps (no elastic part): :func:`cv2.warpAffine` with
          the 2x3 :meth:`source_matrix` (``WARP_INVERSE_MAP``);
        * with an elastic part: :meth:`coordinate_map` and :func:`cv2.remap`.

        OpenCV quantises sub-pixel positions to 1/32 px in both warps, so the
        last two agree to within 1 grey level on uint8 images and the masks
        are identical except at rare rounding ties (tested). Where the warp
        reads beyond the image, the arrays are first padded with the same
        border rule (:func:`cv2.copyMakeBorder`), which gives the same values
        and keeps OpenCV on its vectorised path.

        Args:
            image: ``(H, W)`` or ``(H, W, C)``, uint8 or float (kept in its
                dtype; uint8 is the fastest).
            mask: optional ``(H, W)`` label image; warped with nearest
                neighbour, so its values stay in its label set.
            params: from :meth:`get_random_transform`.
            weights: optional ``(H, W)`` weight map, warped like the mask.
            out_shape: ``(h, w)`` of the output window (default: the image's).
            offset: ``(row0, col0)`` of the window in the image.

        Returns:
            ``image`` alone, ``(image, mask)``, or ``(image, mask, weights)``.
        """
        image = _check_2d(image, "image")
        params = params or {}
        if out_shape is None:
            out_shape = image.shape[:2]
        h, w = int(out_shape[0]), int(out_shape[1])
        extras = []
        for name, extra in (("mask", mask), ("weights", weights)):
            if extra is not None:
                extra = _check_2d(extra, name)
                if extra.shape[:2] != image.shape[:2]:
                    raise ValueError(
                        f"`{name}` must have the image's height and width. Received: "
                        f"image.shape={image.shape}, {name}.shape={extra.shape}"
                    )
            extras.append(extra)
        border = FILL_MODES[self.fill_mode]
        coarse = self._coarse_field(params)
        if coarse is None:
            m = self.source_matrix(params, (h, w), offset=offset)
            window = _exact_window(m, image.shape[:2], (h, w))
            if window is not None:

                def warp(array, interpolation, cval):
                    return np.ascontiguousarray(array[window])

            else:
                # Pad every array so that no read leaves it (same values). The
                # border rule then never applies, and BORDER_REPLICATE selects
                # OpenCV's vectorised warpAffine (OpenCV >= 4.11 vectorises it
                # for constant and replicate borders only: 0.32 against 0.60 ms
                # per 512x512 uint8 bilinear warp on a 2-core CPU). Its rounding
                # differs from the scalar path's by at most 1 grey level.
                padding = _warp_padding(m, (h, w), image.shape[:2], margin=4)
                inside = m.copy()
                warp_border = border
                if padding is not None:
                    inside[:, 2] += (padding[2], padding[0])
                    warp_border = cv2.BORDER_REPLICATE

                def warp(array, interpolation, cval):
                    matrix = m
                    if padding is not None:
                        array, matrix = _pad(array, padding, border, cval), inside
                    return _cv2_warp(array, lambda a: cv2.warpAffine(
                        a, matrix, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=warp_border,
                        borderValue=cval,
                    ))

        else:
            # Pad image, mask and weights alike (one shared map): the affine
            # part's reach plus a bound on the bicubic elastic field.
            wy = _cubic_weights(h, coarse.shape[1])
            wx = _cubic_weights(w, coarse.shape[2])
            reach = float(np.abs(coarse).max()) * float(np.abs(wy).sum(1).max()) * float(np.abs(wx).sum(1).max())
            m = self.source_matrix(params, (h, w), offset=offset)
            padding = _warp_padding(m, (h, w), image.shape[:2], margin=4 + reach)
            if padding is not None:
                m[:, 2] += (padding[2], padding[0])
            maps = (_workspace(("map_x", h, w)), _workspace(("map_y", h, w)))
            map_x, map_y = _fill_maps(m, coarse, maps)

            def warp(array, interpolation, cval):
                if padding is not None:
                    array = _pad(array, padding, border, cval)
                return _cv2_warp(array, lambda a: cv2.remap(
                    a, map_x, map_y, interpolation, borderMode=border, borderValue=cval
                ))

        outputs = [self._intensity(warp(image, INTERPOLATIONS[self.order], self.cval), params)]
        mask, weights = extras
        if mask is not None:
            outputs.append(warp(mask, cv2.INTER_NEAREST, self.mask_cval))
        elif weights is not None:
            outputs.append(None)
        if weights is not None:
            outputs.append(warp(weights, cv2.INTER_NEAREST, 0))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def random_transform(self, image, mask=None, rng=None, *, weights=None, out_shape=None, offset=(0, 0)):
        """Draw a transform from ``rng`` and apply it to image and mask together."""
        image = _check_2d(image, "image")
        if out_shape is None:
            out_shape = image.shape[:2]
        params = self.get_random_transform(out_shape, rng)
        return self.apply_transform(image, mask, params, weights=weights, out_shape=out_shape, offset=offset)

    @staticmethod
    def _intensity(image, params):
        brightness = params.get("brightness")
        shift = params.get("channel_shift_intensity")
        if brightness is None and shift is None:
            return image
        dtype = image.dtype
        x = image.astype(np.float32)
        if shift is not None:  # apply_channel_shift: clip to the image's own range
            x = np.clip(x + shift, x.min(), x.max())
        if brightness is not None:
            x = x * brightness
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = np.clip(np.rint(x), info.min, info.max)
        return x.astype(dtype)


# Name of the UNet 3+ classification-guided module's output
# (keras_unets.models.build_unet3p(cgm=True)).
CGM_OUTPUT = "cls"


def cgm_targets(labels):
    """Targets of the UNet 3+ classification-guided module for label crops.

    Huang et al., "UNet 3+", ICASSP 2020, section 2.3: the classification
    branch predicts whether the organ is in the input image and is trained
    with binary cross-entropy; its ``argmax`` over 2 classes masks the
    segmentation (:class:`keras_unets.layers.ClassGuidance`: index 1 =
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
            :attr:`keras_unets.folders.FolderDataset.images`): a batch picks
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
            :func:`keras_unets.weightmaps.unet_weight_map`); batches are then
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
