"""Benchmark: overlap-tile prediction of the ISBI 2012 test volume.

What is timed: :func:`keras_unets.inference.predict_tiled` over the slices of
``$ISBI2012_DIR/test-volume.tif`` (30 x 512 x 512; ``--slices`` takes the
first N), with and without test-time augmentation (the 8 flips/90-degree
rotations, U-Net paper sec. 3.1 used 7 rotations), reported as slices per
second. The model is built untrained (weights do not change the time): by
default the quick-profile U-Net (16 base filters, batch norm, same padding,
~1.9 M parameters); ``--model``/``--filters`` choose another, ``--tile`` an
overlap-tile sizes (default: one whole-slice tile per slice, and 256 px tiles with
``tile // 8`` margins). One warm-up
call traces the model first; the time is the best of ``--repeats`` runs.

Writes a markdown table to stdout and to ``bench/results/predict.md``.
Run: ``.venv/bin/python bench/bench_predict.py [--slices 30] [--tile 256]``
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _tile_arg(value):
    return None if value.lower() in ("whole", "none") else int(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="unet")
    parser.add_argument("--profile", default="quick",
                        help="profile whose model_kwargs build the model")
    parser.add_argument("--filters", type=int, default=None)
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--tile", type=_tile_arg, nargs="*", default=[None, 256],
                        help="tile sizes to time; 'whole' = one tile per slice "
                             "(default: whole 256)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-tta", action="store_true", help="skip the TTA timing")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "predict.md"))
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from keras_unets.data import read_stack
    from keras_unets.io import atomic_write_text
    from keras_unets.models import get_model
    from keras_unets.inference.predict import model_stride, predict_tiled, tile_plan
    from keras_unets.training.config import get_profile

    data_dir = Path(os.environ.get("ISBI2012_DIR", ""))
    path = data_dir / "test-volume.tif"
    if path.exists():
        volume = read_stack(path)[: args.slices]
        source = f"{path.name}[:{len(volume)}]"
    else:
        volume = np.random.default_rng(0).integers(0, 256, (args.slices, 512, 512), np.uint8)
        source = "synthetic 512x512 (ISBI2012_DIR not set)"
    kwargs = dict(get_profile(args.profile, args.model)["model_kwargs"])
    if args.filters is not None:
        kwargs["filters"] = args.filters
    model = get_model(args.model, **kwargs)
    stride = model_stride(model)

    load0 = os.getloadavg()[0]
    rows = []
    for tile in args.tile:
        for tta in ([False] if args.no_tta else [False, True]):
            n = len(volume) if not tta else max(1, len(volume) // 4)
            sub = volume[:n]
            predict_tiled(model, sub[:1], tile=tile, tta=False, batch_size=args.batch_size,
                          progress=False)  # warm-up / tracing
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = predict_tiled(model, sub, tile=tile, tta=tta,
                                    batch_size=args.batch_size, progress=False)
                best = min(best, time.perf_counter() - t0)
            assert out.shape == sub.shape
            if tile is None:
                tiles = 1
            else:
                margin = tile // 8  # same-padding default margin
                plan = tile_plan(sub.shape[1:], tile=tile, out_size=tile - 2 * margin,
                                 context=margin, align=stride)
                tiles = len(plan.tiles)
            rows.append((tile or "whole slice", "8 (D4)" if tta else "-", n, tiles,
                         n / best, best / n))
            print(rows[-1], flush=True)

    header = [
        "# Overlap-tile prediction speed (bench/bench_predict.py)",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores "
        f"({platform.processor() or 'cpu'}), shared with other jobs; no GPU",
        f"- keras {keras.__version__}, backend {keras.backend.backend()}",
        f"- data: {source}",
        f"- model: `{args.model}` with {kwargs} (untrained), "
        f"{model.count_params():,} parameters, stride {stride}",
        f"- load average (1 min) at start/end: {load0:.1f} / {os.getloadavg()[0]:.1f}",
        f"- batch size {args.batch_size} tiles; best of {args.repeats} runs after a "
        "warm-up call; TTA timed on a quarter of the slices",
        "",
        "| tile | TTA | slices | tiles per slice (no TTA) | slices/s | s/slice |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines = [f"| {t} | {a} | {n} | {k} | {sps:.2f} | {spp:.3f} |"
             for t, a, n, k, sps, spp in rows]
    text = "\n".join(header + lines) + "\n"
    print(text)
    atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
