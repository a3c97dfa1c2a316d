"""Benchmark: ``model.fit(PyDataset)`` against :func:`keras_unets.training.train_loop`.

Same network (the ``quick`` profile's, built fresh for each method with the
same seed), same augmented batches (a ``SegmentationDataset`` of 4 random
256 x 256 crops with the quick profile's augmentation and elastic warps),
same compiled loss and optimizer. Each method runs ``--epochs`` epochs of
``--steps`` steps; the first epoch (graph tracing) is reported apart and the
median of the others is the step time. Both methods run in this one process,
one after the other, so the ratio is measured side by side.

Why this exists: on a 2-core CPU ``fit`` (which wraps a
``PyDataset`` in ``tf.data.Dataset.from_generator`` on TensorFlow) took
longer per step than ``train_on_batch`` on the same batches, and the quick
profile's 30-minute budget is CPU-bound. ``train()`` uses ``train_loop``
when it runs on one device. The two methods share the process (the second
runs after the first), so the second may run slower than it would alone.

Run: ``.venv/bin/python bench/bench_fit_loop.py [--models unet,unet3p] [--steps 8] [--epochs 4]``
Results: ``bench/results/fit_loop.md``.
"""
import argparse
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


def run(name, method, steps, epochs, data_dir):
    import keras

    from keras_unets import training
    from keras_unets.augment import Augmenter, SegmentationDataset
    from keras_unets.data import load_isbi2012
    from keras_unets.models import get_model
    from keras_unets.training.config import resolve_config

    cfg = resolve_config("quick", name)
    keras.utils.set_random_seed(0)
    model = get_model(name, **cfg["model_kwargs"])
    training.compile_model(model, cfg, steps * epochs)
    data = load_isbi2012(data_dir)
    ds = SegmentationDataset(
        data.train_images[:25], data.train_labels[:25], batch_size=int(cfg["batch_size"]),
        crop=int(cfg["crop"]), augmenter=Augmenter(**cfg["augment"], elastic=True),
        steps_per_epoch=steps, seed=0)
    per_step = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            per_step.append((time.perf_counter() - self.t) / steps)

    if method == "fit":
        model.fit(ds, epochs=epochs, callbacks=[EpochTimer()], verbose=0)
    else:
        training.train_loop(model, ds, epochs=epochs, callbacks=[EpochTimer()])
    return per_step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="unet,unet3p")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fit_loop.md"))
    args = ap.parse_args(argv)
    data_dir = None  # ISBI2012_DIR or the download cache (keras_unets.data)
    if args.epochs < 2:
        raise SystemExit(f"--epochs must be >= 2 (the first is tracing). Received: {args.epochs}")
    import keras

    load0 = os.getloadavg()
    rows = []
    for name in args.models.split(","):
        res = {}
        for method in ("fit", "train_loop"):
            per = run(name, method, args.steps, args.epochs, data_dir)
            res[method] = per
            print(f"{name} {method}: first epoch {per[0]:.2f} s/step, then "
                  + ", ".join(f"{p:.2f}" for p in per[1:]), flush=True)
        fit_med = statistics.median(res["fit"][1:])
        loop_med = statistics.median(res["train_loop"][1:])
        rows.append(f"| {name} | {fit_med:.2f} | {loop_med:.2f} | {fit_med / loop_med:.2f}x | "
                    + ", ".join(f"{p:.2f}" for p in res["fit"][1:]) + " | "
                    + ", ".join(f"{p:.2f}" for p in res["train_loop"][1:]) + " |")
    load1 = os.getloadavg()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    text = (
        "# fit(PyDataset) vs train_loop (train_on_batch), quick-profile networks\n\n"
        f"- machine: {machine}; keras {keras.__version__}, backend {keras.backend.backend()}\n"
        f"- batch 4 x 256 x 256 crops, augmented; {args.epochs} epochs x {args.steps} steps, "
        "first epoch (tracing) dropped; median seconds per step\n"
        f"- load average at start / end: {load0[0]:.2f} / {load1[0]:.2f}\n\n"
        "| network | fit (s/step) | train_loop (s/step) | fit / train_loop | fit epochs | train_loop epochs |\n"
        "| --- | ---: | ---: | ---: | --- | --- |\n" + "\n".join(rows) + "\n")
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
