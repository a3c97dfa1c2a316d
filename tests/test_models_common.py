"""Shared harness that every architecture runs (tiny configurations).

Shape of every output, one ``fit`` step that changes the weights, a ``.keras``
save/load round trip that reproduces the predictions, and deterministic layer
names (two builds give the same names, none auto-generated).
"""
import re

import keras
import numpy as np
import pytest

from keras_unets.models import (
    build_unet,
    build_unet3p,
    build_unetpp,
    get_model,
    main_output_name,
)

TINY = {
    "unet": lambda: build_unet(input_shape=(32, 32, 1), filters=4, depth=2),
    "unet_bn_softmax": lambda: build_unet(input_shape=(32, 32, 1), filters=4, depth=2,
                                          batch_norm=True, num_classes=3),
    # depth 2, valid padding: 60 -> 56 -> 28 -> 24 -> 12 -> 8 -> 16 -> 12 -> 24 -> 20
    "unet_valid": lambda: build_unet(input_shape=(60, 60, 1), filters=4, depth=2,
                                     padding="valid"),
    "unet_report": lambda: get_model("unet_report", input_size=32, filters=4, depth=2),
    "unetpp": lambda: build_unetpp(input_shape=(32, 32, 1), filters=4, depth=2),
    "unetpp_ds": lambda: build_unetpp(input_shape=(32, 32, 1), filters=4, depth=3,
                                      deep_supervision=True),
    "unet3p": lambda: build_unet3p(input_shape=(32, 32, 1), filters=4, depth=2,
                                   output_activation=None),
    "unet3p_ds_cgm": lambda: build_unet3p(input_shape=(32, 32, 1), filters=4, depth=2,
                                          deep_supervision=True, cgm=True),
}

EXPECTED = {  # name -> {output name: shape without batch}
    "unet": {"output": (32, 32, 1)},
    "unet_bn_softmax": {"output": (32, 32, 3)},
    "unet_valid": {"output": (20, 20, 1)},
    "unet_report": {"output": (32, 32, 1)},
    "unetpp": {"output": (32, 32, 1)},
    "unetpp_ds": {f"out{j}": (32, 32, 1) for j in (1, 2, 3)},
    "unet3p": {"output": (32, 32, 1)},
    "unet3p_ds_cgm": {**{f"out{k}": (32, 32, 1) for k in (1, 2, 3)}, "cls": (2,)},
}


def _targets(model, n, rng):
    """Random targets of the right shape for every output, keyed by output name."""
    y = {}
    for name, shape in zip(model.output_names, _output_shapes(model)):
        if name == "cls":
            y[name] = np.tile(np.array([[0.0, 1.0]], "float32"), (n, 1))
        elif shape[-1] == 1:
            y[name] = (rng.random((n,) + tuple(shape[1:])) > 0.5).astype("float32")
        else:
            idx = rng.integers(0, shape[-1], (n,) + tuple(shape[1:-1]))
            y[name] = np.eye(shape[-1], dtype="float32")[idx]
    return y


def _output_shapes(model):
    shapes = model.output_shape
    return shapes if isinstance(shapes, list) else [shapes]


def _single(model, d):
    """Single-output models take plain arrays/losses (DESIGN.md), others dicts."""
    return d[model.output_names[0]] if len(model.output_names) == 1 else d


def _predict(model, x):
    """Inference-mode outputs as a list of numpy arrays (eager: cheaper than predict)."""
    out = model(x, training=False)
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(out)]


def _losses(model):
    out = {}
    for name in model.output_names:
        layer = model.get_layer(name)
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", "")
        if act_name == "softmax":
            out[name] = "categorical_crossentropy"
        elif act_name == "linear":
            out[name] = keras.losses.BinaryCrossentropy(from_logits=True)
        else:
            out[name] = "binary_crossentropy"
    return _single(model, out)


@pytest.fixture(params=sorted(TINY))
def tiny(request):
    keras.utils.set_random_seed(0)
    return request.param, TINY[request.param]()


def test_output_shapes_and_names(tiny):
    name, model = tiny
    expected = EXPECTED[name]
    assert list(model.output_names) == list(expected)
    for out_name, shape in zip(model.output_names, _output_shapes(model)):
        assert tuple(shape) == (None,) + expected[out_name]
    assert main_output_name(model) in expected
    x = np.random.default_rng(0).random((2,) + tuple(model.input_shape[1:]), "float32")
    pred = _predict(model, x)
    for out_name, p in zip(model.output_names, pred):
        assert p.shape == (2,) + expected[out_name]
        assert np.all(np.isfinite(p))


def test_fit_one_step_changes_weights(tiny):
    name, model = tiny
    rng = np.random.default_rng(1)
    x = rng.random((2,) + tuple(model.input_shape[1:]), "float32")
    y = _single(model, _targets(model, 2, rng))
    # Eager: tracing a graph costs more than the step itself on these tiny nets;
    # the graph (and XLA) path runs in test_models_jax.py and the benchmarks.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=_losses(model),
                  run_eagerly=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    hist = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    after = [w.numpy() for w in model.trainable_weights]
    moved = {w.path for w, a, b in zip(model.trainable_weights, before, after)
             if not np.array_equal(a, b)}
    if name.endswith("cgm"):
        # The CGM mask may be 0 at initialisation, which blocks the gradient of
        # the decoder; the classification branch and the encoder always learn
        # from the "cls" loss.
        assert {"cls_conv/kernel", "e1_conv1/kernel"} <= moved, sorted(moved)
    else:
        assert len(moved) == len(before), sorted(
            w.path for w in model.trainable_weights if w.path not in moved)


def test_keras_save_load_reproduces_predictions(tiny, tmp_path):
    name, model = tiny
    x = np.random.default_rng(2).random((2,) + tuple(model.input_shape[1:]), "float32")
    # Move every weight (BN statistics and biases included) away from its
    # initial value, so that a loader that re-initialised anything would fail.
    rng = np.random.default_rng(3)
    model.set_weights([w + rng.uniform(0.0, 0.1, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    assert list(loaded.output_names) == list(model.output_names)
    assert [lay.name for lay in loaded.layers] == [lay.name for lay in model.layers]
    for a, b in zip(_predict(model, x), _predict(loaded, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


_AUTO_NAME = re.compile(
    r"^(conv2d|conv2d_transpose|batch_normalization|activation|dropout|concatenate|"
    r"max_pooling2d|up_sampling2d|cropping2d|input_layer|functional)(_\d+)?$")


@pytest.mark.parametrize("name", sorted(TINY))
def test_deterministic_layer_names(name):
    first = [layer.name for layer in TINY[name]().layers]
    second = [layer.name for layer in TINY[name]().layers]
    assert first == second
    assert len(set(first)) == len(first)
    auto = [n for n in first if _AUTO_NAME.match(n)]
    assert not auto, f"auto-generated layer names: {auto}"


# --- training-memory estimate (keras_unets.models.memory) ---
def test_memory_estimate_hand_derived():
    from keras_unets.models import estimate_training_memory

    model = build_unet(input_shape=(8, 8, 1), filters=2, depth=1)
    # Layer outputs per sample (elements): input 64, enc0_conv1 128, enc0_conv2
    # 128, enc0_pool 32, enc1_conv1 64, enc1_conv2 64, enc1_dropout 64,
    # dec0_upconv 128, dec0_concat 256, dec0_conv1 128, dec0_conv2 128,
    # output_conv 64, output 64 -> 1312.
    n = model.count_params()
    # enc0: 9*1*2+2 + 9*2*2+2 = 58; enc1: 9*2*4+4 + 9*4*4+4 = 224; up: 4*4*2+2 = 34;
    # dec0: 9*4*2+2 + 9*2*2+2 = 112; head 2+1 = 3 -> 431
    assert n == 431
    mem = estimate_training_memory(model, batch_size=3, optimizer="adam")
    assert mem == {"weights": 4 * 431, "gradients": 4 * 431, "optimizer_state": 8 * 431,
                   "activations": 1312 * 3 * 4, "total": 16 * 431 + 1312 * 12}
    sgd = estimate_training_memory(model, batch_size=1, optimizer="sgd",
                                   dtype_policy="mixed_float16")
    assert sgd["optimizer_state"] == 4 * 431 and sgd["activations"] == 1312 * 2
    plain = estimate_training_memory(model, optimizer=keras.optimizers.SGD(0.1))
    assert plain["optimizer_state"] == 0


def test_memory_estimate_counts_bn_statistics_as_weights_not_gradients():
    from keras_unets.models import estimate_training_memory

    model = build_unet3p(input_shape=(16, 16, 1), filters=2, depth=1)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    mem = estimate_training_memory(model)
    assert mem["weights"] == 4 * model.count_params()
    assert mem["gradients"] == 4 * trainable < mem["weights"]


def test_memory_estimate_errors():
    from keras_unets.models import estimate_training_memory

    with pytest.raises(ValueError, match="fixed input_shape"):
        estimate_training_memory(build_unet(filters=2, depth=1))
    model = build_unet(input_shape=(8, 8, 1), filters=2, depth=1)
    with pytest.raises(ValueError, match="Received: optimizer='lbfgs'"):
        estimate_training_memory(model, optimizer="lbfgs")
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        estimate_training_memory(model, batch_size=0)


# --- registry and CLI ---
def test_registry_names_and_errors():
    from keras_unets.models import MODEL_NAMES, get_model_info, register_model

    assert {"unet", "unet_report", "unetpp", "unetpp_ds", "unet3p", "unet3p_ds",
            "unet3p_ds_cgm"} <= set(MODEL_NAMES)
    with pytest.raises(ValueError, match="Did you mean 'unetpp'"):
        get_model("unetp")
    with pytest.raises(ValueError, match="already registered"):
        register_model("unet", build_unet)
    from keras_unets.models import registry

    register_model("tiny_test_unet", build_unet, filters=2, depth=1, overwrite=True)
    try:
        assert get_model("tiny_test_unet", input_size=8).count_params() == 431
        assert "tiny_test_unet" in MODEL_NAMES
        assert get_model_info("tiny_test_unet")["preset"] == {"filters": 2, "depth": 1}
    finally:  # leave the registry as other tests expect it
        registry._REGISTRY.pop("tiny_test_unet", None)
        MODEL_NAMES.remove("tiny_test_unet")


def test_parse_model_spec():
    from keras_unets.models import parse_model_spec

    assert parse_model_spec("unet3p_ds") == ("unet3p_ds", {})
    assert parse_model_spec("unet:upsampling=upsample_conv+filters=8+batch_norm=false") == (
        "unet", {"upsampling": "upsample_conv", "filters": 8, "batch_norm": False})
    assert parse_model_spec("unet:filters=[4,8,16,32,64]")[1] == {"filters": [4, 8, 16, 32, 64]}
    name, kw = parse_model_spec("unet3p:factorize_skips=true+filters=4+cat_channels=3")
    model = get_model(name, input_size=32, **kw)
    assert model.get_layer("hd1_from_hd5_conv").factorized
    with pytest.raises(ValueError, match="Did you mean 'unet3p'"):
        parse_model_spec("unet3:filters=4")
    with pytest.raises(ValueError, match=r"'filters' is not key=value. Received: 'unet:filters'"):
        parse_model_spec("unet:filters")
    with pytest.raises(ValueError, match="is a str"):
        parse_model_spec(None)


def test_cli_summary_and_models():
    from click.testing import CliRunner

    from keras_unets.cli import main
    from keras_unets.models import estimate_training_memory

    runner = CliRunner()
    res = runner.invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    assert "unet3p_ds_cgm" in res.output and "unet_report" in res.output
    args = ["summary", "unet", "--input-size", "8", "--set", "filters=2", "--set", "depth=1"]
    res = runner.invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    info = __import__("json").loads(res.output)
    assert info["params"] == {"total": 431, "trainable": 431, "non_trainable": 0}
    expected = estimate_training_memory(build_unet(input_shape=(8, 8, 1), filters=2, depth=1))
    assert info["memory_bytes"] == expected and info["fits_6gb"] is True
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "Fits a 6 GB card" in res.output and "431 trainable" in res.output
    res = runner.invoke(main, ["summary", "unet", "--input-size", "500"])
    assert res.exit_code != 0 and "496 or 512" in res.output
    # UNet 3+ in the paper's order as written: a pointer to the same network in
    # less memory; not for the factorized form, nor other networks
    tiny3p = ["summary", "unet3p", "--input-size", "16", "--set", "filters=2",
              "--set", "depth=2", "--set", "cat_channels=2"]
    hint = "--set factorize_skips=true computes the same network"
    res = runner.invoke(main, tiny3p)
    assert res.exit_code == 0 and hint in res.output, res.output
    res = runner.invoke(main, tiny3p + ["--set", "factorize_skips=true"])
    assert res.exit_code == 0 and hint not in res.output, res.output
    res = runner.invoke(main, args)
    assert hint not in res.output


@pytest.mark.parametrize("name", ["unet", "unetpp", "unet3p"])
def test_bn_momentum_reaches_every_batch_norm(name):
    from keras_unets.models import get_model

    kw = {"filters": 4, "batch_norm": True, "bn_momentum": 0.9}
    model = get_model(name, input_size=32, **kw)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and {layer.momentum for layer in bns} == {0.9}
    default = get_model(name, input_size=32, filters=4, batch_norm=True)
    assert {layer.momentum for layer in default.layers
            if isinstance(layer, keras.layers.BatchNormalization)} == {0.99}
    # the setting changes no weights: same parameter count either way
    assert model.count_params() == default.count_params()
    # a moving mean after one training step moves by (1 - momentum) of the gap
    x = np.full((2, 32, 32, 1), 0.5, np.float32)
    y = np.ones((2, 32, 32, 1), np.float32)
    for bn_momentum in (0.9, 0.0):
        m = get_model(name, input_size=32, filters=4, batch_norm=True,
                      bn_momentum=bn_momentum, output_activation="sigmoid")
        m.compile(optimizer="sgd", loss="binary_crossentropy")
        first = next(layer for layer in m.layers
                     if isinstance(layer, keras.layers.BatchNormalization))
        batch_mean = keras.ops.convert_to_numpy(
            keras.Model(m.input, first.input)(x)).mean(axis=(0, 1, 2))
        m.train_on_batch(x, y)
        expected = (1.0 - bn_momentum) * batch_mean
        np.testing.assert_allclose(keras.ops.convert_to_numpy(first.moving_mean), expected, rtol=1e-3, atol=1e-6)
    for bad in (1.0, -0.1, "fast", True):
        with pytest.raises(ValueError, match="bn_momentum"):
            get_model(name, input_size=32, filters=4, batch_norm=True, bn_momentum=bad)


def test_unknown_builder_argument_is_a_clear_error_through_the_cli():
    from click.testing import CliRunner

    from keras_unets.cli import main
    from keras_unets.models import get_model

    with pytest.raises(ValueError, match=r"build_unet \(model 'unet'\) has no argument filtres\. "
                                         r"Did you mean 'filters' for 'filtres'\?"):
        get_model("unet", filtres=8)
    res = CliRunner().invoke(main, ["summary", "unet", "--set", "unknown_key=1"])
    assert res.exit_code != 0 and "has no argument unknown_key" in res.output
    assert "Traceback" not in res.output
