# %% [markdown]
# # UNet++ on ISBI 2012: nested skips, deep supervision, pruning
#
# **The idea.** UNet++ (Z. Zhou, M. M. Rahman Siddiquee, N. Tajbakhsh, J. Liang,
# "UNet++: A Nested U-Net Architecture for Medical Image Segmentation", DLMIA 2018)
# replaces U-Net's plain skip connections by *nested, dense* skip pathways: node
# X^{i,j} (level i, position j along the pathway) convolves the concatenation of
# all earlier nodes of its level X^{i,0..j-1} and the up-sampled X^{i+1,j-1}, so
# the encoder's features reach the decoder through a ladder of decoders of every
# depth and the semantic gap between them shrinks. With **deep supervision** a
# 1x1 sigmoid head sits on each of X^{0,1}, ..., X^{0,4} (outputs `out1`..`out4`)
# and every head has its own loss (BCE + Dice). Then the trained network can be
# **pruned**: level Li keeps only the sub-network that head i needs, trading
# accuracy for speed.
#
# This notebook builds the network and counts its parameters, looks at the data
# and one augmented pair, trains the deep-supervised UNet++ briefly, sweeps the
# threshold, shows the four heads side by side and the pruning trade-off,
# predictions with errors highlighted, and the metrics table.
#
# *Generated from `notebooks/02_unet_plus_plus.py` by `notebooks/build.py` and
# stored executed. `KERAS_UNETS_NB_FAST=1` runs it in seconds with a tiny model
# (CI); the stored outputs come from a short real training run.*

# %%
import logging
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from keras_unets.augment import Augmenter
from keras_unets.data import load_split, resolve_data_dir
from keras_unets.metrics import evaluate, threshold_sweep
from keras_unets.models import average_heads, get_model, prune_unetpp
from keras_unets.training.config import get_profile
from keras_unets.report.paper import REPORT
from keras_unets.report.scoring import predict_uint8
from keras_unets.training import load_run_model, train
from keras_unets.viz import (
    augmented_pair,
    block_table,
    concat_inputs,
    metrics_table,
    plot_panels,
    prediction_panels,
)

FAST = os.environ.get("KERAS_UNETS_NB_FAST", "0") not in ("", "0")
DATA = resolve_data_dir()  # $ISBI2012_DIR, else ~/.keras/datasets/isbi2012 (the error says what to put there)
RUNS = Path(os.environ.get("KERAS_UNETS_NB_RUNS", "_runs"))  # training runs (git-ignored)
plt.rcParams.update({"figure.dpi": 72, "image.cmap": "gray", "axes.titlesize": 10})
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # no retracing notes when several models predict

if FAST:  # CI: 4 filters, batch 2 of 64-px crops, 3 steps; the accuracy means nothing
    PROFILE, TRAIN, REPEATS = "smoke", {"epochs": 1, "steps_per_epoch": 3}, 1
else:  # 8 filters + batch norm, batch 4 of 128-px crops, Adam 3e-3 with a cosine decay, 3 x 40 steps
    PROFILE, REPEATS = "quick", 2
    TRAIN = {"epochs": 3, "steps_per_epoch": 40, "crop": 128, "overrides": {"lr_schedule": "cosine"}}
config = get_profile(PROFILE, "unetpp_ds")
print("KERAS_UNETS_NB_FAST is", "set: tiny CI setting" if FAST else "unset: stored setting",
      f"| profile {PROFILE!r} + {TRAIN}")

# %% [markdown]
# ## 1. The network
#
# The paper's UNet++ has 32-512 filters, Dropout 0.5 and L2 1e-4 after every
# convolution, 2x2 transposed convolutions for up-sampling; deep supervision adds
# four 1x1 heads (99 parameters).

# %%
paper = get_model("unetpp_ds")
print(f"paper UNet++ with deep supervision: {paper.count_params():,} parameters")
del paper

# %% [markdown]
# We train the same graph slimmer: 8 base filters and batch normalisation
# (`quick` profile; 4 filters in the CI setting). One row per node X^{i,j}
# (`x{i}_{j}`); the dense skip pathway along the top row shows in the inputs of
# X^{0,j}: the up-sampled node below and every earlier node of level 0.

# %%
model = get_model("unetpp_ds", input_shape=(256, 256, 1), **config["model_kwargs"])
print("builder arguments:", config["model_kwargs"])
print(f"{model.count_params():,} parameters, {len(model.layers)} layers, outputs {model.output_names}")
for j in range(1, 5):
    print(f"X^{{0,{j}}} <- " + ", ".join(concat_inputs(model, f"x0_{j}")))
display(Markdown(block_table(model)))

# %% [markdown]
# ## 2. The data and one augmented pair
#
# ISBI 2012: 30 annotated 512 x 512 EM slices, 255 = cell, 0 = membrane; slices
# 0-24 train, 25-29 test (the "U-Net School" report's split). Training crops are
# flipped, rotated and elastically warped (the U-Net paper's deformation); one
# warp moves image and label together, and a grid shows it.

# %%
data = load_split(DATA)
print("train", data.x_train.shape, "| test", data.x_test.shape)
augmenter = Augmenter(**get_profile("quick", "unetpp")["augment"], elastic=True)
# a 256 x 256 window at the centre of slice 3, warped; the same warp drawn on a line grid
panels, _ = augmented_pair(augmenter, data.x_train[3], data.y_train[3], seed=11, size=256)
plot_panels(panels, figsize=(19, 3.6)); plt.show()
crop = np.s_[128:384, 128:384]  # the slice centre, for the pictures below

# %% [markdown]
# ## 3. A short training run with deep supervision
#
# `keras_unets.training.train("unetpp_ds", ...)` gives each head `out1`..`out4`
# its own BCE + Dice loss with equal weights, as in the paper, and sweeps the
# binarisation threshold of every head on slices 25-29 after each epoch. The
# report trained for 100 epochs on a GPU; here it is a couple of minutes.

# %%
run_dir = RUNS / "unetpp_ds"
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook runs
result = train("unetpp_ds", profile=PROFILE, data_dir=DATA, out=run_dir, verbose=2, **TRAIN)
print(result.describe("out4"))

# %% [markdown]
# ## 4. Pruning: every head is a network of its own
#
# `prune_unetpp(model, i)` returns the sub-network that ends at X^{0,i} (nodes
# X^{a,b} with a + b <= i), sharing the trained weights; its output *is* head
# `out{i}`. We predict the test slices with each (`predict_uint8`: overlap-tile
# prediction, P(cell) as uint8, best time of repeated runs per slice) and sweep
# the threshold of each.

# %%
model = load_run_model(result.run_dir, "best", compile=False)
levels = {}
for level in (1, 2, 3, 4):
    pruned = prune_unetpp(model, level)
    pred, seconds = predict_uint8(pruned, data.x_test, timed=True, repeats=REPEATS)
    curve = threshold_sweep(pred, data.y_test)
    levels[level] = {"pred": pred, "seconds": seconds, "curve": curve,
                     "params": pruned.count_params(), "t": int(np.argmax(curve))}
    print(f"L{level}: {levels[level]['params']:>9,} parameters  {seconds * 1000:7.1f} ms/slice  "
          f"best accuracy {curve.max():.4f} at t = {levels[level]['t']}")

# %% [markdown]
# ### The four heads side by side
#
# P(cell) of each head on the centre of test slice 25. The shallow heads see
# less context: their membranes are noisier and they miss the faint ones.

# %%
fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
for ax, level in zip(axes, levels):
    ax.imshow(levels[level]["pred"][0][crop], vmin=0, vmax=255)
    ax.set_title(f"out{level} (L{level}): acc {levels[level]['curve'].max():.3f}")
axes[4].imshow(data.y_test[0][crop]); axes[4].set_title("label")
for ax in axes:
    ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ### The threshold sweep of each head, and the pruning trade-off

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for level, res in levels.items():
    ax1.plot(res["curve"], label=f"out{level}")
ax1.axhline(REPORT["unetpp"]["ds_heads"]["out4"], color="grey", ls="--",
            label=f"report, out4 {REPORT['unetpp']['ds_heads']['out4']}")
ax1.set_xlabel("threshold t (pred > t is cell)"); ax1.set_ylabel("pixel accuracy, slices 25-29")
ax1.legend()
ms = [levels[level]["seconds"] * 1000 for level in levels]
acc = [levels[level]["curve"].max() for level in levels]
ax2.plot(ms, acc, "o-")
for level, x, y in zip(levels, ms, acc):
    ax2.annotate(f"L{level}\n{levels[level]['params']:,} params", (x, y),
                 textcoords="offset points", xytext=(6, -14), fontsize=8)
ax2.set_xlabel("inference time, ms per 512 x 512 slice (this CPU)")
ax2.set_ylabel("best pixel accuracy")
ax2.set_title("pruned UNet++: accuracy against inference time")
ax2.margins(x=0.2, y=0.15); ax2.ticklabel_format(useOffset=False)
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 5. Predictions next to the labels
#
# The full network's head `out4` at its best threshold. Red: cell predicted on a
# membrane (merges two cells); blue: membrane predicted inside a cell (splits one).

# %%
pred4, t4 = levels[4]["pred"], levels[4]["t"]
panels = prediction_panels(data.x_test[0], pred4[0], data.y_test[0], t4, window=crop,
                           name="P(cell), out4", title="slice 25")
plot_panels(panels, figsize=(14, 3.8), vmin=0, vmax=255); plt.show()

# %% [markdown]
# ## 6. Metrics
#
# The paper's two inference modes: *fast* = one head (`out4`, the same as L4),
# *accurate* = the mean of the four heads (`average_heads`). Pixel accuracy at the
# best threshold, cell-class Dice and IoU, and the ISBI challenge's V_rand and
# V_info (1 is perfect).

# %%
pred_mean, _ = predict_uint8(average_heads(model), data.x_test)
table = {"UNet++ fast mode (out4 = L4)": evaluate(pred4, data.y_test),
         "UNet++ accurate mode (mean of out1..out4)": evaluate(pred_mean, data.y_test)}
display(Markdown(metrics_table(table)))
print("report (U-Net School, Table II), deep supervision heads:", REPORT["unetpp"]["ds_heads"],
      "| without deep supervision:", REPORT["unetpp"]["no_ds"])
