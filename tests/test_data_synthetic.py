"""The synthetic own-data set of notebook 04 (keras_unets.data.synthetic)."""
import cv2
import numpy as np

from keras_unets.data.folders import load_folder_pairs
from keras_unets.data.synthetic import SIZES, draw_cells, write_cell_dataset


def test_folders_pair_by_stem_with_sizes_dtypes_and_classes(tmp_path):
    paths = write_cell_dataset(tmp_path, n_train=5, n_test=2, seed=1)
    stems = sorted(p.stem for p in paths["train"]["images"].iterdir())
    assert stems == [f"cell_{i:03d}" for i in range(5)]
    assert sorted(p.stem for p in paths["test"]["masks3"].iterdir()) == ["cell_005", "cell_006"]
    raw = cv2.imread(str(paths["train"]["images"] / "cell_000.tif"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == SIZES[0] and raw.max() > 255
    binary = load_folder_pairs(paths["train"]["images"], paths["train"]["masks"])
    three = load_folder_pairs(paths["train"]["images"], paths["train"]["masks3"])
    assert binary.classes == 2 and three.classes == 3 and binary.channels == 1
    assert [m.shape for m in binary.masks] == [SIZES[i % len(SIZES)] for i in range(5)]
    # the binary mask is "any class but background" of the 3-class one
    for b, m in zip(binary.masks, three.masks):
        np.testing.assert_array_equal(b > 0, m > 0)


def test_nucleus_inside_cytoplasm_and_no_global_threshold_finds_the_cells():
    rng = np.random.default_rng(0)
    accuracy, background = [], []
    for shape in SIZES:
        image, mask = draw_cells(shape, rng)
        assert set(np.unique(mask)) <= {0, 1, 2} and (mask == 2).any()
        # every nucleus pixel has a cell pixel next to it (it lies inside a cell)
        grown = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
        assert grown[mask == 2].all()
        stretched = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        _, otsu = cv2.threshold(stretched, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        accuracy.append(np.mean((otsu > 0) == (mask > 0)))
        background.append(np.mean(mask == 0))
    # the illumination ramp defeats one threshold per image: Otsu is worse than
    # calling everything background
    assert np.mean(accuracy) < np.mean(background) - 0.1
