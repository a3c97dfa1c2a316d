# %% [markdown]
# # UNet++ on ISBI 2012: deep supervision and pruning
#
# UNet++ (Zhou et al., DLMIA 2018) replaces U-Net's plain skip connections with
# nested, dense convolution blocks X^{i,j}. With deep supervision, a 1x1 sigmoid
# head sits on each of X^{0,1}, ..., X^{0,4} (outputs `out1`..`out4`), every
# head gets its own loss (BCE + Dice), and the trained network can be **pruned**:
# level Li keeps only the sub-network that head i needs.
#
# The report (section V.B, Table II) got 0.878 / 0.886 / 0.891 / 0.894 from the
# four heads and 0.917 without deep supervision, and showed in Fig. 12 that the
# deep-supervised model trains more slowly. It never measured what pruning buys;
# we do.
#
# `PROFILE=quick` (default here) trains each model for at most 30 minutes on a
# CPU; `PROFILE=smoke` runs in a minute and means nothing. `make
# reproduce-unetpp` runs the same unattended; finished runs are reused.
#
# *Generated from `notebooks/02_unetpp.py` by `notebooks/build.py`.*

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt

from keras_unets import reproduce
from keras_unets.data import load_split, resolve_data_dir
from keras_unets.models import prune_unetpp

PROFILE = os.environ.get("PROFILE", "quick")  # "smoke" for a one-minute run
# results/ of the repository (Jupyter starts in notebooks/)
RESULTS = Path(os.environ.get("RESULTS", "../results" if Path.cwd().name == "notebooks" else "results"))
DATA = resolve_data_dir(os.environ.get("ISBI2012_DIR"))
EXP_DIR = RESULTS / PROFILE / "unetpp"
data = load_split(DATA)
print("profile:", PROFILE, "| data:", DATA, "| results:", EXP_DIR)

# %% [markdown]
# ## 1. Train with and without deep supervision
#
# Model names: `unetpp_ds` (four heads) and `unetpp` (one output on X^{0,4}).

# %%
reproduce.profile_settings(PROFILE, "unetpp_ds")

# %%
ds = reproduce.train_arm(EXP_DIR, "ds", "unetpp_ds", profile=PROFILE, data_dir=DATA)
no_ds = reproduce.train_arm(EXP_DIR, "no_ds", "unetpp", profile=PROFILE, data_dir=DATA)
ds, no_ds

# %% [markdown]
# ## 2. Fig. 12: training accuracy per epoch
#
# The Keras history records each head's training accuracy (threshold 0.5).

# %%
h_ds, h_no = reproduce.read_history(ds["run_dir"]), reproduce.read_history(no_ds["run_dir"])
for label, hist, head in (("no DS", h_no, None), ("DS, out4", h_ds, "out4"), ("DS, out1", h_ds, "out1")):
    key, acc = reproduce._train_accuracy(hist, head)
    if acc:
        plt.plot(range(1, len(acc) + 1), acc, ".-", label=f"{label} ({key})")
plt.xlabel("epoch"); plt.ylabel("training accuracy"); plt.legend()
plt.show()

# %% [markdown]
# ## 3. Table II and pruning
#
# Each head of the deep-supervised model is evaluated as the pruned network that
# ends at X^{0,i}: `prune_unetpp(model, i)` shares the trained weights and
# drops everything deeper. Fewer layers, faster inference.

# %%
model = reproduce.load_model(ds["run_dir"], "best")
for level in (1, 2, 3, 4):
    pruned = prune_unetpp(model, level)
    pred, seconds = reproduce.predict_uint8(pruned, data.x_test)
    res = reproduce.sweep(pred, data.y_test)
    print(f"L{level}: {pruned.count_params():>9,} parameters  {seconds * 1000:6.1f} ms/slice  "
          f"accuracy {res['best_accuracy']:.4f} (t={res['best_threshold']})")

# %% [markdown]
# ## 4. Everything written to disk
#
# `run_unetpp` reuses both runs, evaluates and times again, draws the figures and
# writes `metrics.json`, `table.md` and the provenance.

# %%
metrics = reproduce.run_unetpp(PROFILE, results=RESULTS, data_dir=DATA)
print((EXP_DIR / "table.md").read_text())

# %%
reproduce.write_summary(PROFILE, results=RESULTS)
