"""UNet 3+: exact counts, full-scale skips (5 inputs per node), deep supervision, CGM."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_unets.models.layers import ClassGuidance
from keras_unets.models import build_unet3p, main_output_name


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def full_plain():
    return build_unet3p(input_shape=(64, 64, 1))


def test_counts(full_plain):
    assert _trainable(full_plain) == 26_970_625
    # + moving mean/variance of 6,528 BN channels: encoder 2 x (64+...+1024)
    # = 3,968, decoder 4 x (5 x 64 + 320) = 2,560
    assert full_plain.count_params() == 26_983_681 == 26_970_625 + 2 * 6_528
    ds = build_unet3p(input_shape=(64, 64, 1), deep_supervision=True)
    assert _trainable(ds) == 26_988_485  # + 3 x (320*9+1) + (1024*9+1)
    cgm = build_unet3p(input_shape=(64, 64, 1), deep_supervision=True, cgm=True)
    assert _trainable(cgm) == 26_990_535  # + 1024*2 + 2


def test_full_scale_skips_five_inputs_of_64_channels(full_plain):
    model = full_plain
    for d in range(1, 5):
        layer = model.get_layer(f"hd{d}_concat")
        inputs = layer.input
        assert len(inputs) == 5, d
        assert all(t.shape[-1] == 64 for t in inputs)
        assert layer.output.shape[-1] == 320
        expected_sources = ([f"hd{d}_from_e{k}" for k in range(1, d + 1)]
                            + [f"hd{d}_from_hd{k}" for k in range(d + 1, 6)])
        assert [t is model.get_layer(f"{s}_relu").output
                for t, s in zip(inputs, expected_sources)] == [True] * 5
        for k in range(1, d):  # shallower encoder maps: max-pooled by 2^(d-k)
            pool = model.get_layer(f"hd{d}_from_e{k}_pool")
            assert pool.pool_size == (2 ** (d - k),) * 2
            assert pool.input is model.get_layer(f"e{k}_relu2").output
        for k in range(d + 1, 6):  # deeper decoder maps: bilinear x 2^(k-d)
            up = model.get_layer(f"hd{d}_from_hd{k}_up")
            assert up.size == (2 ** (k - d),) * 2 and up.interpolation == "bilinear"
            src = "e5_relu2" if k == 5 else f"hd{k}_fuse_relu"
            assert up.input is model.get_layer(src).output
        fuse = model.get_layer(f"hd{d}_fuse_conv")
        assert fuse.filters == 320 and fuse.kernel_size == (3, 3)
    assert model.get_layer("output_conv").kernel_size == (3, 3)


def test_deep_supervision_heads_upsampled_to_full_size():
    model = build_unet3p(input_shape=(32, 32, 1), filters=4, depth=4, deep_supervision=True)
    assert list(model.output_names) == [f"out{k}" for k in range(1, 6)]
    assert all(s == (None, 32, 32, 1) for s in model.output_shape)
    assert "out1_up" not in {lay.name for lay in model.layers}
    for k in range(2, 6):
        assert model.get_layer(f"out{k}_up").size == (2 ** (k - 1),) * 2
    assert main_output_name(model) == "out1"


def test_cgm_outputs_and_masking():
    keras.utils.set_random_seed(0)
    model = build_unet3p(input_shape=(32, 32, 1), filters=4, depth=2,
                         deep_supervision=True, cgm=True)
    assert list(model.output_names) == ["out1", "out2", "out3", "cls"]
    assert model.output_shape[-1] == (None, 2)
    assert main_output_name(model) == "out1"
    cls_layer = model.get_layer("cls_conv")
    assert cls_layer.kernel_size == (1, 1) and cls_layer.filters == 2
    assert model.get_layer("cls_dropout").rate == 0.5
    # Each out_k is its segmentation map times argmax(cls): either equal or zero.
    x = np.random.default_rng(0).random((4, 32, 32, 1), "float32")
    probe = keras.Model(model.input, [model.get_layer("out1_seg").output,
                                       model.get_layer("out1").output,
                                       model.get_layer("cls").output])
    seg, out, cls = (keras.ops.convert_to_numpy(t) for t in probe(x, training=False))
    present = np.argmax(cls, -1) == 1
    np.testing.assert_allclose(out[present], seg[present])
    assert np.all(out[~present] == 0)


def test_class_guidance_layer_hand_values_and_no_gradient():
    layer = ClassGuidance()
    seg = tf.constant(np.full((2, 2, 2, 1), 0.7, "float32"))
    scores = tf.constant([[0.9, 0.1], [0.2, 0.8]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([seg, scores])
        out = layer([seg, scores])
        total = tf.reduce_sum(out)
    np.testing.assert_allclose(out.numpy()[0], 0.0)  # class 0 (absent) -> empty
    np.testing.assert_allclose(out.numpy()[1], 0.7)  # class 1 (present) -> unchanged
    grad = tape.gradient(total, scores)
    assert grad is None or np.all(grad.numpy() == 0)
    np.testing.assert_allclose(tape.gradient(total, seg).numpy()[:, 0, 0, 0], [0.0, 1.0])
    assert keras.layers.deserialize(keras.layers.serialize(layer)).__class__ is ClassGuidance


def test_cgm_refuses_logits_and_validation():
    with pytest.raises(ValueError, match="Received: output_activation=None"):
        build_unet3p(input_shape=(32, 32, 1), filters=4, depth=2, cgm=True,
                     output_activation=None)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 16.*Received: input_shape"):
        build_unet3p(input_shape=(40, 40, 1))
    with pytest.raises(ValueError, match="Received: cat_channels=0"):
        build_unet3p(input_shape=(32, 32, 1), cat_channels=0)


def test_generic_depth_has_depth_plus_one_inputs():
    model = build_unet3p(input_shape=(16, 16, 1), filters=4, depth=2, cat_channels=3)
    for d in (1, 2):
        layer = model.get_layer(f"hd{d}_concat")
        assert len(layer.input) == 3
        assert layer.output.shape[-1] == 9


def _assert_same_function(paper, other, seed):
    """``other`` with ``paper``'s weights: the same outputs, and BCE gradients (TF)."""
    other.set_weights(paper.get_weights())
    x = np.random.default_rng(seed).random((2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(other(x, training=False), paper(x, training=False), atol=1e-5)
    y = (x > 0.5).astype("float32")
    grads = []
    for model in (paper, other):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(y, model(x, training=True)))
        grads.append(tape.gradient(loss, model.trainable_variables))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_factorize_skips_is_the_paper_order_without_up_sampled_maps():
    # same weights, outputs and gradients as the paper's order; no
    # full-resolution wide map in the graph (no _up layers)
    # float32 gradients through training-mode BN amplify the two orders'
    # rounding differently for different weights: fixed weights, whatever
    # ran before (in float64 they agree to 5e-9)
    keras.utils.set_random_seed(0)
    kw = dict(input_shape=(32, 32, 1), filters=4, depth=3, cat_channels=3)
    paper = build_unet3p(**kw)
    fac = build_unet3p(factorize_skips=True, **kw)
    assert [tuple(w.shape) for w in fac.weights] == [tuple(w.shape) for w in paper.weights]
    assert not any(layer.name.endswith("_up") and "_from_hd" in layer.name
                   for layer in fac.layers)
    conv = fac.get_layer("hd1_from_hd4_conv")
    assert type(conv).__name__ == "UpsampleConv2D" and conv.upsample == 8
    assert conv.factorized
    _assert_same_function(paper, fac, seed=2)


def test_factorize_skips_without_batch_norm_fuses_the_relu():
    kw = dict(input_shape=(16, 16, 1), filters=4, depth=2, cat_channels=3, batch_norm=False)
    paper, fac = build_unet3p(**kw), build_unet3p(factorize_skips=True, **kw)
    for m in (paper, fac):
        assert m.get_layer("hd1_from_hd3_conv").activation.__name__ == "relu"
        assert m.get_layer("hd1_from_e1_conv").activation.__name__ == "relu"
        assert not any(layer.name.endswith("_relu") and "_from_" in layer.name
                       for layer in m.layers)
    fac.set_weights(paper.get_weights())
    x = np.random.default_rng(3).random((2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(fac(x), paper(x), atol=1e-5)


def test_factorize_skips_validation():
    kw = dict(input_shape=(32, 32, 1), filters=4, depth=2)
    with pytest.raises(ValueError, match="`factorize_skips` must be True or False"):
        build_unet3p(factorize_skips="yes", **kw)
