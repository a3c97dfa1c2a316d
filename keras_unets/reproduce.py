"""Reproduce the "U-Net School" report: every table and figure, side by side.

Liu, Shi, Chen, "U-Net School for Medical Image Segmentation" (SJTU), trained
U-Net (Ronneberger et al., MICCAI 2015), UNet++ (Zhou et al., DLMIA 2018) and
UNet 3+ (Huang et al., ICASSP 2020) on ISBI 2012 slices 0-24 and measured
pixel accuracy on slices 25-29. This module runs the same experiments with
:func:`keras_unets.training.train` and writes, per profile and experiment::

    results/<profile>/<experiment>/
        metrics.json      every number below, the report's numbers, provenance
        table.md          the report's table(s) with ours beside them
        provenance.json   the exact command, git commit, versions, machine
        figures/*.png     the report's figures (matplotlib, Agg)
        runs/<arm>/       training run directories (not meant for git)
    results/<profile>/SUMMARY.md   one table for the three networks + figures

Experiments (u-net-school-report.txt section V; FACTS.md section 1):

- ``unet``: Table I (a network at half resolution on full-resolution data:
  resize the prediction up, resize the label down, or retrain at full
  resolution; each with and without binarisation), Fig. 10 (accuracy against
  threshold 0-255, best threshold marked), Fig. 11 (accuracy per epoch).
- ``unetpp``: Table II (deep-supervision heads out1..out4 against no deep
  supervision), Fig. 12 (training accuracy per epoch with and without deep
  supervision), and what the report could not show: the DS model pruned to
  L1..L4, accuracy against inference time (Zhou et al. 2018, Sec. 2.2).
- ``unet3p``: Fig. 13 (test accuracy per epoch, best epoch marked).

Decisions where the report is silent (documented here and in SUMMARY.md):

- Table I, "retrain at 512" is the experiment's main run itself (the profile's
  U-Net recipe at full resolution); the half-resolution arm trains the same
  recipe on slices resized to H/2 x W/2 (images INTER_AREA, labels INTER_AREA
  then ``> 127``), for a third of the main run's epochs (and time limit), so
  ``make reproduce-unet`` stays within ~1.35x one training.
- "Ours, as the report": the checkpoint with the best validation accuracy on
  slices 25-29 and the threshold tuned on 25-29, as the report did (it picked
  both on its test slices). "Ours, blind": the LAST checkpoint (no model
  selection on the test slices) with the threshold tuned on training slices
  20-24. Those slices were seen in training (not a true held-out set; the
  ``holdout`` experiment below is one, at the cost of a second training),
  but the test slices 25-29 are used only to measure, never to choose.
- True hold-out (``holdout``, ``make reproduce-holdout``; not in the report
  and not in ``all``): each network's main recipe trained again on slices
  0-19 only, its checkpoint and threshold chosen on 20-24 and slices 25-29
  used only to measure. One more training per network (``quick``: 3 x 30
  min); ``networks=`` runs some of them, finished ones are reused.
- Seed spread (``seed=N``, ``--seed N``, ``make ... SEED=N``): every arm
  trained with seed N instead of the profile's, into ``results/seed-N/``
  (:func:`default_results`) so it never mixes with the profile's runs; a
  run folder of another seed is refused (:class:`SeedMismatchError`).
  ``results/<profile>/SUMMARY.md`` gets a "Seed spread" table of every
  measure that two or more seeds have (:func:`seed_spread`).
- Time limit (``time_limit_minutes=M``, ``--time-limit M``, ``make ...
  TIME_LIMIT=M``): every arm stops after M minutes instead of the
  profile's limit (Table I's half arm: M / 3), e.g. the ``paper`` profile
  in a GPU lease (``bench/gpu_session.py``). A finished run of another
  limit is refused (:class:`TimeLimitMismatchError`); an interrupted one is
  resumed under the new limit. SUMMARY.md names the limit of a run it
  stopped.
- Test-time augmentation: both numbers are also given with each slice
  predicted as the mean over its 8 flips / right-angle rotations
  (``tta_*`` keys in metrics.json, a second table in SUMMARY.md); the U-Net
  paper averaged 7 rotated versions for its ISBI 2012 entry. Same
  checkpoints, thresholds re-tuned by the same two rules.
- Provenance: ``provenance.json`` names the commit that evaluated; each
  arm's ``DONE.json`` (``metrics.json["arms"]``) names the commit that
  trained it, and SUMMARY.md says when they differ (a reused run).
- Resumable: a finished arm has ``runs/<arm>/DONE.json`` and is reused
  (a run stopped by the profile's time limit counts as finished); an arm
  with a completed epoch (``state.json``) but no marker is resumed with
  ``train(resume=...)``, its time limit starting afresh. Evaluation, tables
  and figures are recomputed on every call (seconds to a minute).
- Cost (``quick``, 2-core CPU, bounded by the profile's 30-minute limit per
  training): ``unet`` 30 + 10 min, ``unetpp`` 2 x 30 min, ``unet3p`` 30 min,
  so ``make reproduce`` takes about 2 h 15 min; ``smoke`` about 2-3 minutes
  for everything.
- Inference time: overlap-tile prediction of the test slices with
  :func:`keras_unets.predict.predict_tiled`'s defaults, best of 3 timed calls
  after a warm-up (``smoke``: a single call without warm-up, not meaningful).
- Figures again without training (:func:`redraw_figures`, ``keras-unets
  reproduce figures``): the figures are drawn from the histories, threshold
  curves and pruning levels kept in metrics.json, so results written by
  older plotting code can be redrawn by the current one; the numbers are
  not touched.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_unets.io import atomic_write, atomic_write_json, atomic_write_text

EXPERIMENTS = ("unet", "unetpp", "unet3p")
PROFILE_NAMES = ("paper", "quick", "smoke")

#: The report's numbers (u-net-school-report.txt; FACTS.md section 1).
#: Accuracy = pixel accuracy on slices 25-29 of the binarised prediction.
REPORT = {
    "unet": {
        "network": "U-Net",
        "accuracy": 0.9189,
        "best_threshold": 87,
        "framework": "TF/Keras, GTX 1060 6 GB",
        "schedule": "Adam 1e-4, 10 epochs x 2000 steps, ~5 h",
        # Table I: before binarisation was fixed (raw equality of uint8 maps).
        "table1": {
            "resize_prediction": 0.6754,
            "resize_label": 0.7545,
            "retrain_full": 0.6996,
        },
    },
    "unetpp": {
        "network": "UNet++",
        "accuracy": 0.917,
        "framework": "PyTorch",
        "schedule": "SGD 1e-3 momentum 0.9 wd 1e-4, batch 1, 100 epochs",
        # Table II
        "ds_heads": {"out1": 0.878, "out2": 0.886, "out3": 0.891, "out4": 0.894},
        "no_ds": 0.917,
    },
    "unet3p": {
        "network": "UNet 3+",
        "accuracy": 0.923,
        "best_epoch": 18,
        "epochs": 40,
        "framework": "PyTorch",
        "schedule": "Adam 1e-3, batch 1, best at epoch 18 of 1-40",
    },
}

TEST_SLICES = tuple(range(25, 30))
BLIND_SLICES = tuple(range(20, 25))
DONE_MARKER = "DONE.json"


# ---------------------------------------------------------------------------
# Profile and provenance
# ---------------------------------------------------------------------------
def detect_gpu():
    """Name of a visible NVIDIA GPU, or ``None``, without importing TensorFlow.

    Uses ``nvidia-smi -L`` when it is on ``PATH``; ``CUDA_VISIBLE_DEVICES``
    set to ``""`` or ``"-1"`` hides every GPU.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return None
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("GPU")]
    if out.returncode != 0 or not lines:
        return None
    # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)" -> "NVIDIA H100 80GB HBM3"
    name = lines[0].split(":", 1)[1].split("(UUID")[0].strip()
    return f"{len(lines)} x {name}" if len(lines) > 1 else name


def default_profile():
    """``(profile, reason)``: ``$PROFILE`` if set, else paper with a GPU, else quick."""
    env = os.environ.get("PROFILE", "").strip()
    if env:
        return check_profile(env), f"PROFILE={env}"
    gpu = detect_gpu()
    if gpu:
        return "paper", f"GPU visible: {gpu}"
    return "quick", "no GPU visible (nvidia-smi); PROFILE=paper to override"


def check_profile(profile):
    """Validate a profile name; returns it."""
    if profile not in PROFILE_NAMES:
        raise ValueError(
            f"Unknown profile. Expected one of {', '.join(PROFILE_NAMES)}. "
            f"Received: profile={profile!r}"
        )
    return profile


def _version(dist):
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def _git(*args):
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=20,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def keras_backend():
    """The Keras backend in use (or that will be used), without importing Keras."""
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except Exception:  # pragma: no cover - partially imported keras
            pass
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    cfg = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(cfg.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def machine_description(gpu=None):
    """One line naming the machine, e.g. ``"2-core CPU (Intel Xeon ...)"``."""
    gpu = detect_gpu() if gpu is None else gpu
    cpu = f"{os.cpu_count()}-core CPU" + (f" ({_cpu_model()})" if _cpu_model() else "")
    return f"{gpu} GPU, {cpu}" if gpu else cpu


def _git_dirty():
    """Uncommitted changes to tracked files outside results/ (None: not a git checkout)."""
    # results/ holds the outputs being (re)written: not a code change
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":/",
                  ":(exclude,top)results")
    return bool(status) if status is not None else None


def _code_state():
    """The code that produces a result: ``{"git_commit": ..., "git_dirty": ...}``.

    ``$KERAS_UNETS_GIT_COMMIT``, if set, names the commit, and git is not
    asked (``git_dirty`` None): it is for copies of the work tree sent
    elsewhere (a device machine's), where the caller names the commit it
    sent; such a copy may carry no ``.git``, or one older than the tree (the
    first lease's did). Else ``git rev-parse HEAD`` and :func:`_git_dirty`.
    """
    named = os.environ.get("KERAS_UNETS_GIT_COMMIT")
    if named:
        return {"git_commit": named, "git_dirty": None}
    return {"git_commit": _git("rev-parse", "HEAD") or None, "git_dirty": _git_dirty()}


def provenance(command=None):
    """What produced a result: command, git commit, versions, machine.

    ``command`` defaults to this process's command line (``sys.argv``).
    """
    if command is None:
        command = " ".join(shlex.quote(a) for a in sys.argv)
    gpu = detect_gpu()
    return {
        "command": command,
        "cwd": os.getcwd(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **_code_state(),
        "versions": {
            "python": platform.python_version(),
            "keras_unets": _version("keras-unets"),
            "keras": _version("keras"),
            "keras_backend": keras_backend(),
            "tensorflow": _version("tensorflow"),
            "jax": _version("jax"),
            "numpy": np.__version__,
            "opencv": _version("opencv-python") or _version("opencv-python-headless"),
        },
        "machine": {
            "description": machine_description(gpu),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "cpu": _cpu_model(),
            "gpu": gpu,
        },
    }


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------
def fmt(value, digits=4):
    """Format a table cell: floats to ``digits`` decimals, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "–"
        return f"{float(value):.{digits}f}"
    return str(value)


def markdown_table(headers, rows):
    """A GitHub markdown table; cells go through :func:`fmt` unless already str."""
    def cell(v):
        return (v if isinstance(v, str) else fmt(v)).replace("|", "\\|").replace("\n", " ")

    if any(len(r) != len(headers) for r in rows):
        bad = [len(r) for r in rows if len(r) != len(headers)]
        raise ValueError(
            f"Every row needs {len(headers)} cells (one per header). "
            f"Received: row lengths {bad}"
        )
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def format_seconds(seconds):
    """``3725.0 -> "1 h 02 min"``, ``95 -> "1 min 35 s"``, ``4.2 -> "4.2 s"``."""
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def provenance_markdown(prov):
    """A short markdown block: command, commit, versions, machine."""
    v = prov["versions"]
    commit = prov.get("git_commit") or "unknown"
    if prov.get("git_dirty"):
        commit += " (with uncommitted changes)"
    return (
        "## Provenance\n\n"
        f"- command: `{prov['command']}`\n"
        f"- date: {prov['date_utc']}, git commit {commit}\n"
        f"- machine: {prov['machine']['description']}; {prov['machine']['platform']}\n"
        f"- versions: Python {v['python']}, keras {v['keras']} "
        f"(backend {v['keras_backend']}), tensorflow {v['tensorflow']}, "
        f"jax {v['jax']}, numpy {v['numpy']}, keras-unets {v['keras_unets']}\n"
    )


def write_experiment(exp_dir, *, metrics, table_md, prov):
    """Write ``metrics.json``, ``table.md`` and ``provenance.json`` atomically."""
    exp_dir = Path(exp_dir)
    metrics = dict(metrics, provenance=prov)
    atomic_write_json(exp_dir / "metrics.json", _jsonable(metrics))
    atomic_write_json(exp_dir / "provenance.json", _jsonable(prov))
    atomic_write_text(exp_dir / "table.md", table_md.rstrip() + "\n\n" + provenance_markdown(prov))
    return exp_dir / "metrics.json"


# ---------------------------------------------------------------------------
# Figures (matplotlib Agg, fed by plain arrays)
# ---------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    plt = _pyplot()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_threshold_curve(accuracies, path, *, title="Accuracy against binarisation threshold",
                         report_threshold=None, label="slices 25-29"):
    """Fig. 10: accuracy of ``pred > t`` for t = 0..255, best threshold marked.

    ``accuracies``: (256,) array from :func:`keras_unets.metrics.threshold_sweep`
    (several curves: a dict label -> array).
    """
    curves = accuracies if isinstance(accuracies, dict) else {label: accuracies}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, acc in curves.items():
        acc = np.asarray(acc, dtype=float)
        if acc.shape != (256,):
            raise ValueError(
                f"A threshold curve needs 256 accuracies (t = 0..255). "
                f"Received: shape={acc.shape}"
            )
        t = int(np.nanargmax(acc))
        (line,) = ax.plot(np.arange(256), acc, label=name)
        ax.plot([t], [acc[t]], "o", color=line.get_color())
        ax.annotate(f"best t={t}: {acc[t]:.4f}", (t, acc[t]), textcoords="offset points",
                    xytext=(8, -14), color=line.get_color())
    if report_threshold is not None:
        ax.axvline(report_threshold, color="grey", ls=":", label=f"report's t={report_threshold}")
    ax.set_xlabel("binarisation threshold t (pred > t -> 255)")
    ax.set_ylabel("pixel accuracy")
    ax.set_xlim(0, 255)
    finite = np.concatenate([np.asarray(a, float) for a in curves.values()])
    finite = finite[np.isfinite(finite)]
    if finite.size:
        lo = max(float(np.percentile(finite, 5)) - 0.02, 0.0)
        ax.set_ylim(lo, min(float(finite.max()) + 0.01, 1.0))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_epoch_curves(curves, path, *, ylabel="pixel accuracy", title="Accuracy per epoch",
                      mark_best=True, reference=None):
    """Fig. 11/12/13: one line per curve (label -> values per epoch, epoch 1..n).

    ``mark_best`` marks each curve's best epoch; ``reference`` is an optional
    ``(value, label)`` horizontal line (e.g. the report's accuracy).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(
                f"Curve {name!r} needs a 1-D, non-empty list of values per epoch. "
                f"Received: shape={values.shape}"
            )
        epochs = np.arange(1, values.size + 1)
        best = int(np.nanargmax(values)) if mark_best and np.isfinite(values).any() else None
        # the best epoch goes into the legend, where labels of several curves cannot overlap
        label = name if best is None else f"{name} (best: epoch {epochs[best]}, {values[best]:.4f})"
        (line,) = ax.plot(epochs, values, marker="." if values.size <= 60 else None, label=label)
        if best is not None:
            ax.plot([epochs[best]], [values[best]], "*", ms=12, color=line.get_color())
    if reference is not None:
        ax.axhline(reference[0], color="grey", ls="--", label=reference[1])
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # below the axes, not inside: a legend placed "best" still covered the
    # first epochs' points (Fig. 13), whose low values leave no empty corner
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small", frameon=False)
    return _save(fig, path)


def plot_pruning(levels, accuracies, seconds_per_slice, path, *, parameters=None,
                 title="UNet++ pruned L1..L4: accuracy against inference time"):
    """Accuracy against inference time per slice for the pruned UNet++ levels."""
    if not (len(levels) == len(accuracies) == len(seconds_per_slice)):
        raise ValueError(
            "levels, accuracies and seconds_per_slice need the same length. "
            f"Received: lengths {len(levels)}, {len(accuracies)}, {len(seconds_per_slice)}"
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ms = np.asarray(seconds_per_slice, float) * 1000.0
    ax.plot(ms, accuracies, "o-")
    for i, lev in enumerate(levels):
        note = f"{lev}"
        if parameters is not None:
            note += f" ({parameters[i] / 1e6:.2f} M)" if parameters[i] >= 1e5 else f" ({parameters[i]:,})"
        ax.annotate(note, (ms[i], accuracies[i]), textcoords="offset points", xytext=(6, -12))
    ax.margins(x=0.15, y=0.15)
    ax.set_xlabel("inference time per slice (ms)")
    ax.set_ylabel("pixel accuracy, slices 25-29")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


# The figures of each experiment, from what its metrics.json keeps: drawn by
# the experiments below and again, without training, by :func:`redraw_figures`.
def draw_fig10(curve_test, curve_blind, figures):
    """Fig. 10 (U-Net): accuracy against threshold on 25-29 and on 20-24."""
    plot_threshold_curve(
        {"slices 25-29 (test, as the report)": curve_test,
         "slices 20-24 (training, blind)": curve_blind},
        Path(figures) / "fig10_threshold.png", report_threshold=REPORT["unet"]["best_threshold"],
        title="Fig. 10: U-Net accuracy against binarisation threshold")


def draw_pruning(levels, figures):
    """UNet++ pruned L1..L4: accuracy against inference time (``metrics["pruning"]``)."""
    plot_pruning([lv["level"] for lv in levels], [lv["accuracy"] for lv in levels],
                 [lv["seconds_per_slice"] for lv in levels], Path(figures) / "unetpp_pruning.png",
                 parameters=[lv["parameters"] for lv in levels])


def draw_fig11(hist, figures):
    """Fig. 11 (U-Net): accuracy on 25-29 and training accuracy per epoch.

    ``hist``: the full-resolution arm's history (column -> values per epoch).
    Returns the curves drawn (empty: no figure).
    """
    rep = REPORT["unet"]
    curves = {}
    if hist.get("val_best_accuracy"):
        curves["slices 25-29, best threshold per epoch"] = hist["val_best_accuracy"]
    key, acc = _train_accuracy(hist)
    if acc:
        curves[f"training ({key}, threshold 0.5)"] = acc
    if curves:
        plot_epoch_curves(curves, Path(figures) / "fig11_accuracy_per_epoch.png",
                          title="Fig. 11: U-Net accuracy per epoch",
                          reference=(rep["accuracy"], f"report: {rep['accuracy']}"))
    return curves


def draw_unetpp_epoch_figures(h_ds, h_no, figures):
    """Fig. 12 (UNet++ training accuracy, with and without deep supervision)
    and the accuracy on 25-29 per epoch of both runs.

    Returns ``(training curves, test curves)`` as drawn (empty: no figure).
    """
    rep = REPORT["unetpp"]
    curves = {}
    key, acc = _train_accuracy(h_no)
    if acc:
        curves[f"without deep supervision ({key})"] = acc
    for head in ("out4", "out1"):
        key, acc = _train_accuracy(h_ds, head)
        if acc:
            curves[f"with deep supervision ({key})"] = acc
    if curves:
        plot_epoch_curves(curves, Path(figures) / "fig12_training_accuracy.png",
                          ylabel="training pixel accuracy (threshold 0.5)",
                          title="Fig. 12: UNet++ training accuracy per epoch", mark_best=False)
    test_curves = {}
    if h_no.get("val_best_accuracy"):
        test_curves["without deep supervision"] = h_no["val_best_accuracy"]
    if h_ds.get("val_best_accuracy"):
        test_curves["with deep supervision (main head)"] = h_ds["val_best_accuracy"]
    if test_curves:
        plot_epoch_curves(test_curves, Path(figures) / "unetpp_test_accuracy_per_epoch.png",
                          title="UNet++ accuracy on slices 25-29 per epoch (best threshold)",
                          reference=(rep["no_ds"], f"report, no DS: {rep['no_ds']}"))
    return curves, test_curves


def draw_fig13(curve, figures):
    """Fig. 13 (UNet 3+): accuracy on 25-29 per epoch, best epoch marked (none if empty)."""
    rep = REPORT["unet3p"]
    if not curve:
        return
    plot_epoch_curves({"ours: slices 25-29, best threshold per epoch": curve},
                      Path(figures) / "fig13_test_accuracy_per_epoch.png",
                      title="Fig. 13: UNet 3+ test accuracy per epoch",
                      reference=(rep["accuracy"],
                                 f"report: {rep['accuracy']} at epoch {rep['best_epoch']}"))


def draw_holdout_figure(summaries, figures):
    """The hold-out's accuracy on slices 20-24 per epoch, one curve per row.

    ``summaries``: the hold-out's rows; those with a ``val_curve`` are drawn
    (rows written before the curve was kept have none). Returns whether a
    figure was drawn.
    """
    curves = {s["network"]: s["val_curve"] for s in summaries if s.get("val_curve")}
    if not curves:
        return False
    plot_epoch_curves(curves, Path(figures) / Path(HOLDOUT_FIGURE).name,
                      title="Accuracy on held-out slices 20-24 per epoch (best threshold)")
    return True


# ---------------------------------------------------------------------------
# Data, training arms, prediction
# ---------------------------------------------------------------------------
def profile_settings(profile, model_name):
    """The resolved profile dict for ``model_name`` (``keras_unets.profiles``)."""
    from keras_unets.profiles import get_profile

    return dict(get_profile(profile, model_name))


def half_resolution(stack, *, label=False):
    """Resize an (N, H, W) uint8 stack to (N, H // 2, W // 2).

    Images use ``cv2.INTER_AREA``; labels too, then ``> 127 -> 255`` so they
    stay in {0, 255} (the report's Table I resized its 512 labels to 256).
    """
    import cv2

    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(
            f"half_resolution needs an (N, H, W) uint8 stack. "
            f"Received: shape={stack.shape}, dtype={stack.dtype}"
        )
    n, h, w = stack.shape
    out = np.stack([cv2.resize(s, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for s in stack])
    if label:
        out = np.where(out > 127, 255, 0).astype(np.uint8)
    return out


def upsample(stack, shape):
    """Resize an (N, h, w) uint8 stack up to (N, H, W) = (N, *shape), bilinear."""
    import cv2

    h, w = shape
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in stack])


def half_arm_kwargs(settings, shape):
    """``train()`` overrides of Table I's half-resolution arm.

    A third of the profile's epochs (rounded up) and of its time limit, so the
    arm costs about a third of the main run; a random crop larger than the
    half-size slices shrinks to them. ``settings``: the resolved profile
    (:func:`profile_settings`); ``shape``: the full-resolution ``(H, W)``.
    """
    h, w = shape
    kwargs = {}
    if settings.get("epochs"):
        kwargs["epochs"] = max(1, -(-int(settings["epochs"]) // 3))
    if settings.get("time_limit_minutes"):
        kwargs["time_limit_minutes"] = float(settings["time_limit_minutes"]) / 3.0
    crop = settings.get("crop")
    if crop:
        ch, cw = (crop, crop) if np.isscalar(crop) else crop
        if ch > h // 2 or cw > w // 2:
            kwargs["crop"] = int(min(ch, cw, h // 2, w // 2))
    return kwargs


def write_half_resolution_data(data_dir, dest):
    """Write the ISBI 2012 files at half resolution into ``dest`` (a data folder).

    Reused if ``dest/.complete`` exists. Returns ``dest``.
    """
    from keras_unets.data import load_isbi2012, write_stack

    dest = Path(dest)
    if (dest / ".complete").exists():
        return dest
    data = load_isbi2012(data_dir)
    write_stack(dest / "train-volume.tif", half_resolution(data.train_images))
    write_stack(dest / "train-labels.tif", half_resolution(data.train_labels, label=True))
    write_stack(dest / "test-volume.tif", half_resolution(data.test_images))
    atomic_write_text(dest / ".complete", f"half resolution of {data.source}\n")
    return dest


def read_history(run_dir):
    """``history.csv`` of a run directory as ``{column: [float, ...]}`` (NaN where unparsable)."""
    from keras_unets.training import read_history as _read

    return _read(Path(run_dir) / "history.csv", missing=float("nan"))


def train_arm(exp_dir, arm, model_name, *, profile, data_dir=None, log=print, seed=None,
              **kwargs):
    """Train one arm into ``exp_dir/runs/<arm>``; reuse or resume it when possible.

    A finished arm has ``DONE.json`` (its summary) and is not retrained; a run
    directory without it (an interrupted run) is resumed with
    ``train(resume=run_dir)``. ``seed`` overrides the profile's training seed
    (``None`` keeps it); a run directory trained with another seed is an
    error, never reused as if it were this one. So is a finished run whose
    time limit differs from the one asked for (``time_limit_minutes`` in
    ``kwargs``, else the profile's); an interrupted run is resumed under the
    new limit. Returns the summary dict.
    """
    from keras_unets.training import train

    run_dir = Path(exp_dir) / "runs" / arm
    marker = run_dir / DONE_MARKER
    saved = _run_config(run_dir)
    _check_run_seed(run_dir, saved, profile, model_name, seed)
    if marker.exists():
        _check_run_time_limit(run_dir, saved, profile, model_name,
                              kwargs.get("time_limit_minutes"))
    if seed is not None:
        kwargs["seed"] = int(seed)
    if marker.exists():
        summary = json.loads(marker.read_text())
        summary["run_dir"] = str(run_dir)  # where it is now (results may have moved)
        log(f"[{arm}] reusing finished run {run_dir} ({summary.get('epochs')} epochs)")
        return summary
    resume = run_dir if (run_dir / "state.json").exists() else None
    log(f"[{arm}] {'resuming' if resume else 'training'} {model_name} "
        f"(profile {profile}) in {run_dir}")
    result = train(model_name, profile=profile, data_dir=data_dir, out=run_dir,
                   resume=resume, **kwargs)
    seconds = float(result.train_seconds)
    try:  # training time summed over resumed calls, when train() recorded it
        seconds = float(json.loads((run_dir / "results.json").read_text())["train_seconds_total"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    summary = {
        "arm": arm,
        "model_name": model_name,
        "run_dir": str(run_dir),
        "epochs": int(result.last_epoch),
        "best_epoch": int(result.best_epoch),
        "best_threshold": int(result.best_threshold),
        "best_accuracy": float(result.best_accuracy),
        "train_seconds": seconds,
        "stopped_by_time_limit": bool(result.stopped_by_time_limit),
        "time_limit_minutes": _run_config(run_dir).get("time_limit_minutes"),
        "val_slices": list(result.val_slices),
        "val_source": result.val_source,
        "seed": _run_config(run_dir).get("seed"),
        "machine": machine_description(),
        "keras_backend": keras_backend(),
        # the code that trained it (evaluation may be re-run by later commits)
        **_code_state(),
    }
    atomic_write_json(marker, summary)
    return summary


class RunMismatchError(ValueError):
    """A run directory holds a training with other settings than the ones asked for."""


class SeedMismatchError(RunMismatchError):
    """A run directory holds a training with another seed than the one asked for."""


class TimeLimitMismatchError(RunMismatchError):
    """A finished run directory was trained under another time limit than the one asked for."""


def _run_config(run_dir):
    """The ``config`` dict of ``run_dir/config.json`` (``{}`` if absent or unreadable)."""
    try:
        cfg = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # not a readable run record: train() reports it when resuming
    return cfg if isinstance(cfg, dict) else {}


def _check_run_seed(run_dir, saved, profile, model_name, seed, *, subject=None,
                    consequence="its results would be mixed with this run's", move=None):
    """Refuse to reuse or resume ``run_dir`` (its config ``saved``) trained with another seed.

    ``subject``, ``consequence`` and ``move`` word the message for a record
    that is not a run folder (a carried hold-out row).
    """
    had = saved.get("seed")
    if had is None:
        return
    wanted = int(profile_settings(profile, model_name)["seed"] if seed is None else seed)
    if int(had) != wanted:
        raise SeedMismatchError(
            f"{subject or run_dir} was trained with seed {had}, but seed {wanted} was asked "
            f"for; {consequence}. Use another results folder "
            f"(--results, or the default results/seed-{wanted} of --seed {wanted}) or "
            f"move {move or run_dir} away."
        )


def _limit_kwargs(minutes):
    """``train()`` keyword for a time-limit override (none for ``None``: the profile's)."""
    return {} if minutes is None else {"time_limit_minutes": float(minutes)}


def _limit_text(minutes):
    return "no time limit" if not minutes else f"a time limit of {float(minutes):g} min"


def _check_run_time_limit(run_dir, saved, profile, model_name, minutes, *, subject=None,
                          consequence="its results would be reported as this run's",
                          move=None):
    """Refuse to reuse a finished run (its config ``saved``) trained under another time limit.

    ``minutes=None`` asks for the profile's limit. A run cut short by a
    3-minute limit is not the profile's run, and a full run is not what a
    time-limited call asked for: either would be reported as the other.
    ``subject`` (default: "<run_dir> is a finished run"), ``consequence``
    and ``move`` word the message as in :func:`_check_run_seed`.
    """
    if "time_limit_minutes" not in saved:
        return
    had = saved["time_limit_minutes"] or None
    wanted = (profile_settings(profile, model_name).get("time_limit_minutes")
              if minutes is None else minutes) or None
    same = (had is None and wanted is None) or (
        had is not None and wanted is not None
        and math.isclose(float(had), float(wanted), rel_tol=1e-9))
    if not same:
        raise TimeLimitMismatchError(
            f"{subject or f'{run_dir} is a finished run'} trained with {_limit_text(had)}, "
            f"but {_limit_text(wanted)} was asked for; {consequence}. Use another results "
            f"folder (--results) or move {move or run_dir} away."
        )


def load_model(run_dir, checkpoint="best"):
    """The ``best`` or ``last`` checkpoint of a run directory."""
    from keras_unets.training import load_run_model

    return load_run_model(run_dir, checkpoint=checkpoint)


def predict_uint8(model, images, *, timed=False, repeats=3, **kwargs):
    """Predict (N, H, W) uint8 slices -> ``(uint8 P(cell) maps, seconds per slice)``.

    Overlap-tile prediction with :func:`keras_unets.predict.predict_tiled`
    (its defaults: tile near 256, batch 4, mirror extrapolation, a sigmoid for
    logits models); ``kwargs`` go to it. ``timed=True``: the time is the best
    of ``repeats`` calls after an untimed warm-up call on the first slice
    (graph tracing); otherwise it is the time of the single call made.
    """
    from keras_unets.metrics import to_uint8
    from keras_unets.predict import predict_tiled

    images = np.asarray(images)
    if timed:
        predict_tiled(model, images[:1], progress=False, **kwargs)
    best = float("inf")
    for _ in range(max(1, repeats) if timed else 1):
        start = time.perf_counter()
        prob = predict_tiled(model, images, progress=False, **kwargs)
        best = min(best, time.perf_counter() - start)
    return to_uint8(np.asarray(prob, dtype=np.float32)), best / len(images)


# ---------------------------------------------------------------------------
# Evaluation shared by the experiments
# ---------------------------------------------------------------------------
def sweep(pred, labels):
    """Raw (unbinarised) accuracy, the 256-threshold curve and its best point."""
    from keras_unets.metrics import pixel_accuracy, threshold_sweep

    curve = np.asarray(threshold_sweep(pred, labels), dtype=np.float64)
    t = int(np.argmax(curve))
    return {
        "raw_accuracy": float(pixel_accuracy(pred, labels, threshold=None)),
        "best_threshold": t,
        "best_accuracy": float(curve[t]),
        "curve": curve,
    }


def blind_slices(data):
    """Indices into ``data.x_train`` of training slices 20-24 (the blind threshold)."""
    train = list(data.split.train)
    missing = [s for s in BLIND_SLICES if s not in train]
    if missing:
        raise ValueError(
            f"The blind threshold is tuned on training slices {BLIND_SLICES[0]}-"
            f"{BLIND_SLICES[-1]}, but the split's training set lacks {missing}. "
            f"Received: split.train={tuple(train)}"
        )
    return [train.index(s) for s in BLIND_SLICES]


def _score_two_ways(best, last, data, *, timed=False, **predict_kwargs):
    """Predict and score the two ways of SUMMARY.md (``predict_kwargs``: e.g. ``tta=True``).

    Returns ``pred`` (best checkpoint on the test slices) and its ``seconds``
    per slice, ``tuned`` (its :func:`sweep` on 25-29: as the report),
    ``blind`` (the last checkpoint's sweep on training slices 20-24) and
    ``blind_accuracy`` (the last checkpoint on 25-29 at that threshold).
    ``last`` may be ``best`` itself: its test prediction is then reused.
    """
    from keras_unets.metrics import pixel_accuracy

    idx = blind_slices(data)
    pred, seconds = predict_uint8(best, data.x_test, timed=timed, **predict_kwargs)
    pred_last = pred if last is best else predict_uint8(last, data.x_test, **predict_kwargs)[0]
    blind = sweep(predict_uint8(last, data.x_train[idx], **predict_kwargs)[0], data.y_train[idx])
    return {
        "pred": pred,
        "seconds": seconds,
        "tuned": sweep(pred, data.y_test),
        "blind": blind,
        "blind_accuracy": float(pixel_accuracy(pred_last, data.y_test,
                                               threshold=blind["best_threshold"])),
    }


def network_summary(network, arm, data, *, timed=True, with_tta=True, log=print):
    """The SUMMARY.md numbers of one trained arm (see the module docstring).

    - as the report: best checkpoint (selected on 25-29), threshold tuned on
      25-29, plus V_rand / V_info of the same predictions
      (:func:`keras_unets.metrics.evaluate`: maximised over thresholds
      0.0, 0.1, ..., 1.0, as the ISBI challenge scores them) and again
      maximised over :data:`keras_unets.isbi.FINE_THRESHOLDS` (0.00, 0.01,
      ..., 1.00; keys ``v_rand_fine``, ``v_info_fine``), never lower;
    - blind: last checkpoint, threshold tuned on training slices 20-24,
      accuracy on 25-29;
    - ``with_tta``: both again with test-time augmentation (keys ``tta_*``):
      each prediction averaged over the 8 flips and right-angle rotations of
      the slice, thresholds re-tuned the same two ways. Its time per slice is
      one call, not a best of 3.
    """
    from keras_unets.isbi import fine_scores
    from keras_unets.metrics import evaluate

    run_dir = Path(arm["run_dir"])
    model = load_model(run_dir, "best")
    params = int(model.count_params())
    # best.keras holds the last epoch's weights when the last epoch was the best
    last = model if arm["best_epoch"] == arm["epochs"] else load_model(run_dir, "last")
    plain = _score_two_ways(model, last, data, timed=timed)
    tuned, blind = plain["tuned"], plain["blind"]
    ev = evaluate(plain["pred"], data.y_test, threshold=tuned["best_threshold"])
    fine = fine_scores(plain["pred"], data.y_test)
    log(f"[{network}] as the report: {tuned['best_accuracy']:.4f} (t={tuned['best_threshold']}); "
        f"blind: {plain['blind_accuracy']:.4f} (t={blind['best_threshold']} from slices 20-24)")
    log(f"[{network}] V_rand {fmt(ev['v_rand'])} (th={fmt(ev['v_rand_threshold'], 1)}, "
        f"challenge grid); {_fine_cell(fine)} on the 0.01 grid")
    tta = {}
    if with_tta:
        t = _score_two_ways(model, last, data, tta=True)
        log(f"[{network}] with 8-way TTA: as the report {t['tuned']['best_accuracy']:.4f} "
            f"(t={t['tuned']['best_threshold']}); blind {t['blind_accuracy']:.4f} "
            f"(t={t['blind']['best_threshold']})")
        tta = {
            "tta_accuracy_as_report": t["tuned"]["best_accuracy"],
            "tta_threshold_as_report": t["tuned"]["best_threshold"],
            "tta_accuracy_blind": t["blind_accuracy"],
            "tta_threshold_blind": t["blind"]["best_threshold"],
            "tta_seconds_per_slice": t["seconds"],
        }
    return {
        "network": network,
        "model_name": arm["model_name"],
        "accuracy_as_report": tuned["best_accuracy"],
        "threshold_as_report": tuned["best_threshold"],
        "accuracy_unbinarised": tuned["raw_accuracy"],
        "accuracy_blind": plain["blind_accuracy"],
        "threshold_blind": blind["best_threshold"],
        "v_rand": ev.get("v_rand"),
        "v_info": ev.get("v_info"),
        "v_rand_threshold": ev.get("v_rand_threshold"),
        **fine,
        "parameters": params,
        "train_seconds": arm["train_seconds"],
        "train_machine": arm.get("machine"),
        "epochs": arm["epochs"],
        "best_epoch": arm["best_epoch"],
        "stopped_by_time_limit": arm["stopped_by_time_limit"],
        "time_limit_minutes": arm.get("time_limit_minutes"),
        "seconds_per_slice": plain["seconds"],
        **tta,
        "curve_test": tuned["curve"],
        "curve_blind": blind["curve"],
    }


def _history_curve(hist, *candidates, prefix_any=False):
    """First history column among ``candidates`` (or ending with one of them)."""
    for name in candidates:
        if name in hist:
            return name, hist[name]
    if prefix_any:
        for name in candidates:
            for key in sorted(hist):
                if key.endswith(name) and not key.startswith("val_"):
                    return key, hist[key]
    return None, None


def _train_accuracy(hist, head=None):
    keys = ([f"{head}_acc", f"{head}_accuracy", f"{head}_binary_accuracy"] if head else []) + [
        "acc", "accuracy", "binary_accuracy"]
    return _history_curve(hist, *keys, prefix_any=head is None)


def _log_profile(log, profile, reason=None):
    log(f"profile: {profile}" + (f" ({reason})" if reason else ""))


def _experiment_dir(results, profile, experiment):
    return Path(results) / profile / experiment


# ---------------------------------------------------------------------------
# The experiments
# ---------------------------------------------------------------------------
def _summary_record(s):
    """The part of a network summary that goes into metrics.json['summary']."""
    return {k: v for k, v in s.items() if not k.startswith("curve_")}


def run_unet(profile, *, results="results", data_dir=None, command=None, log=print,
             seed=None, time_limit_minutes=None):
    """U-Net: Table I, Fig. 10, Fig. 11 and the SUMMARY row.

    Trains the profile's U-Net at full resolution (arm ``full``: Table I's
    "retrain at 512", and the network of Fig. 10/11) and at half resolution
    on resized slices (arm ``half``: a third of the epochs and time limit),
    then evaluates the three ways of Table I with and without binarisation.
    """
    from keras_unets.data import load_split

    check_profile(profile)
    exp_dir = _experiment_dir(results, profile, "unet")
    data = load_split(data_dir)
    full = train_arm(exp_dir, "full", "unet", profile=profile, data_dir=data_dir, log=log,
                     seed=seed, **_limit_kwargs(time_limit_minutes))

    h, w = data.x_test.shape[1:]
    settings = profile_settings(profile, "unet")
    if time_limit_minutes:
        settings["time_limit_minutes"] = time_limit_minutes
    half_kwargs = half_arm_kwargs(settings, (h, w))
    half_dir = write_half_resolution_data(data_dir, exp_dir / "runs" / "data-half")
    half = train_arm(exp_dir, "half", "unet", profile=profile, data_dir=half_dir, log=log,
                     seed=seed, **half_kwargs)

    # Table I: the half-resolution network three ways, each raw and binarised.
    timed = profile != "smoke"  # smoke: a single call per prediction, no warm-up
    summary = network_summary("U-Net", full, data, timed=timed, log=log)
    half_model = load_model(half["run_dir"], "best")
    pred_half, _ = predict_uint8(half_model, half_resolution(data.x_test))
    arms = {
        "resize_prediction": sweep(upsample(pred_half, (h, w)), data.y_test),
        "resize_label": sweep(pred_half, half_resolution(data.y_test, label=True)),
        "retrain_full": {
            "raw_accuracy": summary["accuracy_unbinarised"],
            "best_threshold": summary["threshold_as_report"],
            "best_accuracy": summary["accuracy_as_report"],
        },
    }
    names = {
        "resize_prediction": f"network at {h // 2}, prediction resized to {h}",
        "resize_label": f"network at {h // 2}, label resized to {h // 2}",
        "retrain_full": f"network retrained at {h}",
    }
    rep = REPORT["unet"]
    table1 = [[names[k], str(rep["table1"][k]), v["raw_accuracy"], v["best_accuracy"],
               str(v["best_threshold"])] for k, v in arms.items()]

    figures = exp_dir / "figures"
    draw_fig10(summary["curve_test"], summary["curve_blind"], figures)
    hist = read_history(full["run_dir"])
    curves = draw_fig11(hist, figures)

    table_md = (
        f"# U-Net ({profile} profile)\n\n"
        "## Table I: a network at half resolution on full-resolution data\n\n"
        "Pixel accuracy on slices 25-29. The report's numbers are before it fixed "
        "binarisation (raw equality of uint8 maps with the 0/255 labels); ours are "
        "given both raw and binarised at the threshold tuned on slices 25-29.\n\n"
        + markdown_table(["method", "report (raw)", "ours, raw", "ours, binarised", "threshold"],
                         table1)
        + "\n## Fig. 10: best binarisation threshold\n\n"
        + markdown_table(
            ["", "report", "ours (slices 25-29)", "ours (training slices 20-24, last epoch)"],
            [["best threshold", str(rep["best_threshold"]), str(summary["threshold_as_report"]),
              str(summary["threshold_blind"])],
             ["accuracy on 25-29", str(rep["accuracy"]), summary["accuracy_as_report"],
              summary["accuracy_blind"]]])
        + "\n![Fig. 10](figures/fig10_threshold.png)\n"
        + ("\n![Fig. 11](figures/fig11_accuracy_per_epoch.png)\n" if curves else "")
    )
    metrics = {
        "experiment": "unet",
        "profile": profile,
        "report": rep,
        "table1": {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in arms.items()},
        "threshold_curve_25_29": summary["curve_test"],
        "threshold_curve_20_24": summary["curve_blind"],
        "history": hist,
        "arms": {"full": full, "half": half},
        "summary": [_summary_record(summary)],
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[unet] wrote {exp_dir}")
    return metrics


def run_unetpp(profile, *, results="results", data_dir=None, command=None, log=print,
               seed=None, time_limit_minutes=None):
    """UNet++: Table II, Fig. 12, pruned L1..L4 accuracy against inference time.

    Trains UNet++ with deep supervision (``unetpp_ds``, heads out1..out4 on
    X^{0,1..4}) and without (``unetpp``). Each head of the DS model is
    evaluated as the pruned sub-network ending at X^{0,i} (Zhou et al. 2018,
    Sec. 2.2: pruning level Li keeps exactly what head i needs), timed on
    the test slices.
    """
    from keras_unets.data import load_split
    from keras_unets.models import average_heads, prune_unetpp

    check_profile(profile)
    exp_dir = _experiment_dir(results, profile, "unetpp")
    data = load_split(data_dir)
    ds = train_arm(exp_dir, "ds", "unetpp_ds", profile=profile, data_dir=data_dir, log=log,
                   seed=seed, **_limit_kwargs(time_limit_minutes))
    no_ds = train_arm(exp_dir, "no_ds", "unetpp", profile=profile, data_dir=data_dir,
                      log=log, seed=seed, **_limit_kwargs(time_limit_minutes))

    timed = profile != "smoke"  # smoke: a single call per prediction, no warm-up
    summary = network_summary("UNet++", no_ds, data, timed=timed, log=log)
    summary_ds = network_summary("UNet++ (deep supervision)", ds, data, timed=timed, log=log)
    ds_model = load_model(ds["run_dir"], "best")
    levels = []
    for level in (1, 2, 3, 4):
        pruned = prune_unetpp(ds_model, level)
        pred, sec = predict_uint8(pruned, data.x_test, timed=timed)
        res = sweep(pred, data.y_test)
        levels.append({"level": f"L{level}", "head": f"out{level}",
                       "parameters": int(pruned.count_params()), "seconds_per_slice": sec,
                       "raw_accuracy": res["raw_accuracy"], "best_threshold": res["best_threshold"],
                       "accuracy": res["best_accuracy"]})
        log(f"[unetpp] L{level}: {res['best_accuracy']:.4f} at {sec * 1000:.1f} ms/slice")
    # Zhou et al. 2018, Sec. 2.2: the "accurate mode" averages the four heads.
    pred, sec = predict_uint8(average_heads(ds_model), data.x_test, timed=timed)
    res = sweep(pred, data.y_test)
    accurate = {"parameters": int(ds_model.count_params()), "seconds_per_slice": sec,
                "raw_accuracy": res["raw_accuracy"], "best_threshold": res["best_threshold"],
                "accuracy": res["best_accuracy"]}

    rep = REPORT["unetpp"]
    table2 = [
        ["with deep supervision, report", *[str(rep["ds_heads"][f"out{i}"]) for i in (1, 2, 3, 4)]],
        ["with deep supervision, ours", *[lv["accuracy"] for lv in levels]],
        ["without deep supervision, report", "/", "/", "/", str(rep["no_ds"])],
        ["without deep supervision, ours", "/", "/", "/", summary["accuracy_as_report"]],
    ]
    full_time = levels[-1]["seconds_per_slice"]
    prune_rows = [[lv["level"], lv["parameters"], f"{lv['seconds_per_slice'] * 1000:.1f}",
                   f"{100.0 * (1 - lv['seconds_per_slice'] / full_time):.1f} %",
                   lv["accuracy"], str(lv["best_threshold"])] for lv in levels]
    prune_rows.append(["accurate mode (mean of out1..out4)", accurate["parameters"],
                       f"{accurate['seconds_per_slice'] * 1000:.1f}",
                       f"{100.0 * (1 - accurate['seconds_per_slice'] / full_time):.1f} %",
                       accurate["accuracy"], str(accurate["best_threshold"])])

    figures = exp_dir / "figures"
    h_ds, h_no = read_history(ds["run_dir"]), read_history(no_ds["run_dir"])
    curves, test_curves = draw_unetpp_epoch_figures(h_ds, h_no, figures)
    draw_pruning(levels, figures)

    n_test = len(data.x_test)
    table_md = (
        f"# UNet++ ({profile} profile)\n\n"
        "## Table II: deep supervision heads against no deep supervision\n\n"
        "Pixel accuracy on slices 25-29, binarised at the threshold tuned on 25-29 "
        "(per head), best checkpoint of each run.\n\n"
        + markdown_table(["", "out1", "out2", "out3", "out4"], table2)
        + "\n## Pruning (not in the report): the deep-supervision model cut at X^{0,i}\n\n"
        f"Inference time per slice: best of 3 timed overlap-tile predictions of the {n_test} "
        "test slices after a warm-up, batch 4.\n\n"
        + markdown_table(["level", "parameters", "ms per slice", "time saved vs L4",
                          "accuracy", "threshold"], prune_rows)
        + "\n![pruning](figures/unetpp_pruning.png)\n"
        + ("\n![Fig. 12](figures/fig12_training_accuracy.png)\n" if curves else "")
        + ("\n![test accuracy per epoch](figures/unetpp_test_accuracy_per_epoch.png)\n"
           if test_curves else "")
    )
    metrics = {
        "experiment": "unetpp",
        "profile": profile,
        "report": rep,
        "table2": {"ds": {lv["head"]: lv["accuracy"] for lv in levels},
                   "no_ds": summary["accuracy_as_report"]},
        "pruning": levels,
        "accurate_mode": accurate,
        "history": {"ds": h_ds, "no_ds": h_no},
        "arms": {"ds": ds, "no_ds": no_ds},
        "summary": [_summary_record(summary), _summary_record(summary_ds)],
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[unetpp] wrote {exp_dir}")
    return metrics


def run_unet3p(profile, *, results="results", data_dir=None, command=None, log=print,
               seed=None, time_limit_minutes=None):
    """UNet 3+: Fig. 13 (accuracy on slices 25-29 per epoch, best epoch marked)."""
    from keras_unets.data import load_split

    check_profile(profile)
    exp_dir = _experiment_dir(results, profile, "unet3p")
    data = load_split(data_dir)
    main = train_arm(exp_dir, "main", "unet3p", profile=profile, data_dir=data_dir, log=log,
                     seed=seed, **_limit_kwargs(time_limit_minutes))
    summary = network_summary("UNet 3+", main, data, timed=profile != "smoke", log=log)
    rep = REPORT["unet3p"]
    hist = read_history(main["run_dir"])
    figures = exp_dir / "figures"
    curve = hist.get("val_best_accuracy")
    draw_fig13(curve, figures)
    best_epoch = int(np.nanargmax(curve)) + 1 if curve else None
    rows = [["report", f"{rep['best_epoch']} of {rep['epochs']}", str(rep["accuracy"])],
            ["ours", f"{best_epoch} of {len(curve)}" if curve else "–",
             summary["accuracy_as_report"]]]
    table_md = (
        f"# UNet 3+ ({profile} profile)\n\n"
        "## Fig. 13: accuracy on slices 25-29 per epoch\n\n"
        "Best epoch and its accuracy (threshold tuned on 25-29, as the report).\n\n"
        + markdown_table(["", "best epoch", "accuracy"], rows)
        + ("\n![Fig. 13](figures/fig13_test_accuracy_per_epoch.png)\n" if curve else "")
    )
    metrics = {
        "experiment": "unet3p",
        "profile": profile,
        "report": rep,
        "best_epoch": best_epoch,
        "test_accuracy_per_epoch": curve,
        "history": hist,
        "arms": {"main": main},
        "summary": [_summary_record(summary)],
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[unet3p] wrote {exp_dir}")
    return metrics


# ---------------------------------------------------------------------------
# A true hold-out (not in the report)
# ---------------------------------------------------------------------------
HOLDOUT_NETWORKS = {"unet": "U-Net", "unetpp": "UNet++", "unet3p": "UNet 3+"}
HOLDOUT_FIGURE = "figures/holdout_accuracy_per_epoch.png"


def holdout_networks(experiments, networks):
    """``networks`` checked for ``experiments`` (``None`` stays ``None``: all three)."""
    if networks is None:
        return None
    if "holdout" not in experiments:
        raise ValueError(
            f"`networks` applies to the holdout experiment only. "
            f"Received: experiments={list(experiments)}, networks={networks!r}")
    return check_networks(networks)


def check_networks(networks):
    """The hold-out's network list (a tuple of ``HOLDOUT_NETWORKS`` keys)."""
    if isinstance(networks, str):
        networks = [n for n in networks.replace(",", " ").split() if n]
    networks = tuple(networks)
    unknown = [n for n in networks if n not in HOLDOUT_NETWORKS]
    if unknown or not networks:
        raise ValueError(
            f"Unknown or no hold-out network(s) {unknown}. Expected some of "
            f"{', '.join(HOLDOUT_NETWORKS)}. Received: networks={list(networks)}"
        )
    return networks


def holdout_summary(network, arm, data, *, log=print):
    """Score a run trained without slices 20-24, choosing everything on them.

    The checkpoint (best accuracy on 20-24, chosen during training) and the
    binarisation threshold (tuned on 20-24) never see slices 25-29, which
    are used only to measure: ``accuracy`` (plus ``v_rand`` / ``v_info``
    maximised over the challenge's thresholds as ISBI scores them, and over
    the 0.01 grid: :func:`keras_unets.isbi.fine_scores`). For reference,
    ``accuracy_test_threshold`` is the same checkpoint with the threshold
    tuned on 25-29 (``threshold_test``: what choosing the threshold on the
    test slices adds), and ``accuracy_holdout_slices`` the tuned accuracy on
    20-24 itself. ``tta_*``: the same with 8-way
    test-time augmentation, threshold re-tuned on 20-24.
    """
    from keras_unets.isbi import fine_scores
    from keras_unets.metrics import evaluate

    model = load_model(arm["run_dir"], "best")
    out = {
        "network": network,
        "model_name": arm["model_name"],
        "parameters": int(model.count_params()),
        "train_slices": arm.get("train_slices"),
        "val_slices": arm["val_slices"],
        "epochs": arm["epochs"],
        "best_epoch": arm["best_epoch"],
        "train_seconds": arm["train_seconds"],
        "train_machine": arm.get("machine"),
        "stopped_by_time_limit": arm["stopped_by_time_limit"],
        "time_limit_minutes": arm.get("time_limit_minutes"),
    }
    for prefix, kwargs in (("", {}), ("tta_", {"tta": True})):
        # the blind rule of _score_two_ways, applied to the checkpoint chosen on 20-24
        r = _score_two_ways(model, model, data, **kwargs)
        out.update({
            f"{prefix}accuracy": r["blind_accuracy"],
            f"{prefix}threshold": r["blind"]["best_threshold"],
            f"{prefix}accuracy_holdout_slices": r["blind"]["best_accuracy"],
            f"{prefix}accuracy_test_threshold": r["tuned"]["best_accuracy"],
            f"{prefix}threshold_test": r["tuned"]["best_threshold"],
        })
        if not prefix:
            ev = evaluate(r["pred"], data.y_test, threshold=out["threshold"])
            out.update({"v_rand": ev.get("v_rand"), "v_info": ev.get("v_info"),
                        "v_rand_threshold": ev.get("v_rand_threshold"),
                        **fine_scores(r["pred"], data.y_test)})
    log(f"[holdout] {network}: {out['accuracy']:.4f} on 25-29 (epoch {out['best_epoch']} and "
        f"t={out['threshold']} chosen on 20-24); with TTA {out['tta_accuracy']:.4f}")
    return out


def _previous_holdout(exp_dir, profile, seed, time_limit_minutes, skip=()):
    """``{name: (arm, summary)}`` of ``exp_dir/metrics.json`` rows that can be carried over.

    Only rows whose run folder (``runs/<name>/DONE.json``) is absent and
    whose network is not in ``skip`` (the networks this call trains): a
    finished run folder is evaluated afresh instead. Each carried summary
    gets ``carried_from`` (date, commit, machine and command of the
    evaluation that wrote the file, or the ``carried_from`` it already had).
    A row trained with another seed or time limit than the one asked for
    raises :class:`RunMismatchError`; an unreadable file raises
    ``ValueError``: either way before anything trains or is rewritten.
    """
    path = Path(exp_dir) / "metrics.json"
    if not path.exists():
        return {}
    try:
        m = json.loads(path.read_text())
        by_network = {s["network"]: s for s in m["summary"]}
        arms = m["arms"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"Cannot read the earlier hold-out results {path} ({err.__class__.__name__}: "
            f"{err}), whose rows this call would carry over. Expected the metrics.json "
            f"that `reproduce holdout` writes; restore it (e.g. `git checkout {path}`) or "
            f"move it away to start the table afresh.") from None
    prov = m.get("provenance") or {}
    origin = {"date_utc": prov.get("date_utc"), "git_commit": prov.get("git_commit"),
              "machine": (prov.get("machine") or {}).get("description"),
              "command": prov.get("command")}
    out = {}
    for name, network in HOLDOUT_NETWORKS.items():
        if name in skip or (Path(exp_dir) / "runs" / name / DONE_MARKER).exists():
            continue
        if name not in arms or network not in by_network:
            continue
        arm, summary = dict(arms[name]), dict(by_network[network])
        where = f"the {network} row of {path} (its run folder runs/{name} is not here)"
        _check_run_seed(path, arm, profile, name, seed, subject=where, move=path,
                        consequence="carrying it over would mix seeds in one table")
        _check_run_time_limit(path, arm, profile, name, time_limit_minutes,
                              subject=f"{where} was", move=path,
                              consequence="carrying it over would report it as this run's")
        summary["carried_from"] = summary.get("carried_from") or origin
        arm["carried_from"] = summary["carried_from"]
        out[name] = (arm, summary)
    return out


def carried_note(summaries):
    """Markdown lines naming the hold-out rows carried from an earlier evaluation ('' if none)."""
    lines = []
    for s in summaries:
        c = s.get("carried_from")
        if not c:
            continue
        lines.append(
            f"- {s['network']}: carried from the evaluation of {c.get('date_utc') or '?'} "
            f"(commit {(c.get('git_commit') or 'unknown')[:12]}, "
            f"{c.get('machine') or 'machine unknown'}); its run folder was not here to "
            f"evaluate again" + ("." if s.get("val_curve") else
                                 "; no per-epoch curve was stored with it, so it is not "
                                 "in the figure."))
    if not lines:
        return ""
    return "\nRows not evaluated by this call:\n\n" + "\n".join(lines) + "\n"


def _stopped_note(s):
    """' (time limit)' or ' (time limit of N min)' for a run stopped by its limit."""
    if not s.get("stopped_by_time_limit"):
        return ""
    minutes = s.get("time_limit_minutes")
    return f" (time limit of {float(minutes):g} min)" if minutes else " (time limit)"


def _holdout_row(s, report):
    return [
        s["network"], "–" if report is None else str(report), s.get("train_slices") or "–",
        f"{s['best_epoch']} of {s['epochs']}", str(s["threshold"]), s["accuracy"],
        f"{fmt(s['tta_accuracy'])} (t={s['tta_threshold']})",
        f"{fmt(s['accuracy_test_threshold'])} (t={s['threshold_test']})",
        s.get("v_rand"), _fine_cell(s), s.get("v_info"),
        format_seconds(s["train_seconds"])
        + _stopped_note(s),
    ]


HOLDOUT_NOTE = (
    "The checkpoint (best epoch on 20-24) and the threshold (tuned on 20-24) are chosen "
    "on slices the network never saw, and 25-29 only measure. The column \"same "
    "checkpoint, threshold from 25-29\" shows what tuning the threshold on the test "
    "slices, as the report did, would give."
)
HOLDOUT_HEADERS = ["network", "report", "trained on", "epoch (chosen on 20-24)",
                   "threshold (from 20-24)", "accuracy on 25-29", "+ TTA",
                   "same checkpoint, threshold from 25-29", "V_rand", "V_rand, 0.01 grid",
                   "V_info", "training"]


def run_holdout(profile, *, results="results", data_dir=None, command=None, log=print,
                networks=tuple(HOLDOUT_NETWORKS), seed=None, time_limit_minutes=None):
    """Each network's recipe trained on slices 0-19 only; slices 20-24 choose, 25-29 measure.

    Not in the report, whose numbers choose the epoch and the threshold on
    its test slices 25-29 (Liu et al., sec. IV). Here the profile's main
    recipe of each network (``unet``, ``unetpp`` without deep supervision,
    ``unet3p``) is trained with ``val_slices="20-24"`` held out of training,
    so the best checkpoint and the threshold are chosen on slices the
    network never saw, and 25-29 are touched only to measure. Each network
    is one arm (``runs/<network>``); arms finished earlier are reused and
    all finished arms are reported, so the networks can be run one at a
    time (``networks``). Costs one more training per network.

    A row of the folder's previous ``metrics.json`` whose run folder is not
    here (results committed without their weights, e.g. a fresh clone
    running ``--networks unet3p``) is carried over, not dropped: marked with
    ``carried_from`` (the date, commit and machine of the evaluation that
    wrote it) and listed under the table. A carried row trained with
    another seed or time limit than this call asks for is an error
    (:class:`RunMismatchError`), raised before anything trains.
    """
    from keras_unets.data import load_split

    check_profile(profile)
    networks = check_networks(networks)
    exp_dir = _experiment_dir(results, profile, "holdout")
    data = load_split(data_dir)
    blind_slices(data)  # the split must contain 20-24 before anything trains
    previous = _previous_holdout(exp_dir, profile, seed, time_limit_minutes, skip=networks)
    for name in networks:
        train_arm(exp_dir, name, name, profile=profile, data_dir=data_dir, log=log,
                  seed=seed, val_slices=f"{BLIND_SLICES[0]}-{BLIND_SLICES[-1]}",
                  **_limit_kwargs(time_limit_minutes))
    arms, summaries = {}, []
    for name, network in HOLDOUT_NETWORKS.items():
        if not (exp_dir / "runs" / name / DONE_MARKER).exists():
            if name in previous:
                arms[name], summary = previous[name]
                summaries.append(summary)
                log(f"[holdout] {network}: no run folder here; row carried from the "
                    f"evaluation of {summary['carried_from'].get('date_utc', '?')}")
            continue
        arm = json.loads((exp_dir / "runs" / name / DONE_MARKER).read_text())
        arm["run_dir"] = str(exp_dir / "runs" / name)  # where it is now
        try:  # the training slices, from the run's own record
            arm["train_slices"] = json.loads(
                (Path(arm["run_dir"]) / "config.json").read_text())["train_slices"]
        except (OSError, ValueError, KeyError):
            arm["train_slices"] = None
        arms[name] = arm
        summaries.append(holdout_summary(network, arm, data, log=log))
        hist = read_history(arm["run_dir"])
        if "val_best_accuracy" in hist:
            # kept with the row, so that the figure survives a later carry-over
            summaries[-1]["val_curve"] = [float(v) for v in hist["val_best_accuracy"]]
    figures = exp_dir / "figures"
    has_figure = draw_holdout_figure(summaries, figures)
    rows = [_holdout_row(s, REPORT_ACCURACY.get(s["network"])) for s in summaries]
    table_md = (
        f"# True hold-out ({profile} profile)\n\n"
        f"Each network's recipe trained on slices 0-19 only. {HOLDOUT_NOTE}\n\n"
        + markdown_table(HOLDOUT_HEADERS, rows)
        + carried_note(summaries)
        + (f"\n![hold-out accuracy per epoch]({HOLDOUT_FIGURE})\n" if has_figure else "")
    )
    metrics = {
        "experiment": "holdout",
        "profile": profile,
        "val_slices": list(BLIND_SLICES),
        "arms": arms,
        "summary": summaries,
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[holdout] wrote {exp_dir}")
    return metrics


RUNNERS = {"unet": run_unet, "unetpp": run_unetpp, "unet3p": run_unet3p,
           "holdout": run_holdout}


def _redraw(exp, metrics, figures):
    """Draw ``exp``'s figures into ``figures`` from what its metrics keep."""
    if exp == "unet":
        curves = metrics.get("threshold_curve_25_29"), metrics.get("threshold_curve_20_24")
        if all(curves):  # results before the 20-24 curve was kept: Fig. 10 stays
            draw_fig10(*curves, figures)
        draw_fig11(metrics.get("history") or {}, figures)
    elif exp == "unetpp":
        hist = metrics.get("history") or {}
        draw_unetpp_epoch_figures(hist.get("ds") or {}, hist.get("no_ds") or {}, figures)
        if metrics.get("pruning"):
            draw_pruning(metrics["pruning"], figures)
    elif exp == "unet3p":
        draw_fig13((metrics.get("history") or {}).get("val_best_accuracy"), figures)
    else:
        draw_holdout_figure(metrics.get("summary", []), figures)


def redraw_figures(profile, *, results="results", command=None, log=print):
    """Draw the figures again from each experiment's metrics.json; no training.

    For figures written by an older version of the plotting code (the legend
    of Fig. 13 covered its first epochs until it moved below the axes): the
    numbers stay, only the picture is drawn again, from the histories,
    threshold curves and pruning levels stored in
    ``<results>/<profile>/<experiment>/metrics.json``. Only figures that
    metrics.json lists are replaced (atomically), so the tables keep linking
    what exists. Fig. 10 needs both threshold curves, and results written
    before its curve on slices 20-24 was kept (sixteenth session) keep
    their Fig. 10 as it is. Each rewritten metrics.json gets
    ``figures_redrawn`` (the command, commit and date of this call). Every
    metrics.json is read before anything is written; an unreadable one is
    an error naming it. Returns the paths replaced.
    """
    check_profile(profile)
    root = Path(results) / profile
    found = {}
    for exp in RUNNERS:  # the three experiments and the hold-out
        path = root / exp / "metrics.json"
        if not path.exists():
            continue
        try:
            found[exp] = json.loads(path.read_text())
            if not isinstance(found[exp], dict):
                raise ValueError(f"a JSON {type(found[exp]).__name__}, not an object")
        except ValueError as exc:
            raise ValueError(
                f"Cannot read {path} ({type(exc).__name__}: {exc}); nothing was redrawn. "
                "Restore it (e.g. git checkout -- <file>) or run the experiment again."
            ) from None
    if not found:
        raise FileNotFoundError(
            f"No metrics.json under {root}/{{{','.join(RUNNERS)}}}: "
            f"nothing to redraw. Run `keras-unets reproduce all --profile {profile}` "
            "(or a make reproduce-* target) first, or pass --results where they are."
        )
    prov = provenance(command)
    stamp = {k: prov[k] for k in ("command", "date_utc", "git_commit", "git_dirty")}
    replaced = []
    for exp, metrics in found.items():
        exp_dir = root / exp
        listed = set(metrics.get("figures", []))
        with tempfile.TemporaryDirectory(dir=exp_dir, prefix=".redraw-") as tmp:
            _redraw(exp, metrics, Path(tmp))
            drawn = sorted(f"figures/{f.name}" for f in Path(tmp).glob("*.png")
                           if f"figures/{f.name}" in listed)
            for rel in drawn:
                (exp_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(Path(tmp) / Path(rel).name, exp_dir / rel)
                replaced.append(exp_dir / rel)
        if drawn:
            metrics["figures_redrawn"] = stamp
            atomic_write_json(exp_dir / "metrics.json", _jsonable(metrics))
        log(f"[{exp}] redrew {', '.join(drawn) if drawn else 'nothing (no figure it can draw)'}")
    return replaced


REPORT_ACCURACY = {"U-Net": 0.9189, "UNet++": 0.917, "UNet++ (deep supervision)": 0.894,
                   "UNet 3+": 0.923}


def _trained_at(eval_commit, arms):
    """'; run(s) NAME, ... trained at commit ...' for each reused run trained by other code.

    Names the runs, so a folder that mixes runs of this commit with older
    ones (a hold-out rerun of one network) does not read as all older.
    """
    by_commit = {}
    for name, a in sorted(arms.items()):
        commit = a.get("git_commit") or "unknown"
        if commit != eval_commit or a.get("git_dirty"):
            label = commit[:12] + (" (dirty)" if a.get("git_dirty") else "")
            by_commit.setdefault(label, []).append(name)
    return "".join(f"; {'runs' if len(names) > 1 else 'run'} {', '.join(names)} trained at commit {label}"
                   for label, names in sorted(by_commit.items()))


def _fine_cell(s):
    """SUMMARY.md's 'V_rand, 0.01 grid' cell: ``0.9808 (th=0.96)``, or "–" for older rows."""
    if s.get("v_rand_fine") is None:
        return "–"
    return f"{fmt(s['v_rand_fine'])} (th={fmt(s.get('v_rand_fine_threshold'), 2)})"


def _tta_row(s, report):
    """One row of SUMMARY.md's TTA table (dashes for metrics without ``tta_*`` keys)."""
    head = [s["network"], "–" if report is None else str(report)]
    if "tta_accuracy_as_report" not in s:
        return head + ["–"] * 4
    gain = (f"{s['tta_accuracy_as_report'] - s['accuracy_as_report']:+.4f} / "
            f"{s['tta_accuracy_blind'] - s['accuracy_blind']:+.4f}")
    return head + [
        f"{fmt(s['tta_accuracy_as_report'])} (t={s['tta_threshold_as_report']})",
        f"{fmt(s['tta_accuracy_blind'])} (t={s['tta_threshold_blind']})",
        gain, f"{s['tta_seconds_per_slice'] * 1000:.0f} ms",
    ]


# (experiment, metrics.json summary key, label) of the seed-spread table
SPREAD_MEASURES = (
    ("holdout", "accuracy", "hold-out"),
    ("holdout", "tta_accuracy", "hold-out + TTA"),
    ("main", "accuracy_as_report", "as the report"),
    ("main", "accuracy_blind", "blind"),
    ("holdout", "v_rand_fine", "hold-out V_rand, 0.01 grid"),
    ("main", "v_rand_fine", "V_rand, 0.01 grid"),
)


def results_seed(results):
    """N for a results root named ``seed-N`` (what ``--seed N`` writes), else ``None``."""
    match = re.fullmatch(r"seed-(\d+)", Path(results).name)
    return None if match is None else int(match.group(1))


def seed_roots(profile, results="results"):
    """``{seed: folder}`` of the profile's runs: ``results/<profile>`` and ``results/seed-N/<profile>``.

    The profile's own folder counts as the profile's seed (every network of
    the built-in profiles uses the same one); ``results/seed-N`` are the
    folders that ``--seed N`` writes by default (:func:`default_results`).
    """
    base = Path(results)
    roots = {int(profile_settings(profile, "unet")["seed"]): base / profile}
    for folder in sorted(base.glob("seed-*")):
        seed = results_seed(folder)
        if seed is not None and (folder / profile).is_dir():
            roots.setdefault(seed, folder / profile)
    return dict(sorted(roots.items()))


def _seed_records(profile, results="results"):
    """The summary records of every seed's runs: ``(seeds, [(seed, kind, record)])``.

    ``seeds``: the seeds with any ``metrics.json`` under :func:`seed_roots`;
    ``kind``: ``"holdout"`` for the hold-out experiment, else ``"main"``.
    """
    records, seeds = [], set()
    for seed, root in seed_roots(profile, results).items():
        for exp in (*EXPERIMENTS, "holdout"):
            path = root / exp / "metrics.json"
            if not path.exists():
                continue
            seeds.add(seed)
            kind = "holdout" if exp == "holdout" else "main"
            summary = json.loads(path.read_text()).get("summary", [])
            records += [(seed, kind, rec) for rec in summary]
    return sorted(seeds), records


def _spread_rows(seeds, records):
    values = {}  # (network, label) -> {seed: value}
    for seed, kind, rec in records:
        for k, key, label in SPREAD_MEASURES:
            if k == kind and rec.get(key) is not None:
                values.setdefault((rec["network"], label), {})[seed] = float(rec[key])
    order = {label: i for i, (_, _, label) in enumerate(SPREAD_MEASURES)}
    rows = []
    for (network, label), by_seed in sorted(values.items(),
                                            key=lambda kv: (order[kv[0][1]], kv[0][0])):
        if len(by_seed) < 2:
            continue
        got = list(by_seed.values())
        rows.append([network, label, *[by_seed.get(s) for s in seeds],
                     float(np.mean(got)), f"{max(got) - min(got):.5f}"])
    return rows


def _training_rows(seeds, records):
    cells = {}  # (network, run) -> {seed: text}
    for seed, kind, rec in records:
        if rec.get("epochs") is None or rec.get("train_seconds") is None:
            continue
        run = "hold-out" if kind == "holdout" else "main"
        cells.setdefault((rec["network"], run), {})[seed] = (
            f"{rec['epochs']} epochs, {format_seconds(rec['train_seconds'])}"
            + _stopped_note(rec))
    return [[network, run, *[by_seed.get(s) for s in seeds]]
            for (network, run), by_seed in sorted(cells.items(),
                                                  key=lambda kv: (kv[0][1], kv[0][0]))
            if len(by_seed) >= 2]


def seed_spread(profile, results="results"):
    """Per network and measure, the accuracy (or fine-grid V_rand) on 25-29 of each seed's run.

    Returns ``(seeds, rows)``: the seeds with any metrics, and rows
    ``[network, measure, value per seed (None if not run), mean, max - min]``
    (the range as a string with 5 decimals: seeds can agree to 4),
    only for measures that at least two seeds have. The runs are read from
    :func:`seed_roots`' ``metrics.json`` files.
    """
    seeds, records = _seed_records(profile, results)
    return seeds, _spread_rows(seeds, records)


def seed_training(profile, results="results"):
    """Per network and run kind, how each seed's run trained: epochs and time.

    Returns ``(seeds, rows)`` with rows ``[network, run, text per seed]``,
    e.g. ``"14 epochs, 30 min 00 s (time limit)"`` (``None`` if not run),
    for the runs of at least two seeds. A time limit makes the amount of
    training depend on the machine's speed: two seeds trained on machines of
    different speeds differ in more than the seed, and this says so.
    """
    seeds, records = _seed_records(profile, results)
    return seeds, _training_rows(seeds, records)


def seed_spread_section(profile, results="results"):
    """SUMMARY.md lines of :func:`seed_spread` (none when no measure has two seeds)."""
    seeds, records = _seed_records(profile, results)  # read once for both tables
    spread = _spread_rows(seeds, records)
    if not spread:
        return []
    training = _training_rows(seeds, records)
    lines = [
        "\n## Seed spread (not in the report)\n",
        "The same recipes trained again with other seeds (`make reproduce-* SEED=N`, "
        f"written to `results/seed-N/{profile}/`); pixel accuracy on slices 25-29 by the "
        "rule of each table above, and the V_rand of the same checkpoints on the 0.01 grid. "
        "Only measures that two or more seeds have are shown.\n",
        markdown_table(["network", "measure", *[f"seed {s}" for s in seeds], "mean",
                        "max - min"], spread),
    ]
    if training:
        lines += [
            "\nHow each seed's run trained. Under a time limit the number of epochs "
            "depends on the machine's speed, so seeds trained on machines of different "
            "speeds differ in more than the seed.\n",
            markdown_table(["network", "run", *[f"seed {s}" for s in seeds]], training),
        ]
    return lines


def write_summary(profile, *, results="results"):
    """(Re)write ``results/<profile>/SUMMARY.md`` from the experiments' metrics.json."""
    check_profile(profile)
    root = Path(results) / profile
    rows, tta_rows, figures, provs, missing = [], [], [], [], []
    arms = {}
    for exp in EXPERIMENTS:
        path = root / exp / "metrics.json"
        if not path.exists():
            missing.append(exp)
            rows.append([REPORT[exp]["network"], str(REPORT[exp]["accuracy"]), "not run yet",
                         *["–"] * 8])
            continue
        m = json.loads(path.read_text())
        provs.append((exp, m.get("provenance", {})))
        arms[exp] = m.get("arms", {})
        machine = m.get("provenance", {}).get("machine", {}).get("description", "–")
        for s in m.get("summary", []):
            report = REPORT_ACCURACY.get(s["network"])
            rows.append([
                s["network"], "–" if report is None else str(report),
                f"{fmt(s['accuracy_as_report'])} (t={s['threshold_as_report']})",
                f"{fmt(s['accuracy_blind'])} (t={s['threshold_blind']})",
                s.get("v_rand"), _fine_cell(s), s.get("v_info"), int(s["parameters"]),
                f"{format_seconds(s['train_seconds'])}, {s['epochs']} epochs"
                + _stopped_note(s),
                s.get("train_machine") or machine, f"{s['seconds_per_slice'] * 1000:.0f} ms",
            ])
            tta_rows.append(_tta_row(s, report))
        figures += [(exp, f) for f in m.get("figures", [])]
    targets = {"unet": "reproduce-unet", "unetpp": "reproduce-unetpp", "unet3p": "reproduce-unet3p"}
    seed = results_seed(results)
    seed_arg = "" if seed is None else f" SEED={seed}"
    text = [
        f"# U-Net School, reproduced ({profile} profile"
        + ("" if seed is None else f", seed {seed}") + ")\n",
        "Pixel accuracy on ISBI 2012 training slices 25-29 (trained on 0-24), as in "
        "Liu, Shi, Chen, \"U-Net School for Medical Image Segmentation\". Regenerated by "
        f"every `make reproduce-*{seed_arg}` target from `{default_results(seed)}/{profile}/*/metrics.json`.\n",
        "- **ours, as the report**: checkpoint with the best accuracy on 25-29, "
        "binarisation threshold tuned on 25-29 (what the report did: both chosen on "
        "its test slices).",
        "- **ours, blind**: last checkpoint, threshold tuned on training slices 20-24 "
        "(seen in training, but the test slices are used only to measure).",
        "- V_rand / V_info: the ISBI 2012 challenge's foreground-restricted scores after "
        "thinning (`keras_unets.metrics.evaluate`, best checkpoint): averaged over slices "
        "25-29, maximised over thresholds 0.0, 0.1, ..., 1.0 as the challenge's script does. "
        "V_rand on the 0.01 grid maximises over 0.00, 0.01, ..., 1.00 instead "
        "(`keras_unets.isbi.FINE_THRESHOLDS`; th = where), so that a network whose best "
        "threshold falls between the challenge's is not marked down for it; \"–\" for rows "
        "evaluated before it was added.",
        "- inference: overlap-tile prediction (`keras_unets.predict.predict_tiled` defaults: "
        "tile near 256 px, batch 4), seconds per test slice, best of 3 timed runs after a "
        "warm-up.\n",
    ]
    if rows:
        text.append(markdown_table(
            ["network", "report", "ours, as the report", "ours, blind", "V_rand",
             "V_rand, 0.01 grid", "V_info", "parameters", "training", "machine",
             "inference / slice"], rows))
    if any(r[2] != "–" for r in tta_rows):
        text += [
            "\n## With test-time augmentation\n",
            "The same checkpoints and threshold rules, each slice predicted as the mean over "
            "its 8 flips and right-angle rotations (`predict_tiled(tta=True)`; for its "
            "ISBI 2012 entry the U-Net paper averaged 7 rotated versions of the input). The "
            "gain is against the table above; inference is one timed call.\n",
            markdown_table(["network", "report", "ours, as the report + TTA",
                            "ours, blind + TTA", "gain (as the report / blind)",
                            "inference / slice"], tta_rows),
        ]
    holdout = root / "holdout" / "metrics.json"
    if holdout.exists():
        m = json.loads(holdout.read_text())
        provs.append(("holdout", m.get("provenance", {})))
        arms["holdout"] = m.get("arms", {})
        figures += [("holdout", f) for f in m.get("figures", [])]
        text += [
            "\n## True hold-out (not in the report)\n",
            "The same recipes trained on slices 0-19 only (`make reproduce-holdout`). "
            f"{HOLDOUT_NOTE}\n",
            markdown_table(HOLDOUT_HEADERS, [_holdout_row(s, REPORT_ACCURACY.get(s["network"]))
                                             for s in m.get("summary", [])])
            + carried_note(m.get("summary", [])),
        ]
    text += seed_spread_section(profile, results)
    if missing:
        text.append("\nNot run yet: " + ", ".join(
            f"{e} (`make {targets[e]} PROFILE={profile}{seed_arg}`)" for e in missing) + ".\n")
    if figures:
        text.append("\n## Figures\n")
        for exp, fig in figures:
            name = Path(fig).stem.replace("_", " ")
            text.append(f"### {exp}: {name}\n\n![{exp} {name}]({exp}/{fig})\n")
    if provs:
        text.append("\n## Provenance\n")
        for exp, p in provs:
            v = p.get("versions", {})
            text.append(
                f"- {exp}: `{p.get('command', '?')}` at {p.get('date_utc', '?')}, commit "
                f"{(p.get('git_commit') or 'unknown')[:12]}{' (dirty)' if p.get('git_dirty') else ''}; "
                f"keras {v.get('keras')} ({v.get('keras_backend')}), Python {v.get('python')}, "
                f"numpy {v.get('numpy')}; {p.get('machine', {}).get('description', '?')}"
                + _trained_at(p.get("git_commit"), arms.get(exp, {})))
        text.append("")
    path = root / "SUMMARY.md"
    atomic_write_text(path, "\n".join(text))
    return path


def _data_dir_or_download(data_dir, log):
    """Resolve the data folder; with no folder given anywhere, download it.

    An explicit ``data_dir`` or ``$ISBI2012_DIR`` is used as is (a missing
    folder there is an error). Otherwise the default cache folder
    (``~/.keras/datasets/isbi2012``) is filled by
    :func:`keras_unets.download.download_isbi2012`; when that fails (offline),
    the error says where to put the files by hand.
    """
    import os

    from keras_unets.data import ENV_VAR, DataNotFoundError, default_data_dir, resolve_data_dir

    try:
        return resolve_data_dir(data_dir)
    except DataNotFoundError:
        if data_dir is not None or os.environ.get(ENV_VAR):
            raise
    from keras_unets.download import DownloadError, download_isbi2012

    dest = default_data_dir()
    log(f"ISBI 2012 data not found; downloading it into {dest}")
    try:
        download_isbi2012(dest)
    except DownloadError as exc:
        raise DataNotFoundError(
            f"ISBI 2012 data not found and the download failed:\n{exc}") from None
    return resolve_data_dir(dest)


def check_time_limit(minutes):
    """``minutes`` as a time-limit override: ``None`` or a positive finite number."""
    if minutes is None:
        return None
    ok = (isinstance(minutes, (int, float, np.integer, np.floating))
          and not isinstance(minutes, bool))
    value = float(minutes) if ok else float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"time_limit_minutes must be a positive number of minutes (or None for the "
            f"profile's limit); received {minutes!r}"
        )
    return value


def default_results(seed=None):
    """The results root: ``results``, or ``results/seed-N`` for an explicit seed.

    Runs with an explicit seed go to their own root, so they never mix with
    (or reuse) the profile's runs and each gets its own SUMMARY.md. (A
    ``results/seed-N`` whose N is the profile's own seed is left out of
    :func:`seed_spread`, which counts ``results/<profile>`` for that seed.)
    """
    return "results" if seed is None else f"results/seed-{int(seed)}"


def reproduce(experiments=EXPERIMENTS, profile=None, *, results=None, data_dir=None,
              command=None, log=print, reason=None, networks=None, seed=None,
              time_limit_minutes=None):
    """Run the named experiments, then rewrite SUMMARY.md. Returns its path.

    ``profile=None`` picks :func:`default_profile` and prints why (``reason``
    says why an explicit profile was chosen, for the log). The data
    folder is resolved first, so missing data fails before anything trains
    (``keras_unets.data.DataNotFoundError`` says where to put the files).
    ``experiments`` may also name ``"holdout"`` (:func:`run_holdout`, not
    part of the default three); ``networks`` limits it to some networks.
    ``seed`` overrides every profile's training seed (for a seed spread);
    ``results=None`` is :func:`default_results`. ``time_limit_minutes``
    caps every training arm at that many minutes instead of the profile's
    limit (Table I's half-resolution arm: a third of it), e.g. to fit the
    ``paper`` profile into a GPU lease; a finished run of another limit is
    refused (:class:`TimeLimitMismatchError`), never reported as this one.
    """
    if seed is not None and (isinstance(seed, bool) or int(seed) != seed or seed < 0):
        raise ValueError(f"seed must be a non-negative integer; received {seed!r}")
    time_limit_minutes = check_time_limit(time_limit_minutes)
    seed_default_root = results is None and seed is not None
    if results is None:
        results = default_results(seed)
    if profile is None:
        profile, reason = default_profile()
    elif reason is None:
        reason = "chosen"
    check_profile(profile)
    _log_profile(log, profile, reason)
    if isinstance(experiments, str):
        experiments = [experiments]
    unknown = [e for e in experiments if e not in RUNNERS]
    if unknown:
        raise ValueError(
            f"Unknown experiment(s) {unknown}. Expected some of {', '.join(RUNNERS)}. "
            f"Received: experiments={list(experiments)}"
        )
    networks = holdout_networks(experiments, networks)
    holdout_kwargs = {} if networks is None else {"networks": networks}
    if experiments:
        data_dir = _data_dir_or_download(data_dir, log)
        log(f"data: {data_dir}")
    for exp in experiments:
        start = time.perf_counter()
        RUNNERS[exp](profile, results=results, data_dir=data_dir, command=command, log=log,
                     seed=seed, time_limit_minutes=time_limit_minutes,
                     **(holdout_kwargs if exp == "holdout" else {}))
        log(f"[{exp}] done in {format_seconds(time.perf_counter() - start)}")
    path = write_summary(profile, results=results)
    log(f"summary: {path}")
    base = Path(default_results())
    if seed_default_root and (base / profile).is_dir():  # its seed-spread table
        log(f"summary: {write_summary(profile, results=base)}")
    return path
