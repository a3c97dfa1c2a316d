"""keras_unets.viz: error overlays, warp grids, block tables, feature maps, metric tables."""
import keras
import numpy as np
import pytest

from keras_unets import viz
from keras_unets.metrics import threshold_sweep
from keras_unets.models import build_unet, build_unet3p, build_unetpp


# ---------------------------------------------------------------------------
# error_masks / error_overlay
# ---------------------------------------------------------------------------
def test_error_masks_hand_case():
    # pred > 100 is cell. Columns: 200/255 TP, 50/255 FN, 200/0 FP, 50/0 TN,
    # 100/255 FN (100 is not > 100), 101/0 FP.
    pred = np.array([[200, 50, 200, 50, 100, 101]], np.uint8)
    labels = np.array([[255, 255, 0, 0, 255, 0]], np.uint8)
    fp, fn = viz.error_masks(pred, labels, 100)
    assert fp.tolist() == [[False, False, True, False, False, True]]
    assert fn.tolist() == [[False, True, False, False, True, False]]


def test_error_masks_count_matches_the_threshold_sweep():
    # invariant: errors at t are exactly 1 - accuracy(t) of the sweep
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 256, (3, 17, 19), dtype=np.uint8)
    labels = np.where(rng.random((3, 17, 19)) < 0.7, 255, 0).astype(np.uint8)
    curve = threshold_sweep(pred, labels)
    for t in (0, 87, 127, 254, 255):
        fp, fn = viz.error_masks(pred, labels, t)
        assert not (fp & fn).any()
        assert (fp.sum() + fn.sum()) / pred.size == pytest.approx(1 - curve[t], abs=1e-12)


def test_error_masks_rejects_float_predictions_and_bad_labels():
    with pytest.raises(ValueError, match="to_uint8"):
        viz.error_masks(np.zeros((4, 4)), np.zeros((4, 4), np.uint8), 127)
    with pytest.raises(ValueError, match="values"):
        viz.error_masks(np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8), 127)
    with pytest.raises(ValueError, match="threshold=256"):
        viz.error_masks(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), 256)


def test_error_overlay_hand_values():
    image = np.array([[100, 100, 100, 100]], np.uint8)
    pred = np.array([[255, 0, 255, 0]], np.uint8)
    labels = np.array([[255, 255, 0, 0]], np.uint8)
    out = viz.error_overlay(image, pred, labels, 127, alpha=0.5,
                            fp_color=(255, 0, 0), fn_color=(0, 0, 255))
    assert out.shape == (1, 4, 3) and out.dtype == np.uint8
    # correct pixels stay grey; errors: 0.5 * 100 + 0.5 * colour
    assert out[0].tolist() == [[100, 100, 100], [50, 50, 178], [178, 50, 50], [100, 100, 100]]


def test_error_overlay_stack_alpha_zero_is_the_grey_image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    pred = rng.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    labels = np.where(rng.random((2, 8, 8)) < 0.5, 255, 0).astype(np.uint8)
    out = viz.error_overlay(image, pred, labels, 127, alpha=0.0)
    assert out.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(out, np.repeat(image[..., None], 3, -1))
    opaque = viz.error_overlay(image, pred, labels, 127, alpha=1.0)
    fp, _ = viz.error_masks(pred, labels, 127)
    assert (opaque[fp] == viz.ERROR_COLORS["fp"]).all()


def test_error_overlay_errors_name_the_argument():
    img = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"image.shape=\(1, 4, 4\), pred.shape=\(1, 4, 5\)"):
        viz.error_overlay(img, np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.uint8), 1)
    with pytest.raises(ValueError, match="alpha=2"):
        viz.error_overlay(img, img, img, 1, alpha=2)
    with pytest.raises(ValueError, match="fp_color"):
        viz.error_overlay(img, img, img, 1, fp_color=(300, 0, 0))
    with pytest.raises(ValueError, match="image.dtype=float64"):
        viz.error_overlay(img.astype(float), img, img, 1)


# ---------------------------------------------------------------------------
# grid_image
# ---------------------------------------------------------------------------
def test_grid_image_hand_case_and_line_count():
    g = viz.grid_image((5, 7), spacing=3)
    assert g.tolist()[0] == [255] * 7
    assert g[1].tolist() == [255, 0, 0, 255, 0, 0, 255]
    g = viz.grid_image((64, 48), spacing=16, width=2)
    # rows 0,1,16,17,32,33,48,49 and columns 0,1,16,17,32,33 are lines
    assert (g == 255).all(axis=1).sum() == 8 and (g == 255).all(axis=0).sum() == 6
    with pytest.raises(ValueError, match="width=4"):
        viz.grid_image((8, 8), spacing=4, width=4)


def test_augmented_pair_panels_follow_the_augmenter():
    from keras_unets.augment import Augmenter

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    label = np.where(image > 100, 255, 0).astype(np.uint8)
    weights = rng.random((64, 80)).astype(np.float32)
    aug = Augmenter(rotation_range=30, horizontal_flip=True, elastic=True)
    panels, params = viz.augmented_pair(aug, image, label, seed=3, weights=weights, size=32)
    assert [t for _, t in panels] == [
        "crop", "its label", "its weight map", "augmented crop", "augmented label",
        "augmented weight map", "elastic part of the warp", "whole warp"]
    # the centre window, and the same warp as calling the augmenter directly
    np.testing.assert_array_equal(panels[0][0], image[16:48, 24:56])
    same = aug.get_random_transform((32, 32), np.random.default_rng(3))
    assert params.keys() == same.keys()
    np.testing.assert_array_equal(params["elastic"], same["elastic"])
    ref = aug.apply_transform(image, label, same, weights=weights, out_shape=(32, 32),
                              offset=(16, 24))
    for (got, _), want in zip(panels[3:6], ref):
        np.testing.assert_array_equal(got, want)
    grid = viz.grid_image((64, 80))
    np.testing.assert_array_equal(panels[-1][0], aug.apply_transform(
        grid, params=same, out_shape=(32, 32), offset=(16, 24)))
    assert all(p.shape == (32, 32) for p, _ in panels)
    # without weights or elastic warps: crop, label, augmented pair, the warp
    plain, _ = viz.augmented_pair(Augmenter(horizontal_flip=True), image, label, seed=0,
                                  size=16, offset=(0, 0))
    assert [t for _, t in plain] == ["crop", "its label", "augmented crop",
                                     "augmented label", "whole warp"]
    np.testing.assert_array_equal(plain[0][0], image[:16, :16])
    with pytest.raises(ValueError, match=r"leaves the \(64, 80\) slice"):
        viz.augmented_pair(aug, image, label, seed=0, size=32, offset=(40, 0))
    with pytest.raises(ValueError, match=r"Received: image \(64, 80\), label \(64, 79\)"):
        viz.augmented_pair(aug, image, label[:, 1:], seed=0)


def test_prediction_panels_window_and_overlay():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    pred = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    labels = np.where(rng.random((20, 30)) < 0.6, 255, 0).astype(np.uint8)
    win = np.s_[2:12, 5:25]
    panels = viz.prediction_panels(image, pred, labels, 90, window=win, name="P, out1",
                                   title="slice 25")
    assert [t for _, t in panels] == ["slice 25", "label", "P, out1", "errors: red FP, blue FN"]
    np.testing.assert_array_equal(panels[2][0], pred[win])
    np.testing.assert_array_equal(panels[3][0], viz.error_overlay(image, pred, labels, 90)[win])
    assert viz.prediction_panels(image, pred, labels, 90)[0][0].shape == (20, 30)


def test_plot_panels_layout_and_colour_bars():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(np.zeros((4, 4)), "a"), (np.ones((4, 4)), "a weight map"), (np.eye(4), "c")]
    fig = viz.plot_panels(panels, ncols=2, cmap="gray")
    axes = fig.axes
    # 2 x 2 grid + one colour bar; the unused fourth axis is hidden
    assert len(axes) == 5
    assert [a.get_title() for a in axes[:3]] == ["a", "a weight map", "c"]
    assert not axes[3].axison
    assert axes[0].images[0].get_cmap().name == "gray"
    assert axes[1].images[0].get_cmap().name == "magma"
    plt.close(fig)


# ---------------------------------------------------------------------------
# block_summary / block_table
# ---------------------------------------------------------------------------
def test_block_summary_unet_hand_counts():
    model = build_unet(input_shape=(32, 32, 1), filters=4, depth=2, batch_norm=False, dropout=0.0)
    rows = {r["block"]: r for r in viz.block_summary(model)}
    assert list(rows)[:3] == ["input", "enc0", "enc1"]
    # enc0: conv 1->4 (9*1*4 + 4 = 40) + conv 4->4 (9*4*4 + 4 = 148)
    assert rows["enc0"]["params"] == 188
    # the level's feature map, not the pooled one
    assert rows["enc0"]["output_shape"] == (None, 32, 32, 4)
    assert rows["output"]["output_shape"] == (None, 32, 32, 1)
    assert sum(r["params"] for r in rows.values()) == model.count_params()
    assert sum(r["layers"] for r in rows.values()) == len(model.layers)


def test_block_summary_unetpp_nodes_and_unet3p_scales():
    pp = build_unetpp(input_shape=(32, 32, 1), filters=4, depth=2, deep_supervision=True)
    blocks = [r["block"] for r in viz.block_summary(pp)]
    for i, j in [(0, 0), (1, 0), (2, 0), (1, 1), (0, 1), (0, 2)]:
        assert f"x{i}_{j}" in blocks
    assert "out1" in blocks and "out2" in blocks
    p3 = build_unet3p(input_shape=(32, 32, 1), filters=4, depth=2)
    rows = viz.block_summary(p3, key=r"hd\d+|e\d+")
    assert [r["block"] for r in rows] == ["input", "e1", "e2", "e3", "hd2", "hd1", "output"]
    assert sum(r["params"] for r in rows) == p3.count_params()
    table = viz.block_table(p3, key=r"hd\d+|e\d+")
    assert table.splitlines()[0] == "| block | layers | output shape | parameters |"
    assert f"| total | {len(p3.layers)} |  | {p3.count_params():,} |" in table
    assert "| hd1 |" in table and "(B, 32, 32, 12)" in table  # fused width 3 x 4
    with pytest.raises(ValueError, match="key=3"):
        viz.block_summary(p3, key=3)


# ---------------------------------------------------------------------------
# concat_inputs / feature_maps
# ---------------------------------------------------------------------------
def test_concat_inputs_full_scale_skips_of_unet3p():
    model = build_unet3p(input_shape=(32, 32, 1), filters=4, depth=4)
    assert viz.concat_inputs(model, "hd3") == [
        "hd3_from_e1_relu", "hd3_from_e2_relu", "hd3_from_e3_relu",
        "hd3_from_hd4_relu", "hd3_from_hd5_relu"]
    pp = build_unetpp(input_shape=(32, 32, 1), filters=4, depth=2, dropout=0.0)
    # concatenation order of the official code: [U(X^{1,1}), X^{0,0}, X^{0,1}]
    assert viz.concat_inputs(pp, "x0_2") == ["x0_2_up", "x0_0_conv2", "x0_1_conv2"]
    with pytest.raises(ValueError, match=r"Did you mean 'hd3'\? Received: node='hd33'"):
        viz.concat_inputs(model, "hd33")


def test_feature_maps_match_an_independent_submodel():
    model = build_unet3p(input_shape=(32, 32, 1), filters=4, depth=2, cat_channels=3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32), dtype=np.uint8)
    names = viz.concat_inputs(model, "hd1")
    maps = viz.feature_maps(model, images, names)
    assert list(maps) == names
    full = viz.feature_maps(model, images, names, reduce=None)
    # reference: Keras' own submodel on the same input
    ref = keras.Model(model.input, model.get_layer("hd1_concat").input)(
        images[..., None].astype("float32") / 255.0)
    for k, name in enumerate(names):
        assert full[name].shape == (2, 32, 32, 3)
        np.testing.assert_allclose(full[name], np.asarray(ref[k]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(maps[name], full[name].mean(-1), rtol=1e-6, atol=1e-6)
    one = viz.feature_maps(model, images[0], "e2_relu2", reduce="max")
    assert one["e2_relu2"].shape == (1, 16, 16)


def test_feature_maps_errors():
    model = build_unet(input_shape=(32, 32, 1), filters=4, depth=2)
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match=r"no layer 'enc0_conv'; close names: \['enc0_conv2', 'enc0_conv1'"):
        viz.feature_maps(model, img, ["enc0_conv"])
    with pytest.raises(ValueError, match="reduce='sum'"):
        viz.feature_maps(model, img, ["input"], reduce="sum")
    with pytest.raises(ValueError, match="images.dtype=float32"):
        viz.feature_maps(model, img.astype("float32"), ["input"])


# ---------------------------------------------------------------------------
# metrics_table
# ---------------------------------------------------------------------------
def test_metrics_table_rows_and_errors():
    m = {"pixel_accuracy": 0.91891, "threshold": 87, "dice": 0.95, "iou": float("nan"),
         "v_rand": 0.9, "v_info": 0.95}
    table = viz.metrics_table({"U-Net": m, "UNet++": dict(m, pixel_accuracy=0.5)})
    lines = table.splitlines()
    assert lines[0] == "| model | pixel accuracy | threshold t | Dice | IoU | V_rand | V_info |"
    assert lines[2] == "| U-Net | 0.9189 | 87 | 0.9500 | – | 0.9000 | 0.9500 |"
    assert lines[3].startswith("| UNet++ | 0.5000 |")
    with pytest.raises(ValueError, match="lacks \\['v_info'\\]"):
        viz.metrics_table({"x": {k: v for k, v in m.items() if k != "v_info"}})
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.metrics_table({})
