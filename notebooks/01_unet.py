# %% [markdown]
# # U-Net on ISBI 2012
#
# **The idea.** U-Net (O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional
# Networks for Biomedical Image Segmentation", MICCAI 2015) is an encoder-decoder.
# The contracting path (3x3 convolutions, 2x2 max-pools) gathers context while the
# resolution drops 16-fold; the expanding path (2x2 up-convolutions) brings the
# resolution back. At every level a **skip connection** concatenates the encoder's
# feature map to the decoder's, so the precise localisation of the early layers
# meets the context of the deep ones. With only 30 annotated EM slices it won the
# ISBI 2012 membrane challenge, helped by two more ideas shown below: strong
# augmentation with **elastic deformations** (section 3.1) and a **weight map**
# that makes the thin membranes between touching cells count more in the loss
# (section 3, Fig. 3).
#
# This notebook builds the network and counts its parameters, looks at the data
# and at one augmented pair, trains briefly, sweeps the binarisation threshold,
# shows predictions next to the labels with the errors highlighted, and ends with
# the metrics table.
#
# *Generated from `notebooks/01_unet.py` by `notebooks/build.py` and stored
# executed. Every step calls the `keras_unets` API. `KERAS_UNETS_NB_FAST=1`
# runs it in seconds with a tiny model (that is what CI does); the stored
# outputs come from a short real training run (about 2 minutes of CPU).*

# %%
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from keras_unets.augment import Augmenter
from keras_unets.data import load_split, resolve_data_dir
from keras_unets.metrics import evaluate, threshold_sweep, to_uint8
from keras_unets.models import build_unet, get_model
from keras_unets.inference import predict_tiled
from keras_unets.training.config import get_profile
from keras_unets.report.paper import REPORT
from keras_unets.training import load_run_model, train
from keras_unets.viz import (
    augmented_pair,
    block_table,
    metrics_table,
    plot_panels,
    prediction_panels,
)
from keras_unets.augment.weightmaps import unet_weight_map

FAST = os.environ.get("KERAS_UNETS_NB_FAST", "0") not in ("", "0")
DATA = resolve_data_dir()  # $ISBI2012_DIR, else ~/.keras/datasets/isbi2012 (the error says what to put there)
RUNS = Path(os.environ.get("KERAS_UNETS_NB_RUNS", "_runs"))  # training runs (git-ignored)
plt.rcParams.update({"figure.dpi": 72, "image.cmap": "gray", "axes.titlesize": 10})

if FAST:  # CI: 4 filters, batch 2 of 64-px crops, 3 steps; the accuracy means nothing
    PROFILE, TRAIN = "smoke", {"epochs": 1, "steps_per_epoch": 3}
else:  # 16 filters + batch norm, batch 4 of 128-px crops, Adam 3e-3 with a cosine decay, 3 x 20 steps;
    # BN momentum 0.9: with Keras' 0.99 the moving statistics still hold 0.99**60 = 55 % of
    # their initial 0/1 after 60 steps, and validation suffers
    PROFILE, TRAIN = "quick", {"epochs": 3, "steps_per_epoch": 20,
                               "model_kwargs": {"bn_momentum": 0.9}}
config = get_profile(PROFILE, "unet")
print("KERAS_UNETS_NB_FAST is", "set: tiny CI setting" if FAST else "unset: stored setting",
      f"| profile {PROFILE!r} + {TRAIN}")

# %% [markdown]
# ## 1. The network
#
# The paper's U-Net has 64 filters in the first level, doubled at each of the four
# down-sampling steps up to 1024: 23 convolutional layers, 31 million parameters.
# `get_model("unet")` builds it (with same padding, so a 512 x 512 slice gives a
# 512 x 512 map; `unet_valid` is the paper's unpadded variant).

# %%
paper = get_model("unet")
print(f"paper U-Net (64-1024 filters): {paper.count_params():,} parameters")
del paper

# %% [markdown]
# On a CPU we train a slimmer one: the same graph with 16 base filters and batch
# normalisation (`quick` profile), or 4 filters in the CI setting. One row per
# level: `enc0..enc4` is the contracting path, `dec3..dec0` the expanding path
# (each starts with the up-convolution and the concatenation with `enc*`).

# %%
model = build_unet(input_shape=(256, 256, 1), **config["model_kwargs"])
print("builder arguments:", config["model_kwargs"])
print(f"{model.count_params():,} parameters, {len(model.layers)} layers")
display(Markdown(block_table(model)))

# %% [markdown]
# ## 2. The data
#
# ISBI 2012: 30 annotated 512 x 512 slices of serial-section TEM of the
# Drosophila ventral nerve cord. Labels are 255 inside cells and 0 on membranes.
# As in the "U-Net School" report, slices 0-24 train and slices 25-29 test.

# %%
data = load_split(DATA)
print("train", data.x_train.shape, data.x_train.dtype, "| test", data.x_test.shape)
print(f"membrane pixels in the test labels: {np.mean(data.y_test == 0):.1%} "
      "(predicting 'cell' everywhere already scores the rest)")
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(data.x_train[0]); axes[0].set_title("slice 0")
axes[1].imshow(data.y_train[0]); axes[1].set_title("label 0 (white = cell)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 3. One augmented pair: elastic warp and weight map
#
# Training sees random crops, warped by an `Augmenter`: flips, rotations and the
# paper's elastic deformation (random displacements on a coarse 3 x 3 grid,
# standard deviation 10 pixels, interpolated bicubically). One warp moves image,
# label and weight map together, so they cannot drift apart. Warping a line grid
# with the same parameters shows the deformation itself.
#
# The weight map is `w(x) = w_c(x) + w0 exp(-(d1(x) + d2(x))^2 / (2 sigma^2))`
# with `d1`, `d2` the distances to the nearest and second-nearest cell, `w0 = 10`,
# `sigma = 5` px, and `w_c` balancing the two classes: the narrow membranes
# between two cells weigh most.

# %%
augmenter = Augmenter(**get_profile("quick", "unet")["augment"], elastic=True)
image, label = data.x_train[0], data.y_train[0]
weights = unet_weight_map(label)
# a 256 x 256 window at the slice centre, warped; the same warp drawn on a line grid
panels, params = augmented_pair(augmenter, image, label, weights=weights, seed=7, size=256)
print("drawn:", {k: round(v, 1) for k, v in params.items() if k != "elastic" and v is not None})
print("elastic displacements of the 3 x 3 grid nodes (x, then y; px):",
      np.round(params["elastic"].astype(float), 1).tolist())
plot_panels(panels, ncols=4, figsize=(13, 6.8)); plt.show()

# %% [markdown]
# ## 4. A short training run
#
# `keras_unets.training.train` runs the whole recipe of a profile: the
# `SegmentationDataset` of augmented crops, the loss and optimiser, and after
# every epoch a sweep of all 256 binarisation thresholds on slices 25-29 that
# picks the best checkpoint. Here the profile is shortened to a couple of minutes;
# the full `quick` run (`make reproduce-unet`, 5 minutes of training) reaches about 0.92.

# %%
run_dir = RUNS / "unet"
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook runs
result = train("unet", profile=PROFILE, data_dir=DATA, out=run_dir, verbose=2, **TRAIN)
print(result.describe())

# %% [markdown]
# ## 5. The threshold sweep
#
# The network predicts P(cell); stored as uint8 0-255 (`to_uint8`), it is
# binarised as `pred > t`. The report found that its accuracy depended on this
# threshold and chose `t = 87`. `threshold_sweep` scores all 256 thresholds at
# once (one histogram pass).

# %%
model = load_run_model(result.run_dir, "best", compile=False)
pred = to_uint8(predict_tiled(model, data.x_test, progress=False))  # uint8 P(cell), (5, 512, 512)
curve = threshold_sweep(pred, data.y_test)
t_best = int(np.argmax(curve))
print(f"best threshold {t_best}: accuracy {curve[t_best]:.4f}; at the report's t = 87: {curve[87]:.4f}")
plt.figure(figsize=(6, 3.5))
plt.plot(curve, label="this run")
plt.plot([t_best], [curve[t_best]], "o", label=f"best t = {t_best}")
plt.axvline(REPORT["unet"]["best_threshold"], color="grey", ls=":", label="report's t = 87")
plt.axhline(REPORT["unet"]["accuracy"], color="grey", ls="--", label="report's 0.9189")
plt.xlabel("threshold t (pred > t is cell)"); plt.ylabel("pixel accuracy, slices 25-29")
plt.legend(); plt.show()

# %% [markdown]
# ## 6. Predictions next to the labels
#
# The centre of test slice 25 at the best threshold. Red: cell predicted on a
# membrane (a gap in a membrane, which merges two cells); blue: membrane
# predicted inside a cell (a spurious wall, which splits a cell).

# %%
k = 0
crop = np.s_[128:384, 128:384]  # the slice centre
panels = prediction_panels(data.x_test[k], pred[k], data.y_test[k], t_best, window=crop,
                           title="slice 25")
plot_panels(panels, figsize=(14, 3.8), vmin=0, vmax=255); plt.show()

# %% [markdown]
# ## 7. Metrics
#
# `keras_unets.metrics.evaluate` on slices 25-29: the report's pixel accuracy at
# the best threshold, the cell-class Dice and IoU per slice (mean), and the ISBI
# challenge's foreground-restricted Rand and information scores V_rand and V_info
# (1 is perfect; computed after thinning the membranes, best over thresholds).

# %%
metrics = evaluate(pred, data.y_test)
display(Markdown(metrics_table({f"U-Net, this run ({PROFILE})": metrics})))
print(f"report (U-Net School, {REPORT['unet']['schedule']}): pixel accuracy "
      f"{REPORT['unet']['accuracy']} at t = {REPORT['unet']['best_threshold']}")
