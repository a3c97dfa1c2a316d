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

The batch source is :class:`keras_unets.augment.SegmentationDataset`
(:mod:`keras_unets.augment.dataset`); the warp maths is
:mod:`keras_unets.augment.geometry`.

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
import numbers

import cv2
import numpy as np

from keras_unets.augment.geometry import (
    FILL_MODES,
    INTERPOLATIONS,
    _affine_matrix,
    _fill_maps,
    affine_warp,
    elastic_warp,
    random_transform_parameters,
)

__all__ = ["Augmenter"]

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
        m = self.source_matrix(params, (h, w), offset=offset)
        if coarse is None:
            warp = affine_warp(m, image.shape[:2], (h, w), border)
        else:
            warp = elastic_warp(m, coarse, image.shape[:2], (h, w), border)
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
