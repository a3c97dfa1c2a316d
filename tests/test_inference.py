"""Overlap-tile prediction: tiling maths without a model, then the predictor.

References: U-Net paper (Ronneberger et al. 2015), Fig. 2 (overlap-tile with
mirror extrapolation). Independent references used here: scipy.ndimage
filters with mode="mirror" (= np.pad "reflect") and a whole-image forward
pass of the same valid-padding network.
"""
import keras
import numpy as np
import pytest
import scipy.ndimage as ndi
from keras import layers

from keras_unets.inference import (
    DIHEDRAL,
    check_tile,
    model_stride,
    predict_images,
    predict_tiled,
    tile_bounds,
    tile_plan,
    tile_starts,
)


# --------------------------------------------------------------- tiling maths
def test_tile_starts_hand_cases():
    # 10 px, tiles of 4 valid px, step 4: 0, 4, 8 (the last reaches 12 > 10).
    assert tile_starts(10, 4).tolist() == [0, 4, 8]
    # step = 6 // 4 * 4 = 4; the tile at 4 covers [4, 10): done
    assert tile_starts(10, 6, align=4).tolist() == [0, 4]
    assert tile_starts(11, 6, align=4).tolist() == [0, 4, 8]
    assert tile_starts(3, 8).tolist() == [0]  # image smaller than one tile
    assert tile_starts(8, 8).tolist() == [0]
    assert tile_starts(9, 8).tolist() == [0, 8]
    # the paper's 388 px output on 512 px slices, stride 16: step 384
    assert tile_starts(512, 388, align=16).tolist() == [0, 384]


def test_tile_bounds_hand_case():
    # tiles [0,6), [4,10), [8,14): overlaps [4,6) and [8,10) split at 5 and 9
    assert tile_bounds([0, 4, 8], 6, 10) == [(0, 5), (5, 9), (9, 10)]


def test_tile_starts_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride"):
        tile_starts(10, 3, align=4)
    with pytest.raises(ValueError, match="length"):
        tile_starts(0, 3)


@pytest.mark.parametrize("align", [1, 2, 4, 16])
def test_every_pixel_kept_exactly_once_1d(align):
    for length in range(1, 90, 7):
        for out_size in range(align, 40, 5):
            starts = tile_starts(length, out_size, align=align)
            assert starts[0] == 0
            assert np.all(starts < length), "every tile starts inside the image"
            assert np.all(starts % align == 0)
            assert np.all(np.diff(starts) <= out_size), "no gaps between tiles"
            count = np.zeros(length, int)
            for s, (lo, hi) in zip(starts, tile_bounds(starts, out_size, length)):
                assert s <= lo < hi <= s + out_size, "kept part is in the valid area"
                count[lo:hi] += 1
            assert np.all(count == 1)


def test_tile_plan_2d_partition_and_padding():
    plan = tile_plan((37, 53), tile=20, out_size=12, context=4, align=4)
    (pt, pb), (pl, pr) = plan.pad
    assert (pt, pl) == (4, 4)
    padded_h, padded_w = 37 + pt + pb, 53 + pl + pr
    count = np.zeros((37, 53), int)
    for (y0, x0), ((ylo, yhi), (xlo, xhi)) in zip(plan.tiles, plan.keep):
        assert 0 <= y0 < 37 and 0 <= x0 < 53
        assert y0 + plan.tile <= padded_h and x0 + plan.tile <= padded_w
        assert y0 <= ylo < yhi <= y0 + 12 and x0 <= xlo < xhi <= x0 + 12
        count[ylo:yhi, xlo:xhi] += 1
    assert np.all(count == 1)
    assert len(plan.tiles) == len(tile_starts(37, 12, align=4)) * len(
        tile_starts(53, 12, align=4)
    )


# ------------------------------------------------------------- helper models
def _identity_model():
    inp = keras.Input((None, None, 1))
    return keras.Model(inp, layers.Identity(name="output")(inp))


def _crop_model(c):
    inp = keras.Input((None, None, 1))
    return keras.Model(inp, layers.Cropping2D(c, name="output")(inp))


def _tiny_unet(padding, depth=2, filters=4, seed=0):
    """A small U-Net with 2x2 up-convolution and centre-cropped skips."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 1))
    x, skips = inp, []
    for d in range(depth):
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(filters, 3, padding=padding, activation="relu")(x)
    x = layers.Conv2D(filters, 3, padding=padding, activation="relu")(x)
    for d in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters, 2, strides=2)(x)
        skip = skips[d]
        if padding == "valid":
            skip = _CentreCrop()([skip, x])
        x = layers.Concatenate()([skip, x])
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding=padding, activation="relu")(x)
    out = layers.Conv2D(1, 1, activation="sigmoid", name="output")(x)
    return keras.Model(inp, out)


class _CentreCrop(layers.Layer):
    """Crop the first input to the spatial size of the second (dynamic)."""

    def call(self, inputs):
        a, b = inputs
        sa, sb = keras.ops.shape(a), keras.ops.shape(b)
        oy = (sa[1] - sb[1]) // 2
        ox = (sa[2] - sb[2]) // 2
        return keras.ops.slice(a, [0, oy, ox, 0], [sa[0], sb[1], sb[2], sa[3]])

    def compute_output_shape(self, shapes):
        a, b = shapes
        return (a[0], b[1], b[2], a[3])


def _rng_image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------ predictor
def test_identity_model_stitches_exactly():
    img = _rng_image((3, 70, 45))
    model = _identity_model()
    out = predict_tiled(model, img, tile=16, margin=2, batch_size=5, align=4)
    assert out.dtype == np.float32 and out.shape == img.shape
    np.testing.assert_array_equal(out, img.astype(np.float32) / 255.0)
    # a 2D image keeps its rank; TTA of an identity is still the identity
    out2 = predict_tiled(model, img[0], tile=16, tta=True)
    np.testing.assert_allclose(out2, img[0] / 255.0, atol=1e-7)


def test_valid_fake_model_exact():
    img = _rng_image((41, 66), seed=1)
    model = _crop_model(3)  # output = centre of input: valid, 6 px smaller
    out = predict_tiled(model, img, tile=20)
    np.testing.assert_array_equal(out, img.astype(np.float32) / 255.0)


def test_valid_average_equals_mirror_filter():
    # 3x3 mean without padding; tiled with mirror extrapolation this must be
    # scipy's uniform_filter with mode="mirror" (np.pad "reflect").
    inp = keras.Input((None, None, 1))
    model = keras.Model(
        inp, layers.AveragePooling2D(3, strides=1, padding="valid")(inp)
    )
    img = _rng_image((50, 37), seed=2)
    out = predict_tiled(model, img, tile=16, batch_size=3)
    ref = ndi.uniform_filter(img.astype(np.float64) / 255.0, 3, mode="mirror")
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_tta_averages_dihedral_group():
    # A valid 3x3 conv picking the up-left neighbour. Averaged over the 8
    # rotations/flips, the up-left offset visits each diagonal neighbour twice:
    # the mean of the 4 diagonal neighbours (hand-derived kernel).
    inp = keras.Input((None, None, 1))
    conv = layers.Conv2D(1, 3, padding="valid", use_bias=False)
    model = keras.Model(inp, conv(inp))
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[0, 0] = 1.0
    conv.set_weights([kernel])
    img = _rng_image((31, 24), seed=3)
    x = img.astype(np.float64) / 255.0
    plain = predict_tiled(model, img, tile=12, tta=False, from_logits=False)
    np.testing.assert_allclose(plain, ndi.shift(np.pad(x, 1, mode="reflect"), (1, 1),
                                                order=0)[1:-1, 1:-1], atol=1e-6)
    diag = np.zeros((3, 3))
    diag[[0, 0, 2, 2], [0, 2, 0, 2]] = 0.25
    ref = ndi.correlate(x, diag, mode="mirror")
    out = predict_tiled(model, img, tile=12, tta=True, from_logits=False)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert len(DIHEDRAL) == 8 and len(set(DIHEDRAL)) == 8


def test_logits_model_gets_sigmoid():
    inp = keras.Input((None, None, 1))
    conv = layers.Conv2D(1, 1, use_bias=False, name="output")  # linear: logits
    model = keras.Model(inp, conv(inp))
    conv.set_weights([np.full((1, 1, 1, 1), 4.0, np.float32)])
    img = _rng_image((20, 20), seed=4)
    out = predict_tiled(model, img, tile=8)
    ref = 1.0 / (1.0 + np.exp(-4.0 * img / 255.0))
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_valid_unet_tiled_equals_whole_image():
    model = _tiny_unet("valid", depth=2, filters=4)
    assert model_stride(model) == 4
    # n -> a = (n - 4) / 2 -> b = (a - 4) / 2 -> c = b - 4 -> out = 4 c - 12:
    # 60 -> 20, 140 -> 100 (context 20); sizes with odd poolings are refused.
    assert check_tile(model, 60) == 20
    img = _rng_image((100, 84), seed=5)
    context = 20
    padded = np.pad(img, context, mode="reflect").astype(np.float32) / 255.0
    whole = model.predict_on_batch(padded[None, :, :, None])[0, :, :, 0]
    assert whole.shape == img.shape
    tiled = predict_tiled(model, img, tile=60, batch_size=4)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_same_unet_tiled_close_to_whole_image():
    model = _tiny_unet("same", depth=2, filters=4, seed=1)
    img = _rng_image((96, 96), seed=6)
    img = ndi.gaussian_filter(img.astype(float), 2).astype(np.uint8)  # smoother
    whole = model.predict_on_batch(img[None, :, :, None] / 255.0)[0, :, :, 0]
    tiled = predict_tiled(model, img, tile=48, margin=8)
    diff = np.abs(tiled - whole)
    # same padding: the tile borders differ from the whole image's context,
    # the discarded 8 px margin (> receptive field radius / 2) keeps it small.
    assert diff[8:-8, 8:-8].max() < 0.02
    assert diff.mean() < 0.005


def test_bad_inputs_and_tiles_raise_clear_errors():
    model = _tiny_unet("valid", depth=2, filters=4)
    with pytest.raises(ValueError, match="uint8"):
        predict_tiled(model, np.zeros((100, 100), np.float32), tile=60)
    with pytest.raises(ValueError, match=r"\(N, H, W\).*shape=\(1, 2, 3, 4\)"):
        predict_tiled(model, np.zeros((1, 2, 3, 4), np.uint8), tile=60)
    with pytest.raises(ValueError, match="nearest sizes that work are 60 and 64"):
        predict_tiled(model, np.zeros((100, 100), np.uint8), tile=62)
    inp = keras.Input((32, 32, 1))
    fixed = keras.Model(inp, layers.Identity()(inp))
    with pytest.raises(ValueError, match="fixed input size 32"):
        predict_tiled(fixed, np.zeros((40, 40), np.uint8), tile=16)
    # default tile = the fixed input size
    out = predict_tiled(fixed, np.full((40, 40), 51, np.uint8))
    np.testing.assert_allclose(out, 0.2, atol=1e-7)


def test_library_valid_unet_fixed_tile_equals_whole_image():
    # keras_unets.models.build_unet with valid padding needs a fixed tile:
    # a 60 px tile model and a 140 px whole-image model with the same weights
    # (unet_output_size: 60 -> 20, 140 -> 100; context 20 px each side).
    from keras_unets.models import build_unet, unet_output_size

    assert unet_output_size(60, depth=2) == 20 and unet_output_size(140, depth=2) == 100
    kw = dict(padding="valid", depth=2, filters=4, dropout=0.0)
    keras.utils.set_random_seed(3)
    tile_model = build_unet(input_shape=(60, 60, 1), **kw)
    whole_model = build_unet(input_shape=(140, 140, 1), **kw)
    whole_model.set_weights(tile_model.get_weights())
    img = _rng_image((100, 100), seed=7)
    padded = np.pad(img, 20, mode="reflect").astype(np.float32) / 255.0
    whole = whole_model.predict_on_batch(padded[None, :, :, None])[0, :, :, 0]
    tiled = predict_tiled(tile_model, img)  # default tile: the fixed 60 px
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_model_stride_of_library_models():
    from keras_unets.models import get_model

    assert model_stride(get_model("unet", filters=4)) == 16
    assert model_stride(get_model("unet", filters=4, depth=3)) == 8
    assert model_stride(get_model("unetpp_ds", filters=4)) == 16
    assert model_stride(get_model("unet3p", filters=4, depth=2)) == 4
    assert model_stride(_identity_model()) == 1


def test_several_outputs_share_tiles_and_equal_single_predictions():
    # UNet++ with deep supervision: its heads have one size
    from keras_unets.models import get_model

    model = get_model("unetpp_ds", filters=4, depth=3)
    names = list(model.output_names)
    assert len(names) == 3
    img = _rng_image((2, 45, 38), seed=7)
    tile = 24
    both = predict_tiled(model, img, tile=tile, output=names[::-1], tta=True)
    assert list(both) == names[::-1]
    for name in names:
        single = predict_tiled(model, img, tile=tile, output=name, tta=True)
        assert both[name].shape == img.shape and both[name].dtype == np.float32
        np.testing.assert_array_equal(both[name], single)
    assert not np.allclose(both[names[0]], both[names[-1]])
    # a 2D image keeps its rank per output
    assert predict_tiled(model, img[0], tile=tile, output=names)[names[1]].shape == (45, 38)
    with pytest.raises(ValueError, match=r"output=\[\] names no output"):
        predict_tiled(model, img, tile=tile, output=[])


def test_several_outputs_of_different_sizes_are_refused():
    inp = keras.Input((None, None, 1))
    a = layers.Conv2D(1, 3, padding="valid", name="small")(inp)
    b = layers.Conv2D(1, 1, name="big")(inp)
    model = keras.Model(inp, [a, b])
    with pytest.raises(ValueError, match=r"cannot share tiles: \{'small': 14, 'big': 16\}"):
        predict_tiled(model, _rng_image((20, 20)), tile=16, output=["small", "big"])


# ------------------------------------------------ tiling helpers (pure numpy)
def test_tiling_doctests():
    import doctest

    from keras_unets.inference import tiling

    failures, tried = doctest.testmod(tiling)
    assert tried >= 4 and failures == 0


def test_mirror_pad_colour_equals_per_channel_and_dihedral_inverts():
    from keras_unets.inference.tiling import dihedral, mirror_pad, transformed_shape, undo_dihedral

    img = _rng_image((5, 7, 3), seed=2)
    pad = ((3, 12), (2, 9))  # larger than the image: reflected again and again
    padded = mirror_pad(img, pad)
    assert padded.shape == (20, 18, 3)
    for c in range(3):
        np.testing.assert_array_equal(padded[..., c], np.pad(img[..., c], pad, mode="reflect"))
    # independent reference: scipy's "mirror" mode is numpy's "reflect"
    np.testing.assert_array_equal(padded[3:8, 2:9], img)
    for t in DIHEDRAL:
        moved = dihedral(img, t)
        assert moved.shape[:2] == transformed_shape(img.shape[:2], t)
        np.testing.assert_array_equal(undo_dihedral(moved, t), img)
    assert len({dihedral(img[..., 0], t).tobytes() for t in DIHEDRAL}) == 8


# ---------------------------------------- channels in, K channels out, lists
def _rgb_identity_model():
    inp = keras.Input((None, None, 3))
    return keras.Model(inp, layers.Identity(name="output")(inp))


def test_colour_images_and_k_channel_outputs_stitch_exactly():
    model = _rgb_identity_model()
    img = _rng_image((37, 29, 3), seed=5)
    expected = img.astype(np.float32) / 255.0
    one = predict_tiled(model, img, tile=8, margin=1, align=2)  # (H, W, C): one image
    assert one.shape == (37, 29, 3) and one.dtype == np.float32
    np.testing.assert_array_equal(one, expected)
    stack = np.stack([img, img[::-1]])
    both = predict_tiled(model, stack, tile=8, margin=1, align=2, tta=True)
    assert both.shape == (2, 37, 29, 3)
    np.testing.assert_allclose(both[1], expected[::-1], atol=1e-7)


def test_softmax_probabilities_are_averaged_over_tta():
    # valid 3x3 convolution, 3 logits per pixel: each transform's tiles equal a
    # whole-image pass on the mirror-padded transformed image (exact for valid models)
    from keras_unets.inference.tiling import dihedral, undo_dihedral

    keras.utils.set_random_seed(4)
    inp = keras.Input((None, None, 1))
    model = keras.Model(inp, layers.Conv2D(3, 3, padding="valid", name="output")(inp))
    img = _rng_image((19, 23), seed=6)
    out = predict_tiled(model, img, tile=10, tta=True)  # linear output: softmax applied
    assert out.shape == (19, 23, 3)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-6)

    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    probs, logits = [], []
    for t in DIHEDRAL:
        x = np.pad(dihedral(img, t), 1, mode="reflect").astype(np.float32)[None, ..., None] / 255
        z = np.asarray(model.predict_on_batch(x))[0]
        probs.append(undo_dihedral(softmax(z), t))
        logits.append(undo_dihedral(z, t))
    np.testing.assert_allclose(out, np.mean(probs, axis=0), atol=1e-6)
    assert not np.allclose(out, softmax(np.mean(logits, axis=0)), atol=1e-4)


def test_library_multiclass_rgb_unet_any_size():
    from keras_unets.models import build_unet

    keras.utils.set_random_seed(0)
    model = build_unet(filters=4, depth=2, num_classes=3, input_channels=3, dropout=0.0)
    image = _rng_image((13, 22, 3), seed=0)
    probs = predict_tiled(model, image)
    assert probs.shape == (13, 22, 3)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    # one whole-image tile (24 px, a multiple of the stride 4): a direct run on
    # the image mirror-padded at its end, cropped back
    padded = np.pad(image, ((0, 11), (0, 2), (0, 0)), mode="reflect")
    direct = np.asarray(model.predict_on_batch(padded[None].astype(np.float32) / 255.0))[0]
    np.testing.assert_allclose(probs, direct[:13, :22], atol=1e-6)
    # a binary output of a colour model keeps (N, H, W)
    binary = build_unet(filters=4, depth=2, num_classes=1, input_channels=3, dropout=0.0)
    assert predict_tiled(binary, np.stack([image, image]), tile=16).shape == (2, 13, 22)
    with pytest.raises(ValueError, match="uint8"):
        predict_tiled(model, image.astype(np.float32))


def test_channel_mismatch_is_refused_with_the_channels():
    grey = _identity_model()
    with pytest.raises(ValueError, match=r"\(N, H, W\).*shape=\(2, 9, 9, 3\).*3 channels"):
        predict_tiled(grey, np.zeros((2, 9, 9, 3), np.uint8), tile=8)
    colour = _rgb_identity_model()
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*3-channel model.*shape=\(2, 9, 9, 1\)"):
        predict_tiled(colour, np.zeros((2, 9, 9, 1), np.uint8), tile=8)
    with pytest.raises(ValueError, match=r"Image 1 must be \(H, W, 3\).*shape=\(9, 9\)"):
        predict_images(colour, [np.zeros((9, 9, 3), np.uint8), np.zeros((9, 9), np.uint8)])
    with pytest.raises(ValueError, match="at least one image"):
        predict_images(grey, [])


def test_predict_images_of_different_sizes_equal_single_predictions():
    model = _tiny_unet("same", depth=2, filters=4, seed=2)
    images = [_rng_image(s, seed=i) for i, s in enumerate([(40, 24), (5, 7), (40, 24), (1, 30)])]
    out = predict_images(model, images, tile=16, tta=True)
    assert [o.shape for o in out] == [(40, 24), (5, 7), (40, 24), (1, 30)]
    for image, pred in zip(images, out):
        assert pred.dtype == np.float32
        np.testing.assert_array_equal(pred, predict_tiled(model, image, tile=16, tta=True))
    # an image smaller than the tile sees its mirror images as context
    small = predict_images(_identity_model(), [images[1]], tile=16)[0]
    np.testing.assert_allclose(small, images[1] / 255.0, atol=1e-7)
