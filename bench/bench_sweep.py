"""Benchmark: the report's per-pixel accuracy loop vs the histogram sweep.

The "U-Net School" report scores a prediction by binarising it (``pred > t``
-> 255) and comparing it with the label pixel by pixel in a Python double
loop, once per threshold, to pick the best threshold (its Fig. 10).
``keras_unets.metrics.threshold_sweep`` gets the accuracy at all 256
thresholds from two histograms in one pass.

What is timed (ISBI 2012 slices 25-29, 512x512, a probability map made from
the labels by blurring and noise, so no trained model is needed):

1. the report's loop on 1 slice x 1 threshold (median of a few repeats),
   extrapolated to 255 thresholds x 5 slices (marked as extrapolated);
2. the same loop run in full for 2 thresholds x 5 slices, to show that the
   per-(slice, threshold) time holds, and that its accuracies equal the
   sweep's exactly;
3. ``threshold_sweep`` on the 5 slices (all 256 thresholds), median of repeats.

Writes a markdown table to stdout and to ``bench/results/sweep.md``.
Run: ``.venv/bin/python bench/bench_sweep.py [--repeats 3]``
(``ISBI2012_DIR`` points at the data; without it synthetic labels are used).
"""
import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_unets.data import get_split  # noqa: E402
from keras_unets.io import atomic_write_text  # noqa: E402
from keras_unets.metrics import threshold_sweep, to_uint8  # noqa: E402

REPORT_THRESHOLDS = 255  # the report swept t over the 0-255 scale


def report_loop_accuracy(pred, label, threshold):
    """The report's evaluation of one slice at one threshold, pixel by pixel.

    A faithful re-implementation of its per-pixel Python double loop over the
    (H, W) arrays: binarise each predicted pixel (``> threshold`` -> 255, else
    0) and count it as right when it equals the label pixel.
    """
    height, width = label.shape
    correct = 0
    for i in range(height):
        for j in range(width):
            value = 255 if pred[i, j] > threshold else 0
            if value == label[i, j]:
                correct += 1
    return correct / (height * width)


def load_data():
    """Labels of slices 25-29 and a blurred, noised probability map (uint8)."""
    source = "synthetic blobs (no ISBI2012_DIR)"
    test = get_split("report").test
    try:
        from keras_unets.data import read_stack, resolve_data_dir

        directory = resolve_data_dir()
        tif = directory / "train-labels.tif"
        labels = read_stack(tif if tif.exists() else directory / "png" / "train" / "label")
        labels = labels[list(test)]
        source = f"ISBI 2012 train-labels slices 25-29 ({directory})"
    except Exception:  # noqa: BLE001 - any failure: fall back to synthetic data
        rng = np.random.default_rng(1)
        blobs = [cv2.GaussianBlur(rng.random((512, 512)), (0, 0), 4) for _ in test]
        labels = np.stack([np.where(b > 0.5, 255, 0) for b in blobs]).astype(np.uint8)
    rng = np.random.default_rng(0)
    prob = np.stack([cv2.GaussianBlur(lab / 255.0, (0, 0), 2.0) for lab in labels])
    pred = to_uint8(np.clip(prob + rng.normal(0, 0.15, prob.shape), 0, 1))
    return pred, labels, source


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the 1x1 loop timing")
    parser.add_argument("--sweep-repeats", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sweep.md"))
    args = parser.parse_args(argv)

    pred, labels, source = load_data()
    n_slices, height, width = labels.shape

    # 1. the report's loop: 1 slice x 1 threshold, a few repeats
    loop_1x1 = [timed(report_loop_accuracy, pred[0], labels[0], 87)[0] for _ in range(args.repeats)]
    per_unit = statistics.median(loop_1x1)
    extrapolated = per_unit * REPORT_THRESHOLDS * n_slices

    # 2. the loop in full for 2 thresholds x all slices, checked against the sweep
    sweep = threshold_sweep(pred, labels)
    check_thresholds = (87, 128)
    full_times = []
    for t in check_thresholds:
        seconds, accs = 0.0, []
        for z in range(n_slices):
            dt, acc = timed(report_loop_accuracy, pred[z], labels[z], t)
            seconds += dt
            accs.append(acc)
        pooled = float(np.mean(accs))  # equal slice sizes: pooled = mean
        assert abs(pooled - sweep[t]) < 1e-12, (t, pooled, sweep[t])
        full_times.append(seconds)
    measured_unit = sum(full_times) / (len(check_thresholds) * n_slices)

    # 3. the histogram sweep, all 256 thresholds, all slices
    sweep_times = [timed(threshold_sweep, pred, labels)[0] for _ in range(args.sweep_repeats)]
    sweep_time = statistics.median(sweep_times)
    ratio = extrapolated / sweep_time
    best = int(np.argmax(sweep))

    lines = [
        "# Threshold sweep: report's per-pixel loop vs histogram sweep",
        "",
        f"Data: {source}; {n_slices} slices of {height}x{width}; prediction = blurred,"
        " noised labels (uint8).",
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()},"
        f" {os.cpu_count()} CPUs (os.cpu_count), Python {platform.python_version()},"
        f" numpy {np.__version__}. Shared 2-core dev machine: timings are indicative.",
        "",
        "| method | work | time (s) | note |",
        "| --- | --- | --- | --- |",
        f"| report loop | 1 slice x 1 threshold | {per_unit:.4f} |"
        f" median of {args.repeats} runs |",
        f"| report loop | {n_slices} slices x {len(check_thresholds)} thresholds |"
        f" {sum(full_times):.3f} | run in full: {measured_unit:.4f} s per slice x threshold"
        f" ({measured_unit / per_unit:.2f}x the 1x1 figure) |",
        f"| report loop | {n_slices} slices x {REPORT_THRESHOLDS} thresholds |"
        f" {extrapolated:.1f} | **extrapolated** from the 1x1 median |",
        f"| `threshold_sweep` | {n_slices} slices x 256 thresholds | {sweep_time:.4f} |"
        f" median of {args.sweep_repeats} runs |",
        "",
        f"**Speed-up: {ratio:,.0f}x** (extrapolated loop time / sweep time; goal >= 1000x).",
        "",
        f"Check: the loop's accuracies at t = {', '.join(map(str, check_thresholds))} equal"
        f" the sweep's exactly ({', '.join(f'{sweep[t]:.6f}' for t in check_thresholds)});"
        f" best threshold {best}, accuracy {sweep[best]:.4f}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    atomic_write_text(out, text)
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
