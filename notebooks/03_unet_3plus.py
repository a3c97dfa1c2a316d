# %% [markdown]
# # UNet 3+ on ISBI 2012: full-scale skips and the classification-guided module
#
# **The idea.** UNet 3+ (H. Huang, L. Lin, R. Tong, H. Hu, Q. Zhang, Y. Iwamoto,
# X. Han, Y.-W. Chen, J. Wu, "UNet 3+: A Full-Scale Connected UNet for Medical
# Image Segmentation", ICASSP 2020) connects every decoder node to **all scales**
# (section 2.1): decoder node X_De^i takes the shallower encoder maps
# X_En^{1..i-1} max-pooled down to its size, the same-scale encoder map X_En^i,
# and the deeper decoder maps X_De^{i+1..5} up-sampled bilinearly. Each of these
# five inputs passes a 3x3 convolution to 64 channels, and the 320 channels are
# fused by one more convolution, so fine detail and coarse semantics meet in
# every node with fewer parameters than UNet++. **Full-scale deep supervision**
# (section 2.2) puts a head on every decoder scale, up-sampled to full size. A
# **classification-guided module** (CGM, section 2.3) predicts from the deepest
# encoder map whether the organ is present at all and multiplies every
# segmentation by that 0/1 decision, to remove false positives on images without
# it.
#
# This notebook builds the network and counts its parameters, looks at the data
# and one augmented pair, trains UNet 3+ with deep supervision briefly, sweeps
# the threshold, shows predictions with errors highlighted and the metrics, then
# opens one decoder node to show its five full-scale inputs, and puts the CGM in
# front of an empty crop.
#
# *Generated from `notebooks/03_unet_3plus.py` by `notebooks/build.py` and stored
# executed. `KERAS_UNETS_NB_FAST=1` runs it in seconds with a tiny model (CI);
# the stored outputs come from a short real training run.*

# %%
import logging
import os
import shutil
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from keras_unets.augment import Augmenter
from keras_unets.data import load_split, resolve_data_dir
from keras_unets.models.layers import ClassGuidance
from keras_unets.metrics import evaluate, threshold_sweep, to_uint8
from keras_unets.models import get_model, main_output_name
from keras_unets.inference import predict_tiled
from keras_unets.training.config import get_profile
from keras_unets.report.paper import REPORT
from keras_unets.training import load_run_model, train
from keras_unets.viz import (
    augmented_pair,
    block_table,
    concat_inputs,
    feature_maps,
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
    PROFILE, TRAIN = "smoke", {"epochs": 1, "steps_per_epoch": 3}
else:  # 8 filters, 8 channels per full-scale skip, batch norm, batch 4 of 128-px crops, 3 x 35 steps
    PROFILE = "quick"
    TRAIN = {"epochs": 3, "steps_per_epoch": 35, "crop": 128,
             "model_kwargs": {"filters": 8, "cat_channels": 8}, "overrides": {"lr_schedule": "cosine"}}
config = get_profile(PROFILE, "unet3p_ds")
model_kwargs = {**config["model_kwargs"], **TRAIN.get("model_kwargs", {})}
print("KERAS_UNETS_NB_FAST is", "set: tiny CI setting" if FAST else "unset: stored setting",
      f"| profile {PROFILE!r} + {TRAIN}")

# %% [markdown]
# ## 1. The network
#
# The paper's UNet 3+: encoder 64-1024 filters, 64 channels per full-scale skip,
# 320 per fused decoder node; deep supervision adds five 3x3 heads and the CGM a
# 1x1 convolution to two classes.

# %%
for name in ("unet3p", "unet3p_ds", "unet3p_ds_cgm"):
    paper = get_model(name)
    trainable = sum(int(np.prod(w.shape)) for w in paper.trainable_weights)
    label = {"unet3p": "", "unet3p_ds": " with deep supervision", "unet3p_ds_cgm": " with deep supervision + CGM"}
    print(f"paper UNet 3+{label[name]}: {trainable:,} trainable parameters")
del paper

# %% [markdown]
# We train it much slimmer on a CPU: 8 encoder filters and 8 channels per skip
# (fused width 40), batch norm, and the `quick` profile's loss: BCE + Dice on a
# sigmoid output, as for UNet++ (the report's UNet 3+ used BCE on logits, and so
# does the 4-filter model of the CI setting). The `quick` and `paper` profiles
# also set `factorize_skips=True`. In the paper's order a deeper decoder map is
# up-sampled to the node's size and *then* convolved: at 512 x 512 the
# bottleneck X_En^5 becomes a 1024-channel map of 512 x 512 (1 GiB in float32)
# before a 3x3 convolution reduces it to 64 channels. Up-sampling acts on each
# channel alone and the convolution mixes channels at each of its nine kernel
# offsets, so the two can be swapped exactly: the channel mixing runs at the
# deep map's own resolution, and the nine narrow results are up-sampled and
# shifted into place (`keras_unets.models.layers.UpsampleConv2D(factorized=True)`).
# Same function and weights, no wide full-size map: the paper's UNet 3+ then
# needs 4.3 GiB instead of 6.6 GiB to train at 512 x 512 (XLA's figure,
# `BENCHMARKS.md`) and steps about 1.5x faster on a CPU.
# One row per scale: `e1..e5` the encoder, `hd4..hd1` the decoder nodes (each with
# its five skip convolutions and the fusion), `out1..out5` the heads.

# %%
model = get_model("unet3p_ds", input_shape=(256, 256, 1), **model_kwargs)
print("builder arguments:", model_kwargs)
print(f"{model.count_params():,} parameters, {len(model.layers)} layers, outputs {model.output_names}")
print("inputs of decoder node hd3:", ", ".join(concat_inputs(model, "hd3")))
display(Markdown(block_table(model, key=r"hd\d+|e\d+")))

# %% [markdown]
# The two ways of computing the skips give the same numbers: the same weights in
# the paper's order as written and factorized, on one random input.

# %%
same = {}
for factorize in (False, True):
    same[factorize] = get_model("unet3p_ds", input_shape=(256, 256, 1),
                                **{**model_kwargs, "factorize_skips": factorize})
same[True].set_weights(same[False].get_weights())
x = np.random.default_rng(0).random((1, 256, 256, 1), dtype=np.float32)
outs = [same[f].predict(x, verbose=0) for f in (False, True)]
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*outs))
print(f"largest difference over the five heads: {diff:.1e} (float32 rounding)")
del same, outs

# %% [markdown]
# ## 2. The data and one augmented pair
#
# ISBI 2012: 30 annotated 512 x 512 EM slices, 255 = cell, 0 = membrane; slices
# 0-24 train, 25-29 test. Training crops are flipped, rotated and elastically
# warped; one warp moves image and label together, and a grid shows it.

# %%
data = load_split(DATA)
print("train", data.x_train.shape, "| test", data.x_test.shape)
augmenter = Augmenter(**get_profile("quick", "unet3p")["augment"], elastic=True)
# a 256 x 256 window at the centre of slice 8, warped; the same warp drawn on a line grid
panels, _ = augmented_pair(augmenter, data.x_train[8], data.y_train[8], seed=5, size=256)
plot_panels(panels, figsize=(19, 3.6)); plt.show()
crop = np.s_[128:384, 128:384]  # the slice centre, for the pictures below

# %% [markdown]
# ## 3. A short training run with full-scale deep supervision
#
# Every head `out1`..`out5` gets the profile's loss (BCE + Dice here);
# `out1`, the full-resolution head on X_De^1, is the prediction. The report
# trained 40 epochs on a GPU and took epoch 18; here it is a couple of minutes.

# %%
run_dir = RUNS / "unet3p_ds"
shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time the notebook runs
result = train("unet3p_ds", profile=PROFILE, data_dir=DATA, out=run_dir, verbose=2, **TRAIN)
print(result.describe("out1"))

# %% [markdown]
# ## 4. The threshold sweep
#
# `predict_tiled` predicts the main output (`out1`), applying a sigmoid first
# if the model outputs logits; `to_uint8` stores P(cell) as 0-255; `threshold_sweep` scores all
# 256 binarisations `pred > t`.

# %%
model = load_run_model(result.run_dir, "best", compile=False)
print("main output:", main_output_name(model))
pred = to_uint8(predict_tiled(model, data.x_test, progress=False))
curve = threshold_sweep(pred, data.y_test)
t_best = int(np.argmax(curve))
print(f"best threshold {t_best}: accuracy {curve[t_best]:.4f}")
plt.figure(figsize=(6, 3.5))
plt.plot(curve, label="this run, out1")
plt.plot([t_best], [curve[t_best]], "o", label=f"best t = {t_best}")
plt.axhline(REPORT["unet3p"]["accuracy"], color="grey", ls="--", label="report's 0.923")
plt.xlabel("threshold t (pred > t is cell)"); plt.ylabel("pixel accuracy, slices 25-29")
plt.legend(); plt.show()

# %% [markdown]
# ## 5. Predictions next to the labels
#
# Centre of test slice 25 at the best threshold. Red: cell predicted on a
# membrane (merges two cells); blue: membrane predicted inside a cell (splits one).

# %%
panels = prediction_panels(data.x_test[0], pred[0], data.y_test[0], t_best, window=crop,
                           name="P(cell), out1", title="slice 25")
plot_panels(panels, figsize=(14, 3.8), vmin=0, vmax=255); plt.show()

# %% [markdown]
# ## 6. Metrics
#
# Pixel accuracy at the best threshold, cell-class Dice and IoU, and the ISBI
# challenge's V_rand and V_info (1 is perfect), on slices 25-29.

# %%
metrics = evaluate(pred, data.y_test)
display(Markdown(metrics_table({f"UNet 3+ out1, this run ({PROFILE})": metrics})))
print(f"report (U-Net School, {REPORT['unet3p']['schedule']}): pixel accuracy {REPORT['unet3p']['accuracy']}")

# %% [markdown]
# ## 7. Inside one decoder node: the full-scale skips of X_De^3
#
# Decoder node `hd3` works at 1/4 resolution (128 x 128 for a 512 slice). Its
# five inputs, after their 3x3 skip convolutions (mean over channels, test slice
# 25): `e1` and `e2` max-pooled 4x and 2x (fine edges), `e3` at its own scale,
# and `hd4`, `hd5` up-sampled 2x and 4x (coarse, semantic). The fusion
# convolution mixes them into `hd3`.

# %%
names = concat_inputs(model, "hd3") + ["hd3_fuse_relu"]
maps = feature_maps(model, data.x_test[:1], names)
for name in names:
    print(f"{name:>18}: {maps[name].shape[1:]} (mean over channels)")
fig, axes = plt.subplots(1, len(names) + 1, figsize=(19, 3.2))
axes[0].imshow(data.x_test[0]); axes[0].set_title("slice 25")
for ax, name in zip(axes[1:], names):
    ax.imshow(maps[name][0], cmap="viridis")
    ax.set_title(name.removeprefix("hd3_").removesuffix("_relu").replace("from_", "from "))
for ax in axes:
    ax.axis("off")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## 8. The classification-guided module on an empty crop
#
# The CGM (`get_model("unet3p_ds_cgm")`) adds a branch on the deepest encoder map,
# Dropout -> 1x1 conv to two classes -> global max-pool -> sigmoid (output `cls`,
# [P(absent), P(present)]); the layer `ClassGuidance` multiplies every
# segmentation output by its argmax, 0 or 1.
#
# An honest caveat: on ISBI every slice contains cells, so the classification
# target would always be "present" and a trained branch would learn nothing about
# absence; `keras_unets.training.train` therefore does not train the CGM. Below,
# the CGM model is **untrained** (its `cls` is whatever random weights give), and
# to show what the module does we also apply `ClassGuidance` to the trained
# network's prediction with the class scores **forced** to "present" and to
# "absent".
#
# The empty crop is a blank slice of mean grey (512 x 512, the size the network
# has been predicting at): there is nothing to segment, so every pixel the
# trained network calls "cell" there is a false positive, which is what the CGM
# is meant to remove.

# %%
empty = np.full((1, 512, 512), int(data.x_test.mean()), np.uint8)
prob_empty = predict_tiled(model, empty, progress=False)[..., None]  # trained UNet 3+, P(cell)

cgm_model = get_model("unet3p_ds_cgm", **{**model_kwargs, "output_activation": "sigmoid"})
outputs = dict(zip(cgm_model.output_names, cgm_model.predict(empty[..., None] / 255.0, verbose=0)))
scores = outputs["cls"][0]
present = int(np.argmax(scores))
print(f"untrained CGM on the empty crop: cls = [P(absent), P(present)] = {np.round(scores.astype(float), 3).tolist()}"
      f" -> {'present' if present else 'absent'}; its out1 ranges "
      f"{outputs['out1'].min():.3f}..{outputs['out1'].max():.3f}"
      + ("" if present else " (masked to 0)"))

guide = ClassGuidance()
forced = {"present": np.array([[0.1, 0.9]], np.float32), "absent": np.array([[0.9, 0.1]], np.float32)}
masked = {k: keras.ops.convert_to_numpy(guide([prob_empty, v])) for k, v in forced.items()}
for k, m in masked.items():
    print(f"ClassGuidance with cls forced {k} -> max P(cell) {m.max():.3f}")

fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
axes[0].imshow(empty[0], vmin=0, vmax=255); axes[0].set_title("empty crop")
axes[1].imshow(prob_empty[0, ..., 0], vmin=0, vmax=1); axes[1].set_title("trained UNet 3+: P(cell)")
axes[2].imshow(masked["present"][0, ..., 0], vmin=0, vmax=1); axes[2].set_title("x ClassGuidance, 'present'")
axes[3].imshow(masked["absent"][0, ..., 0], vmin=0, vmax=1); axes[3].set_title("x ClassGuidance, 'absent'")
for ax in axes:
    ax.axis("off")
plt.tight_layout(); plt.show()
