# %% [markdown]
# # UNet 3+ on ISBI 2012: accuracy per epoch
#
# UNet 3+ (Huang et al., ICASSP 2020) connects every decoder node to all scales:
# the shallower encoder maps (max-pooled), the same-scale encoder map and every
# deeper decoder map (bilinearly upsampled), each reduced to 64 channels and
# fused. The report (section V.C) trained it with Adam 1e-3, batch 1 and
# `BCEWithLogitsLoss`, measured the accuracy on slices 25-29 after each of 40
# epochs (Fig. 13) and found its best, **0.923**, at epoch 18.
#
# Our UNet 3+ also outputs logits (no final activation); prediction applies the
# sigmoid. The threshold-sweep callback measures slices 25-29 at the best
# threshold after every epoch, which gives Fig. 13 directly.
#
# `PROFILE=quick` (default here): at most 30 minutes on a CPU; `PROFILE=smoke`:
# a minute, meaningless accuracy. `make reproduce-unet3p` runs the same
# unattended; a finished run is reused.
#
# *Generated from `notebooks/03_unet3p.py` by `notebooks/build.py`.*

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
DATA = resolve_data_dir(os.environ.get("ISBI2012_DIR"))
EXP_DIR = RESULTS / PROFILE / "unet3p"
data = load_split(DATA)
print("profile:", PROFILE, "| data:", DATA, "| results:", EXP_DIR)

# %%
reproduce.profile_settings(PROFILE, "unet3p")

# %%
run = reproduce.train_arm(EXP_DIR, "main", "unet3p", profile=PROFILE, data_dir=DATA)
run

# %% [markdown]
# ## Fig. 13: accuracy on slices 25-29 per epoch

# %%
curve = reproduce.read_history(run["run_dir"])["val_best_accuracy"]
best = int(np.nanargmax(curve))
plt.plot(range(1, len(curve) + 1), curve, ".-", label="ours")
plt.plot([best + 1], [curve[best]], "*", ms=14, label=f"best: epoch {best + 1}, {curve[best]:.4f}")
plt.axhline(0.923, color="grey", ls="--", label="report: 0.923 at epoch 18")
plt.xlabel("epoch"); plt.ylabel("accuracy on 25-29 (best threshold)"); plt.legend()
plt.show()

# %% [markdown]
# ## A prediction
#
# The best checkpoint on the first test slice; `predict_uint8` uses the
# overlap-tile predictor, which applies the sigmoid to this logits model.

# %%
model = reproduce.load_model(run["run_dir"], "best")
pred, seconds = reproduce.predict_uint8(model, data.x_test)
res = reproduce.sweep(pred, data.y_test)
print(f"{model.count_params():,} parameters, {seconds * 1000:.0f} ms per slice, "
      f"accuracy {res['best_accuracy']:.4f} at t={res['best_threshold']}")
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(pred[0] > res["best_threshold"], cmap="gray"); axes[0].set_title("binarised")
axes[1].imshow(data.y_test[0], cmap="gray"); axes[1].set_title("label")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Written results

# %%
metrics = reproduce.run_unet3p(PROFILE, results=RESULTS, data_dir=DATA)
print((EXP_DIR / "table.md").read_text())

# %%
reproduce.write_summary(PROFILE, results=RESULTS)
