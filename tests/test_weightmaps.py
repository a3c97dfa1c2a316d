"""Tests for keras_unets.augment.weightmaps (U-Net eq. 2)."""
import time

import numpy as np
import pytest
from scipy import ndimage

from keras_unets.augment.weightmaps import (
    border_margin,
    cell_distances,
    class_balance_weights,
    unet_weight_map,
    unet_weight_maps,
)


def two_squares(gap):
    # Two 6x6 cells on rows 4..9, columns 4..9 and 10+gap..15+gap.
    lab = np.zeros((14, 20 + gap), np.uint8)
    lab[4:10, 4:10] = 255
    lab[4:10, 10 + gap:16 + gap] = 255
    return lab


@pytest.mark.parametrize("gap", [1, 2, 5])
def test_two_squares_at_known_gap(gap):
    lab = two_squares(gap)
    wm = unet_weight_map(lab, class_weights=None, tol=0)
    # A membrane pixel in the gap, on the squares' rows, at column 9 + k
    # (1 <= k <= gap) is k from the left square and gap + 1 - k from the
    # right one: d1 + d2 = gap + 1 for every such pixel.
    expected = 1.0 + 10.0 * np.exp(-((gap + 1) ** 2) / (2 * 5.0**2))
    np.testing.assert_allclose(wm[4:10, 10:10 + gap], expected, rtol=1e-6)
    # Straight above the left square's corner column 4, 2 rows up (row 2):
    # d1 = 2 (to (4, 4)), d2 = distance to (4, 10 + gap) = sqrt(2^2 + (6 + gap)^2).
    d2 = np.hypot(2, 6 + gap)
    np.testing.assert_allclose(wm[2, 4], 1 + 10 * np.exp(-((2 + d2) ** 2) / 50), rtol=1e-5)
    # Cell pixels get no border term (background only, the default) ...
    np.testing.assert_array_equal(wm[lab == 255], 1.0)
    # ... unless asked: inside the left square's right edge d1 = 0, d2 = gap + 1.
    wm_all = unet_weight_map(lab, class_weights=None, border="all", tol=0)
    np.testing.assert_allclose(wm_all[5, 9], expected, rtol=1e-6)


def test_single_cell_has_no_border_term():
    lab = np.zeros((20, 30), np.uint8)
    lab[5:12, 8:20] = 255  # d2 = inf everywhere
    wm = unet_weight_map(lab, class_weights=None)
    np.testing.assert_array_equal(wm, 1.0)
    d1, d2 = cell_distances(lab)
    assert np.isinf(d2).all()
    assert d1[5, 7] == 1 and d1[2, 8] == 3 and d1[6, 10] == 0


def test_balanced_class_weights_by_hand():
    lab = two_squares(2)  # 14 x 22 = 308 pixels, 72 cell pixels, 236 membrane
    w_bg, w_cell = class_balance_weights(lab)
    assert w_bg == pytest.approx(308 / (2 * 236)) and w_cell == pytest.approx(308 / (2 * 72))
    wm = unet_weight_map(lab, w0=0)
    assert wm.dtype == np.float32
    assert wm.mean() == pytest.approx(1.0, rel=1e-6)  # N / (2 N_c) averages to 1
    wm = unet_weight_map(lab)
    np.testing.assert_allclose(wm[6, 10], w_bg + 10 * np.exp(-9 / 50), rtol=1e-6)
    np.testing.assert_allclose(unet_weight_map(lab, class_weights=(0.5, 2.0), w0=0)[lab == 255], 2.0)
    with pytest.raises(ValueError, match="class_weights"):
        unet_weight_map(lab, class_weights="inverse")


def test_connectivity_of_cells():
    # Two cells touching only at a corner: one cell with 8-connectivity (no
    # border term anywhere), two with 4-connectivity.
    lab = np.zeros((12, 12), np.uint8)
    lab[2:6, 2:6] = 255
    lab[6:10, 6:10] = 255
    assert np.all(unet_weight_map(lab, class_weights=None, connectivity=8) == 1.0)
    wm4 = unet_weight_map(lab, class_weights=None, connectivity=4)
    # membrane pixel (5, 6) touches both cells: d1 = d2 = 1
    assert wm4[5, 6] == pytest.approx(1 + 10 * np.exp(-4 / 50))


def brute_force(lab, w0=10.0, sigma=5.0):
    """Independent reference: scipy EDT of every cell over the whole image."""
    cells, n = ndimage.label(lab == 255)  # 4-connectivity
    dists = np.sort(np.stack([ndimage.distance_transform_edt(cells != k) for k in range(1, n + 1)]), axis=0)
    term = w0 * np.exp(-((dists[0] + dists[1]) ** 2) / (2 * sigma**2))
    term[lab == 255] = 0
    return 1.0 + term


def test_windowed_distances_match_brute_force(synthetic_stack):
    rng = np.random.default_rng(0)
    blobs = ndimage.gaussian_filter(rng.random((80, 90)), 2.5)
    random_lab = np.where(blobs > np.quantile(blobs, 0.55), 255, 0).astype(np.uint8)
    em_lab = synthetic_stack(1, 96, seed=7, cell_px=32, membrane_px=4)[1][0]  # EM-like cells
    for lab in (random_lab, em_lab):
        ref = brute_force(lab)
        exact = unet_weight_map(lab, class_weights=None, tol=0)
        fast = unet_weight_map(lab, class_weights=None)  # tol = 1e-3
        np.testing.assert_allclose(exact, ref, atol=1e-4)
        assert np.abs(fast - ref).max() <= 1e-3
        assert (ref > 1.5).sum() > 50  # there are real borders in these labels
    assert border_margin(10, 5, 1e-3) == pytest.approx(5 * np.sqrt(2 * np.log(1e4)))


@pytest.mark.real_isbi("checks the membrane share the data README gives")
def test_thirty_isbi_slices_timing(isbi_dir):
    import tifffile

    labels = tifffile.imread(isbi_dir / "train-labels.tif")
    start = time.perf_counter()
    maps = unet_weight_maps(labels)
    seconds = time.perf_counter() - start
    print(f"\nunet_weight_maps: {len(labels)} slices of {labels.shape[1]}x{labels.shape[2]} in {seconds:.2f} s")
    assert maps.shape == labels.shape and maps.dtype == np.float32
    w_bg, w_cell = class_balance_weights(labels)
    assert w_bg == pytest.approx(1 / (2 * 0.2196), rel=1e-3)  # membrane = 21.96 % (data README)
    assert maps[labels == 255].max() == pytest.approx(w_cell)
    assert maps[labels == 0].max() > w_bg + 5  # narrow membranes between touching cells


def test_bad_labels_are_explained():
    with pytest.raises(ValueError, match="only 0 \\(membrane\\) and 255"):
        unet_weight_map(np.array([[0, 1], [1, 0]], np.uint8))
    with pytest.raises(ValueError, match="label.shape"):
        unet_weight_map(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError, match="connectivity"):
        unet_weight_map(np.zeros((4, 4), np.uint8), connectivity=6)
