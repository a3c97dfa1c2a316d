"""Pure tiling maths of overlap-tile prediction (U-Net paper, Fig. 2); numpy only.

Ronneberger, Fischer and Brox (MICCAI 2015, Sec. 2 and Fig. 2): "To predict
the pixels in the border region of the image, the missing context is
extrapolated by mirroring the input image. This tiling strategy is important
to apply the network to large images". A valid-padding U-Net sees a
``T x T`` input tile and predicts the centre ``O x O`` of it (572 -> 388 for
the paper's network); the image is covered by output tiles and each input
tile carries ``(T - O) / 2`` pixels of context on every side.

Where the tiles go (:func:`tile_starts`, :func:`tile_bounds`,
:func:`tile_plan`), the mirror extrapolation (:func:`mirror_pad`) and the
8 flips/rotations of test-time augmentation (:data:`DIHEDRAL`,
:func:`dihedral`, :func:`undo_dihedral`). No model is needed:
:mod:`keras_unets.inference.predict` runs the network over these tiles.

Decisions where the papers are silent:

* Mirror extrapolation is ``np.pad(mode="reflect")`` (the edge pixel is not
  repeated), which is the mirroring drawn in the paper's Fig. 2 and equals
  ``scipy.ndimage`` mode ``"mirror"``; numpy reflects again and again when
  the padding is larger than the image (an image smaller than one tile).
* Overlaps between neighbouring tiles are split at their midpoint: every
  output pixel comes from exactly one tile.
"""
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DIHEDRAL",
    "TilePlan",
    "dihedral",
    "mirror_pad",
    "tile_bounds",
    "tile_plan",
    "tile_starts",
    "transformed_shape",
    "undo_dihedral",
]

# The 8 elements of the dihedral group D4 as (k rotations by 90 deg, flip).
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def tile_starts(length, out_size, *, align=1):
    """Start positions (in output coordinates) of tiles along one axis.

    Tiles of ``out_size`` valid output pixels are placed at multiples of
    ``step = (out_size // align) * align`` until they reach ``length``. The
    last tile may extend past the image end (the input is padded there).

    Args:
        length: image size along the axis (>= 1).
        out_size: valid output pixels per tile (>= 1).
        align: the step is a multiple of this (the model's total stride).

    Returns:
        ``int64`` array of starts, ``0 = starts[0] < ... < length``.

    >>> tile_starts(10, 4).tolist()
    [0, 4, 8]
    >>> tile_starts(10, 6, align=4).tolist()  # step 4; [4, 10) reaches the end
    [0, 4]
    """
    length, out_size, align = int(length), int(out_size), int(align)
    if length < 1:
        raise ValueError(f"length must be >= 1. Received: length={length}")
    if align < 1:
        raise ValueError(f"align must be >= 1. Received: align={align}")
    step = (out_size // align) * align
    if step < 1:
        raise ValueError(
            f"The output tile ({out_size} px) is smaller than the model's stride "
            f"({align} px); use a larger tile. Received: out_size={out_size}, "
            f"align={align}"
        )
    if length <= out_size:
        return np.zeros(1, dtype=np.int64)
    n = 1 + math.ceil((length - out_size) / step)
    return np.arange(n, dtype=np.int64) * step


def tile_bounds(starts, out_size, length):
    """The part of each tile's valid output that is kept: ``[(lo, hi), ...]``.

    Overlaps of neighbouring tiles are split at their midpoint, so the kept
    intervals partition ``[0, length)`` and each lies inside its tile's valid
    output ``[start, start + out_size)``.

    >>> tile_bounds([0, 4], 6, 10)  # tiles [0, 6) and [4, 10) split at 5
    [(0, 5), (5, 10)]
    """
    starts = [int(s) for s in starts]
    cuts = [0]
    for prev, nxt in zip(starts[:-1], starts[1:]):
        cuts.append((nxt + prev + out_size) // 2)
    cuts.append(int(length))
    return [(cuts[i], cuts[i + 1]) for i in range(len(starts))]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one 2D image go.

    Attributes:
        pad: ``((top, bottom), (left, right))`` mirror padding of the image.
        tiles: list of ``(y0, x0)``: top-left corner of each input tile in the
            padded image; the tile is ``tile x tile``.
        keep: list of ``((ylo, yhi), (xlo, xhi))`` per tile: image pixels the
            tile provides; they partition the image.
        tile: input tile size.
        out_size: valid output size per tile.
        context: pixels of input context before the valid output.
    """

    pad: tuple
    tiles: list
    keep: list
    tile: int
    out_size: int
    context: int


def tile_plan(shape, *, tile, out_size, context=None, align=1):
    """Plan overlap-tile prediction of an ``(H, W)`` image.

    Args:
        shape: ``(H, W)``.
        tile: input tile size ``T`` (square tiles).
        out_size: valid output size ``O <= T`` per tile.
        context: input pixels before the valid output (default ``(T - O) // 2``).
        align: tile steps are multiples of this.

    Returns:
        :class:`TilePlan`. Tile ``i`` reads ``padded[y0:y0+T, x0:x0+T]`` and its
        valid output pixel ``(u, v)`` is image pixel ``(y0 + u, x0 + v)``.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W). Received: shape={shape}")
    tile, out_size = int(tile), int(out_size)
    if not 1 <= out_size <= tile:
        raise ValueError(
            f"Need 1 <= out_size <= tile. Received: out_size={out_size}, tile={tile}"
        )
    context = (tile - out_size) // 2 if context is None else int(context)
    after = tile - out_size - context
    if context < 0 or after < 0:
        raise ValueError(
            f"context must be in [0, tile - out_size]. Received: context={context}"
        )
    per_axis = []
    pad = []
    for length in shape:
        starts = tile_starts(length, out_size, align=align)
        bounds = tile_bounds(starts, out_size, length)
        extra = max(0, int(starts[-1]) + out_size - int(length))
        pad.append((context, after + extra))
        per_axis.append((starts, bounds))
    (ys, ykeep), (xs, xkeep) = per_axis
    tiles, keep = [], []
    for y0, yk in zip(ys, ykeep):
        for x0, xk in zip(xs, xkeep):
            tiles.append((int(y0), int(x0)))
            keep.append((yk, xk))
    return TilePlan(tuple(pad), tiles, keep, tile, out_size, context)


def mirror_pad(image, pad):
    """Mirror-pad the two spatial axes of an ``(H, W)`` or ``(H, W, C)`` image.

    ``pad`` is ``((top, bottom), (left, right))``. ``np.pad(mode="reflect")``
    (the edge pixel is not repeated; numpy reflects repeatedly for pads
    larger than the image); an image one pixel high or wide has nothing to
    reflect and uses ``mode="symmetric"`` (the pixel is repeated).

    >>> mirror_pad(np.array([[1, 2, 3], [4, 5, 6]]), ((0, 0), (2, 2)))[0].tolist()
    [3, 2, 1, 2, 3, 2, 1]
    >>> mirror_pad(np.array([[1], [2]]), ((1, 1), (0, 0))).ravel().tolist()
    [1, 1, 2, 2]
    """
    pad = tuple(tuple(int(v) for v in p) for p in pad) + ((0, 0),) * (image.ndim - 2)
    if image.shape[0] == 1 or image.shape[1] == 1:
        return np.pad(image, pad, mode="symmetric")
    return np.pad(image, pad, mode="reflect")


def dihedral(image, transform):
    """Apply one element ``(k, flip)`` of :data:`DIHEDRAL` to the two spatial axes.

    A left-right flip (``flip``) first, then ``k`` rotations by 90 degrees
    counter-clockwise (``np.rot90``); trailing channel axes are kept.
    """
    k, flip = transform
    return np.rot90(image[:, ::-1] if flip else image, k)


def undo_dihedral(image, transform):
    """The inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, t), t) == x``."""
    k, flip = transform
    back = np.rot90(image, -k)
    return back[:, ::-1] if flip else back


def transformed_shape(shape, transform):
    """``(H, W)`` after :func:`dihedral`: swapped for odd rotations."""
    k, _ = transform
    return tuple(shape) if k % 2 == 0 else (shape[1], shape[0])
