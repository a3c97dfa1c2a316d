"""keras_unets.models.layers: BilinearUpSampling2D against Keras' own bilinear up-sampling."""
import numpy as np
import keras
import pytest

from keras_unets.models.layers import BilinearUpSampling2D
from keras_unets.models import get_model


@pytest.mark.parametrize("size", [(2, 2), (4, 4), (8, 8), (16, 16), (2, 3), (1, 4)])
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 16, 16, 4)])
def test_dynamic_path_equals_stock_bilinear(size, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    stock = keras.layers.UpSampling2D(size, interpolation="bilinear")(x)
    ours = BilinearUpSampling2D(size)
    dyn = keras.ops.convert_to_numpy(ours.call_dynamic(x))
    assert dyn.shape == (shape[0], shape[1] * size[0], shape[2] * size[1], shape[3])
    np.testing.assert_allclose(dyn, keras.ops.convert_to_numpy(stock), atol=3e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(stock), atol=3e-6)


def test_hand_values_two_pixels():
    # [0, 4] up x2: source positions -0.25, 0.25, 0.75, 1.25 -> 0, 1, 3, 4 (edges clamp)
    x = np.array([0.0, 4.0], np.float32).reshape(1, 1, 2, 1)
    out = keras.ops.convert_to_numpy(BilinearUpSampling2D((1, 2)).call_dynamic(x))
    np.testing.assert_allclose(out.ravel(), [0.0, 1.0, 3.0, 4.0], atol=1e-6)


def test_channels_first_and_config_round_trip():
    x = np.random.default_rng(1).normal(size=(1, 3, 4, 5)).astype("float32")
    layer = BilinearUpSampling2D(2, data_format="channels_first", name="up")
    stock = keras.layers.UpSampling2D(2, data_format="channels_first", interpolation="bilinear")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.call_dynamic(x)),
                               keras.ops.convert_to_numpy(stock(x)), atol=3e-6)
    clone = BilinearUpSampling2D.from_config(layer.get_config())
    assert clone.size == (2, 2) and clone.interpolation == "bilinear" and clone.name == "up"


def test_unet3p_predicts_at_several_sizes(tmp_path):
    """Regression: Keras 3.15's bilinear UpSampling2D fails on TensorFlow when
    ``predict`` retraces for a second input size (unknown H, W)."""
    model = get_model("unet3p_ds", filters=4, cat_channels=4)
    shapes = [(1, 64, 64, 1), (2, 128, 96, 1), (1, 32, 160, 1)]
    for shape in shapes:
        outs = model.predict_on_batch(np.zeros(shape, np.float32))
        for out in outs:
            assert tuple(out.shape) == shape
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).random((1, 96, 64, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict_on_batch(x)[0], model.predict_on_batch(x)[0],
                               atol=1e-5)
    assert any(isinstance(layer, BilinearUpSampling2D) for layer in loaded.layers)


def _up_then_conv(x_shape, filters, factor, kernel=3, activation=None):
    inp = keras.Input(x_shape)
    y = keras.layers.Conv2D(filters, kernel, padding="same", activation=activation)(
        BilinearUpSampling2D(factor)(inp))
    return keras.Model(inp, y)


def _upsample_conv(x_shape, filters, kernel=3, **layer_kwargs):
    """A model of one ``UpsampleConv2D`` (layer ``uc``, 'same' padding)."""
    from keras_unets.models.layers import UpsampleConv2D

    inp = keras.Input(x_shape)
    return keras.Model(inp, UpsampleConv2D(filters, kernel, padding="same", name="uc",
                                           **layer_kwargs)(inp))


def _squared_error_grads(models, x, target):
    """Each model's gradient of sum((model(x) - target)**2) w.r.t. its weights (TF)."""
    import tensorflow as tf

    grads = []
    for model in models:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum((model(x) - target) ** 2)
        grads.append(tape.gradient(loss, model.trainable_variables))
    return grads


def test_upsample_conv_equals_upsampling_then_conv():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 5)).astype("float32")
    fused = _upsample_conv((4, 4, 5), 3, upsample=4)
    assert fused.output_shape == (None, 16, 16, 3)
    assert [tuple(w.shape) for w in fused.weights] == [(3, 3, 5, 3), (3,)]
    ref = _up_then_conv((4, 4, 5), 3, 4)
    ref.set_weights(fused.get_weights())
    np.testing.assert_allclose(fused(x), ref(x), atol=1e-5)
    target = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    for a, b in zip(*_squared_error_grads((fused, ref), x, target)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("factor,kernel,activation", [
    (4, 3, None), (2, 3, "relu"), (16, 3, None), (1, 3, None), (2, 5, None), (8, 1, None)])
def test_upsample_conv_factorized_equals_upsampling_then_conv(factor, kernel, activation):
    # conv(U x, W) = sum_o shift_o(U(x W_o)): same outputs and gradients as
    # up-sampling then a 'same' conv, for any integer factor and odd kernel,
    # on a non-square input (rows and columns use their own matrices)
    keras.utils.set_random_seed(factor + kernel)  # the same weights on every run
    rng = np.random.default_rng(factor + kernel)
    x = rng.normal(size=(2, 3, 5, 6)).astype("float32")
    fac = _upsample_conv((3, 5, 6), 4, kernel, upsample=factor, factorized=True,
                         activation=activation)
    assert fac.output_shape == (None, 3 * factor, 5 * factor, 4)
    ref = _up_then_conv((3, 5, 6), 4, factor, kernel=kernel, activation=activation)
    ref.set_weights(fac.get_weights())
    np.testing.assert_allclose(fac(x), ref(x), atol=1e-5)
    target = rng.normal(size=(2, 3 * factor, 5 * factor, 4)).astype("float32")
    # float32 sums in two orders: the absolute error grows with the gradient's
    # scale (up to ~1e4 at 16x), so the tolerance does too
    for a, b in zip(*_squared_error_grads((fac, ref), x, target)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=max(1e-3, 1e-6 * float(np.abs(b).max())))


def test_upsample_conv_factorized_under_mixed_precision():
    # float16 compute (the GPU's mixed_float16 policy): float16 output, the
    # direct computation's numbers to float16 rounding
    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        fac = _upsample_conv((4, 4, 8), 4, upsample=4, factorized=True)
        ref = _up_then_conv((4, 4, 8), 4, 4)
        ref.set_weights(fac.get_weights())
        x = np.random.default_rng(4).normal(size=(2, 4, 4, 8)).astype("float32")
        got, want = fac(x), ref(x)
        assert keras.backend.standardize_dtype(got.dtype) == "float16"
        np.testing.assert_allclose(np.asarray(got, "float32"), np.asarray(want, "float32"),
                                   atol=2e-2, rtol=2e-2)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_upsample_conv_factorized_at_unknown_sizes():
    # a model built for any size (the tiled predictor's retrace) gives the
    # direct computation's numbers at each size
    fac = _upsample_conv((None, None, 3), 2, upsample=4, factorized=True)
    ref = _up_then_conv((None, None, 3), 2, 4)
    ref.set_weights(fac.get_weights())
    rng = np.random.default_rng(3)
    for shape in ((1, 4, 4, 3), (2, 3, 7, 3)):
        x = rng.normal(size=shape).astype("float32")
        got = fac.predict(x, verbose=0)
        assert got.shape == (shape[0], shape[1] * 4, shape[2] * 4, 2)
        np.testing.assert_allclose(got, ref.predict(x, verbose=0), atol=1e-5)


def test_upsample_conv_serializes_and_rejects_bad_arguments(tmp_path):
    from keras_unets.models.layers import UpsampleConv2D

    model = _upsample_conv((4, 4, 2), 3, upsample=2)
    path = tmp_path / "uc.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # registered: no custom_objects
    layer = loaded.get_layer("uc")
    assert isinstance(layer, UpsampleConv2D) and layer.upsample == 2 and not layer.factorized
    x = np.ones((1, 4, 4, 2), "float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    # layer configs saved by earlier versions hold "remat": false
    config = layer.get_config()
    assert "remat" not in config
    assert UpsampleConv2D.from_config({**config, "remat": False}).get_config() == config
    with pytest.raises(ValueError, match="'uc' was saved with remat=True"):
        UpsampleConv2D.from_config({**config, "remat": True})
    for bad in ({"upsample": 0}, {"upsample": 1.5}, {"upsample": True}):
        with pytest.raises(ValueError, match="`upsample` must be an int >= 1"):
            UpsampleConv2D(3, 3, **bad)
    with pytest.raises(ValueError, match="`factorized` must be True or False"):
        UpsampleConv2D(3, 3, factorized=1)
    for bad, said in (({"kernel_size": 2}, "odd sizes only"),
                      ({"strides": 2}, "1 only"),
                      ({"dilation_rate": 2}, "dilation_rate=(2, 2)"),
                      ({"padding": "valid"}, "'same' only"),
                      ({"data_format": "channels_first"}, "'channels_last' only")):
        kwargs = {"kernel_size": 3, "padding": "same", **bad}
        with pytest.raises(ValueError, match="plain 'same' convolution") as info:
            UpsampleConv2D(3, factorized=True, **kwargs)
        assert said in str(info.value)


def test_upsample_conv_factorized_serializes(tmp_path):
    model = _upsample_conv((4, 4, 2), 3, upsample=2, factorized=True)
    path = tmp_path / "ucf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.get_layer("uc")
    assert layer.factorized is True
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
