"""The geometry of paired augmentation: affine and elastic coordinate maps, pure warps.

:func:`random_transform_parameters` draws what Keras'
``ImageDataGenerator.get_random_transform`` draws (same ``RandomState``
calls, same order); :func:`elastic_displacement` is the U-Net paper's
elastic field (Ronneberger et al., MICCAI 2015, section 3.1: a coarse grid of
Gaussian displacements, bicubic interpolation); :func:`affine_warp` and
:func:`elastic_warp` turn a source matrix (and a coarse field) into one warp
that :class:`keras_unets.augment.Augmenter` applies to an image, its mask
and its weights alike. Pure numpy / OpenCV: no Keras.
"""
import functools
import math
import threading

import cv2
import numpy as np

__all__ = [
    "FILL_MODES",
    "INTERPOLATIONS",
    "affine_warp",
    "elastic_displacement",
    "elastic_warp",
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


def affine_warp(matrix, in_shape, out_shape, border):
    """``warp(array, interpolation, cval)`` for a 2x3 source matrix (no elastic part).

    Flips and whole-pixel shifts whose source window lies inside the image
    are exact numpy slices (a copy); other matrices go to
    :func:`cv2.warpAffine` (``WARP_INVERSE_MAP``). Every array is first padded
    so that no read leaves it (same values). The border rule then never
    applies, and ``BORDER_REPLICATE`` selects OpenCV's vectorised
    ``warpAffine`` (OpenCV >= 4.11 vectorises it for constant and replicate
    borders only: 0.32 against 0.60 ms per 512x512 uint8 bilinear warp on a
    2-core CPU). Its rounding differs from the scalar path's by at most 1
    grey level.
    """
    h, w = out_shape
    window = _exact_window(matrix, in_shape, out_shape)
    if window is not None:
        return lambda array, interpolation, cval: np.ascontiguousarray(array[window])
    padding = _warp_padding(matrix, out_shape, in_shape, margin=4)
    inside = matrix.copy()
    warp_border = border
    if padding is not None:
        inside[:, 2] += (padding[2], padding[0])
        warp_border = cv2.BORDER_REPLICATE

    def warp(array, interpolation, cval):
        used = matrix
        if padding is not None:
            array, used = _pad(array, padding, border, cval), inside
        return _cv2_warp(array, lambda a: cv2.warpAffine(
            a, used, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=warp_border,
            borderValue=cval,
        ))

    return warp


def elastic_warp(matrix, coarse, in_shape, out_shape, border):
    """``warp(array, interpolation, cval)`` for an affine matrix plus a coarse elastic field.

    One :func:`cv2.remap` coordinate map (:func:`_fill_maps`) serves every
    array; each is padded alike by the affine part's reach plus a bound on
    the bicubic elastic field, so that no read leaves it.
    """
    h, w = out_shape
    wy = _cubic_weights(h, coarse.shape[1])
    wx = _cubic_weights(w, coarse.shape[2])
    reach = float(np.abs(coarse).max()) * float(np.abs(wy).sum(1).max()) * float(np.abs(wx).sum(1).max())
    matrix = matrix.copy()
    padding = _warp_padding(matrix, out_shape, in_shape, margin=4 + reach)
    if padding is not None:
        matrix[:, 2] += (padding[2], padding[0])
    maps = (_workspace(("map_x", h, w)), _workspace(("map_y", h, w)))
    map_x, map_y = _fill_maps(matrix, coarse, maps)

    def warp(array, interpolation, cval):
        if padding is not None:
            array = _pad(array, padding, border, cval)
        return _cv2_warp(array, lambda a: cv2.remap(
            a, map_x, map_y, interpolation, borderMode=border, borderValue=cval
        ))

    return warp
