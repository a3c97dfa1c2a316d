"""``keras-unets evaluate``: score predictions against labels.

A thin layer over :func:`keras_unets.metrics.evaluate` (the report's pixel
accuracy and its threshold sweep, Dice, IoU) and :mod:`keras_unets.metrics.isbi`
(V_rand, V_info, Rand error, pixel error of the ISBI 2012 challenge) for
stacks, and over :func:`keras_unets.evaluation.evaluate_folders` for two
folders of masks paired by file name (any sizes, binary or K classes).
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

    With the keys of :func:`keras_unets.metrics.isbi.fine_scores` in ``result``
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


def format_folder_table(result, *, stems, given_threshold, sweep=None):
    """Markdown table of an :func:`~keras_unets.evaluation.evaluate_folders` result."""

    def num(value):
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"

    out = [f"Images: {len(stems)} ({', '.join(stems[:5])}{', ...' if len(stems) > 5 else ''})", ""]
    if result["classes"] == 2:
        t = result["threshold"]
        how = "given" if given_threshold else "best"
        rows = [
            ("pixel accuracy (all pixels)", num(result["pixel_accuracy"]), f"pred > {t} ({how})"),
            ("best threshold (0-255)", str(result["best_threshold"]),
             f"accuracy {num(result['best_accuracy'])}"),
            ("Dice (foreground, all pixels)", num(result["dice"]), f"pred > {t}"),
            ("IoU (foreground, all pixels)", num(result["iou"]), f"pred > {t}"),
        ]
        rows += [(name, num(result[key]), f"prob > {result[key + '_threshold']:.1f}")
                 for name, key in (("V_rand (thinned, ISBI 2013)", "v_rand"),
                                   ("V_info (thinned, ISBI 2013)", "v_info"),
                                   ("Rand error (ISBI 2012)", "rand_error"),
                                   ("pixel error (ISBI 2012)", "pixel_error"))
                 if key in result and result[key + "_threshold"] is not None
                 and not math.isnan(result[key + "_threshold"])]
        rows += [(f"{name} (0.01 grid)", num(result[f"{key}_fine"]),
                  f"prob > {result[f'{key}_fine_threshold']:.2f}")
                 for name, key in (("V_rand", "v_rand"), ("V_info", "v_info"))
                 if f"{key}_fine" in result and not math.isnan(result[f"{key}_fine_threshold"])]
        out += ["| metric | value | at |", "|---|---|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        if sweep is not None:
            out += ["", "Threshold sweep (pred > t, all pixels), every 16th t and the best:", "",
                    "| t | accuracy |", "|---|---|"]
            shown = sorted(set(range(0, 256, 16)) | {255, result["best_threshold"]})
            out += [f"| {k}{' (best)' if k == result['best_threshold'] else ''} | {sweep[k]:.4f} |"
                    for k in shown]
        return "\n".join(out)
    out += ["| class | Dice | IoU |", "|---|---|---|"]
    out += [f"| {c['class']} | {num(c['dice'])} | {num(c['iou'])} |" for c in result["per_class"]]
    out += [f"| mean (classes 1..{result['classes'] - 1}) | {num(result['mean_dice'])} | "
            f"{num(result['iou'])} |", "",
            f"Pixel accuracy: {num(result['pixel_accuracy'])}", "",
            "Confusion matrix (rows: label class, columns: predicted class; pixels):", "",
            "| label \\ pred | " + " | ".join(str(k) for k in range(result["classes"])) + " |",
            "|---" * (result["classes"] + 1) + "|"]
    out += [f"| {k} | " + " | ".join(str(v) for v in row) + " |"
            for k, row in enumerate(result["confusion_matrix"])]
    return "\n".join(out)


def _folder_mode(pred, labels_path, slices, mask_suffix, classes):
    """True when PRED and LABELS are two folders to pair by name (not ISBI slice folders)."""
    from pathlib import Path

    from keras_unets.data import DataFormatError
    from keras_unets.evaluation import is_slice_folder

    if not (Path(pred).is_dir() and Path(labels_path).is_dir()):
        return False
    if slices is not None:
        return False
    if mask_suffix or classes is not None:
        return True
    try:
        return not (is_slice_folder(pred) and is_slice_folder(labels_path))
    except DataFormatError as exc:
        raise click.ClickException(str(exc)) from exc


def _evaluate_folders(pred, labels_path, *, mask_suffix, classes, threshold, sweep, fine_grid,
                      as_json):
    from keras_unets.data import DataFormatError, DataNotFoundError
    from keras_unets.evaluation import evaluate_folders, read_label_pairs

    try:
        pairs = read_label_pairs(pred, labels_path, mask_suffix=mask_suffix or "")
        result, curve = evaluate_folders(pred, labels_path, classes=classes, threshold=threshold,
                                         fine_grid=fine_grid, pairs=pairs)
    except (DataNotFoundError, DataFormatError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if result["classes"] > 2 and sweep:
        raise click.UsageError(
            f"--sweep applies to binary labels; LABELS {labels_path} has {result['classes']} classes.")
    if not sweep:
        curve = None
    if as_json:
        payload = {
            "pred": str(pred),
            "labels": str(labels_path),
            "stems": list(pairs.stems),
            **({"threshold_source": "given" if threshold is not None else (
                "best" if result["threshold"] == result["best_threshold"] else "masks")}
               if result["classes"] == 2 else {}),
            **{k: _json_safe(v) for k, v in result.items()},
        }
        if curve is not None:
            payload["sweep"] = [float(v) for v in curve]
        click.echo(json.dumps(payload, indent=2, allow_nan=False))
    else:
        click.echo(format_folder_table(result, stems=list(pairs.stems),
                                       given_threshold=threshold is not None, sweep=curve))


def _evaluate_multiclass_stacks(pred, labels_path, slices, classes, as_json):
    from keras_unets.metrics import evaluate_multiclass

    pred_arr, labels_arr, ids = load_pair(pred, labels_path, slices)
    try:
        result = evaluate_multiclass(pred_arr, labels_arr, classes)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (PRED {pred}, LABELS {labels_path})") from exc
    result = {"classes": classes, "images": len(ids), **result}
    if as_json:
        click.echo(json.dumps({"pred": str(pred), "labels": str(labels_path), "slices": list(ids),
                               **result}, indent=2, allow_nan=False))
    else:
        click.echo(format_folder_table(result, stems=[str(i) for i in ids], given_threshold=False))


@click.command("evaluate")
@click.argument("pred", type=click.Path(path_type=str))
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(path_type=str),
    help="Label stack (TIFF volume or folder of {i}.png), 255 = cell, 0 = membrane; or a "
    "folder of masks of any names (binary or class indices), paired with PRED's files by name.",
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
@click.option(
    "--mask-suffix",
    default=None,
    metavar="S",
    help="Folders: the label of PRED's <stem>.png is LABELS' <stem>S.png (e.g. _mask).",
)
@click.option(
    "--classes",
    type=click.IntRange(1, 256),
    default=None,
    metavar="K",
    help="Labels are class indices 0..K-1 (K >= 3), or binary (1 or 2). Default: "
    "inferred from the labels (folders); binary (stacks).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
def evaluate_command(pred, labels_path, slices, threshold, sweep, fine_grid, mask_suffix, classes,
                     as_json):
    """Score predictions PRED against --labels: two stacks, or two folders paired by name.

    Reports the pixel accuracy of the "U-Net School" report (pred > t -> 255
    compared with the labels, pooled over slices) at --threshold or at the
    best of all 256 thresholds, plus the ISBI 2012 challenge scores (V_rand,
    V_info after thinning; Rand and pixel error; each maximised over
    probability thresholds 0.0, 0.1, ..., 1.0; with --fine-grid V_rand and
    V_info also over 0.00, 0.01, ..., 1.00) and per-slice Dice and IoU of
    the cell class (slices where both masks are empty are skipped).

    Stacks (TIFF volumes or folders of {i}.png slices; PRED a probability
    volume, uint8 0-255): as above. With --classes K >= 3, PRED holds class
    indices and the K-class scores below are reported instead.

    Folders of any file names (PRED = `keras-unets predict`'s OUT/masks,
    LABELS = the mask folder; files paired by stem, --mask-suffix as for
    training): images of any sizes. Binary labels (0 and one foreground
    value; PRED masks 0/255 or probabilities 0-255): pixel accuracy, Dice
    and IoU pooled over all pixels, plus the ISBI scores when all images
    have one size. Labels with classes 0..K-1 (--classes K or inferred):
    per-class Dice and IoU, their mean over classes 1..K-1, pixel accuracy
    and the confusion matrix.

    Example: keras-unets evaluate pred.tif --labels train-labels.tif --slices 25-29

    Example: keras-unets evaluate out/masks --labels my_data/masks --json
    """
    from keras_unets.metrics.isbi import fine_scores
    from keras_unets.metrics import evaluate, threshold_sweep

    if sweep and threshold is not None:
        raise click.UsageError("Give either --threshold T or --sweep, not both.")
    if _folder_mode(pred, labels_path, slices, mask_suffix, classes):
        _evaluate_folders(pred, labels_path, mask_suffix=mask_suffix, classes=classes,
                          threshold=threshold, sweep=sweep, fine_grid=fine_grid, as_json=as_json)
        return
    if mask_suffix:
        raise click.UsageError(
            "--mask-suffix pairs two folders by file name; PRED and LABELS here are stacks "
            f"(PRED {pred}, LABELS {labels_path}) or --slices was given.")
    if classes is not None and classes >= 3:
        if threshold is not None or sweep or fine_grid:
            raise click.UsageError(
                "--threshold, --sweep and --fine-grid apply to binary labels, not --classes "
                f"{classes}.")
        _evaluate_multiclass_stacks(pred, labels_path, slices, classes, as_json)
        return
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
