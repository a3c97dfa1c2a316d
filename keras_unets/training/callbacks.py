"""Keras callbacks for training runs: threshold sweep, K-class validation, time limit.

:class:`ThresholdSweep` reproduces the evaluation of the "U-Net School"
report (Liu, Shi, Chen; sec. IV and Fig. 10/11): the network's probability
map is stored as ``uint8`` 0-255, binarised with ``pred > t``, and compared
pixel by pixel with the 0/255 label; the report found the best threshold
(87 for its U-Net) by trying them all on slices 25-29. Here all 256
thresholds are swept after every epoch with the histogram sweep of
:func:`keras_unets.metrics.threshold_sweep` (one pass instead of 256), and
the best threshold and accuracy go into the Keras ``logs`` so that
``ModelCheckpoint``/``EarlyStopping``/:class:`AtomicCheckpoint` can monitor
``val_best_accuracy``. **Order matters**: Keras hands the same ``logs`` dict
to the callbacks in list order, so ``ThresholdSweep`` must come before any
callback that reads its keys (``History`` is always last).

Everything here is backend-independent (numpy + ``model.predict_on_batch``).
"""
import csv
import io
import time
from pathlib import Path

import keras
import numpy as np

from keras_unets.models.unet3p import CGM_OUTPUT  # the CGM's class-score output, not a map
from keras_unets.io import atomic_write, atomic_write_text
from keras_unets.metrics import threshold_sweep, to_uint8
from keras_unets.inference.predict import _run, main_output, sigmoid

__all__ = [
    "ThresholdSweep",
    "MulticlassValidation",
    "TimeLimit",
    "EpochClock",
    "read_threshold_table",
    "plot_threshold_curve",
    "plot_accuracy_per_epoch",
]

_ACC_COLUMNS = [f"acc_{t:03d}" for t in range(256)]
THRESHOLD_COLUMNS = ["epoch", "output", "best_threshold", "best_accuracy"] + _ACC_COLUMNS


def _predict_whole(model, x, batch_size):
    """Forward pass over whole slices, one dict ``name -> (N, H, W)`` float32."""
    names = list(model.output_names)
    chunks = {name: [] for name in names}
    for start in range(0, len(x), batch_size):
        pred = _run(model, x[start:start + batch_size])
        if isinstance(pred, dict):
            items = [(n, pred[n]) for n in names]
        elif isinstance(pred, (list, tuple)):
            items = list(zip(names, pred))
        else:
            items = [(names[0], pred)]
        for name, value in items:
            value = np.asarray(value, dtype=np.float32)
            chunks[name].append(value[..., 0] if value.ndim == 4 else value)
    return {name: np.concatenate(v) for name, v in chunks.items() if v}


def _check_tune(tune, shape):
    """``tune`` as two uint8 ``(M, H, W)`` stacks of the validation slices' size."""
    images, labels = (np.asarray(a) for a in tune)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != tuple(shape) \
            or labels.shape != images.shape:
        raise ValueError(
            f"ThresholdSweep's tune=(images, labels) must be uint8 (M, H, W) stacks of the "
            f"validation slices' size {tuple(shape)}. Received: images {images.dtype} "
            f"{images.shape}, labels {labels.shape}")
    return images, labels


class ThresholdSweep(keras.callbacks.Callback):
    """After each epoch: predict validation slices, sweep thresholds 0..255.

    Writes into ``logs``: ``val_best_threshold`` and ``val_best_accuracy``
    (main output, :func:`keras_unets.models.main_output_name`); for a
    deep-supervision model also ``val_{head}_best_threshold`` /
    ``val_{head}_best_accuracy`` per head and, with ``average_heads``, for
    ``mean`` (the UNet++ "accurate mode": the average of the heads).

    Args:
        images: ``uint8`` ``(N, H, W)`` validation slices; or a list of
            ``uint8`` ``(H, W)`` / ``(H, W, C)`` images of any sizes (your own
            data), each predicted whole with
            :func:`keras_unets.inference.predict_images` (overlap tiles, any
            size) and swept with the pixels of all images pooled.
        labels: ``uint8`` ``(N, H, W)`` {0, 255} labels (a list of ``(H, W)``
            with a list of images).
        csv_path: ``thresholds.csv``: one row per epoch and output with the
            Keras epoch index (0-based, as in ``history.csv``), output name,
            best threshold and accuracy, and the 256 accuracies
            ``acc_000..acc_255`` of ``pred > t``. Rewritten atomically every
            epoch; rows of epochs at or after a resumed run's first epoch are
            dropped.
        curve_path: PNG of the last epoch's accuracy vs threshold (Fig. 10).
        history_path: PNG of the best accuracy per epoch (Fig. 11).
        tile: ``None`` to predict whole slices (same-padding models), or a
            tile size for :func:`keras_unets.inference.predict_tiled` (needed
            for valid-padding models).
        batch_size: slices (or tiles) per forward pass.
        from_logits: the model outputs logits: apply a sigmoid in numpy.
        average_heads: also score the mean of deep-supervision heads.
        prefix: key prefix in ``logs`` (``"val_"``).
        tune: optional ``(images, labels)`` uint8 ``(M, H, W)`` stacks that
            tune a second threshold, blind to the validation slices: the
            main output's best threshold on them, and the validation
            accuracy at it, go into ``logs`` as ``{prefix}blind_threshold``
            and ``{prefix}blind_accuracy`` (the report's split: training
            slices 20-24 tune, 25-29 only measure).
        verbose: print one line per epoch.
    """

    def __init__(self, images, labels, *, csv_path=None, curve_path=None,
                 history_path=None, tile=None, batch_size=2, from_logits=False,
                 average_heads=True, prefix="val_", tune=None, verbose=0):
        super().__init__()
        self.image_list = None
        if isinstance(images, (list, tuple)):
            images, labels = self._pool_list(images, labels)
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                "ThresholdSweep needs uint8 (N, H, W) validation images. "
                f"Received: dtype={images.dtype}, shape={images.shape}"
            )
        if labels.shape != images.shape:
            raise ValueError(
                "Validation labels must have the images' shape. Received: "
                f"images.shape={images.shape}, labels.shape={labels.shape}"
            )
        self.images = images
        self.labels = labels
        self.csv_path = Path(csv_path) if csv_path else None
        self.curve_path = Path(curve_path) if curve_path else None
        self.history_path = Path(history_path) if history_path else None
        self.tile = tile
        self.batch_size = int(batch_size)
        self.from_logits = bool(from_logits)
        self.average_heads = bool(average_heads)
        self.prefix = prefix
        self.tune = None if tune is None else _check_tune(tune, images.shape[1:])
        self.verbose = verbose
        self.rows = []
        self.last_sweeps = {}
        self.seconds = []

    def _pool_list(self, images, labels):
        """Keep a list of images; ``(images, labels)`` stand-ins of the pooled pixels' shape."""
        images = [np.asarray(image) for image in images]
        labels = [np.asarray(label) for label in labels]
        if not images or len(images) != len(labels):
            raise ValueError("ThresholdSweep needs one label per image and at least one image. "
                             f"Received: {len(images)} images, {len(labels)} labels")
        for i, (image, label) in enumerate(zip(images, labels)):
            if image.dtype != np.uint8 or image.shape[:2] != label.shape:
                raise ValueError(
                    f"Validation image {i} must be uint8 with its label's height and width. "
                    f"Received: image dtype={image.dtype}, shape={image.shape}; label "
                    f"shape={label.shape}")
        self.image_list = images
        pooled = np.concatenate([label.ravel() for label in labels])[None, None]
        return np.zeros(pooled.shape, np.uint8), pooled

    def _predict_list(self, model, names):
        """``name -> float32 (1, 1, pixels)``: every image predicted whole, pixels pooled."""
        from keras_unets.inference.predict import predict_images

        probs = {}
        for name in names:
            flat = [p.ravel() for p in predict_images(model, self.image_list, output=name,
                                                      from_logits=False, progress=False)]
            probs[name] = np.concatenate(flat)[None, None]
        return probs

    # ------------------------------------------------------------- prediction
    def predict(self, model=None):
        """Probabilities ``name -> float32 (N, H, W)`` for every map output.

        The UNet 3+ classification-guided module's ``cls`` output (class
        scores, not a map; Huang et al. 2020, sec. 2.3) is left out: the
        segmentation heads it masks are swept.
        """
        model = model or self.model
        names = [n for n in model.output_names if n != CGM_OUTPUT]
        if self.image_list is not None:
            probs = self._predict_list(model, names)
            return {k: sigmoid(v) for k, v in probs.items()} if self.from_logits else probs
        return self._predict_stack(model, self.images, names)

    def _predict_stack(self, model, images, names):
        """``name -> float32 (N, H, W)`` probabilities of a uint8 ``(N, H, W)`` stack."""
        if self.tile is None:
            x = images[..., None].astype(np.float32) / 255.0
            probs = _predict_whole(model, x, self.batch_size)
            probs = {n: p for n, p in probs.items() if n in names}
        else:
            from keras_unets.inference.predict import predict_tiled

            # one overlap-tile pass for all heads
            probs = predict_tiled(model, images, tile=self.tile,
                                  batch_size=self.batch_size, output=names,
                                  from_logits=False, progress=False)
        if self.from_logits:
            probs = {k: sigmoid(v) for k, v in probs.items()}
        for name, p in probs.items():
            if p.shape != images.shape:
                raise ValueError(
                    f"Output {name!r} predicts {p.shape[1:]} for slices of "
                    f"{images.shape[1:]}: a valid-padding model needs "
                    "tile=<input tile> for overlap-tile prediction."
                )
        return probs

    def blind(self, main, val_curve, model=None):
        """``(threshold, accuracy)``: the threshold tuned on ``tune``, validation accuracy at it."""
        images, labels = self.tune
        prob = self._predict_stack(model or self.model, images, [main])[main]
        t = int(np.argmax(threshold_sweep(to_uint8(np.clip(prob, 0, 1)), labels)))
        return t, float(val_curve[t])

    def sweep(self, model=None):
        """``{name: (256,) accuracies}`` for every output (+ ``mean``)."""
        probs = self.predict(model)  # map outputs only (no CGM ``cls``)
        heads = list(probs)
        sweeps = {}
        for name in heads:
            sweeps[name] = threshold_sweep(to_uint8(np.clip(probs[name], 0, 1)), self.labels)
        if self.average_heads and len(heads) > 1:
            mean = np.mean([probs[n] for n in heads], axis=0)
            sweeps["mean"] = threshold_sweep(to_uint8(np.clip(mean, 0, 1)), self.labels)
        return sweeps

    # -------------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        self.rows = []
        if self.csv_path is not None and self.csv_path.exists():
            self.rows = read_threshold_table(self.csv_path)

    def set_initial_epoch(self, initial_epoch):
        """Drop rows of epochs ``>= initial_epoch`` (a resumed run redoes them)."""
        if self.csv_path is not None and self.csv_path.exists():
            rows = read_threshold_table(self.csv_path)
            keep = [r for r in rows if int(r["epoch"]) < initial_epoch]
            if len(keep) != len(rows):
                self._write_rows(keep)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        start = time.perf_counter()
        sweeps = self.sweep()
        main = main_output(self.model, list(self.model.output_names))
        several = len([n for n in sweeps if n != "mean"]) > 1
        new_rows = []
        for name, acc in sweeps.items():
            t = int(np.argmax(acc))
            best = float(acc[t])
            if name == main:
                logs[f"{self.prefix}best_threshold"] = t
                logs[f"{self.prefix}best_accuracy"] = best
            if several:
                logs[f"{self.prefix}{name}_best_threshold"] = t
                logs[f"{self.prefix}{name}_best_accuracy"] = best
            row = {"epoch": int(epoch), "output": name, "best_threshold": t,
                   "best_accuracy": best}
            row.update({c: float(a) for c, a in zip(_ACC_COLUMNS, acc)})
            new_rows.append(row)
        if self.tune is not None:
            t, acc = self.blind(main, sweeps[main])
            logs[f"{self.prefix}blind_threshold"] = t
            logs[f"{self.prefix}blind_accuracy"] = acc
        self.last_sweeps = sweeps
        self.rows = [r for r in self.rows if int(r["epoch"]) != int(epoch)] + new_rows
        if self.csv_path is not None:
            self._write_rows(self.rows)
        if self.curve_path is not None:
            plot_threshold_curve(sweeps, self.curve_path, main=main,
                                 title=f"Epoch {epoch + 1}: accuracy vs threshold")
        if self.history_path is not None:
            plot_accuracy_per_epoch(self.rows, self.history_path)
        self.seconds.append(time.perf_counter() - start)
        if self.verbose:
            print(f"\nepoch {epoch + 1}: {self.prefix}best_accuracy="
                  f"{logs[f'{self.prefix}best_accuracy']:.4f} at threshold "
                  f"{logs[f'{self.prefix}best_threshold']} ({self.seconds[-1]:.1f} s)")

    def _write_rows(self, rows):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=THRESHOLD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row[k]) for k in THRESHOLD_COLUMNS})
        atomic_write_text(self.csv_path, buf.getvalue())


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def read_threshold_table(path):
    """Rows of a ``thresholds.csv`` as dicts (numbers parsed)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out = {"epoch": int(row["epoch"]), "output": row["output"],
                   "best_threshold": int(row["best_threshold"]),
                   "best_accuracy": float(row["best_accuracy"])}
            out.update({c: float(row[c]) for c in _ACC_COLUMNS if c in row})
            rows.append(out)
    return rows


# ---------------------------------------------------------------------------
# Figures (matplotlib Agg, no pyplot state)
# ---------------------------------------------------------------------------
def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4), dpi=100)


def _save_png(fig, path):
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", bbox_inches="tight")


def plot_threshold_curve(sweeps, path, *, main=None, title=None):
    """Accuracy vs binarisation threshold 0..255 (the report's Fig. 10)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for name, acc in sweeps.items():
        acc = np.asarray(acc)
        t = int(np.argmax(acc))
        lw = 2.0 if name == main else 1.0
        ax.plot(np.arange(256), acc, lw=lw,
                label=f"{name}: best {acc[t]:.4f} at t={t}")
        ax.plot([t], [acc[t]], "o", color=ax.lines[-1].get_color())
    ax.set_xlabel("threshold t (pred > t -> cell)")
    ax.set_ylabel("pixel accuracy")
    ax.set_xlim(0, 255)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _save_png(fig, path)


def plot_accuracy_per_epoch(rows, path):
    """Best pixel accuracy per epoch for each output (the report's Fig. 11)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    outputs = []
    for r in rows:
        if r["output"] not in outputs:
            outputs.append(r["output"])
    for name in outputs:
        pts = sorted((int(r["epoch"]) + 1, float(r["best_accuracy"]))
                     for r in rows if r["output"] == name)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("best pixel accuracy (validation)")
    ax.grid(alpha=0.3)
    if outputs:
        ax.legend(fontsize=8)
    _save_png(fig, path)


class TimeLimit(keras.callbacks.Callback):
    """Stop training cleanly before ``minutes`` have passed.

    Checks after every batch; stops when the elapsed time plus the time the
    epoch-end work (validation sweep, checkpoints) took last time would pass
    the limit. Keras then ends the epoch early and still calls every
    ``on_epoch_end`` (sweep, checkpoints, CSV), so nothing is lost.
    ``stopped_epoch`` is the 0-based epoch it stopped in, else ``None``.
    """

    def __init__(self, minutes, *, reserve_seconds=20.0):
        super().__init__()
        self.seconds = float(minutes) * 60.0
        self.reserve = float(reserve_seconds)
        self.start = None
        self.stopped_epoch = None
        self._epoch = 0
        self._last_batch_end = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        now = time.monotonic()
        if self._last_batch_end is not None:
            # time spent at the end of the previous epoch (sweep, saving)
            self.reserve = max(self.reserve, 1.5 * (now - self._last_batch_end))
        self._epoch = epoch
        if now - self.start + self.reserve > self.seconds:
            self._stop()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        self._last_batch_end = now
        if now - self.start + self.reserve > self.seconds:
            self._stop()

    def _stop(self):
        if self.stopped_epoch is None:
            self.stopped_epoch = self._epoch
        self.model.stop_training = True


class EpochClock(keras.callbacks.Callback):
    """Log ``elapsed_seconds``: the run's wall-clock seconds at each epoch's end.

    Counted from the start of training, validation included (put it after
    the validation callback), plus ``offset_seconds``: the time a resumed
    run had already spent. ``history.csv`` keeps it, so that accuracy can
    be read against minutes of training (``bench/bench_time_to_accuracy.py``).
    """

    def __init__(self, offset_seconds=0.0):
        super().__init__()
        self.offset = float(offset_seconds)
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["elapsed_seconds"] = self.offset + time.monotonic() - self.start


class MulticlassValidation(keras.callbacks.Callback):
    """After each epoch: predict the validation images, score K-class segmentation.

    Each image is predicted at its own size, whatever it is, with
    :func:`keras_unets.inference.predict_images` (overlap-tile; any input
    channels), the class map is the argmax over the K softmax
    channels, and :func:`keras_unets.metrics.evaluate_multiclass` pools the
    pixels of all images. Writes into ``logs`` (before any callback that
    reads them, as for :class:`ThresholdSweep`): ``val_mean_dice`` (mean
    over the foreground classes present, nnU-Net's rule; NaN if none is),
    ``val_mean_iou``, ``val_pixel_accuracy`` and ``val_dice_<k>`` for every
    class k (NaN where class k is in neither prediction nor label).

    Args:
        images: list of ``uint8`` ``(H, W)`` or ``(H, W, C)`` images (sizes may differ).
        masks: list of ``uint8`` ``(H, W)`` class indices ``0..K-1``.
        classes: K >= 2 (the model's output channels).
        csv_path: ``multiclass.csv``: one row per epoch (Keras' 0-based epoch,
            ``pixel_accuracy``, ``mean_dice``, ``mean_iou``, ``dice_<k>``,
            ``iou_<k>``), rewritten atomically each epoch; rows of epochs at
            or after a resumed run's first epoch are dropped
            (:meth:`set_initial_epoch`).
        output: output name or index (default the main output).
        from_logits: the model outputs logits.
        include_background: average over all classes, not only ``1..K-1``.
        prefix: key prefix in ``logs``.
        verbose: print one line per epoch.
    """

    def __init__(self, images, masks, classes, *, csv_path=None, output=None, from_logits=False,
                 include_background=False, prefix="val_", verbose=0):
        super().__init__()
        images, masks = list(images), [np.asarray(m) for m in masks]
        if not images or len(images) != len(masks):
            raise ValueError(
                "MulticlassValidation needs one mask per image and at least one image. "
                f"Received: {len(images)} images, {len(masks)} masks"
            )
        for i, (image, mask) in enumerate(zip(images, masks)):
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.shape[:2] != mask.shape:
                raise ValueError(
                    f"Validation image {i} must be uint8 with its mask's height and width. Received: "
                    f"image dtype={image.dtype}, shape={image.shape}; mask shape={mask.shape}"
                )
        if int(classes) < 2:
            raise ValueError(f"`classes` must be >= 2. Received: classes={classes!r}")
        self.images = [np.asarray(image) for image in images]
        self.masks = masks
        self.classes = int(classes)
        self.columns = (["epoch", "pixel_accuracy", "mean_dice", "mean_iou"]
                        + [f"dice_{k}" for k in range(self.classes)]
                        + [f"iou_{k}" for k in range(self.classes)])
        self.csv_path = Path(csv_path) if csv_path else None
        self.output = output
        self.from_logits = bool(from_logits)
        self.include_background = bool(include_background)
        self.prefix = prefix
        self.verbose = verbose
        self.rows = []
        self.last = None

    def predict(self, model=None):
        """Class maps ``uint8 (H, W)`` of the validation images."""
        from keras_unets.inference.predict import predict_images

        model = model or self.model
        maps = []
        for probs in predict_images(model, self.images, output=self.output,
                                    from_logits=self.from_logits, progress=False):
            channels = probs.shape[-1] if probs.ndim == 3 else 1
            if channels != self.classes:
                raise ValueError(
                    f"The model predicts {channels} channels for classes={self.classes}; "
                    "build it with num_classes=K (a K-channel softmax)."
                )
            maps.append(np.argmax(probs, axis=-1).astype(np.uint8))
        return maps

    def evaluate(self, model=None):
        """:func:`keras_unets.metrics.evaluate_multiclass` of the current model."""
        from keras_unets.metrics import evaluate_multiclass

        return evaluate_multiclass(self.predict(model), self.masks, self.classes,
                                   include_background=self.include_background)

    def _read_rows(self):
        with open(self.csv_path, newline="", encoding="utf-8") as fh:
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                    for row in csv.DictReader(fh)]

    def on_train_begin(self, logs=None):
        self.rows = self._read_rows() if self.csv_path is not None and self.csv_path.exists() else []

    def set_initial_epoch(self, initial_epoch):
        """Drop rows of epochs ``>= initial_epoch`` (a resumed run redoes them)."""
        if self.csv_path is not None and self.csv_path.exists():
            self.rows = [r for r in self._read_rows() if r["epoch"] < initial_epoch]
            self._write_rows()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        result = self.evaluate()
        nan = float("nan")

        def number(value):
            return nan if value is None else float(value)

        row = {"epoch": int(epoch), "pixel_accuracy": result["pixel_accuracy"],
               "mean_dice": number(result["mean_dice"]), "mean_iou": number(result["iou"])}
        for item in result["per_class"]:
            row[f"dice_{item['class']}"] = number(item["dice"])
            row[f"iou_{item['class']}"] = number(item["iou"])
        logs[f"{self.prefix}mean_dice"] = row["mean_dice"]
        logs[f"{self.prefix}mean_iou"] = row["mean_iou"]
        logs[f"{self.prefix}pixel_accuracy"] = row["pixel_accuracy"]
        for k in range(self.classes):
            logs[f"{self.prefix}dice_{k}"] = row[f"dice_{k}"]
        self.last = result
        self.rows = [r for r in self.rows if r["epoch"] != int(epoch)] + [row]
        if self.csv_path is not None:
            self._write_rows()
        if self.verbose:
            print(f"\nepoch {epoch + 1}: {self.prefix}mean_dice={row['mean_dice']:.4f} "
                  f"{self.prefix}pixel_accuracy={row['pixel_accuracy']:.4f}")

    def _write_rows(self):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(row[k]) for k in self.columns})
        atomic_write_text(self.csv_path, buf.getvalue())
