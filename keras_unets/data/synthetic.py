"""A small synthetic microscopy data set, written as folders of your own data.

:func:`write_cell_dataset` draws fluorescence-like images of cells with a
nucleus on an unevenly lit background and writes them the way a user's own
data usually comes: 16-bit TIFF images of different, non-square sizes in
one folder, masks with the same file stems in others (binary ``{0, 1}``
cell masks, and 3-class masks: 0 background, 1 cytoplasm, 2 nucleus).

The illumination ramp across each image is larger than the contrast of a
cell against its own background, so no global intensity threshold (Otsu's
included) separates cells from background on every part of an image,
while a network that sees the local contrast can. ``notebooks/04`` trains
on it; no download is needed.
"""
from pathlib import Path

import numpy as np
import tifffile

from keras_unets.data.stacks import write_stack

__all__ = ["SIZES", "draw_cells", "write_cell_dataset"]

# (height, width) of the images, cycled: non-square and of different sizes
SIZES = ((160, 224), (192, 160), (144, 256), (208, 176))


def draw_cells(shape, rng, *, cells=(5, 9), ramp=2400.0, contrast=700.0, noise=120.0):
    """One image and its 3-class mask.

    Args:
        shape: ``(height, width)``.
        rng: a ``numpy.random.Generator``.
        cells: range of the number of cells drawn (ellipses, semi-axes 10-22
            px, a nucleus of about half their size inside).
        ramp: rise of the background, in grey levels, across the image (a
            linear illumination gradient in a random direction).
        contrast: cytoplasm above its local background; the nucleus twice that.
        noise: standard deviation of the Gaussian noise.

    Returns:
        ``(image uint16 (H, W), mask uint8 (H, W))`` with mask values 0
        (background), 1 (cytoplasm), 2 (nucleus).
    """
    height, width = shape
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    for _ in range(rng.integers(cells[0], cells[1] + 1)):
        a, b = rng.uniform(10, 22, 2)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        angle = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        radius = (u / a) ** 2 + (v / b) ** 2
        mask[(radius <= 1.0) & (mask == 0)] = 1
        mask[radius <= 0.25] = 2
    direction = rng.uniform(0, 2 * np.pi)
    along = xx * np.cos(direction) + yy * np.sin(direction)
    along = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    background = 800.0 + ramp * along
    image = background + contrast * mask + rng.normal(0.0, noise, shape)
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16), mask


def write_cell_dataset(root, *, n_train=12, n_test=4, seed=0):
    """Write ``root/{train,test}/{images,masks,masks3}`` and return their paths.

    Images are ``<stem>.tif`` (16-bit), masks ``<stem>.png`` with the same
    stems (``cell_000``, ``cell_001``, ...): ``masks`` binary ``{0, 1}``
    (cell or not), ``masks3`` the three classes.

    Returns:
        ``{"train": {"images": Path, "masks": Path, "masks3": Path},
        "test": {...}}``.
    """
    rng = np.random.default_rng(seed)
    paths = {}
    index = 0
    for part, count in (("train", n_train), ("test", n_test)):
        folders = {name: Path(root) / part / name for name in ("images", "masks", "masks3")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            image, mask = draw_cells(SIZES[index % len(SIZES)], rng)
            stem = f"cell_{index:03d}"
            tifffile.imwrite(folders["images"] / f"{stem}.tif", image)
            write_stack(folders["masks"] / f"{stem}.png", (mask > 0).astype(np.uint8))
            write_stack(folders["masks3"] / f"{stem}.png", mask)
            index += 1
        paths[part] = folders
    return paths
