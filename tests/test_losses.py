"""Tests for keras_unets.losses: golden values, Keras/TF references, serialization, JAX."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_unets import losses as L

ROOT = Path(__file__).resolve().parents[1]
LN2 = np.log(2.0)


def t(values):
    """(1, 1, n, 1) float32 tensor from a list of pixel values."""
    return np.asarray(values, np.float32).reshape(1, 1, -1, 1)


def val(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def random_pair(shape=(2, 24, 24, 1), seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(shape) > 0.4).astype(np.float32)
    p = np.clip(0.7 * y + 0.3 * rng.random(shape), 0.01, 0.99).astype(np.float32)
    return y, p


# -- golden values ----------------------------------------------------------------


def test_weighted_bce_golden():
    # y = 1, p = 0.8: -ln 0.8 = 0.2231436; y = 0, p = 0.8: -ln 0.2 = 1.6094379.
    # Weights 2 and 0.5: 0.4462871 and 0.8047190; mean 0.6255030.
    per_pixel = val(L.weighted_binary_crossentropy(t([1, 0]), t([0.8, 0.8])))
    np.testing.assert_allclose(per_pixel.ravel(), [0.2231436, 1.6094379], rtol=1e-5)
    weighted = val(L.weighted_binary_crossentropy(t([1, 0]), t([0.8, 0.8]), np.array([[[2.0, 0.5]]])))
    np.testing.assert_allclose(weighted.ravel(), [0.4462871, 0.8047190], rtol=1e-5)
    assert per_pixel.shape == (1, 1, 2)
    loss = L.WeightedBinaryCrossentropy()
    assert float(loss(t([1, 0]), t([0.8, 0.8]), sample_weight=np.array([[[2.0, 0.5]]]))) == pytest.approx(0.6255030)
    # explicit weight channel: y_true[..., 0] label, y_true[..., 1] weight
    y_w = np.concatenate([t([1, 0]), t([2.0, 0.5])], axis=-1)
    assert float(L.WeightedBinaryCrossentropy(weight_channel=True)(y_w, t([0.8, 0.8]))) == pytest.approx(0.6255030)


def test_bce_from_logits_golden():
    # x = 0: ln 2 whatever y; x = 2, y = 1: ln(1 + e^-2) = 0.1269280;
    # x = -3, y = 1: 3 + ln(1 + e^-3) = 3.0485874; x = 100, y = 0: 100 (no overflow).
    out = val(L.binary_crossentropy_from_logits(t([0, 1, 1, 0]), t([0, 2, -3, 100]))).ravel()
    np.testing.assert_allclose(out, [LN2, 0.1269280, 3.0485874, 100.0], rtol=1e-5)
    assert float(L.BinaryCrossentropyFromLogits()(t([1]), t([0.0]))) == pytest.approx(LN2)


def test_dice_and_bce_dice_golden():
    # y = [1, 1, 0, 0], p = [1, .5, .5, 0]: I = 1.5, sum y = 2, sum p = 2,
    # Dice = (2 * 1.5 + 1) / (2 + 2 + 1) = 0.8. BCE per pixel ~[0, ln2, ln2, 0]
    # (p clipped to [1e-7, 1 - 1e-7]), mean = ln2 / 2 = 0.3465736.
    # Ours: 0.5 * 0.3465736 + (1 - 0.8) = 0.3732868; the official
    # 0.5 * BCE - Dice = -0.6267132, i.e. ours - 1.
    y, p = t([1, 1, 0, 0]), t([1, 0.5, 0.5, 0])
    assert float(L.dice_coefficient(y, p)) == pytest.approx(0.8)
    assert float(L.BCEDiceLoss()(y, p)) == pytest.approx(0.3732868, abs=1e-6)
    official = 0.5 * float(keras.losses.binary_crossentropy(y, p).numpy().mean()) - float(L.dice_coefficient(y, p))
    assert official == pytest.approx(0.3732868 - 1.0, abs=1e-6)
    # Dice is over the flattened batch, not per image: splitting the batch changes nothing
    y2, p2 = random_pair((3, 8, 8, 1))
    flat = L.dice_coefficient(y2.reshape(1, 1, -1, 1), p2.reshape(1, 1, -1, 1))
    assert float(L.dice_coefficient(y2, p2)) == pytest.approx(float(flat))


def test_focal_and_iou_golden():
    # y = 1, p = 0.8: p_t = 0.8, (1 - p_t)^2 = 0.04, BCE 0.2231436, alpha 0.25 -> 0.0022314
    # y = 0, p = 0.8: p_t = 0.2, 0.8^2 = 0.64, BCE 1.6094379, 1 - alpha = 0.75 -> 0.7725302
    out = val(L.binary_focal_loss(t([1, 0]), t([0.8, 0.8]))).ravel()
    np.testing.assert_allclose(out, [0.0022314, 0.7725302], rtol=1e-4)
    out = val(L.binary_focal_loss(t([1, 0]), t([0.8, 0.8]), alpha=None, gamma=0.0)).ravel()
    np.testing.assert_allclose(out, [0.2231436, 1.6094379], rtol=1e-5)  # gamma 0, no alpha = BCE
    # IoU: I = 1.5, U = 2 + 2 - 1.5 = 2.5, IoU = 0.6, loss 0.4
    assert float(val(L.iou_loss(t([1, 1, 0, 0]), t([1, 0.5, 0.5, 0])))[0]) == pytest.approx(0.4, abs=1e-6)
    # per image: the second image is perfect
    y = np.stack([t([1, 1, 0, 0])[0], t([1, 0, 1, 0])[0]])
    p = np.stack([t([1, 0.5, 0.5, 0])[0], t([1, 0, 1, 0])[0]])
    np.testing.assert_allclose(val(L.iou_loss(y, p)), [0.4, 0.0], atol=1e-6)


def test_ms_ssim_scales_for_small_images():
    # scale j sees floor(n / 2^j) px and needs >= 11: 176 -> 176, 88, 44, 22, 11 (5 scales);
    # 175 -> ..., 21, 10 (4); 64 -> 64, 32, 16, 8 (3); 16 -> 16, 8 (1); below 11 the window shrinks.
    assert L.msssim_scales(176, 176) == (5, 11)
    assert L.msssim_scales(175, 300) == (4, 11)
    assert L.msssim_scales(64, 64) == (3, 11)
    assert L.msssim_scales(16, 20) == (1, 11)
    assert L.msssim_scales(8, 9) == (1, 8)
    y, p = random_pair((2, 8, 9, 1))
    out = val(L.ms_ssim(y, p))
    assert out.shape == (2,) and np.isfinite(out).all()


def test_ms_ssim_identity_and_against_tensorflow():
    import tensorflow as tf

    y, p = random_pair((2, 176, 176, 1), seed=1)
    p = tf.nn.avg_pool2d(p, 3, 1, "SAME").numpy()  # smoother prediction, SSIM well above 0
    np.testing.assert_allclose(val(L.ms_ssim(y, y)), [1.0, 1.0], atol=1e-5)
    ref = tf.image.ssim_multiscale(y, p, 1.0, filter_size=11, filter_sigma=1.5).numpy()
    np.testing.assert_allclose(val(L.ms_ssim(y, p)), ref, rtol=2e-4)
    # three scales on 64x64: the first three weights rescaled to the full sum
    w = np.array(L.MSSSIM_WEIGHTS[:3]) * (sum(L.MSSSIM_WEIGHTS) / sum(L.MSSSIM_WEIGHTS[:3]))
    ref3 = tf.image.ssim_multiscale(y[:, :64, :64], p[:, :64, :64], 1.0, power_factors=w.tolist()).numpy()
    np.testing.assert_allclose(val(L.ms_ssim(y[:, :64, :64], p[:, :64, :64])), ref3, rtol=2e-4)
    # one scale = SSIM (to the power of the weights' sum, 1.0001)
    ref1 = tf.image.ssim(y[:, :16, :20], p[:, :16, :20], 1.0).numpy()
    np.testing.assert_allclose(val(L.ms_ssim(y[:, :16, :20], p[:, :16, :20])), ref1 ** sum(L.MSSSIM_WEIGHTS),
                               rtol=2e-4)
    # channels are averaged
    two = np.concatenate([y[:, :64, :64], y[:, :64, :64]], axis=-1)
    two_p = np.concatenate([p[:, :64, :64], y[:, :64, :64]], axis=-1)
    np.testing.assert_allclose(val(L.ms_ssim(two, two_p)), (val(L.ms_ssim(y[:, :64, :64], p[:, :64, :64])) + 1) / 2,
                               rtol=1e-5)


def test_hybrid_is_the_sum_of_its_terms():
    y, p = random_pair((2, 32, 32, 1))
    hybrid = float(L.UNet3PlusHybridLoss()(y, p))
    focal = float(np.mean(val(L.binary_focal_loss(y, p))))
    msssim = float(np.mean(1 - val(L.ms_ssim(y, p))))
    iou = float(np.mean(val(L.iou_loss(y, p))))
    assert hybrid == pytest.approx(focal + msssim + iou, rel=1e-5)
    logits = np.log(p / (1 - p))
    assert float(L.UNet3PlusHybridLoss(from_logits=True)(y, logits)) == pytest.approx(hybrid, rel=1e-4)


def test_ms_ssim_gradient_is_finite():
    import tensorflow as tf

    y, _ = random_pair((2, 32, 32, 1))
    for value in (0.5, 0.0, 1.0):
        p = tf.Variable(np.full(y.shape, value, np.float32))
        with tf.GradientTape() as tape:
            loss = L.UNet3PlusHybridLoss()(y, p)
        grad = tape.gradient(loss, p)
        assert np.isfinite(loss.numpy()) and np.isfinite(grad.numpy()).all(), value


# -- references -----------------------------------------------------------------


def test_matches_keras_binary_crossentropy():
    y, p = random_pair()
    w = np.random.default_rng(3).uniform(0.5, 3, y.shape[:-1]).astype(np.float32)
    ours = float(L.WeightedBinaryCrossentropy()(y, p))
    assert ours == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)), rel=1e-5)
    ours_w = float(L.WeightedBinaryCrossentropy()(y, p, sample_weight=w))
    assert ours_w == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p, sample_weight=w)), rel=1e-5)
    channel = np.concatenate([y, w[..., None]], axis=-1)
    assert float(L.WeightedBinaryCrossentropy(weight_channel=True)(channel, p)) == pytest.approx(ours_w, rel=1e-5)
    logits = np.log(p / (1 - p))
    ref = float(keras.losses.BinaryCrossentropy(from_logits=True)(y, logits))
    assert float(L.BinaryCrossentropyFromLogits()(y, logits)) == pytest.approx(ref, rel=1e-5)
    focal_ref = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0)(y, p)
    assert float(L.BinaryFocalLoss()(y, p)) == pytest.approx(float(focal_ref), rel=1e-5)


# -- serialization ------------------------------------------------------------------

LOSSES = [
    L.WeightedBinaryCrossentropy(weight_channel=False, from_logits=False, name="wbce"),
    L.BinaryCrossentropyFromLogits(),
    L.BCEDiceLoss(smooth=2.0, bce_weight=0.25),
    L.BinaryFocalLoss(alpha=None, gamma=1.5),
    L.MSSSIMLoss(filter_size=7, power_factors=[0.5, 0.5]),
    L.IoULoss(smooth=0.5),
    L.UNet3PlusHybridLoss(alpha=0.5, gamma=1.0, filter_sigma=1.0),
]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: type(loss).__name__)
def test_serialization_round_trip(loss):
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"].startswith("keras_unets>")
    clone = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
    y, p = random_pair((1, 32, 32, 1))
    assert float(clone(y, p)) == pytest.approx(float(loss(y, p)), rel=1e-6)


def _tiny_model(names=None):
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    if names:
        outputs = {n: keras.layers.Conv2D(1, 1, activation="sigmoid", name=n)(h) for n in names}
    else:
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="output")(h)
    return keras.Model(inputs, outputs)


def test_saved_model_keeps_the_loss(tmp_path):
    x, y = random_pair((2, 16, 16, 1))
    model = _tiny_model()
    model.compile(optimizer="adam", loss=L.UNet3PlusHybridLoss(gamma=1.5))
    model.fit(x, y, epochs=1, verbose=0)
    before = model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, L.UNet3PlusHybridLoss) and loaded.loss.gamma == 1.5
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-5)
    # deep supervision: one loss per named output, equal weights
    names = ["out1", "out2"]
    model = _tiny_model(names)
    loss, weights = L.deep_supervision_losses(model, L.BCEDiceLoss())
    model.compile(optimizer="adam", loss=loss, loss_weights=weights)
    model.fit(x, {n: y for n in names}, epochs=1, verbose=0)
    model.save(tmp_path / "ds.keras")
    loaded = keras.saving.load_model(tmp_path / "ds.keras")
    a = model.evaluate(x, {n: y for n in names}, verbose=0)
    b = loaded.evaluate(x, {n: y for n in names}, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_deep_supervision_weights():
    loss, weights = L.deep_supervision_losses(["out1", "out2", "out3"], "binary_crossentropy", weights=[1, 2, 1],
                                              normalize=True)
    assert loss == {"out1": "binary_crossentropy", "out2": "binary_crossentropy", "out3": "binary_crossentropy"}
    assert weights == {"out1": 0.25, "out2": 0.5, "out3": 0.25}
    shared = L.BCEDiceLoss()
    loss, weights = L.deep_supervision_losses(["a", "b"], shared, weights={"a": 0.3, "b": 0.7})
    assert loss["a"] is not loss["b"] and loss["a"] is not shared and loss["a"].get_config() == shared.get_config()
    assert weights == {"a": 0.3, "b": 0.7}
    with pytest.raises(ValueError, match="one value per output"):
        L.deep_supervision_losses(["a", "b"], shared, weights=[1])
    with pytest.raises(ValueError, match="lacks outputs"):
        L.deep_supervision_losses(["a", "b"], shared, weights={"a": 1})
    with pytest.raises(ValueError, match="distinct"):
        L.deep_supervision_losses(["a", "a"], shared)


# -- JAX backend ------------------------------------------------------------------

JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from keras_unets import losses as L
    assert keras.backend.backend() == "jax"
    data = np.load(sys.argv[1])
    y, p, w = data["y"], data["p"], data["w"]
    out = {
        "wbce": float(L.WeightedBinaryCrossentropy()(y, p, sample_weight=w)),
        "logits": float(L.BinaryCrossentropyFromLogits()(y, np.log(p / (1 - p)))),
        "bce_dice": float(L.BCEDiceLoss()(y, p)),
        "hybrid": float(L.UNet3PlusHybridLoss()(y, p)),
        "ms_ssim": float(L.MSSSIMLoss()(y, p)),
    }
    print("RESULT" + json.dumps(out))
    """
)


def test_losses_on_jax_backend(tmp_path):
    y, p = random_pair((2, 64, 64, 1), seed=4)
    w = np.random.default_rng(5).uniform(0.5, 3, y.shape[:-1]).astype(np.float32)
    np.savez(tmp_path / "data.npz", y=y, p=p, w=w)
    script = tmp_path / "jax_losses.py"
    script.write_text(JAX_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "data.npz")], capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    expected = {
        "wbce": float(L.WeightedBinaryCrossentropy()(y, p, sample_weight=w)),
        "logits": float(L.BinaryCrossentropyFromLogits()(y, np.log(p / (1 - p)))),
        "bce_dice": float(L.BCEDiceLoss()(y, p)),
        "hybrid": float(L.UNet3PlusHybridLoss()(y, p)),
        "ms_ssim": float(L.MSSSIMLoss()(y, p)),
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4), key
