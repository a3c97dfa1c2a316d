"""Benchmark: the paper's UNet 3+ in less memory with ``factorize_skips``.

The paper's order (Huang et al., ICASSP 2020, section 2.1) up-samples each
deeper decoder map to the node's size before its 3x3 skip conv: at 512 x 512
X_En^5 becomes a 1024-channel map of 512 x 512 (1 GiB in float32), and
autodiff keeps such maps for the backward pass.
``build_unet3p(factorize_skips=True)`` computes the same function (same
weights, same outputs and gradients) without forming them: its skip convs
are ``keras_unets.models.layers.UpsampleConv2D(factorized=True)`` (the kernel's
channel mixing runs at the source resolution; the shifted up-sampling is two
contractions).

For each input size this script measures, side by side in one run (the
paper's network: 64 filters, 64 skip channels; batch 1, Adam, BCE), each
variant in its own process:

* TensorFlow on the CPU (no XLA, ``train_on_batch``): the growth of the
  process's peak resident memory (``ru_maxrss``) over ``--steps`` training
  steps, and the median step time;
* JAX (if installed): XLA's buffer assignment for the compiled training
  step on JAX's device (``compiled_training_memory``), then ``--steps`` runs
  of that executable (``compile_training_step``): peak RSS growth and median
  step time.

Run: ``.venv/bin/python bench/bench_unet3p_memory.py [--sizes 256,512] [--steps 3]``
Results: ``bench/results/unet3p_memory.md`` and ``.json``.
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

#: label -> build_unet3p keyword arguments
VARIANTS = {
    "paper order": {},
    "factorize_skips": {"factorize_skips": True},
}

TF_WORKER = """
import json, resource, statistics, sys, time
import numpy as np
import keras
from keras_unets.models import get_model
kwargs, size, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = get_model("unet3p", input_size=size, **kwargs)
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
import json, resource, statistics, sys, time
import jax.numpy as jnp
import numpy as np
from keras_unets.models import compile_training_step, get_model
kwargs, size, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = get_model("unet3p", input_size=size, **kwargs)
step, opt, info = compile_training_step(model, batch_size=1)
buffers = {**info.pop("memory"), **info}  # as compiled_training_memory, one compile
tv = [jnp.array(v.value) for v in model.trainable_variables]
ntv = [jnp.array(v.value) for v in model.non_trainable_variables]
ov = [jnp.array(v.value) for v in opt.variables]
rng = np.random.default_rng(0)
x = jnp.array(rng.random((1, size, size, 1), dtype=np.float32))
y = jnp.array((rng.random((1, size, size, 1)) > 0.5).astype("float32"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
times = []
for _ in range(steps):
    t = time.perf_counter()
    loss, tv, ntv, ov = step(tv, ntv, ov, x, [y])
    loss.block_until_ready()
    times.append(time.perf_counter() - t)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps({**buffers, "rss_growth": after - before,
                              "median_step_s": statistics.median(times[1:] or times),
                              "loss": float(loss)}))
"""


def _has_jax():
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated labels out of {list(VARIANTS)}")
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "unet3p_memory.md"))
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    labels = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in labels if v not in VARIANTS]
    if unknown:
        p.error(f"unknown --variants {unknown}; choose from {list(VARIANTS)}")
    jax_ok = _has_jax()
    lines = [
        "UNet 3+ (paper: 64 filters, 64 skip channels, skips up-sampled before their conv), "
        "batch 1, Adam, BCE: the paper's order as written and with `factorize_skips` "
        "(same function and weights).",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. TensorFlow: `train_on_batch` without XLA, "
        f"{args.steps} steps, peak RSS growth over them and the median step (after the "
        f"first); JAX: XLA's buffer assignment for the compiled step on the CPU, then "
        f"{args.steps} runs of that executable: peak RSS growth and median step.",
        f"Command: `python bench/bench_unet3p_memory.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        "| input | variant | TF peak RSS growth (MiB) | TF step (s) | XLA buffers (MiB) "
        "| JAX peak RSS growth (MiB) | JAX step (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    results = []
    for size in sizes:
        for label in labels:
            kwargs = VARIANTS[label]
            spec = json.dumps(kwargs)
            tf_res = run_worker(TF_WORKER, [spec, size, args.steps], "tensorflow", args.timeout)
            jax_res = (run_worker(JAX_WORKER, [spec, size, args.steps], "jax",
                                  args.timeout) if jax_ok else {"error": "JAX not installed"})
            results.append({"size": size, "variant": label, "kwargs": kwargs,
                            "tensorflow": tf_res, "jax": jax_res})
            if "error" in tf_res:
                tf_cells = f"{tf_res['error']} | -"
            else:
                tf_cells = f"{tf_res['rss_growth'] / MIB:,.0f} | {tf_res['median_step_s']:.1f}"
            if "error" in jax_res:
                jax_cells = f"{jax_res['error']} | - | -"
            else:
                jax_cells = (f"{jax_res['total'] / MIB:,.0f} | "
                             f"{jax_res['rss_growth'] / MIB:,.0f} | "
                             f"{jax_res['median_step_s']:.1f}")
            row = f"| {size} | `{label}` | {tf_cells} | {jax_cells} |"
            lines.append(row)
            print(row, flush=True)
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.out, text)
    atomic_write_text(str(Path(args.out).with_suffix(".json")),
                      json.dumps(results, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
