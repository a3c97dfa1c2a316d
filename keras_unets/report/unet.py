"""U-Net: Table I (a network at half resolution on full-resolution data), Fig. 10, Fig. 11.

Table I's "retrain at 512" is the experiment's main run itself (the
profile's U-Net recipe at full resolution); the half-resolution arm trains
the same recipe on slices resized to H/2 x W/2 (images INTER_AREA, labels
INTER_AREA then ``> 127``), for a third of the main run's epochs (and time
limit), so ``make reproduce-unet`` stays within ~1.35x one training.
"""
import time
from pathlib import Path

import numpy as np

from keras_unets.io import atomic_write_text
from keras_unets.report.figures import draw_fig10, draw_fig11
from keras_unets.report.markdown import markdown_table
from keras_unets.report.paper import REPORT
from keras_unets.report.provenance import check_profile, provenance, write_experiment
from keras_unets.report.runs import (experiment_dir, limit_kwargs, profile_settings,
                                     read_history, train_arm)
from keras_unets.report.scoring import (evaluation, load_model, network_summary, predict_uint8,
                                        summary_record, sweep)


def half_resolution(stack, *, label=False):
    """Resize an (N, H, W) uint8 stack to (N, H // 2, W // 2).

    Images use ``cv2.INTER_AREA``; labels too, then ``> 127 -> 255`` so they
    stay in {0, 255} (the report's Table I resized its 512 labels to 256).
    """
    import cv2

    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.dtype != np.uint8:
        raise ValueError(
            f"half_resolution needs an (N, H, W) uint8 stack. "
            f"Received: shape={stack.shape}, dtype={stack.dtype}"
        )
    n, h, w = stack.shape
    out = np.stack([cv2.resize(s, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for s in stack])
    if label:
        out = np.where(out > 127, 255, 0).astype(np.uint8)
    return out


def upsample(stack, shape):
    """Resize an (N, h, w) uint8 stack up to (N, H, W) = (N, *shape), bilinear."""
    import cv2

    h, w = shape
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in stack])


def half_arm_kwargs(settings, shape):
    """``train()`` overrides of Table I's half-resolution arm.

    A third of the profile's epochs (rounded up) and of its time limit, so the
    arm costs about a third of the main run; a random crop larger than the
    half-size slices shrinks to them. ``settings``: the resolved profile
    (:func:`profile_settings`); ``shape``: the full-resolution ``(H, W)``.
    """
    h, w = shape
    kwargs = {}
    if settings.get("epochs"):
        kwargs["epochs"] = max(1, -(-int(settings["epochs"]) // 3))
    if settings.get("time_limit_minutes"):
        kwargs["time_limit_minutes"] = float(settings["time_limit_minutes"]) / 3.0
    crop = settings.get("crop")
    if crop:
        ch, cw = (crop, crop) if np.isscalar(crop) else crop
        if ch > h // 2 or cw > w // 2:
            kwargs["crop"] = int(min(ch, cw, h // 2, w // 2))
    return kwargs


def write_half_resolution_data(data_dir, dest):
    """Write the ISBI 2012 files at half resolution into ``dest`` (a data folder).

    Reused if ``dest/.complete`` exists. Returns ``dest``.
    """
    from keras_unets.data import load_isbi2012, write_stack

    dest = Path(dest)
    if (dest / ".complete").exists():
        return dest
    data = load_isbi2012(data_dir)
    write_stack(dest / "train-volume.tif", half_resolution(data.train_images))
    write_stack(dest / "train-labels.tif", half_resolution(data.train_labels, label=True))
    write_stack(dest / "test-volume.tif", half_resolution(data.test_images))
    atomic_write_text(dest / ".complete", f"half resolution of {data.source}\n")
    return dest


def _train_arms(exp_dir, profile, data_dir, shape, *, log, seed, time_limit_minutes):
    """Train (or reuse) the full-resolution arm and Table I's half-resolution arm."""
    full = train_arm(exp_dir, "full", "unet", profile=profile, data_dir=data_dir, log=log,
                     seed=seed, **limit_kwargs(time_limit_minutes))
    settings = profile_settings(profile, "unet")
    if time_limit_minutes:
        settings["time_limit_minutes"] = time_limit_minutes
    half_kwargs = half_arm_kwargs(settings, shape)
    half_dir = write_half_resolution_data(data_dir, exp_dir / "runs" / "data-half")
    half = train_arm(exp_dir, "half", "unet", profile=profile, data_dir=half_dir, log=log,
                     seed=seed, **half_kwargs)
    return full, half


def _table1_arms(half, summary, data):
    """Table I: the half-resolution network three ways, each raw and binarised."""
    h, w = data.x_test.shape[1:]
    half_model = load_model(half["run_dir"], "best")
    pred_half, _ = predict_uint8(half_model, half_resolution(data.x_test))
    return {
        "resize_prediction": sweep(upsample(pred_half, (h, w)), data.y_test),
        "resize_label": sweep(pred_half, half_resolution(data.y_test, label=True)),
        "retrain_full": {
            "raw_accuracy": summary["accuracy_unbinarised"],
            "best_threshold": summary["threshold_as_report"],
            "best_accuracy": summary["accuracy_as_report"],
        },
    }


def _table_md(profile, arms, summary, h, with_fig11):
    """table.md: Table I and Fig. 10 beside the report's numbers, and the figures."""
    names = {
        "resize_prediction": f"network at {h // 2}, prediction resized to {h}",
        "resize_label": f"network at {h // 2}, label resized to {h // 2}",
        "retrain_full": f"network retrained at {h}",
    }
    rep = REPORT["unet"]
    table1 = [[names[k], str(rep["table1"][k]), v["raw_accuracy"], v["best_accuracy"],
               str(v["best_threshold"])] for k, v in arms.items()]
    return (
        f"# U-Net ({profile} profile)\n\n"
        "## Table I: a network at half resolution on full-resolution data\n\n"
        "Pixel accuracy on slices 25-29. The report's numbers are before it fixed "
        "binarisation (raw equality of uint8 maps with the 0/255 labels); ours are "
        "given both raw and binarised at the threshold tuned on slices 25-29.\n\n"
        + markdown_table(["method", "report (raw)", "ours, raw", "ours, binarised", "threshold"],
                         table1)
        + "\n## Fig. 10: best binarisation threshold\n\n"
        + markdown_table(
            ["", "report", "ours (slices 25-29)", "ours (training slices 20-24, last epoch)"],
            [["best threshold", str(rep["best_threshold"]), str(summary["threshold_as_report"]),
              str(summary["threshold_blind"])],
             ["accuracy on 25-29", str(rep["accuracy"]), summary["accuracy_as_report"],
              summary["accuracy_blind"]]])
        + "\n![Fig. 10](figures/fig10_threshold.png)\n"
        + ("\n![Fig. 11](figures/fig11_accuracy_per_epoch.png)\n" if with_fig11 else "")
    )


def run_unet(profile, *, results="results", data_dir=None, command=None, log=print,
             seed=None, time_limit_minutes=None):
    """U-Net: Table I, Fig. 10, Fig. 11 and the SUMMARY row.

    Trains the profile's U-Net at full resolution (arm ``full``: Table I's
    "retrain at 512", and the network of Fig. 10/11) and at half resolution
    on resized slices (arm ``half``: a third of the epochs and time limit),
    then evaluates the three ways of Table I with and without binarisation.
    """
    from keras_unets.data import load_split

    check_profile(profile)
    exp_dir = experiment_dir(results, profile, "unet")
    data = load_split(data_dir)
    h, w = data.x_test.shape[1:]
    full, half = _train_arms(exp_dir, profile, data_dir, (h, w), log=log, seed=seed,
                             time_limit_minutes=time_limit_minutes)
    started = time.perf_counter()  # evaluation: everything after training
    summary = network_summary("U-Net", full, data, log=log, **evaluation(profile))
    arms = _table1_arms(half, summary, data)

    figures = exp_dir / "figures"
    draw_fig10(summary["curve_test"], summary["curve_blind"], figures)
    hist = read_history(full["run_dir"])
    curves = draw_fig11(hist, figures)
    metrics = {
        "experiment": "unet",
        "profile": profile,
        "report": REPORT["unet"],
        "table1": {k: {kk: vv for kk, vv in v.items() if kk != "curve"} for k, v in arms.items()},
        "threshold_curve_25_29": summary["curve_test"],
        "threshold_curve_20_24": summary["curve_blind"],
        "history": hist,
        "arms": {"full": full, "half": half},
        "summary": [summary_record(summary)],
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
        "evaluation_seconds": time.perf_counter() - started,
    }
    table_md = _table_md(profile, arms, summary, h, curves)
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[unet] wrote {exp_dir}")
    return metrics
