"""Benchmark: accuracy on ISBI 2012 slices 25-29 against minutes of training.

Reads the committed results of ``make reproduce PROFILE=quick`` (seed 0 in
``results/quick``, other seeds in ``results/seed-N/quick``): each network's
``history`` in its ``metrics.json`` holds, per epoch, the run's wall clock
at the epoch's end (``elapsed_seconds``: training plus the per-epoch
validation, counted from the first step), the accuracy with the threshold
tuned on 25-29 (``val_best_accuracy``) and the accuracy at the threshold
tuned on training slices 20-24 (``val_blind_accuracy``). So for every
minute of training:

- **as the report**: the best checkpoint so far, threshold tuned on 25-29
  (the running maximum of ``val_best_accuracy``: what the report's rule
  would pick if training stopped there);
- **blind**: the checkpoint of that epoch, threshold tuned on 20-24.

The table also gives the previous quick profile's final accuracies (30
minutes per network, ``results/previous-quick/``) from
``bench/results/time_to_accuracy/previous_quick.json``. Its minutes are not
drawn: those runs kept no epoch times and trained on another, faster
2-core CPU, so their minutes do not compare with these.

Writes ``bench/results/time_to_accuracy.md`` and the figure
``docs/time_to_accuracy.png`` (accuracy vs minutes, one colour per network,
the report's numbers as dotted lines). Trains nothing; run it after
``make reproduce PROFILE=quick`` and its seeds (``SEED=1``, ``SEED=2``).
Run: ``.venv/bin/python bench/bench_time_to_accuracy.py``
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_unets.io import atomic_write_text  # noqa: E402
from keras_unets.report.markdown import markdown_table  # noqa: E402
from keras_unets.report.paper import REPORT_ACCURACY  # noqa: E402
from keras_unets.report.summary import seed_roots  # noqa: E402

#: (experiment, arm, network) of each curve.
ARMS = (("unet", "full", "U-Net"), ("unetpp", "no_ds", "UNet++"),
        ("unetpp", "ds", "UNet++ (deep supervision)"), ("unet3p", "main", "UNet 3+"))
COLORS = {"U-Net": "tab:blue", "UNet++": "tab:orange",
          "UNet++ (deep supervision)": "tab:green", "UNet 3+": "tab:red"}
PREVIOUS = ROOT / "bench" / "results" / "time_to_accuracy" / "previous_quick.json"


def read_curves(root):
    """``{network: {"minutes", "as_report", "blind"}}`` of one results folder."""
    curves = {}
    for exp, arm, network in ARMS:
        path = root / exp / "metrics.json"
        if not path.exists():
            continue
        metrics = json.loads(path.read_text())
        hist = metrics["history"]
        hist = hist.get(arm, {}) if exp == "unetpp" else hist
        if "elapsed_seconds" not in hist:
            continue
        curves[network] = {
            "minutes": np.asarray(hist["elapsed_seconds"], float) / 60.0,
            "as_report": np.maximum.accumulate(np.asarray(hist["val_best_accuracy"], float)),
            "blind": np.asarray(hist.get("val_blind_accuracy", []), float),
        }
    return curves


def previous_runs():
    """The previous quick profile's runs (``network``, ``seed``, final accuracies, ...)."""
    if not PREVIOUS.exists():
        return []
    return json.loads(PREVIOUS.read_text())["runs"]


def minutes_to(minutes, accuracy, target):
    """First minute at which ``accuracy`` reaches ``target`` (``None``: never)."""
    hit = np.nonzero(accuracy >= target)[0]
    return float(minutes[hit[0]]) if len(hit) else None


def _cell(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"


def table_rows(runs, previous):
    """One row per network: mean over seeds, and minutes to the report's accuracy."""
    rows = []
    for _, _, network in ARMS:
        per_seed = [c[network] for c in runs.values() if network in c]
        if not per_seed:
            continue
        target = REPORT_ACCURACY[network]
        reach = [minutes_to(c["minutes"], c["as_report"], target) for c in per_seed]
        old = [r for r in previous if r["network"] == network]
        rows.append([
            network, str(target), len(per_seed),
            f"{np.mean([c['minutes'][-1] for c in per_seed]):.1f}",
            f"{np.mean([c['as_report'][-1] for c in per_seed]):.4f}",
            f"{np.mean([c['blind'][-1] for c in per_seed]):.4f}"
            if all(len(c["blind"]) for c in per_seed) else "–",
            ", ".join(_cell(r) for r in reach),
            f"{np.mean([r['accuracy_as_report'] for r in old]):.4f}" if old else "–",
            f"{np.mean([r['accuracy_blind'] for r in old]):.4f}" if old else "–",
        ])
    return rows


def draw(runs, path):
    """Two panels (as the report, blind): accuracy vs minutes, report lines dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, key, title in ((axes[0], "as_report", "as the report: best epoch so far, "
                            "threshold from 25-29"),
                           (axes[1], "blind", "blind: that epoch, threshold from 20-24")):
        for _, _, network in ARMS:
            color = COLORS[network]
            labelled = False
            for curves in runs.values():
                c = curves.get(network)
                if c is None or not len(c[key]):
                    continue
                ax.plot(c["minutes"], c[key], color=color, lw=1.2, alpha=0.8,
                        label=None if labelled else network)
                labelled = True
            ax.axhline(REPORT_ACCURACY[network], color=color, ls=":", lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("minutes of training (2-core CPU)")
        ax.set_ylim(0.90, 0.93)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pixel accuracy on slices 25-29")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("ISBI 2012: accuracy vs minutes of training, quick profile, one line per "
                 "seed; dotted: the report's accuracy", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "time_to_accuracy.md"))
    parser.add_argument("--figure", default=str(ROOT / "docs" / "time_to_accuracy.png"))
    args = parser.parse_args(argv)
    runs = {seed: read_curves(root) for seed, root in seed_roots(args.profile,
                                                                 args.results).items()}
    runs = {seed: c for seed, c in runs.items() if c}
    if not runs:
        print(f"No {args.profile} results with epoch times under {args.results}: run "
              f"`make reproduce PROFILE={args.profile}` first.", file=sys.stderr)
        return 1
    previous = previous_runs()
    draw(runs, Path(args.figure))
    table = markdown_table(
        ["network", "report", "seeds", "minutes trained", "as the report (mean)",
         "blind (mean)", "minutes to the report's accuracy, per seed",
         "previous profile: as the report (mean)", "previous profile: blind (mean)"],
        table_rows(runs, previous))
    text = (
        "# Accuracy vs minutes of training (`bench/bench_time_to_accuracy.py`)\n\n"
        f"Seeds {', '.join(str(s) for s in sorted(runs))} of `make reproduce "
        f"PROFILE={args.profile}` (results in `{Path(args.results).name}/`), read from each "
        "run's epoch times. \"As the report\": the best epoch so far with its threshold "
        "tuned on 25-29; \"blind\": the last epoch with the threshold tuned on training "
        "slices 20-24; minutes include the per-epoch validation. The previous profile "
        "(30 minutes per network, `results/previous-quick/`) trained on a faster 2-core "
        "CPU; only its final accuracies are given.\n\n"
        + table + f"\n![accuracy vs minutes](../../docs/{Path(args.figure).name})\n")
    atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
