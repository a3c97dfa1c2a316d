"""Benchmark: training-step time of the three networks on the CPU (TensorFlow backend).

For each network, at each tile size, batch 1, with and without XLA
(``model.compile(jit_compile=True/False)``): the median time of ``--steps``
training steps (Adam, binary cross-entropy, random tiles) after ``--warmup``
steps (the first traces the graph and, with XLA, compiles it; its time is
reported separately). Side by side in the same run: keras-unet-collection
0.1.13's closest builders (``unet_2d``, ``unet_plus_2d``, ``unet_3plus_2d``
from ``keras_unet_collection.models``; ``pip install keras-unet-collection==0.1.13``,
the ``bench`` extra), at the same widths as the papers.

Our networks: ``unet`` (Ronneberger 2015, 64-1024, 31,030,593 params),
``unetpp`` (Zhou 2018, 32-512, 9,041,601), ``unet3p`` (Huang 2020, 64-1024,
26,983,681 incl. BN statistics); ``--models`` takes any registry name (e.g.
``unet_report``, or with builder arguments
``unet3p:factorize_skips=true``) and ``kuc_unet_2d`` / ``kuc_unet_plus_2d`` /
``kuc_unet_3plus_2d``.

The paper-size networks take seconds per step on 2 cores, so the default (256x256 only, 3 timed steps) is what finishes in about
ten minutes on an idle 2-core CPU; ``--sizes 256,512`` adds the report's
tile size. ``--budget-s`` stops starting new configurations after that many
seconds (what was measured is still written). Results:
``bench/results/train_step.md``. The machine may be shared: the load
average at the start and end of the run is written next to the numbers.

Run: ``.venv/bin/python bench/bench_train_step.py [--sizes 256,512] [--steps 5]``
"""
import argparse
import gc
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

OURS_DEFAULT = "unet,unetpp,unet3p"
KUC_DEFAULT = "kuc_unet_2d,kuc_unet_plus_2d,kuc_unet_3plus_2d"


def build(name, size):
    """Build ``name`` for ``size x size x 1`` tiles: our registry or keras-unet-collection."""
    if name.startswith("kuc_"):
        from keras_unet_collection import models as kuc

        shape = (size, size, 1)
        if name == "kuc_unet_2d":
            return kuc.unet_2d(shape, [64, 128, 256, 512, 1024], n_labels=1,
                               output_activation="Sigmoid", name="kuc_unet_2d")
        if name == "kuc_unet_plus_2d":
            return kuc.unet_plus_2d(shape, [32, 64, 128, 256, 512], n_labels=1,
                                    output_activation="Sigmoid", name="kuc_unet_plus_2d")
        if name == "kuc_unet_3plus_2d":
            return kuc.unet_3plus_2d(shape, n_labels=1, filter_num_down=[64, 128, 256, 512, 1024],
                                     batch_norm=True, output_activation="Sigmoid",
                                     name="kuc_unet_3plus_2d")
        raise ValueError(f"Unknown keras-unet-collection model. Received: name={name!r}")
    from keras_unets.models import get_model, parse_model_spec

    name, overrides = parse_model_spec(name)  # e.g. "unet3p:factorize_skips=true"
    return get_model(name, input_size=size, **overrides)


def time_steps(model, *, size, batch, jit, steps, warmup):
    import keras
    import numpy as np

    names = list(model.output_names)
    loss = ({n: "binary_crossentropy" for n in names} if len(names) > 1
            else "binary_crossentropy")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 1), dtype=np.float32)
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    ys = [(rng.random((batch,) + tuple(s[1:])) > 0.5).astype("float32") for s in shapes]
    y = dict(zip(names, ys)) if len(names) > 1 else ys[0]
    t = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - t
    for _ in range(max(0, warmup - 1)):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), times


def write_table(args, rows, skipped, load0, start, running=None):
    """Write the results table atomically; ``running`` names an unfinished configuration.

    Called before every configuration and at the end, so a run that dies
    (e.g. killed for memory) keeps every finished row and names the
    configuration it died in.
    """
    import keras
    import tensorflow as tf

    load1 = os.getloadavg()
    wall = time.perf_counter() - start

    try:
        from importlib.metadata import version
        kuc_version = version("keras-unet-collection")
    except Exception:  # noqa: BLE001
        kuc_version = "not installed"
    lines = [
        "# Training step time on the CPU (TensorFlow backend)",
        "",
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores "
        f"(2-core CPU dev machine, shared with other jobs: load average "
        f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end); TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, keras-unet-collection {kuc_version}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total {wall / 60:.1f} min.",
        "",
        f"Batch {args.batch}, Adam, binary cross-entropy, random tiles; median of "
        f"{args.steps} timed steps after {args.warmup} warm-up step(s). 'first step' includes "
        "graph tracing (and the XLA compilation with XLA on).",
        "",
        "| model | tile | XLA | params | first step (s) | median step (s) | steps (s) |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['size']} | {'on' if r['xla'] else 'off'} | "
                         f"- | - | - | {r['status']} |")
            continue
        lines.append(
            f"| {r['model']} | {r['size']} | {'on' if r['xla'] else 'off'} | {r['params']:,} | "
            f"{r['first']:.1f} | {r['median']:.2f} | "
            f"{', '.join(f'{t:.2f}' for t in r['times'])} |")
    if skipped:
        lines += ["", f"Not run (budget of {args.budget_s:.0f} s spent): {', '.join(skipped)}."]
    lines += [
        "",
        "keras-unet-collection builders at the papers' widths: `unet_2d` 64-1024 (its "
        "up-sampling block cannot express the paper's 2x2 up-conv), `unet_plus_2d` 32-512 "
        "(builds no nested skip connections), `unet_3plus_2d` 64-1024 with "
        "batch norm (4 inputs per decoder node instead of 5).",
        "",
    ]
    if running:
        lines += [f"**Running when this file was last written: {running}.** If the run "
                  "ended here, that configuration did not finish (e.g. the process was "
                  "killed for memory).", ""]
    text = "\n".join(lines)
    atomic_write_text(args.out, text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # ours and the keras-unet-collection counterpart side by side, so that a
    # run cut short by --budget-s still compares complete pairs
    pairs = [m for pair in zip(OURS_DEFAULT.split(","), KUC_DEFAULT.split(",")) for m in pair]
    p.add_argument("--models", default=",".join(pairs),
                   help="comma-separated: registry names and kuc_* builders")
    p.add_argument("--sizes", default="256", help="tile sizes, e.g. 256,512")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--xla", default="off,on", help="off, on, or off,on")
    p.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 1)")
    p.add_argument("--budget-s", type=float, default=600,
                   help="do not start a new configuration after this many seconds")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_step.md"))
    args = p.parse_args(argv)

    import keras

    models = [m for m in args.models.split(",") if m]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [{"off": False, "on": True}[m] for m in args.xla.split(",") if m]
    load0 = os.getloadavg()
    start = time.perf_counter()
    rows, skipped = [], []
    for size in sizes:
        for name in models:
            for jit in modes:
                label = f"{name} {size} xla={'on' if jit else 'off'}"
                if time.perf_counter() - start > args.budget_s:
                    skipped.append(label)
                    continue
                write_table(args, rows, skipped, load0, start, running=label)
                keras.backend.clear_session()
                gc.collect()
                try:
                    model = build(name, size)
                    params = model.count_params()
                    first, med, times = time_steps(model, size=size, batch=args.batch, jit=jit,
                                                   steps=args.steps, warmup=args.warmup)
                    row = {"model": name, "size": size, "xla": jit, "params": params,
                           "first": first, "median": med, "times": times, "status": "ok"}
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    row = {"model": name, "size": size, "xla": jit, "params": None,
                           "status": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
                rows.append(row)
                print(label, row.get("median"), row["status"], flush=True)
    text = write_table(args, rows, skipped, load0, start)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
