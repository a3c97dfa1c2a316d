# %% [markdown]
# # U-Net on ISBI 2012: the report's section V.A, step by step
#
# Liu, Shi and Chen ("U-Net School for Medical Image Segmentation") trained the
# Keras U-Net of Ronneberger et al. (MICCAI 2015) on ISBI 2012 slices 0-24 and
# measured pixel accuracy on slices 25-29: **0.9189**, after binarising the
# prediction at threshold **87** of 0-255. This notebook walks through the same
# experiment with `keras_unets`:
#
# 1. a look at the data,
# 2. training (the `quick` profile: at most 30 minutes on a laptop CPU;
#    `PROFILE=smoke` for a one-minute run whose accuracy means nothing),
# 3. the threshold sweep of Fig. 10 and the accuracy per epoch of Fig. 11,
# 4. Table I: what goes wrong when a 256 x 256 network meets 512 x 512 data.
#
# The same pipeline runs unattended with `make reproduce-unet`; finished
# trainings are reused, so running this notebook after it only evaluates.
#
# *Generated from `notebooks/01_unet.py` by `notebooks/build.py`.*

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from keras_unets import reproduce
from keras_unets.data import load_split, resolve_data_dir

PROFILE = os.environ.get("PROFILE", "quick")  # "smoke" for a one-minute run
# results/ of the repository (Jupyter starts in notebooks/)
RESULTS = Path(os.environ.get("RESULTS", "../results" if Path.cwd().name == "notebooks" else "results"))
DATA = resolve_data_dir(os.environ.get("ISBI2012_DIR"))  # says where to put the files if missing
EXP_DIR = RESULTS / PROFILE / "unet"
print("profile:", PROFILE, "| data:", DATA, "| results:", EXP_DIR)

# %% [markdown]
# ## 1. The data
#
# 30 labelled 512 x 512 slices of a Drosophila ventral nerve cord (serial-section
# TEM). Labels: 255 = cell interior, 0 = membrane. The report's split: slices
# 0-24 train, 25-29 test. Membranes are about 22 % of the pixels, so predicting
# "cell" everywhere already scores about 0.78.

# %%
data = load_split(DATA)
print("train", data.x_train.shape, "test", data.x_test.shape, "split", data.split.name)
print("membrane fraction of the test labels: %.4f" % np.mean(data.y_test == 0))

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(data.x_test[0], cmap="gray"); axes[0].set_title("slice 25")
axes[1].imshow(data.y_test[0], cmap="gray"); axes[1].set_title("label 25")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. Training
#
# The profile is plain data: print it to see what will be trained. The `quick`
# profile trains a 16-filter U-Net with batch norm on 256 x 256 random crops
# with flips, rotations and the U-Net paper's elastic warps (Adam 1e-3, cosine
# decay), stopping cleanly after at most 30 minutes.

# %%
reproduce.profile_settings(PROFILE, "unet")

# %%
full = reproduce.train_arm(EXP_DIR, "full", "unet", profile=PROFILE, data_dir=DATA)
full

# %% [markdown]
# ## 3. Binarisation (Fig. 10) and accuracy per epoch (Fig. 11)
#
# The network predicts P(cell); stored as uint8 0-255 it is neither 0 nor 255
# where the network is unsure, so comparing it pixel by pixel with the 0/255
# labels undercounts. Binarise: `pred > t -> 255`. The sweep over all 256
# thresholds is one histogram pass (`keras_unets.metrics.threshold_sweep`).

# %%
model = reproduce.load_model(full["run_dir"], "best")
pred, seconds = reproduce.predict_uint8(model, data.x_test)
result = reproduce.sweep(pred, data.y_test)
print("unbinarised accuracy %.4f" % result["raw_accuracy"])
print("best threshold %d -> accuracy %.4f (report: 87 -> 0.9189)"
      % (result["best_threshold"], result["best_accuracy"]))
print("inference: %.0f ms per slice" % (seconds * 1000))

# %%
plt.plot(result["curve"])
plt.axvline(87, color="grey", ls=":", label="report's threshold 87")
plt.plot([result["best_threshold"]], [result["best_accuracy"]], "o", label="our best")
plt.xlabel("threshold t"); plt.ylabel("pixel accuracy, slices 25-29"); plt.legend()
plt.show()

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].imshow(pred[0], cmap="gray"); axes[0].set_title("P(cell), uint8")
axes[1].imshow(pred[0] > result["best_threshold"], cmap="gray"); axes[1].set_title("binarised")
axes[2].imshow(data.y_test[0], cmap="gray"); axes[2].set_title("label")
for ax in axes:
    ax.axis("off")
plt.show()

# %%
history = reproduce.read_history(full["run_dir"])
plt.plot(range(1, len(history["val_best_accuracy"]) + 1), history["val_best_accuracy"], ".-")
plt.axhline(0.9189, color="grey", ls="--", label="report 0.9189")
plt.xlabel("epoch"); plt.ylabel("accuracy on 25-29 (best threshold)"); plt.legend()
plt.show()

# %% [markdown]
# ## 4. Table I and the written results
#
# `run_unet` trains the half-resolution arm (a third of the epochs), reuses the
# run above, scores the three ways of Table I with and without binarisation,
# draws the figures and writes `metrics.json`, `table.md` and the provenance.

# %%
metrics = reproduce.run_unet(PROFILE, results=RESULTS, data_dir=DATA)
print((EXP_DIR / "table.md").read_text())

# %%
reproduce.write_summary(PROFILE, results=RESULTS)
