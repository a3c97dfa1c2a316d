"""Shared pytest fixtures.

Most tests need "some EM-like images and labels", not the ISBI 2012 files:
they use :func:`synthetic_em_stack` (fixture ``synthetic_stack``) or a small
data folder in the ISBI 2012 layout (``synthetic_isbi_dir``, 30 slices of
64 x 64 px; ``synthetic_isbi_full_dir``, 30 slices of 512 x 512 px for code
and checks that need the ISBI 2012 shape).

Tests about the real files themselves (pixel hashes, the statistics the data
README gives) use ``isbi_dir``, read from ``ISBI2012_DIR``, and say why with
``@pytest.mark.real_isbi("why")``. In CI (``CI`` set) a missing data
directory is an error, not a skip; on a developer machine those tests are
skipped with a message saying how to point at the data.
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_isbi(why): the test needs the real ISBI 2012 files (isbi_dir); "
        "`why` goes into the skip message",
    )


# ---------------------------------------------------------------------------
# Synthetic EM-like stacks
# ---------------------------------------------------------------------------


def synthetic_em_stack(n, height, width=None, *, seed=0, cell_px=11, membrane_px=2):
    """``(images, labels)``, ``uint8 (n, height, width)``, shaped like ISBI 2012.

    Each slice is a Voronoi tessellation of random seeds (cells of about
    ``cell_px`` px across) whose borders are ``membrane_px`` px wide
    membranes. Labels: 255 = cell interior, 0 = membrane (ISBI polarity);
    about a fifth of the pixels are membrane, as in the real labels. Images:
    cells of random brightness, dark membranes, a little blur and noise, so
    a threshold on the image roughly recovers the labels.
    """
    width = height if width is None else width
    rng = np.random.default_rng(seed)
    n_cells = max(2, round(height * width / cell_px**2))
    kernel = np.ones((membrane_px, membrane_px), np.uint8)
    images = np.empty((n, height, width), np.uint8)
    labels = np.empty((n, height, width), np.uint8)
    for z in range(n):
        seeds = np.full((height, width), 255, np.uint8)
        seeds[rng.integers(0, height, n_cells), rng.integers(0, width, n_cells)] = 0
        _, cells = cv2.distanceTransformWithLabels(
            seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        cells = cells.astype(np.float32)
        border = cv2.dilate(cells, kernel) != cv2.erode(cells, kernel)
        labels[z] = np.where(border, 0, 255)
        shade = rng.uniform(140, 220, int(cells.max()) + 1).astype(np.float32)
        image = np.where(border, 50.0, shade[cells.astype(np.int64)])
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.8)
        image += rng.normal(0, 12, image.shape)
        images[z] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images, labels


def _write_isbi_layout(root, train_images, train_labels, test_images, *, png=False):
    """Write the three volumes in the ISBI 2012 layout (TIFFs, and png/ folders)."""
    from keras_unets.data import PNG_DIRS, VOLUME_FILES, write_stack

    volumes = {"train_images": train_images, "train_labels": train_labels,
               "test_images": test_images}
    for key, array in volumes.items():
        write_stack(Path(root) / VOLUME_FILES[key], array)
        if png:
            write_stack(Path(root) / PNG_DIRS[key], array)
    return Path(root)


def _synthetic_isbi(root, size, seed, *, png=False, **cells):
    images, labels = synthetic_em_stack(30, size, seed=seed, **cells)
    test, _ = synthetic_em_stack(30, size, seed=seed + 1, **cells)
    return _write_isbi_layout(root, images, labels, test, png=png)


@pytest.fixture(scope="session")
def synthetic_stack():
    """:func:`synthetic_em_stack`, for tests that want arrays of their own size."""
    return synthetic_em_stack


@pytest.fixture(scope="session")
def synthetic_isbi_dir(tmp_path_factory):
    """A data folder in the ISBI 2012 layout: 30 synthetic slices of 64 x 64 px.

    ``train-volume.tif``, ``train-labels.tif``, ``test-volume.tif`` and the
    same slices under ``png/`` (the TIFFs win in ``load_isbi2012``).
    """
    return _synthetic_isbi(tmp_path_factory.mktemp("synthetic_isbi"), 64, seed=2012, png=True)


@pytest.fixture(scope="session")
def synthetic_isbi_full_dir(tmp_path_factory):
    """The same with 512 x 512 px slices (TIFFs only): the ISBI 2012 shape.

    Cells about 64 px across with 7 px membranes: V_rand of a blurred copy and
    the membrane share (20 %) close to those of the real slices.
    """
    return _synthetic_isbi(tmp_path_factory.mktemp("synthetic_isbi_512"), 512, seed=512,
                           cell_px=64, membrane_px=7)


# ---------------------------------------------------------------------------
# The real ISBI 2012 files
# ---------------------------------------------------------------------------


def _isbi_dir_problem():
    """None when ``ISBI2012_DIR`` names a folder, else what is wrong with it."""
    value = os.environ.get("ISBI2012_DIR")
    if value and Path(value).is_dir():
        return None
    return (
        f"ISBI2012_DIR={value!r} is not a directory; set it to a folder with "
        "train-volume.tif, train-labels.tif, test-volume.tif (or png/)."
    )


def _needs_real_isbi(item):
    """The skip message of a test that uses ``isbi_dir``, naming its reason."""
    marker = item.get_closest_marker("real_isbi")
    why = f" ({marker.args[0]})" if marker and marker.args else ""
    return f"needs the real ISBI 2012 files{why}: {_isbi_dir_problem()}"


def _lacks_real_isbi(item):
    """The test uses ``isbi_dir`` and ``ISBI2012_DIR`` names no folder."""
    return "isbi_dir" in getattr(item, "fixturenames", ()) and _isbi_dir_problem() is not None


def pytest_collection_modifyitems(config, items):
    """Without the data, skip the tests that use ``isbi_dir``, saying why (not in CI)."""
    if os.environ.get("CI"):
        return
    for item in items:
        if _lacks_real_isbi(item):
            item.add_marker(pytest.mark.skip(reason=_needs_real_isbi(item)))


def pytest_runtest_setup(item):
    """In CI, a test that uses ``isbi_dir`` fails without the data, saying why."""
    if os.environ.get("CI") and _lacks_real_isbi(item):
        pytest.fail(_needs_real_isbi(item))


@pytest.fixture(scope="session")
def isbi_dir():
    """Path of the local copy of the real ISBI 2012 files (``ISBI2012_DIR``).

    Only for tests about those files; mark them ``@pytest.mark.real_isbi(why)``.
    Without the data such tests are skipped with that reason (failed in CI)
    before they reach this fixture.
    """
    problem = _isbi_dir_problem()
    if problem is not None:  # pragma: no cover - the hooks above stop first
        pytest.fail(f"needs the real ISBI 2012 files: {problem}")
    return Path(os.environ["ISBI2012_DIR"])
