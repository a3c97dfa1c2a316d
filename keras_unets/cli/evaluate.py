"""``keras-unets evaluate``: score a probability volume against labels.

A thin layer over :func:`keras_unets.metrics.evaluate` (the report's pixel
accuracy and its threshold sweep, Dice, IoU) and :mod:`keras_unets.isbi`
(V_rand, V_info, Rand error, pixel error of the ISBI 2012 challenge).
"""
import json
import math

import click


def _select_slices(stack, indices, path, what):
    """Rows of ``stack`` for slice ``indices`` (folder: by file name; file: by position)."""
    from pathlib import Path

    from keras_unets.data import stack_indices

    if Path(path).is_dir():
        names = stack_indices(path)
        missing = [i for i in indices if i not in names]
        if missing:
            raise click.ClickException(
                f"{what} {path}: no slice file for slices {missing}; the folder "
                f"has slices {_fmt(names)}."
            )
        position = {name: k for k, name in enumerate(names)}
        return stack[[position[i] for i in indices]]
    bad = [i for i in indices if i >= stack.shape[0]]
    if bad:
        raise click.ClickException(
            f"{what} {path} has {stack.shape[0]} slices (0-{stack.shape[0] - 1}); "
            f"--slices asks for {bad}."
        )
    return stack[list(indices)]


def _fmt(indices):
    from keras_unets.data import format_slices

    return format_slices(indices) if len(indices) else "none"


def load_pair(pred_path, labels_path, slices=None):
    """Read PRED and LABELS (TIFF or PNG folder) and line their slices up.

    ``slices`` (e.g. ``"25-29"``) selects slices of LABELS. PRED is taken
    as is when it has exactly as many slices as were selected, and is
    sliced the same way when it has as many slices as LABELS; otherwise the
    pairing is ambiguous and a :class:`click.ClickException` says so.

    Returns:
        ``(pred, labels, slice_ids)``.
    """
    from keras_unets.data import DataFormatError, DataNotFoundError, parse_slices, read_stack

    try:
        labels = read_stack(labels_path)
        pred = read_stack(pred_path)
    except (DataNotFoundError, DataFormatError) as exc:
        raise click.ClickException(str(exc)) from exc

    if slices is None:
        ids = tuple(range(labels.shape[0]))
        selected = labels
    else:
        try:
            ids = parse_slices(slices)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--slices") from exc
        selected = _select_slices(labels, ids, labels_path, "LABELS")

    if pred.shape[0] == selected.shape[0]:
        chosen = pred
    elif slices is not None and pred.shape[0] == labels.shape[0]:
        chosen = _select_slices(pred, ids, pred_path, "PRED")
    else:
        hint = (
            f"--slices {slices} selects {selected.shape[0]} of the {labels.shape[0]} "
            f"LABELS slices; PRED must have {selected.shape[0]} slices (used as is) "
            f"or {labels.shape[0]} (selected the same way)"
            if slices is not None
            else "give --slices (e.g. --slices 25-29) to pick the LABELS slices "
            "that PRED predicts, or pass a LABELS stack with as many slices"
        )
        raise click.ClickException(
            f"PRED {pred_path} has {pred.shape[0]} slices but LABELS {labels_path} "
            f"has {labels.shape[0]}: {hint}."
        )
    if chosen.shape[1:] != selected.shape[1:]:
        raise click.ClickException(
            f"PRED {pred_path} slices are {chosen.shape[1]}x{chosen.shape[2]} but "
            f"LABELS {labels_path} slices are {selected.shape[1]}x{selected.shape[2]}; "
            "they must be the same size (predict on the full slices)."
        )
    return chosen, selected, ids


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def format_table(result, *, slice_ids, given_threshold, sweep=None):
    """Markdown table of an :func:`~keras_unets.metrics.evaluate` result.

    With the keys of :func:`keras_unets.isbi.fine_scores` in ``result``
    (``--fine-grid``), V_rand and V_info on the 0.01 grid get rows too.
    """
    t = result["threshold"]
    how = "given" if given_threshold else "best"

    def num(value):
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"

    def th(value, digits=1):
        return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    rows = [
        ("pixel accuracy (report)", num(result["pixel_accuracy"]), f"pred > {t} ({how})"),
        ("best threshold (0-255)", str(result["best_threshold"]), f"accuracy {num(result['best_accuracy'])}"),
        ("V_rand (thinned, ISBI 2013)", num(result["v_rand"]), f"prob > {th(result['v_rand_threshold'])}"),
        ("V_info (thinned, ISBI 2013)", num(result["v_info"]), f"prob > {th(result['v_info_threshold'])}"),
        *[(f"{name} (0.01 grid)", num(result[f"{key}_fine"]),
           f"prob > {th(result[f'{key}_fine_threshold'], 2)}")
          for name, key in (("V_rand", "v_rand"), ("V_info", "v_info"))
          if f"{key}_fine" in result],
        ("Rand error (ISBI 2012)", num(result["rand_error"]), f"prob > {th(result['rand_error_threshold'])}"),
        ("pixel error (ISBI 2012)", num(result["pixel_error"]), f"prob > {th(result['pixel_error_threshold'])}"),
        ("Dice (cell, mean of slices)", num(result["dice"]), f"pred > {t}"),
        ("IoU (cell, mean of slices)", num(result["iou"]), f"pred > {t}"),
    ]
    width = [max(len(r[i]) for r in rows + [("metric", "value", "at")]) for i in range(3)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, width)) + " |"

    out = [
        f"Slices: {_fmt(slice_ids)} ({len(slice_ids)})",
        "",
        line(("metric", "value", "at")),
        "|" + "|".join("-" * (w + 2) for w in width) + "|",
    ]
    out += [line(r) for r in rows]
    if sweep is not None:
        shown = sorted(set(range(0, 256, 16)) | {255, result["best_threshold"]})
        out += ["", "Threshold sweep (pred > t), every 16th t and the best:", ""]
        out += ["| t | accuracy |", "|---|---|"]
        out += [
            f"| {k}{' (best)' if k == result['best_threshold'] else ''} | {sweep[k]:.4f} |"
            for k in shown
        ]
    return "\n".join(out)


@click.command("evaluate")
@click.argument("pred", type=click.Path(path_type=str))
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(path_type=str),
    help="Label stack (TIFF volume or folder of {i}.png), 255 = cell, 0 = membrane.",
)
@click.option(
    "--slices",
    default=None,
    help="Slices of LABELS to score, e.g. 25-29 (the report's test slices) or 0-24,27.",
)
@click.option(
    "--threshold",
    type=click.IntRange(0, 255),
    default=None,
    help="Binarise pred > T (0-255) for pixel accuracy, Dice and IoU.",
)
@click.option(
    "--sweep",
    is_flag=True,
    help="Use the best threshold of the 0..255 sweep (the default) and show the sweep.",
)
@click.option(
    "--fine-grid",
    is_flag=True,
    help="Also maximise V_rand and V_info over thresholds 0.00, 0.01, ..., 1.00 "
    "(the challenge uses 0.0, 0.1, ..., 1.0; about 2 s per 512x512 slice).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
def evaluate_command(pred, labels_path, slices, threshold, sweep, fine_grid, as_json):
    """Score a probability volume PRED (uint8 0-255, TIFF or PNG folder) against --labels.

    Reports the pixel accuracy of the "U-Net School" report (pred > t -> 255
    compared with the labels, pooled over slices) at --threshold or at the
    best of all 256 thresholds, plus the ISBI 2012 challenge scores (V_rand,
    V_info after thinning; Rand and pixel error; each maximised over
    probability thresholds 0.0, 0.1, ..., 1.0; with --fine-grid V_rand and
    V_info also over 0.00, 0.01, ..., 1.00) and per-slice Dice and IoU of
    the cell class (slices where both masks are empty are skipped).

    Example: keras-unets evaluate pred.tif --labels train-labels.tif --slices 25-29
    """
    from keras_unets.isbi import fine_scores
    from keras_unets.metrics import evaluate, threshold_sweep

    if sweep and threshold is not None:
        raise click.UsageError("Give either --threshold T or --sweep, not both.")
    pred_arr, labels_arr, ids = load_pair(pred, labels_path, slices)
    try:
        result = evaluate(pred_arr, labels_arr, threshold=threshold)
        if fine_grid:
            result.update(fine_scores(pred_arr, labels_arr))
        curve = threshold_sweep(pred_arr, labels_arr) if sweep else None
    except ValueError as exc:
        raise click.ClickException(f"{exc} (PRED {pred}, LABELS {labels_path})") from exc

    if as_json:
        payload = {
            "pred": str(pred),
            "labels": str(labels_path),
            "slices": list(ids),
            "threshold_source": "given" if threshold is not None else "best",
            **{k: _json_safe(v) for k, v in result.items()},
        }
        if curve is not None:
            payload["sweep"] = [float(v) for v in curve]
        click.echo(json.dumps(payload, indent=2, allow_nan=False))
    else:
        click.echo(
            format_table(result, slice_ids=ids, given_threshold=threshold is not None, sweep=curve)
        )


def register(group):
    """Add ``evaluate`` to the ``keras-unets`` group."""
    group.add_command(evaluate_command)
