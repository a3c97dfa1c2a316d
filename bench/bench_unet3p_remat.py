"""Benchmark: UNet 3+ in the paper's order with and without ``remat_skips``.

``build_unet3p(remat_skips=True)`` up-samples each deeper decoder map inside
its skip's conv layer (``keras_unets.layers.UpsampleConv2D``) and, under
``keras.remat``, recomputes the up-sampled map in the backward pass instead
of keeping it (same function and weights). For each input size this script
measures, side by side in one run, with and without it (the paper's
network: 64 filters, 64 skip channels; batch 1, Adam, BCE):

* TensorFlow on the CPU (no XLA, ``train_on_batch``): the growth of the
  process's peak resident memory (``ru_maxrss``) over ``--steps`` training
  steps, and the median step time; each variant in its own process;
* JAX (if installed): XLA's buffer assignment for the compiled training
  step on JAX's device (``compiled_training_memory``).

Run: ``.venv/bin/python bench/bench_unet3p_remat.py [--sizes 256,512] [--steps 3]``
Results: ``bench/results/unet3p_remat.md``.
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_memory import run_worker  # noqa: E402
from keras_unets.io import atomic_write_text  # noqa: E402

MIB = 1024 ** 2

TF_WORKER = """
import json, resource, statistics, sys, time
import numpy as np
import keras
from keras_unets.models import get_model
remat, size, steps = sys.argv[1] == "1", int(sys.argv[2]), int(sys.argv[3])
model = get_model("unet3p", input_size=size, remat_skips=remat)
model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=False)
rng = np.random.default_rng(0)
x = rng.random((1, size, size, 1), dtype=np.float32)
y = (rng.random((1, size, size, 1)) > 0.5).astype("float32")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
times = []
for _ in range(steps):
    t = time.perf_counter()
    model.train_on_batch(x, y)
    times.append(time.perf_counter() - t)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps({"rss_growth": after - before, "rss_peak": after,
                              "median_step_s": statistics.median(times[1:] or times)}))
"""

JAX_WORKER = """
import json, sys
from keras_unets.models import compiled_training_memory, get_model
remat, size = sys.argv[1] == "1", int(sys.argv[2])
model = get_model("unet3p", input_size=size, remat_skips=remat)
print("RESULT " + json.dumps(compiled_training_memory(model, batch_size=1)))
"""


def _has_jax():
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "unet3p_remat.md"))
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    jax_ok = _has_jax()
    lines = [
        "UNet 3+ (paper: 64 filters, 64 skip channels, skips up-sampled before their conv), "
        "batch 1, Adam, BCE: `remat_skips` off vs on.",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. TensorFlow: `train_on_batch` without XLA, "
        f"{args.steps} steps, peak RSS growth over them and the median step (after the "
        "first); JAX: XLA's buffer assignment for the compiled step on the CPU.",
        "",
        "| input | remat_skips | TF peak RSS growth (MiB) | TF step (s) | XLA buffers (MiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    results = []
    for size in sizes:
        for remat in (0, 1):
            tf_res = run_worker(TF_WORKER, [remat, size, args.steps], "tensorflow", args.timeout)
            jax_res = (run_worker(JAX_WORKER, [remat, size], "jax", args.timeout) if jax_ok
                       else {"error": "JAX not installed"})
            results.append({"size": size, "remat_skips": bool(remat), "tensorflow": tf_res,
                            "jax": jax_res})
            tf_cells = (f"{tf_res['rss_growth'] / MIB:,.0f} | {tf_res['median_step_s']:.1f}"
                        if "error" not in tf_res else f"{tf_res['error']} | -")
            xla_cell = (f"{jax_res['total'] / MIB:,.0f}" if "error" not in jax_res
                        else jax_res["error"])
            row = f"| {size} | {'on' if remat else 'off'} | {tf_cells} | {xla_cell} |"
            lines.append(row)
            print(row, flush=True)
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out, text)
    atomic_write_text(str(Path(args.out).with_suffix(".json")),
                      json.dumps(results, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
