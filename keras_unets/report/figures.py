"""Every figure of the report (matplotlib Agg, fed by plain arrays), and drawing them again.

Fig. 10 (U-Net accuracy against threshold), Fig. 11 (U-Net accuracy per
epoch), Fig. 12 (UNet++ training accuracy with and without deep
supervision), Fig. 13 (UNet 3+ accuracy per epoch), the pruned UNet++'s
accuracy against inference time and the hold-out's accuracy per epoch. Each
is drawn from what the experiment's metrics.json keeps, so
:func:`redraw_figures` draws them again without training.
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from keras_unets.io import atomic_write, atomic_write_json
from keras_unets.report.paper import EXPERIMENTS, REPORT
from keras_unets.report.provenance import check_profile, jsonable, provenance

#: The hold-out's figure, relative to its experiment folder.
HOLDOUT_FIGURE = "figures/holdout_accuracy_per_epoch.png"


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


# The figures of each experiment, from what its metrics.json keeps: drawn by
# the experiments and again, without training, by :func:`redraw_figures`.
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


#: Every experiment folder that may have figures: the report's three and the hold-out.
_FIGURE_EXPERIMENTS = (*EXPERIMENTS, "holdout")


def _read_metrics(root, profile):
    """``{experiment: metrics}`` of every metrics.json under ``root``; none: an error."""
    found = {}
    for exp in _FIGURE_EXPERIMENTS:
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
            f"No metrics.json under {root}/{{{','.join(_FIGURE_EXPERIMENTS)}}}: "
            f"nothing to redraw. Run `keras-unets reproduce all --profile {profile}` "
            "(or a make reproduce-* target) first, or pass --results where they are."
        )
    return found


def redraw_figures(profile, *, results="results", command=None, log=print):
    """Draw the figures again from each experiment's metrics.json; no training.

    For figures written by an older version of the plotting code (the legend
    of Fig. 13 covered its first epochs until it moved below the axes): the
    numbers stay, only the picture is drawn again, from the histories,
    threshold curves and pruning levels stored in
    ``<results>/<profile>/<experiment>/metrics.json``. Only figures that
    metrics.json lists are replaced (atomically), so the tables keep linking
    what exists. Fig. 10 needs both threshold curves, and results written
    before its curve on slices 20-24 was kept keep their Fig. 10 as it is.
    Each rewritten metrics.json gets ``figures_redrawn`` (the command, commit
    and date of this call). Every metrics.json is read before anything is
    written; an unreadable one is an error naming it. Returns the paths
    replaced.
    """
    check_profile(profile)
    root = Path(results) / profile
    found = _read_metrics(root, profile)
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
            atomic_write_json(exp_dir / "metrics.json", jsonable(metrics))
        log(f"[{exp}] redrew {', '.join(drawn) if drawn else 'nothing (no figure it can draw)'}")
    return replaced
