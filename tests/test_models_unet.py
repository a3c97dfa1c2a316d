"""U-Net builder: exact parameter counts, structure, tile-size helpers, validation."""
import keras
import numpy as np
import pytest

from keras_unets.models import (
    build_unet,
    get_model,
    nearest_valid_input_sizes,
    unet_output_size,
    valid_input_sizes,
)


# --- exact parameter counts (official Caffe prototxt; full size, built, not run) ---
def test_paper_count_same_and_valid_padding():
    # Hand derivation: 18 unit convs sum_l 9*(c_in*c_out) + c_out, 4 up-convs
    # 4*c_in*c_out + c_out, 1x1 head 64 + 1 -> 31,030,593.
    same = build_unet(input_shape=(64, 64, 1))
    valid = build_unet(input_shape=(572, 572, 1), padding="valid")
    assert same.count_params() == 31_030_593
    assert valid.count_params() == 31_030_593
    assert valid.output_shape == (None, 388, 388, 1)


def test_paper_count_two_class_softmax():
    model = build_unet(input_shape=(64, 64, 1), num_classes=2)
    assert model.count_params() == 31_030_658  # 31,030,593 - 65 + 2 * 65
    assert model.get_layer("output").activation.__name__ == "softmax"


def test_report_preset_count_and_layers():
    model = get_model("unet_report", input_size=64)
    assert model.count_params() == 31_031_685
    # zhixuhao/unet: UpSampling2D + 2x2 conv + ReLU; dropout after the 512 and
    # 1024 blocks; extra 3x3 conv to 2 channels; the 512 skip is the dropped map.
    assert model.get_layer("dec3_upsample").__class__.__name__ == "UpSampling2D"
    up = model.get_layer("dec3_upconv")
    assert up.kernel_size == (2, 2) and up.activation.__name__ == "relu"
    assert {"enc3_dropout", "enc4_dropout"} <= {lay.name for lay in model.layers}
    concat = model.get_layer("dec3_concat")
    assert concat.input[0] is model.get_layer("enc3_dropout").output
    assert model.get_layer("head_conv").filters == 2


def test_unetpp_paper_baseline_count():
    assert get_model("unet_unetpp_baseline", input_size=64).count_params() == 7_759_521


def test_paper_has_23_conv_layers_and_dropout_at_end_of_contracting_path():
    model = build_unet(input_shape=(572, 572, 1), padding="valid")
    convs = [lay for lay in model.layers
             if isinstance(lay, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    assert len(convs) == 23  # paper, section 2
    assert [lay.name for lay in model.layers if isinstance(lay, keras.layers.Dropout)] == [
        "enc4_dropout"]
    # Crops of the paper's Fig. 1: 568 -> 392, 280 -> 200, 136 -> 104, 64 -> 56.
    crops = {lvl: model.get_layer(f"dec{lvl}_crop").cropping for lvl in range(4)}
    assert crops == {0: ((88, 88), (88, 88)), 1: ((40, 40), (40, 40)),
                     2: ((16, 16), (16, 16)), 3: ((4, 4), (4, 4))}


# --- tile-size helpers ---
def test_unet_output_size_hand_values():
    assert unet_output_size(572) == 388  # paper Fig. 1
    # depth 1: 20 -4-> 16 /2-> 8 -4-> 4 x2-> 8 -4-> 4
    assert unet_output_size(20, depth=1) == 4
    # depth 0 is just two 3x3 convs
    assert unet_output_size(10, depth=0) == 6


def test_valid_input_sizes_depth4_are_124_plus_16b():
    # n = 124 + 16 b, b = bottleneck size after its two convs; the up path
    # 2b - 4, ... stays positive only for b >= 4 (b = 4 -> 188 -> output 4).
    sizes = valid_input_sizes(1, 700)
    assert sizes == list(range(188, 701, 16))
    assert 572 in sizes
    for n in sizes:
        out = unet_output_size(n)
        assert out == n - 184  # 2*4*(2^4 + ... ) shrink of the depth-4 net
    for n in (571, 573, 570, 172, 140):
        with pytest.raises(ValueError):
            unet_output_size(n)


def test_valid_input_sizes_same_padding_are_multiples():
    assert valid_input_sizes(1, 100, depth=4, padding="same") == [16, 32, 48, 64, 80, 96]
    assert nearest_valid_input_sizes(500, depth=4, padding="same") == (496, 512)
    assert nearest_valid_input_sizes(512, depth=4, padding="same") == (512, 512)


def test_unet_output_size_error_names_nearest_sizes():
    with pytest.raises(ValueError, match=r"556 \(output 372\) or 572 \(output 388\)") as e:
        unet_output_size(570)
    assert str(e.value).endswith("Received: n=570")


def test_valid_model_matches_helper_at_other_sizes():
    model = build_unet(input_shape=(92, 92, 1), filters=2, depth=2, padding="valid")
    assert model.output_shape[1] == unet_output_size(92, depth=2)


# --- validation ---
def test_same_padding_needs_multiple_of_2_pow_depth():
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 16.*496 or 512") as e:
        build_unet(input_shape=(500, 512, 1), filters=2)
    assert str(e.value).endswith("Received: input_shape=(500, 512, 1)")


def test_valid_padding_bad_size_says_what_works():
    with pytest.raises(ValueError, match=r"572 \(output 388\)") as e:
        build_unet(input_shape=(570, 570, 1), padding="valid", filters=2)
    assert "Received: input_shape=(570, 570, 1)" in str(e.value)


def test_valid_padding_refuses_unknown_size():
    with pytest.raises(ValueError, match="fixed tile size"):
        build_unet(input_shape=(None, None, 1), padding="valid", filters=2)


@pytest.mark.parametrize("kwargs, arg", [
    ({"filters": 0}, "filters"),
    ({"filters": (4, 8)}, "filters"),
    ({"depth": 0}, "depth"),
    ({"padding": "full"}, "padding"),
    ({"dropout": 1.0}, "dropout"),
    ({"num_classes": 0}, "num_classes"),
    ({"upsampling": "bilinear"}, "upsampling"),
    ({"output_activation": "nope"}, "output_activation"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"dropout_levels": (7,)}, "dropout_levels"),
])
def test_bad_arguments_raise_with_received(kwargs, arg):
    with pytest.raises(ValueError, match=rf"Received: {arg}="):
        build_unet(**{"input_shape": (32, 32, 1), **kwargs})


def test_builder_is_keyword_only():
    with pytest.raises(TypeError):
        build_unet((32, 32, 1))


def test_fully_convolutional_same_padding_and_outputs():
    model = build_unet(filters=2, depth=2)  # input_shape None -> (None, None, 1)
    assert model.input_shape == (None, None, None, 1)
    for size in (16, 32):
        out = model(np.zeros((1, size, size, 1), "float32"))
        assert tuple(out.shape) == (1, size, size, 1)
    logits = build_unet(input_shape=(16, 16, 1), filters=2, depth=2,
                        output_activation=None)
    assert logits.get_layer("output").activation.__name__ == "linear"
    soft = build_unet(input_shape=(16, 16, 1), filters=2, depth=2, num_classes=3)
    p = keras.ops.convert_to_numpy(soft(np.random.rand(2, 16, 16, 1).astype("float32")))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
