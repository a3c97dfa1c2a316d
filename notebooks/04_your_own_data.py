# %% [markdown]
# # Your own data: train, predict and evaluate on a folder of images
#
# The other notebooks reproduce the "U-Net School" report on ISBI 2012. This one
# shows what to do with **your own images**: a folder of images and a folder of
# masks with the same file names. The data here is synthesised in the notebook
# (no download), and it is made the way microscopy data usually comes:
#
# - 16-bit TIFF images of different, non-square sizes;
# - masks as PNG files with the same stems: binary `{0, 1}` (cell or not), and a
#   3-class version (0 background, 1 cytoplasm, 2 nucleus);
# - an uneven illumination: the background rises across each image by more than
#   a cell stands out from its own background, so no single intensity threshold
#   finds the cells everywhere.
#
# The steps are the three commands of the README (`keras-unets train`,
# `keras-unets predict`, `keras-unets evaluate`), called here through the Python
# API they wrap. A U-Net (Ronneberger et al., MICCAI 2015) is compared with a
# global Otsu threshold (N. Otsu, IEEE Trans. SMC 9(1), 1979) on held-out images.
#
# *Generated from `notebooks/04_your_own_data.py` by `notebooks/build.py` and
# stored executed. `KERAS_UNETS_NB_FAST=1` runs it in seconds with a tiny model
# (that is what CI does); the stored outputs come from a short real training run
# (a few minutes of CPU).*

# %%
import json
import os
import shutil
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from keras_unets.data.folders import load_folder_pairs, read_images
from keras_unets.data.synthetic import write_cell_dataset
from keras_unets.evaluation import evaluate_folders
from keras_unets.inference import predict_folder
from keras_unets.training import train

FAST = os.environ.get("KERAS_UNETS_NB_FAST", "0") not in ("", "0")
RUNS = Path(os.environ.get("KERAS_UNETS_NB_RUNS", "_runs"))  # training runs (git-ignored)
WORK = RUNS / "own-data"  # the synthetic folders and the predictions
for name in ("own-data", "own-binary", "own-3class"):  # a fresh run each time the notebook runs
    shutil.rmtree(RUNS / name, ignore_errors=True)
plt.rcParams.update({"figure.dpi": 72, "image.cmap": "gray", "axes.titlesize": 10})

if FAST:  # CI: 4 filters, 2 levels, 1 epoch of 3 steps; the scores mean nothing
    PROFILE = "smoke"
    TRAIN = {"epochs": 1, "steps_per_epoch": 3, "crop": 64,
             "model_kwargs": {"filters": 4, "depth": 2}}
else:  # the quick profile's U-Net (16 filters, batch norm, Adam, cosine decay), 128-px crops
    PROFILE = "quick"
    TRAIN = {"epochs": 6, "steps_per_epoch": 40, "crop": 128, "time_limit_minutes": 10.0}
print("KERAS_UNETS_NB_FAST is", "set: tiny CI setting" if FAST else "unset: stored setting",
      f"| profile {PROFILE!r} + {TRAIN}")

# %% [markdown]
# ## 1. The folders
#
# `write_cell_dataset` writes `train/` and `test/`, each with `images/`
# (`cell_000.tif`, ...), `masks/` and `masks3/` (`cell_000.png`, ...). Your own
# data needs only the same layout: images in one folder, masks in another,
# paired by file stem (a suffix such as `cell_000_mask.png` works too, with
# `mask_suffix="_mask"` / `--mask-suffix _mask`).

# %%
paths = write_cell_dataset(WORK / "data", n_train=16, n_test=6, seed=0)
for part, folders in paths.items():
    names = sorted(p.name for p in folders["images"].iterdir())
    print(f"{part}: {len(names)} images ({names[0]}, ...), masks in {folders['masks'].name}/ "
          f"and {folders['masks3'].name}/")

train_set = load_folder_pairs(paths["train"]["images"], paths["train"]["masks"])
print("sizes:", sorted({im.shape for im in train_set.images}))
print("channels:", train_set.channels, "| classes:", train_set.classes, "(2 = binary)")
print("intensity rule (recorded in the run, applied again by predict):",
      json.dumps(train_set.intensity))

# %% [markdown]
# 16-bit images are stretched per image between their 1st and 99.8th percentiles
# (the rule of CARE, Weigert et al., Nature Methods 2018) and stored as 8-bit for
# training: a 12-bit camera's images then use the whole range, and a few hot
# pixels do not darken the rest. Masks with two values are binary whatever the
# values are (`{0, 1}`, `{0, 255}`, ...); the non-zero value is the foreground.

# %%
raw = cv2.imread(str(paths["train"]["images"] / "cell_000.tif"), cv2.IMREAD_UNCHANGED)
three = load_folder_pairs(paths["train"]["images"], paths["train"]["masks3"])
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
axes[0].imshow(raw); axes[0].set_title(f"image ({raw.dtype}, {raw.min()}-{raw.max()})")
axes[1].imshow(train_set.images[0]); axes[1].set_title("after the percentile stretch (uint8)")
axes[2].imshow(train_set.masks[0]); axes[2].set_title("binary mask")
axes[3].imshow(three.masks[0], cmap="viridis"); axes[3].set_title("3-class mask")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. Train a binary U-Net
#
# `train` takes the two folders (or numpy arrays). A fifth of the images,
# chosen with the run's seed, validate each epoch; the per-epoch threshold sweep
# picks the binarisation threshold, and the checkpoint keeps the best epoch. The
# same run from the command line:
#
# ```bash
# keras-unets train unet --images data/train/images --masks data/train/masks \
#     --val-fraction 0.2 --profile quick --epochs 6 --steps-per-epoch 40 --crop 128 \
#     --out runs/own-binary
# ```

# %%
binary = train("unet", images=paths["train"]["images"], masks=paths["train"]["masks"],
               val_fraction=0.2, profile=PROFILE, out=RUNS / "own-binary", verbose=0, **TRAIN)
config = json.loads((binary.run_dir / "config.json").read_text())
print("validation images:", config["data"]["val_stems"])
print(f"best epoch {binary.best_epoch}: threshold {binary.best_threshold} of 255, "
      f"validation accuracy {binary.best_accuracy:.4f}")

# %% [markdown]
# ## 3. Predict the held-out images, and the Otsu baseline
#
# `predict_folder` (`keras-unets predict RUN INPUT --out OUT`) reads every image
# of a folder whatever its name and size, applies the run's intensity rule,
# predicts with overlapping tiles and writes `OUT/masks/<stem>.png` (0/255 with
# the run's threshold) and `OUT/probabilities/<stem>.png` (P(cell), 0-255), each
# as large as its image. The baseline thresholds each test image at its own Otsu
# threshold, after the same intensity stretch.

# %%
summary = predict_folder(binary.run_dir, paths["test"]["images"], WORK / "pred-binary")
print(json.dumps({k: summary[k] for k in ("slices", "classes", "threshold", "masks")}, indent=1))

otsu_dir = WORK / "otsu" / "masks"
otsu_dir.mkdir(parents=True, exist_ok=True)
test_images = read_images(paths["test"]["images"])
for stem, image in zip(test_images.stems, test_images.images):
    _, otsu = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    cv2.imwrite(str(otsu_dir / f"{stem}.png"), otsu)

# %% [markdown]
# `evaluate_folders` (`keras-unets evaluate OUT/masks --labels MASKS --json`)
# pairs the files by stem and pools pixel accuracy, Dice and IoU over all test
# images, whatever their sizes.

# %%
scores = {}
for name, folder in (("U-Net", WORK / "pred-binary" / "masks"), ("Otsu", otsu_dir)):
    result, _ = evaluate_folders(folder, paths["test"]["masks"], isbi=False)
    scores[name] = result
background = 1.0 - np.mean(np.concatenate(
    [m.ravel() > 0 for m in load_folder_pairs(paths["test"]["images"],
                                              paths["test"]["masks"]).masks]))
print("| method | pixel accuracy | Dice | IoU |\n| --- | --- | --- | --- |")
for name, r in scores.items():
    print(f"| {name} | {r['pixel_accuracy']:.4f} | {r['dice']:.4f} | {r['iou']:.4f} |")
print(f"| all background | {background:.4f} | 0 | 0 |")

# %%
stem = test_images.stems[0]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
panels = [(test_images.images[0], f"test image {stem}"),
          (cv2.imread(str(paths["test"]["masks"] / f"{stem}.png"), 0), "label"),
          (cv2.imread(str(WORK / "pred-binary" / "masks" / f"{stem}.png"), 0), "U-Net"),
          (cv2.imread(str(otsu_dir / f"{stem}.png"), 0), "Otsu")]
for ax, (picture, title) in zip(axes, panels):
    ax.imshow(picture); ax.set_title(title); ax.axis("off")
plt.show()

# %% [markdown]
# ## 4. Three classes
#
# Masks with the values 0..K-1 train a K-class network: a softmax head, the
# categorical cross-entropy plus the mean soft Dice over the classes, and a
# per-epoch validation that reports the Dice of each class. K is read from the
# masks (or given: `classes=K`, `--classes K`). The predicted masks hold the class
# index of each pixel; evaluation adds the per-class scores and the confusion
# matrix (rows: true class, columns: predicted).

# %%
multi = train("unet", images=paths["train"]["images"], masks=paths["train"]["masks3"],
              val_fraction=0.2, profile=PROFILE, out=RUNS / "own-3class", verbose=0, **TRAIN)
print(f"classes: {multi.classes} | best epoch {multi.best_epoch}: "
      f"validation mean Dice {multi.best_mean_dice:.4f}")
predict_folder(multi.run_dir, paths["test"]["images"], WORK / "pred-3class")
result, _ = evaluate_folders(WORK / "pred-3class" / "masks", paths["test"]["masks3"])
print(f"pixel accuracy {result['pixel_accuracy']:.4f}, mean Dice (classes 1-2) "
      f"{result['mean_dice']:.4f}")
print("| class | Dice | IoU |\n| --- | --- | --- |")
for row in result["per_class"]:
    dice = "-" if row["dice"] is None else f"{row['dice']:.4f}"
    iou = "-" if row["iou"] is None else f"{row['iou']:.4f}"
    print(f"| {row['class']} | {dice} | {iou} |")
print("confusion matrix (pixels):", result["confusion_matrix"])

# %%
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
axes[0].imshow(test_images.images[0]); axes[0].set_title(f"test image {stem}")
for ax, (folder, title) in zip(axes[1:], ((paths["test"]["masks3"], "label"),
                                          (WORK / "pred-3class" / "masks", "prediction"))):
    ax.imshow(cv2.imread(str(folder / f"{stem}.png"), 0), cmap="viridis", vmin=0, vmax=2)
    ax.set_title(title)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 5. The same from the command line
#
# ```bash
# keras-unets train unet --images data/train/images --masks data/train/masks3 \
#     --val-fraction 0.2 --out runs/own-3class
# keras-unets predict runs/own-3class data/test/images --out pred
# keras-unets evaluate pred/masks --labels data/test/masks3 --json
# ```
#
# Bad input stops with a message that names the file and says what would work,
# before anything is written: images without masks (with the stems and the
# suffix tried), different sizes of an image and its mask, a mask with more
# values than classes, grey and RGB images mixed in one folder, an empty folder.
