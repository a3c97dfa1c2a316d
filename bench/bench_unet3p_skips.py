"""Benchmark: UNet 3+ full-scale skips in the paper's order, as written vs factorized.

``build_unet3p()`` follows the paper's order (Huang et al., ICASSP 2020,
sec. 2.1; official ``UNet_3Plus``): each deeper decoder map X_De^k is
bilinearly up-sampled to the node's size, then a 3x3 conv reduces it to
``cat_channels``. ``factorize_skips=True`` computes the same function
exactly without forming the up-sampled map (``UpsampleConv2D(factorized=True)``:
the kernel's channel mixing at the source resolution, then the shifted
up-sampling as two contractions).
For each configuration this script reports, for the two side by side in
one process (models built with the same seed, steps interleaved):

* multiply-adds per image of the convolutions (``Conv2D`` and
  ``UpsampleConv2D`` layers, counted from their shapes; for a factorized
  layer its 1x1 conv and its two contractions with the dense up-sampling
  matrices);
* the training-memory estimate of ``keras_unets.models.memory`` (weights,
  gradients, Adam slots, every layer output) at the configuration's batch and
  at 512 x 512;
* seconds per ``train_on_batch`` step (median of ``--reps`` rounds of
  ``--steps`` steps after 2 warm-up steps; random inputs, BCE on logits, Adam).

Configurations: the ``quick`` profile's network (16 filters, 8 skip
channels, batch 4 of 256 x 256) and the paper's (64 filters, 64 skip
channels, batch 1 of 256 x 256).

Run: ``.venv/bin/python bench/bench_unet3p_skips.py [--steps 3] [--reps 3]``
Results: ``bench/results/unet3p_skips.md``.
"""
import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_unets.io import atomic_write_text  # noqa: E402

VARIANTS = {  # label -> build_unet3p keyword arguments
    "paper order": {},
    "paper order, factorized": {"factorize_skips": True},
}
PAPER = "paper order"
CONFIGS = (  # name, filters, cat_channels, batch, size
    ("quick (16/8)", 16, 8, 4, 256),
    ("paper (64/64)", 64, 64, 1, 256),
)


def conv_macs(model):
    """Multiply-adds of the Conv2D and UpsampleConv2D layers for one image."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "UpsampleConv2D"):
            continue
        big_h, big_w, cout = layer.output.shape[1:]
        cin, k = layer.input.shape[-1], math.prod(layer.kernel_size)
        if kind == "UpsampleConv2D" and layer.factorized:
            h, w = layer.input.shape[1:3]
            kh, kw = layer.kernel_size
            total += h * w * cin * k * cout  # the 1x1 conv at the source resolution
            total += kh * h * big_w * cout * kw * w + big_h * big_w * cout * kh * h
        else:
            total += big_h * big_w * cout * cin * k
    return total


def build(variant, filters, cat, size):
    import keras

    from keras_unets.models import build_unet3p

    keras.utils.set_random_seed(0)
    return build_unet3p(input_shape=(size, size, 1), filters=filters, cat_channels=cat,
                        output_activation=None, bn_momentum=0.9, **VARIANTS[variant])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "unet3p_skips.md"))
    args = ap.parse_args(argv)
    import keras
    import numpy as np

    from keras_unets.models.memory import estimate_training_memory, format_bytes

    load0 = os.getloadavg()
    rows = []
    for cname, filters, cat, batch, size in CONFIGS:
        rng = np.random.default_rng(0)
        x = rng.random((batch, size, size, 1), dtype=np.float32)
        y = (rng.random((batch, size, size, 1)) > 0.3).astype(np.float32)
        models, info = {}, {}
        for order in VARIANTS:
            m = build(order, filters, cat, size)
            m512 = build(order, filters, cat, 512)
            info[order] = (conv_macs(m), estimate_training_memory(m, batch)["total"],
                           estimate_training_memory(m512, 1)["total"], m.count_params())
            m.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
            for _ in range(2):
                m.train_on_batch(x, y)
            models[order] = m
        times = {o: [] for o in VARIANTS}
        for _ in range(args.reps):  # interleaved rounds
            for order, m in models.items():
                t = time.perf_counter()
                for _ in range(args.steps):
                    m.train_on_batch(x, y)
                times[order].append((time.perf_counter() - t) / args.steps)
        med = {o: statistics.median(v) for o, v in times.items()}
        for order in VARIANTS:
            macs, mem, mem512, params = info[order]
            print(f"{cname} {order}: {macs / 1e9:.2f} G MACs, {med[order]:.2f} s/step "
                  f"({', '.join(f'{t:.2f}' for t in times[order])})", flush=True)
            rows.append(f"| {cname} | batch {batch} x {size} | `{order}` | {params:,} | "
                        f"{macs / 1e9:.2f} | {format_bytes(mem)} | {format_bytes(mem512)} | "
                        f"{med[order]:.2f} | {med[PAPER] / med[order]:.2f}x |")
        del models
    load1 = os.getloadavg()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    text = (
        "# UNet 3+ full-scale skips: the paper's order as written and factorized\n\n"
        f"- machine: {machine}; keras {keras.__version__}, backend {keras.backend.backend()}\n"
        f"- train_on_batch, random inputs, BCE on logits, Adam; median of {args.reps} "
        f"interleaved rounds of {args.steps} steps\n"
        "- memory: keras_unets.models.memory estimate (weights, gradients, Adam, all "
        "layer outputs), float32\n"
        f"- load average at start / end: {load0[0]:.2f} / {load1[0]:.2f}\n\n"
        "| network | input | skips | parameters | G MACs / image | memory estimate "
        "(this batch) | memory estimate (batch 1 x 512) | s / step | speed-up |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        + "\n".join(rows) + "\n")
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
