"""UNet++: exact counts, dense skip pathways, pruning with shared weights, accurate mode."""
import keras
import numpy as np
import pytest

from keras_unets.models import (
    average_heads,
    build_unetpp,
    main_output_name,
    prune_unetpp,
)


@pytest.fixture(scope="module")
def full_ds():
    """Paper-size UNet++ with deep supervision (built, never run)."""
    return build_unetpp(input_shape=(64, 64, 1), deep_supervision=True)


def test_counts_without_and_with_deep_supervision(full_ds):
    assert build_unetpp(input_shape=(64, 64, 1)).count_params() == 9_041_601
    # + 3 extra 1x1 heads of 32 + 1 weights
    assert full_ds.count_params() == 9_041_700 == 9_041_601 + 3 * 33
    assert list(full_ds.output_names) == ["out1", "out2", "out3", "out4"]


@pytest.mark.parametrize("level, count", [(1, 100_961), (2, 511_105),
                                          (3, 2_204_961), (4, 9_041_601)])
def test_pruned_counts(full_ds, level, count):
    assert prune_unetpp(full_ds, level).count_params() == count


def test_every_node_concatenates_j_plus_1_inputs(full_ds):
    model = full_ds
    concats = [lay for lay in model.layers if isinstance(lay, keras.layers.Concatenate)]
    assert len(concats) == 10  # nodes X^{i,j}, j >= 1, i + j <= 4
    for i in range(5):
        for j in range(1, 5 - i):
            layer = model.get_layer(f"x{i}_{j}_concat")
            inputs = layer.input
            assert len(inputs) == j + 1, (i, j)
            # [U(X^{i+1,j-1}), X^{i,0}, ..., X^{i,j-1}] in the official order
            up = model.get_layer(f"x{i}_{j}_up")
            assert inputs[0] is up.output
            assert up.input is model.get_layer(f"x{i + 1}_{j - 1}_drop2").output
            for k in range(j):
                assert inputs[k + 1] is model.get_layer(f"x{i}_{k}_drop2").output
    # heads on X^{0,1..4}
    for j in range(1, 5):
        assert model.get_layer(f"out{j}_conv").input is model.get_layer(f"x0_{j}_drop2").output


def test_units_follow_official_code(full_ds):
    conv = full_ds.get_layer("x1_2_conv1")
    assert conv.filters == 64 and conv.kernel_size == (3, 3)
    assert conv.activation.__name__ == "relu"
    assert isinstance(conv.kernel_regularizer, keras.regularizers.L2)
    assert conv.kernel_regularizer.l2 == pytest.approx(1e-4)
    assert full_ds.get_layer("x1_2_drop1").rate == 0.5
    up = full_ds.get_layer("x1_2_up")
    assert isinstance(up, keras.layers.Conv2DTranspose) and up.strides == (2, 2)
    assert up.activation.__name__ == "linear"
    assert not any(isinstance(lay, keras.layers.BatchNormalization) for lay in full_ds.layers)


def test_l2_penalty_value():
    model = build_unetpp(input_shape=(16, 16, 1), filters=2, depth=1)
    # one L2 loss per regularised kernel: 2 units x 2 convs... 3 nodes x 2 + head
    assert len(model.losses) == 3 * 2 + 1
    kernel = model.get_layer("x0_0_conv1").kernel
    expected = 1e-4 * float(np.sum(keras.ops.convert_to_numpy(kernel) ** 2))
    got = sorted(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    assert any(abs(g - expected) < 1e-9 for g in got)


def test_pruned_models_share_weights():
    keras.utils.set_random_seed(0)
    model = build_unetpp(input_shape=(16, 16, 1), filters=2, depth=3, deep_supervision=True)
    l1 = prune_unetpp(model, 1)
    l2 = prune_unetpp(model, 2)
    names = {lay.name for lay in l1.layers}
    # L1 keeps X^{0,0}, X^{1,0}, X^{0,1} and head 1 only
    assert not any(n.startswith(("x2_", "x0_2", "x1_1", "out2", "out3")) for n in names)
    assert "out1" in names and l1.output_names == ["output"]
    # same variable objects
    assert l1.get_layer("x0_0_conv1") is model.get_layer("x0_0_conv1")
    assert l2.get_layer("x1_1_conv1").kernel is model.get_layer("x1_1_conv1").kernel
    # changing the parent changes the pruned model's prediction
    x = np.random.default_rng(0).random((1, 16, 16, 1), "float32")
    before = keras.ops.convert_to_numpy(l1(x))
    np.testing.assert_allclose(before, keras.ops.convert_to_numpy(model(x)[0]), rtol=1e-6)
    kernel = model.get_layer("out1_conv").kernel
    kernel.assign(kernel * 0.0 - 1.0)
    after = keras.ops.convert_to_numpy(l1(x))
    assert not np.allclose(before, after)
    # training the pruned model moves the parent's variables
    l1.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
               run_eagerly=True)
    w0 = keras.ops.convert_to_numpy(model.get_layer("x0_1_conv2").kernel).copy()
    l1.fit(x, np.ones_like(x), verbose=0)
    assert not np.array_equal(w0, keras.ops.convert_to_numpy(
        model.get_layer("x0_1_conv2").kernel))


def test_prune_without_deep_supervision():
    model = build_unetpp(input_shape=(16, 16, 1), filters=2, depth=2)
    assert prune_unetpp(model, 2).count_params() == model.count_params()
    with pytest.raises(ValueError, match="deep_supervision=True"):
        prune_unetpp(model, 1)
    with pytest.raises(ValueError, match="Received: level=3"):
        prune_unetpp(model, 3)


def test_average_heads_is_the_mean_and_main_output():
    keras.utils.set_random_seed(1)
    model = build_unetpp(input_shape=(16, 16, 1), filters=2, depth=2, deep_supervision=True)
    assert main_output_name(model) == "out2"
    avg = average_heads(model)
    assert avg.output_names == ["output"] and main_output_name(avg) == "output"
    x = np.random.default_rng(0).random((2, 16, 16, 1), "float32")
    heads = [keras.ops.convert_to_numpy(h) for h in model(x)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(avg(x)), np.mean(heads, 0),
                               rtol=1e-6)
    assert avg.count_params() == model.count_params()
    with pytest.raises(ValueError, match="deep-supervision"):
        average_heads(build_unetpp(input_shape=(16, 16, 1), filters=2, depth=2))


def test_validation_messages():
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 16.*96 or 112"):
        build_unetpp(input_shape=(100, 100, 1))
    with pytest.raises(ValueError, match=r"Received: deep_supervision='yes'"):
        build_unetpp(input_shape=(32, 32, 1), deep_supervision="yes")


def test_prune_and_average_a_loaded_model(tmp_path):
    model = build_unetpp(input_shape=(16, 16, 1), filters=2, depth=2, deep_supervision=True)
    model.save(tmp_path / "ds.keras")
    loaded = keras.saving.load_model(tmp_path / "ds.keras")
    for level in (1, 2):
        assert (prune_unetpp(loaded, level).count_params()
                == prune_unetpp(model, level).count_params())
    x = np.random.default_rng(0).random((1, 16, 16, 1), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(average_heads(loaded)(x)),
                               keras.ops.convert_to_numpy(average_heads(model)(x)), rtol=1e-5)
