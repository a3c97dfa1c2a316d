"""Tests for keras_unets.augment: paired warps, elastic field, dataset."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_unets.augment import (
    Augmenter,
    SegmentationDataset,
    elastic_displacement,
    random_transform_parameters,
)

ROOT = Path(__file__).resolve().parents[1]
try:  # the reference: Keras 3 keeps ImageDataGenerator in its legacy module
    from keras.src.legacy.preprocessing.image import ImageDataGenerator as IDG
except ImportError:
    IDG = None


def smooth_image(shape, seed=0, blur=3.0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), blur)


# -- geometry -------------------------------------------------------------------

GEOMETRIES = [
    dict(rotation_range=30),
    dict(width_shift_range=0.2, height_shift_range=0.2),
    dict(width_shift_range=[3, 5], height_shift_range=4),
    dict(shear_range=20),
    dict(zoom_range=0.3),
    dict(horizontal_flip=True, vertical_flip=True),
    dict(rotation_range=40, width_shift_range=0.1, height_shift_range=0.1, shear_range=10, zoom_range=0.2,
         horizontal_flip=True, vertical_flip=True),
]


@pytest.mark.skipif(IDG is None, reason="this Keras has no ImageDataGenerator")
@pytest.mark.parametrize("kwargs", GEOMETRIES)
def test_affine_equals_image_data_generator(kwargs):
    # Independent reference: ImageDataGenerator.apply_transform (scipy, order 1)
    # with the very same parameter dict must give the same warp on a square
    # image (the convention of apply_affine_transform, incl. its border "reflect").
    img = smooth_image((48, 48))
    aug = Augmenter(fill_mode="reflect", **kwargs)
    idg = IDG(fill_mode="reflect", **kwargs)
    for seed in range(4):
        params = aug.get_random_transform((48, 48), np.random.default_rng(seed))
        ours = aug.apply_transform(img, None, params)
        ref = idg.apply_transform(img[..., None], params)[..., 0]
        assert np.abs(ours - ref).max() < 0.05, (kwargs, params)


def test_identity_is_bit_exact():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    msk = (rng.random((37, 53)) > 0.5).astype(np.uint8) * 255
    for aug in (Augmenter(), Augmenter(order=3), Augmenter(elastic=True, elastic_sigma=0.0)):
        params = aug.get_random_transform(img.shape, rng)
        out_img, out_msk = aug.apply_transform(img, msk, params)
        assert out_img.dtype == np.uint8 and out_msk.dtype == np.uint8
        assert np.array_equal(out_img, img) and np.array_equal(out_msk, msk)
    fimg = rng.random((37, 53)).astype(np.float32)
    assert np.array_equal(Augmenter().apply_transform(fimg, None, {}), fimg)


def test_flips_are_exact_and_match_numpy():
    img = np.arange(30 * 40, dtype=np.float32).reshape(30, 40)
    aug = Augmenter()
    assert np.array_equal(aug.apply_transform(img, None, {"flip_horizontal": 1}), img[:, ::-1])
    assert np.array_equal(aug.apply_transform(img, None, {"flip_vertical": 1}), img[::-1])
    both = aug.apply_transform(img, None, {"flip_vertical": 1, "flip_horizontal": 1})
    assert np.array_equal(both, img[::-1, ::-1])


def test_shift_direction_and_fill_modes():
    # As ImageDataGenerator: output(r, c) = input(r + ty, c + tx), tx along columns.
    img = np.arange(8, dtype=np.float32)[None, :].repeat(5, axis=0)  # value = column
    out = Augmenter(fill_mode="constant", cval=-1).apply_transform(img, None, {"tx": 2})
    assert out[0].tolist() == [2, 3, 4, 5, 6, 7, -1, -1]
    expected = {
        "nearest": [2, 3, 4, 5, 6, 7, 7, 7],
        "reflect": [2, 3, 4, 5, 6, 7, 7, 6],  # scipy reflect = dcba|abcd
        "mirror": [2, 3, 4, 5, 6, 7, 6, 5],  # BORDER_REFLECT_101 = dcb|abcd
        "wrap": [2, 3, 4, 5, 6, 7, 0, 1],
    }
    for mode, row in expected.items():
        assert Augmenter(fill_mode=mode).apply_transform(img, None, {"tx": 2})[0].tolist() == row, mode
    msk = np.full((5, 8), 255, np.uint8)
    _, out_msk = Augmenter(fill_mode="constant", mask_cval=0).apply_transform(img, msk, {"tx": 2})
    assert out_msk[0].tolist() == [255] * 6 + [0, 0]


def test_alignment_after_random_warps():
    # Exact alignment: the image is the pair of coordinate ramps (row, col);
    # bilinear (and bicubic) interpolation reproduces linear functions, so the
    # warped image holds each pixel's source coordinates. The mask is a
    # function of the coordinates (a checkerboard of 8x8 squares) and is
    # warped with nearest neighbour, i.e. it must equal the checkerboard
    # evaluated at the rounded warped image, wherever the source lies inside
    # the image (no border fill) and is not within 1/16 px of a rounding tie
    # (OpenCV quantises bilinear coordinates to 1/32 px).
    h, w = 96, 80
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = np.dstack([rows, cols])

    def checker(r, c):
        return (((r // 8) + (c // 8)) % 2 * 255).astype(np.uint8)

    mask = checker(rows.astype(int), cols.astype(int))
    for order in (1, 3):
        aug = Augmenter(rotation_range=30, width_shift_range=0.1, height_shift_range=0.1, shear_range=10,
                        zoom_range=0.2, horizontal_flip=True, elastic=True, elastic_sigma=6.0, order=order)
        for seed in range(5):
            out, out_mask = aug.random_transform(coords, mask, np.random.default_rng(seed))
            src_r, src_c = out[..., 0], out[..., 1]
            ok = (src_r > 1) & (src_r < h - 2) & (src_c > 1) & (src_c < w - 2)
            for v in (src_r, src_c):
                ok &= np.abs(v - np.floor(v) - 0.5) > 1 / 16
            assert ok.mean() > 0.5
            expected = checker(np.rint(src_r).astype(int), np.rint(src_c).astype(int))
            assert np.array_equal(out_mask[ok], expected[ok]), (order, seed)
            # and the warp really moved things
            assert np.abs(src_r - rows).mean() > 0.5


def test_mask_function_of_image_on_em_slices(synthetic_stack):
    images, _ = synthetic_stack(1, 128, seed=3)
    img = images[0]
    msk = np.where(img > 120, 255, 0).astype(np.uint8)  # mask = f(image)
    aug0 = Augmenter(rotation_range=90, zoom_range=0.1, horizontal_flip=True, vertical_flip=True,
                     elastic=True, order=0)
    aug1 = Augmenter(**{**aug0.get_config(), "order": 1})
    for seed in range(3):
        out, out_msk = aug0.random_transform(img, msk, np.random.default_rng(seed))
        assert np.array_equal(np.where(out > 120, 255, 0), out_msk)  # exact, borders included
        out1, out_msk1 = aug1.random_transform(img, msk, np.random.default_rng(seed))
        assert np.array_equal(out_msk1, out_msk)  # same draw, same mask
        assert (np.where(out1 > 120, 255, 0) == out_msk1).mean() > 0.9


def test_masks_stay_binary(synthetic_stack):
    _, labels = synthetic_stack(1, 96)
    lab = labels[0]
    aug = Augmenter(rotation_range=45, shear_range=15, zoom_range=0.3, elastic=True, order=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        _, out = aug.random_transform(np.zeros_like(lab), lab, rng)
        assert set(np.unique(out)) <= {0, 255}
    if IDG is not None:  # the peers' way interpolates masks (scipy, order 1)
        params = aug.get_random_transform(lab.shape, np.random.default_rng(0))
        params.pop("elastic")
        idg_out = IDG().apply_transform(lab[..., None].astype(np.float32), params)
        assert not set(np.unique(idg_out)) <= {0.0, 255.0}


def test_seed_reproducibility():
    img = smooth_image((64, 64)).astype(np.uint8)
    msk = np.where(img > 128, 255, 0).astype(np.uint8)
    aug = Augmenter(rotation_range=20, width_shift_range=0.1, horizontal_flip=True, brightness_range=(0.8, 1.2),
                    elastic=True)
    a = aug.random_transform(img, msk, np.random.default_rng(7))
    b = aug.random_transform(img, msk, np.random.default_rng(7))
    c = aug.random_transform(img, msk, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # numpy's global random state is neither used nor disturbed
    np.random.seed(123)
    before = np.random.random(3)
    np.random.seed(123)
    aug.random_transform(img, msk, np.random.default_rng(7))
    assert np.array_equal(np.random.random(3), before)


@pytest.mark.skipif(IDG is None, reason="this Keras has no ImageDataGenerator")
def test_draw_equals_image_data_generator():
    configs = [
        dict(rotation_range=15, width_shift_range=0.1, height_shift_range=0.2, shear_range=5, zoom_range=[0.8, 1.1],
             horizontal_flip=True, vertical_flip=True, channel_shift_range=10, brightness_range=(0.5, 1.5)),
        dict(width_shift_range=[1, 2, 3], height_shift_range=7, zoom_range=0.0),
        dict(horizontal_flip=True),
    ]
    for cfg in configs:
        aug = Augmenter(**cfg)
        idg = IDG(**cfg)
        for seed in (0, 1, 2**32 - 1, 12345):
            ours = random_transform_parameters(aug.config, (50, 70, 1), np.random.RandomState(seed))
            ref = idg.get_random_transform((50, 70, 1), seed=seed)
            assert ours == ref, (cfg, seed)
    # the augmenter draws one seed from its rng and ImageDataGenerator's
    # parameters with it
    aug, idg = Augmenter(**configs[0], elastic=True), IDG(**configs[0])
    params = aug.get_random_transform((64, 64), 5)
    assert params.pop("elastic").shape == (2, 3, 3)
    seed = int(np.random.default_rng(5).integers(0, 2**32 - 1, endpoint=True))
    assert params == idg.get_random_transform((64, 64, 1), seed=seed)


def test_brightness_and_channel_shift_touch_the_image_only():
    img = np.array([[10, 100, 200, 250]], np.uint8)
    msk = np.array([[0, 255, 255, 0]], np.uint8)
    aug = Augmenter()
    out, out_msk = aug.apply_transform(img, msk, {"brightness": 1.1})
    assert out.tolist() == [[11, 110, 220, 255]]  # 250 * 1.1 = 275 saturates
    assert np.array_equal(out_msk, msk)
    out = aug.apply_transform(img, None, {"channel_shift_intensity": 20.0})
    assert out.tolist() == [[30, 120, 220, 250]]  # clipped to the image's own max


def test_elastic_displacement_statistics():
    # Coarse nodes of a 65-px field with a 3x3 grid sit on pixels 0, 32, 64:
    # there the bicubic field equals the node draws exactly. The draws have
    # the configured std (10 px). Halfway between nodes (pixel 16) the Keys
    # cubic (a = -0.75) weights of the nodes are 0.5, 0.59375, -0.09375, so
    # the 1-D std factor is sqrt(0.5^2 + 0.59375^2 + 0.09375^2) = 0.78188 and
    # at (16, 16) the 2-D factor is 0.78188^2 = 0.61133.
    aug = Augmenter(elastic=True, elastic_sigma=10.0)
    rng = np.random.default_rng(0)
    coarse, mid_vals = [], []
    for _ in range(1500):
        params = aug.get_random_transform((65, 65), rng)
        dx, dy = elastic_displacement(params["elastic"], (65, 65))
        grid = np.ix_([0, 32, 64], [0, 32, 64])
        np.testing.assert_allclose(dx[grid], params["elastic"][0], atol=1e-4)
        np.testing.assert_allclose(dy[grid], params["elastic"][1], atol=1e-4)
        coarse.append(params["elastic"])
        mid_vals.append((dx[16, 16], dy[16, 16]))
    coarse = np.array(coarse)
    assert coarse.shape == (1500, 2, 3, 3)
    assert abs(coarse.std() - 10.0) < 0.3  # 13,500 draws: std error ~0.06
    assert abs(coarse.mean()) < 0.3
    assert abs(np.std(mid_vals) - 10.0 * 0.61133) < 0.3
    # A constant coarse field translates the image by exactly that amount.
    dx, dy = elastic_displacement(np.stack([np.full((4, 5), 2.5), np.full((4, 5), -1.0)]), (20, 30))
    assert np.allclose(dx, 2.5) and np.allclose(dy, -1.0)


def test_elastic_warp_moves_pixels_by_the_field():
    h, w = 64, 64
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    aug = Augmenter(elastic=True, elastic_sigma=4.0, elastic_grid=(3, 4))
    params = aug.get_random_transform((h, w), np.random.default_rng(3))
    assert params["elastic"].shape == (2, 3, 4)
    out = aug.apply_transform(np.dstack([rows, cols]), None, params)
    dx, dy = elastic_displacement(params["elastic"], (h, w))
    inside = (rows + dy > 0) & (rows + dy < h - 1) & (cols + dx > 0) & (cols + dx < w - 1)
    assert np.abs(out[..., 0] - (rows + dy))[inside].max() < 0.05
    assert np.abs(out[..., 1] - (cols + dx))[inside].max() < 0.05


def _remap_reference(aug, image, mask, params, out_shape, offset=(0, 0)):
    """The warp as full coordinate maps + cv2.remap (the general, elastic-capable path)."""
    map_x, map_y = aug.coordinate_map(params, out_shape, offset=offset)
    border = {"mirror": cv2.BORDER_REFLECT_101, "reflect": cv2.BORDER_REFLECT}[aug.fill_mode]
    interp = {1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}[aug.order]
    return (cv2.remap(image, map_x, map_y, interp, borderMode=border),
            cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=border))


def test_coordinate_map_equals_affine_plus_elastic_field():
    # Independent reference: the affine matrix applied to a meshgrid, plus
    # the bicubic field of elastic_displacement, plus the crop offset.
    aug = Augmenter(rotation_range=30, width_shift_range=0.1, shear_range=10, zoom_range=0.2, horizontal_flip=True,
                    vertical_flip=True, elastic=True, elastic_grid=(3, 4))
    h, w, offset = 40, 56, (5, 9)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    for seed in range(4):
        params = aug.get_random_transform((h, w), np.random.default_rng(seed))
        m = aug.source_matrix(params, (h, w), offset=offset)
        dx, dy = elastic_displacement(params["elastic"], (h, w))
        map_x, map_y = aug.coordinate_map(params, (h, w), offset=offset)
        assert map_x.dtype == np.float32 and map_x.shape == (h, w)
        np.testing.assert_allclose(map_x, m[0, 0] * cols + m[0, 1] * rows + m[0, 2] + dx, atol=1e-3)
        np.testing.assert_allclose(map_y, m[1, 0] * cols + m[1, 1] * rows + m[1, 2] + dy, atol=1e-3)
        assert m[0, 2] - offset[1] == pytest.approx(aug.source_matrix(params, (h, w))[0, 2])


@pytest.mark.parametrize("order", [1, 3])
def test_warp_affine_path_equals_remap_path(synthetic_stack, order):
    # Without elastic, apply_transform uses cv2.warpAffine with the 2x3
    # matrix; it must agree with the coordinate-map + cv2.remap path (both
    # quantise positions to 1/32 px): images within 1 grey level, masks
    # identical except at rare rounding ties on label boundaries.
    images, labels = synthetic_stack(1, 160, 192, seed=5)
    img, lab = images[0], labels[0]
    aug = Augmenter(rotation_range=40, width_shift_range=0.1, height_shift_range=0.1, shear_range=10,
                    zoom_range=0.2, horizontal_flip=True, vertical_flip=True, order=order)
    rng = np.random.default_rng(0)
    for out_shape, offset in (((160, 192), (0, 0)), ((96, 64), (30, 100))):
        for _ in range(4):
            params = aug.get_random_transform(out_shape, rng)
            out_img, out_msk = aug.apply_transform(img, lab, params, out_shape=out_shape, offset=offset)
            ref_img, ref_msk = _remap_reference(aug, img, lab, params, out_shape, offset)
            assert out_img.shape == ref_img.shape == out_shape and out_img.dtype == np.uint8
            assert np.abs(out_img.astype(int) - ref_img).max() <= 1
            # away from label boundaries (3x3 neighbourhood of the reference not constant) masks agree
            edge = cv2.dilate(ref_msk, np.ones((3, 3), np.uint8)) != cv2.erode(ref_msk, np.ones((3, 3), np.uint8))
            assert np.array_equal(out_msk[~edge], ref_msk[~edge])
            assert (out_msk != ref_msk).mean() < 0.002
            assert set(np.unique(out_msk)) <= {0, 255}


@pytest.mark.parametrize("elastic", [False, True])
@pytest.mark.parametrize("fill_mode", ["mirror", "reflect", "nearest", "constant", "wrap"])
def test_padded_warp_equals_plain_warp(fill_mode, elastic):
    # The arrays are padded with their own border rule before cv2.warpAffine
    # / cv2.remap (a speed-up: OpenCV's border pixels take a slow path); the
    # result must be the plain warp of the unpadded arrays with that border
    # mode, for the image (bicubic, 2 channels) and the mask (nearest).
    border = {"mirror": cv2.BORDER_REFLECT_101, "reflect": cv2.BORDER_REFLECT, "nearest": cv2.BORDER_REPLICATE,
              "constant": cv2.BORDER_CONSTANT, "wrap": cv2.BORDER_WRAP}[fill_mode]
    img = np.dstack([smooth_image((64, 80), seed=4), smooth_image((64, 80), seed=5)])
    msk = np.where(smooth_image((64, 80), seed=6) > 128, 255, 0).astype(np.uint8)
    aug = Augmenter(rotation_range=30, width_shift_range=0.3, height_shift_range=0.3, zoom_range=0.2,
                    horizontal_flip=True, fill_mode=fill_mode, cval=17.0, mask_cval=9, order=3, elastic=elastic,
                    elastic_sigma=5.0)
    rng = np.random.default_rng(1)
    for _ in range(5):
        params = aug.get_random_transform((64, 80), rng)
        out, out_msk = aug.apply_transform(img, msk, params)
        if elastic:
            map_x, map_y = aug.coordinate_map(params, (64, 80))
            ref = cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC, borderMode=border, borderValue=17.0)
            ref_msk = cv2.remap(msk, map_x, map_y, cv2.INTER_NEAREST, borderMode=border, borderValue=9)
        else:
            m = aug.source_matrix(params, (64, 80))
            ref = cv2.warpAffine(img, m, (80, 64), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=border,
                                 borderValue=17.0)
            ref_msk = cv2.warpAffine(msk, m, (80, 64), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                     borderMode=border, borderValue=9)
        assert out.shape == (64, 80, 2)
        assert np.abs(out - ref).max() < 0.01, params  # float32 rounding only
        assert (out_msk != ref_msk).mean() < 0.001  # at most a rounding tie or two


@pytest.mark.parametrize("fill_mode", ["mirror", "constant"])
def test_padded_uint8_bilinear_warp_is_within_one_grey_level(fill_mode):
    # uint8 bilinear is the training pipeline's case: after padding, the warp
    # runs with BORDER_REPLICATE, which takes OpenCV's vectorised warpAffine
    # (>= 4.11). Its fixed-point rounding may differ from the scalar path's
    # (the plain warp with the fill rule's border) by one grey level, rarely.
    border = {"mirror": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}[fill_mode]
    img = np.clip(np.rint(smooth_image((96, 112), seed=7)), 0, 255).astype(np.uint8)
    msk = np.where(smooth_image((96, 112), seed=8) > 128, 255, 0).astype(np.uint8)
    aug = Augmenter(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, zoom_range=0.2,
                    shear_range=10, fill_mode=fill_mode, cval=0.0, order=1)
    rng = np.random.default_rng(3)
    for _ in range(8):
        params = aug.get_random_transform((96, 112), rng)
        out, out_msk = aug.apply_transform(img, msk, params)
        m = aug.source_matrix(params, (96, 112))
        ref = cv2.warpAffine(img, m, (112, 96), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)
        ref_msk = cv2.warpAffine(msk, m, (112, 96), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                 borderMode=border)
        assert out.dtype == np.uint8 and out.shape == (96, 112)
        assert np.abs(out.astype(int) - ref).max() <= 1, params
        assert (out != ref).mean() < 0.01
        assert (out_msk != ref_msk).mean() < 0.001


def test_flip_and_whole_pixel_shift_fast_path_is_exact(monkeypatch):
    # Flips and integer shifts that stay inside the image are plain slicing:
    # bit-exact, equal to the numpy expression, and a copy (not a view).
    def no_warp(*args, **kwargs):
        raise AssertionError("the fast path must not resample")

    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    msk = (rng.random((30, 40)) > 0.5).astype(np.uint8) * 255
    aug = Augmenter()
    cases = [
        ({"flip_horizontal": 1}, (30, 40), (0, 0), np.s_[:, ::-1]),
        ({"flip_horizontal": 1, "flip_vertical": 1}, (30, 40), (0, 0), np.s_[::-1, ::-1]),
        ({}, (10, 12), (4, 7), np.s_[4:14, 7:19]),
        ({"tx": 3, "ty": -2}, (10, 12), (4, 7), np.s_[2:12, 10:22]),  # tx moves columns, ty rows
        ({"flip_horizontal": 1, "tx": 2}, (10, 12), (4, 7), np.s_[4:14, 20:8:-1]),
    ]
    for params, out_shape, offset, index in cases:
        with monkeypatch.context() as patch:
            patch.setattr(cv2, "warpAffine", no_warp)
            patch.setattr(cv2, "remap", no_warp)
            out_img, out_msk = aug.apply_transform(img, msk, params, out_shape=out_shape, offset=offset)
        assert np.array_equal(out_img, img[index]) and np.array_equal(out_msk, msk[index]), params
        assert out_img.flags.c_contiguous and not np.shares_memory(out_img, img)
        # the general warp (warpAffine) agrees exactly on whole-pixel positions
        m = aug.source_matrix(params, out_shape, offset=offset)
        ref = cv2.warpAffine(img, m, out_shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REFLECT_101)
        assert np.array_equal(out_img, ref), params
    # a whole-pixel shift that leaves the image is warped with the mirror fill instead
    out = aug.apply_transform(img, None, {"tx": 3})
    assert np.array_equal(out[:, :37], img[:, 3:]) and np.array_equal(out[:, 37:], img[:, 38:35:-1])


def test_bad_arguments_are_explained():
    with pytest.raises(TypeError, match="rescale"):
        Augmenter(rescale=1 / 255)
    with pytest.raises(ValueError, match="fill_mode"):
        Augmenter(fill_mode="mirrored")
    with pytest.raises(ValueError, match="elastic_grid"):
        Augmenter(elastic_grid=1)
    with pytest.raises(ValueError, match="zoom_range"):
        Augmenter(zoom_range=(1, 2, 3))
    with pytest.raises(ValueError, match="order"):
        Augmenter(order=2)
    with pytest.raises(ValueError, match="mask.shape"):
        Augmenter().apply_transform(np.zeros((4, 4)), np.zeros((4, 5)), {})


# -- dataset -------------------------------------------------------------------


def small_data(n=6, size=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.stack([np.where(smooth_image((size, size), seed + i) > 128, 255, 0) for i in range(n)])
    labels = labels.astype(np.uint8)
    images = rng.integers(0, 256, labels.shape, dtype=np.uint8)
    return images, labels


def test_dataset_batches_shapes_and_values():
    images, labels = small_data()
    ds = SegmentationDataset(images, labels, batch_size=4, crop=32, augmenter=Augmenter(rotation_range=10), seed=1)
    assert len(ds) == 2  # ceil(6 / 4)
    x, y = ds[0]
    assert x.shape == (4, 32, 32, 1) and y.shape == (4, 32, 32, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    assert set(np.unique(y)) <= {0.0, 1.0}
    with pytest.raises(IndexError):
        ds[2]


def test_dataset_is_a_pure_function_of_seed_epoch_index():
    images, labels = small_data()
    aug = Augmenter(rotation_range=20, horizontal_flip=True, elastic=True)
    ds1 = SegmentationDataset(images, labels, batch_size=2, crop=24, augmenter=aug, seed=5, steps_per_epoch=4)
    ds2 = SegmentationDataset(images, labels, batch_size=2, crop=24, augmenter=aug, seed=5, steps_per_epoch=4)
    b_late = ds2[3]  # out of order, as parallel workers would ask
    b_early = ds2[0]
    assert np.array_equal(ds1[0][0], b_early[0]) and np.array_equal(ds1[3][1], b_late[1])
    first = ds1[0][0]
    ds1.on_epoch_end()
    assert ds1.epoch == 1
    assert not np.array_equal(ds1[0][0], first)
    assert np.array_equal(ds1.get_batch(0, 0)[0], first)
    ds3 = SegmentationDataset(images, labels, batch_size=2, crop=24, augmenter=aug, seed=6, steps_per_epoch=4)
    assert not np.array_equal(ds3[0][0], first)


def test_dataset_is_safe_with_parallel_workers():
    # Threads (PyDataset workers=N) share the process: batches fetched
    # concurrently, in any order, equal the serial ones. Processes get a
    # pickled copy: the copy yields the same batches.
    import pickle
    from concurrent.futures import ThreadPoolExecutor

    images, labels = small_data()
    aug = Augmenter(rotation_range=20, width_shift_range=0.1, horizontal_flip=True, elastic=True)
    ds = SegmentationDataset(images, labels, batch_size=2, crop=24, augmenter=aug, seed=9, steps_per_epoch=12)
    serial = [ds[i] for i in range(len(ds))]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda i: ds[i], reversed(range(len(ds)))))[::-1]
    for (xa, ya), (xb, yb) in zip(serial, parallel):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    clone = pickle.loads(pickle.dumps(ds))
    assert np.array_equal(clone[5][0], serial[5][0])


def test_dataset_visits_every_slice_once_per_pass():
    images, labels = small_data(n=6)
    ds = SegmentationDataset(images, labels, batch_size=3, seed=0)
    for epoch in range(3):
        seen = np.concatenate([ds.slice_indices(i, epoch) for i in range(len(ds))])
        assert sorted(seen.tolist()) == list(range(6))
    ds = SegmentationDataset(images, labels, batch_size=4, seed=0, shuffle=False, steps_per_epoch=2)
    assert ds.slice_indices(0).tolist() == [0, 1, 2, 3] and ds.slice_indices(1).tolist() == [4, 5, 0, 1]


def test_dataset_crops_are_windows_of_the_slice_and_aligned():
    images, labels = small_data(n=3, size=40)
    # identity augmenter: the crop must be a true window of its slice
    ds = SegmentationDataset(images, labels, batch_size=3, crop=(16, 24), augmenter=Augmenter(), seed=3,
                             shuffle=False)
    x, y = ds[0]
    for k, i in enumerate(ds.slice_indices(0)):
        crop = np.rint(x[k, ..., 0] * 255).astype(np.uint8)
        hits = [(r, c) for r in range(40 - 16 + 1) for c in range(40 - 24 + 1)
                if np.array_equal(images[i, r:r + 16, c:c + 24], crop)]
        assert len(hits) == 1
        r, c = hits[0]
        assert np.array_equal(y[k, ..., 0] * 255, labels[i, r:r + 16, c:c + 24])
    # images equal to labels, nearest-neighbour augmenter: x == y after any warp
    aug = Augmenter(rotation_range=90, zoom_range=0.2, elastic=True, order=0)
    ds = SegmentationDataset(labels, labels, batch_size=3, crop=20, augmenter=aug, seed=4)
    for i in range(len(ds)):
        x, y = ds[i]
        assert np.array_equal(x, y)


def test_dataset_weight_maps_and_output_names():
    images, labels = small_data(n=4)
    weights = 1.0 + 2.0 * (labels == 255)  # weight is a function of the label
    aug = Augmenter(rotation_range=45, elastic=True)
    ds = SegmentationDataset(images, labels, batch_size=2, crop=32, augmenter=aug, weight_maps=weights, seed=0,
                             output_names=["out1", "out2"])
    x, y, w = ds[1]
    assert sorted(y) == ["out1", "out2"] and sorted(w) == ["out1", "out2"]
    assert w["out1"].shape == (2, 32, 32) and w["out1"].dtype == np.float32
    np.testing.assert_array_equal(w["out2"], 1.0 + 2.0 * y["out2"][..., 0])  # warped together


def test_dataset_rejects_bad_input():
    images, labels = small_data(n=2)
    with pytest.raises(ValueError, match="0 \\(membrane\\) or 255"):
        SegmentationDataset(images, labels // 255)
    with pytest.raises(ValueError, match="crop"):
        SegmentationDataset(images, labels, crop=100)
    with pytest.raises(ValueError, match="uint8"):
        SegmentationDataset(images.astype(np.float32), labels)
    with pytest.raises(ValueError, match="same shape"):
        SegmentationDataset(images[:1], labels)


def _tiny_model(keras, names=None):
    inputs = keras.Input((None, None, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    if names:
        outputs = {n: keras.layers.Conv2D(1, 1, activation="sigmoid", name=n)(h) for n in names}
    else:
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="output")(h)
    return keras.Model(inputs, outputs)


def test_fit_with_dataset_tensorflow_backend():
    import keras

    images, labels = small_data(n=4, size=32)
    aug = Augmenter(rotation_range=10, horizontal_flip=True, elastic=True)
    ds = SegmentationDataset(images, labels, batch_size=2, crop=16, augmenter=aug, seed=0, steps_per_epoch=2,
                             workers=2)
    model = _tiny_model(keras)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(ds, epochs=2, verbose=0)
    # one on_epoch_end per epoch (+1 after the TF adapter peeks at batches
    # to build its tensor spec)
    assert ds.epoch in (2, 3)
    assert np.isfinite(history.history["loss"]).all()
    # deep supervision: dict targets and per-pixel weights
    ds = SegmentationDataset(images, labels, batch_size=2, crop=16, augmenter=aug, seed=0, steps_per_epoch=2,
                             weight_maps=np.ones(images.shape, np.float32), output_names=["out1", "out2"])
    from keras_unets.losses import WeightedBinaryCrossentropy, deep_supervision_losses

    model = _tiny_model(keras, ["out1", "out2"])
    loss, loss_weights = deep_supervision_losses(["out1", "out2"], WeightedBinaryCrossentropy())
    model.compile(optimizer="adam", loss=loss, loss_weights=loss_weights)
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # the per-pixel weights reach the loss: weights of 3 triple it
    x, y, w = ds[0]
    unit = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)["loss"]
    tripled = model.evaluate(x, y, sample_weight={k: 3 * v for k, v in w.items()}, verbose=0,
                             return_dict=True)["loss"]
    assert tripled == pytest.approx(3 * unit, rel=1e-4)


JAX_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError("blocked for the test: " + name)
            return None
    sys.meta_path.insert(0, Block())
    import numpy as np
    import keras
    # Keras imports its legacy module at start-up; make it unimportable from here on
    sys.modules["keras.src.legacy.preprocessing.image"] = None
    from keras_unets.augment import Augmenter, SegmentationDataset
    assert keras.backend.backend() == "jax"
    cfg = json.loads(sys.argv[1])
    aug = Augmenter(**cfg, elastic=True)
    params = aug.get_random_transform((64, 64), 5)
    params["elastic"] = params["elastic"].tolist()
    rng = np.random.default_rng(0)
    labels = (rng.random((4, 32, 32)) > 0.5).astype(np.uint8) * 255
    images = rng.integers(0, 256, labels.shape, dtype=np.uint8)
    ds = SegmentationDataset(images, labels, batch_size=2, crop=16, augmenter=aug, seed=0, steps_per_epoch=2)
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(h))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    hist = model.fit(ds, epochs=1, verbose=0)
    print("RESULT" + json.dumps({
        "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
        "params": params,
        "loss": hist.history["loss"][-1],
    }))
    """
)


def test_draw_and_fit_on_jax_without_tensorflow(tmp_path):
    cfg = dict(rotation_range=15, width_shift_range=0.1, height_shift_range=0.2, shear_range=5, zoom_range=0.1,
               horizontal_flip=True, vertical_flip=True, brightness_range=[0.9, 1.1])
    script = tmp_path / "jax_check.py"
    script.write_text(JAX_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(script), json.dumps(cfg)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    result = json.loads(line[len("RESULT"):])
    assert result["tensorflow_loaded"] is False
    assert np.isfinite(result["loss"])
    # with ImageDataGenerator unimportable: the same draw as here
    expected = Augmenter(**cfg, elastic=True).get_random_transform((64, 64), 5)
    got = result["params"]
    np.testing.assert_allclose(got.pop("elastic"), expected.pop("elastic"), rtol=1e-6)
    assert got == pytest.approx(expected)
