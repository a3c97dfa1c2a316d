"""Scoring a trained arm: as the report, blind, with TTA, pruned, and V_rand / V_info.

- as the report: the best checkpoint (selected on slices 25-29) with the
  binarisation threshold tuned on 25-29, as the report chose both;
- blind: the last checkpoint with the threshold tuned on training slices
  20-24 (:data:`BLIND_SLICES`), 25-29 used only to measure;
- hold-out: a run trained without 20-24, checkpoint and threshold chosen
  on them (:func:`holdout_summary`);
- TTA: each of the above with every slice predicted as the mean over its 8
  flips and right-angle rotations;
- pruning: the deep-supervision UNet++ cut at each head (Zhou et al. 2018).
"""
import time
from pathlib import Path

import numpy as np

from keras_unets.data.splits import BLIND_SLICES
from keras_unets.report.markdown import fine_cell, fmt


def load_model(run_dir, checkpoint="best"):
    """The ``best`` or ``last`` checkpoint of a run directory."""
    from keras_unets.training import load_run_model

    return load_run_model(run_dir, checkpoint=checkpoint)


#: How each profile scores its networks. ``repeats``: inference is timed as
#: the best of that many calls after an untimed warm-up (0: the single call
#: made, no warm-up); ``tta``: the SUMMARY's test-time augmentation table
#: (not the report's; 8 predictions per slice, so the quick profile leaves it
#: out to stay within its 30 minutes).
EVALUATION = {
    "paper": {"repeats": 3, "tta": True},
    "quick": {"repeats": 1, "tta": False},
    "smoke": {"repeats": 0, "tta": True},
}


def evaluation(profile):
    """``{"repeats": int, "tta": bool}``: how ``profile``'s networks are scored (:data:`EVALUATION`)."""
    return dict(EVALUATION.get(profile, EVALUATION["paper"]))


def timing_note(profile):
    """How ``profile`` times inference, in words (for the tables)."""
    repeats = evaluation(profile)["repeats"]
    if not repeats:
        return "the time of a single call (no warm-up)"
    return ("one timed call" if repeats == 1 else f"best of {repeats} timed calls") + \
        " after a warm-up"


def predict_uint8(model, images, *, timed=False, repeats=3, **kwargs):
    """Predict (N, H, W) uint8 slices -> ``(uint8 P(cell) maps, seconds per slice)``.

    Overlap-tile prediction with :func:`keras_unets.inference.predict_tiled`
    (its defaults: tile near 256, batch 4, mirror extrapolation, a sigmoid for
    logits models); ``kwargs`` go to it. ``timed=True``: the time is the best
    of ``repeats`` calls after an untimed warm-up call on the first slice
    (graph tracing); otherwise it is the time of the single call made.
    """
    from keras_unets.metrics import to_uint8
    from keras_unets.inference.predict import predict_tiled

    images = np.asarray(images)
    if timed:
        predict_tiled(model, images[:1], progress=False, **kwargs)
    best = float("inf")
    for _ in range(max(1, int(repeats)) if timed else 1):
        start = time.perf_counter()
        prob = predict_tiled(model, images, progress=False, **kwargs)
        best = min(best, time.perf_counter() - start)
    return to_uint8(np.asarray(prob, dtype=np.float32)), best / len(images)


def sweep(pred, labels):
    """Raw (unbinarised) accuracy, the 256-threshold curve and its best point."""
    from keras_unets.metrics import pixel_accuracy, threshold_sweep

    curve = np.asarray(threshold_sweep(pred, labels), dtype=np.float64)
    t = int(np.argmax(curve))
    return {
        "raw_accuracy": float(pixel_accuracy(pred, labels, threshold=None)),
        "best_threshold": t,
        "best_accuracy": float(curve[t]),
        "curve": curve,
    }


def blind_slices(data):
    """Indices into ``data.x_train`` of training slices 20-24 (the blind threshold)."""
    train = list(data.split.train)
    missing = [s for s in BLIND_SLICES if s not in train]
    if missing:
        raise ValueError(
            f"The blind threshold is tuned on training slices {BLIND_SLICES[0]}-"
            f"{BLIND_SLICES[-1]}, but the split's training set lacks {missing}. "
            f"Received: split.train={tuple(train)}"
        )
    return [train.index(s) for s in BLIND_SLICES]


def _score_two_ways(best, last, data, *, repeats=0, **predict_kwargs):
    """Predict and score the two ways of SUMMARY.md (``predict_kwargs``: e.g. ``tta=True``).

    Returns ``pred`` (best checkpoint on the test slices) and its ``seconds``
    per slice, ``tuned`` (its :func:`sweep` on 25-29: as the report),
    ``blind`` (the last checkpoint's sweep on training slices 20-24) and
    ``blind_accuracy`` (the last checkpoint on 25-29 at that threshold).
    ``last`` may be ``best`` itself: its test prediction is then reused.
    """
    from keras_unets.metrics import pixel_accuracy

    idx = blind_slices(data)
    pred, seconds = predict_uint8(best, data.x_test, timed=repeats > 0, repeats=repeats, **predict_kwargs)
    pred_last = pred if last is best else predict_uint8(last, data.x_test, **predict_kwargs)[0]
    blind = sweep(predict_uint8(last, data.x_train[idx], **predict_kwargs)[0], data.y_train[idx])
    return {
        "pred": pred,
        "seconds": seconds,
        "tuned": sweep(pred, data.y_test),
        "blind": blind,
        "blind_accuracy": float(pixel_accuracy(pred_last, data.y_test,
                                               threshold=blind["best_threshold"])),
    }


def network_summary(network, arm, data, *, repeats=3, tta=True, log=print):
    """The SUMMARY.md numbers of one trained arm (see :mod:`keras_unets.report`).

    - as the report: best checkpoint (selected on 25-29), threshold tuned on
      25-29, plus V_rand / V_info of the same predictions
      (:func:`keras_unets.metrics.evaluate`: maximised over thresholds
      0.0, 0.1, ..., 1.0, as the ISBI challenge scores them) and again
      maximised over :data:`keras_unets.metrics.isbi.FINE_THRESHOLDS` (0.00, 0.01,
      ..., 1.00; keys ``v_rand_fine``, ``v_info_fine``), never lower;
    - blind: last checkpoint, threshold tuned on training slices 20-24,
      accuracy on 25-29;
    - ``tta``: both again with test-time augmentation (keys ``tta_*``):
      each prediction averaged over the 8 flips and right-angle rotations of
      the slice, thresholds re-tuned the same two ways. Its time per slice is
      one call, not a best of 3.
    """
    from keras_unets.metrics.isbi import fine_scores
    from keras_unets.metrics import evaluate

    run_dir = Path(arm["run_dir"])
    model = load_model(run_dir, "best")
    params = int(model.count_params())
    # best.keras holds the last epoch's weights when the last epoch was the best
    last = model if arm["best_epoch"] == arm["epochs"] else load_model(run_dir, "last")
    plain = _score_two_ways(model, last, data, repeats=repeats)
    tuned, blind = plain["tuned"], plain["blind"]
    ev = evaluate(plain["pred"], data.y_test, threshold=tuned["best_threshold"])
    fine = fine_scores(plain["pred"], data.y_test)
    log(f"[{network}] as the report: {tuned['best_accuracy']:.4f} (t={tuned['best_threshold']}); "
        f"blind: {plain['blind_accuracy']:.4f} (t={blind['best_threshold']} from slices 20-24)")
    log(f"[{network}] V_rand {fmt(ev['v_rand'])} (th={fmt(ev['v_rand_threshold'], 1)}, "
        f"challenge grid); {fine_cell(fine)} on the 0.01 grid")
    tta_keys = {}
    if tta:
        t = _score_two_ways(model, last, data, tta=True)
        log(f"[{network}] with 8-way TTA: as the report {t['tuned']['best_accuracy']:.4f} "
            f"(t={t['tuned']['best_threshold']}); blind {t['blind_accuracy']:.4f} "
            f"(t={t['blind']['best_threshold']})")
        tta_keys = {
            "tta_accuracy_as_report": t["tuned"]["best_accuracy"],
            "tta_threshold_as_report": t["tuned"]["best_threshold"],
            "tta_accuracy_blind": t["blind_accuracy"],
            "tta_threshold_blind": t["blind"]["best_threshold"],
            "tta_seconds_per_slice": t["seconds"],
        }
    return {
        "network": network,
        "model_name": arm["model_name"],
        "accuracy_as_report": tuned["best_accuracy"],
        "threshold_as_report": tuned["best_threshold"],
        "accuracy_unbinarised": tuned["raw_accuracy"],
        "accuracy_blind": plain["blind_accuracy"],
        "threshold_blind": blind["best_threshold"],
        "v_rand": ev.get("v_rand"),
        "v_info": ev.get("v_info"),
        "v_rand_threshold": ev.get("v_rand_threshold"),
        **fine,
        "parameters": params,
        "train_seconds": arm["train_seconds"],
        "train_machine": arm.get("machine"),
        "epochs": arm["epochs"],
        "best_epoch": arm["best_epoch"],
        "stopped_by_time_limit": arm["stopped_by_time_limit"],
        "time_limit_minutes": arm.get("time_limit_minutes"),
        "seconds_per_slice": plain["seconds"],
        **tta_keys,
        "curve_test": tuned["curve"],
        "curve_blind": blind["curve"],
    }


def holdout_summary(network, arm, data, *, log=print):
    """Score a run trained without slices 20-24, choosing everything on them.

    The checkpoint (best accuracy on 20-24, chosen during training) and the
    binarisation threshold (tuned on 20-24) never see slices 25-29, which
    are used only to measure: ``accuracy`` (plus ``v_rand`` / ``v_info``
    maximised over the challenge's thresholds as ISBI scores them, and over
    the 0.01 grid: :func:`keras_unets.metrics.isbi.fine_scores`). For reference,
    ``accuracy_test_threshold`` is the same checkpoint with the threshold
    tuned on 25-29 (``threshold_test``: what choosing the threshold on the
    test slices adds), and ``accuracy_holdout_slices`` the tuned accuracy on
    20-24 itself. ``tta_*``: the same with 8-way
    test-time augmentation, threshold re-tuned on 20-24.
    """
    from keras_unets.metrics.isbi import fine_scores
    from keras_unets.metrics import evaluate

    model = load_model(arm["run_dir"], "best")
    out = {
        "network": network,
        "model_name": arm["model_name"],
        "parameters": int(model.count_params()),
        "train_slices": arm.get("train_slices"),
        "val_slices": arm["val_slices"],
        "epochs": arm["epochs"],
        "best_epoch": arm["best_epoch"],
        "train_seconds": arm["train_seconds"],
        "train_machine": arm.get("machine"),
        "stopped_by_time_limit": arm["stopped_by_time_limit"],
        "time_limit_minutes": arm.get("time_limit_minutes"),
    }
    for prefix, kwargs in (("", {}), ("tta_", {"tta": True})):
        # the blind rule of _score_two_ways, applied to the checkpoint chosen on 20-24
        r = _score_two_ways(model, model, data, **kwargs)
        out.update({
            f"{prefix}accuracy": r["blind_accuracy"],
            f"{prefix}threshold": r["blind"]["best_threshold"],
            f"{prefix}accuracy_holdout_slices": r["blind"]["best_accuracy"],
            f"{prefix}accuracy_test_threshold": r["tuned"]["best_accuracy"],
            f"{prefix}threshold_test": r["tuned"]["best_threshold"],
        })
        if not prefix:
            ev = evaluate(r["pred"], data.y_test, threshold=out["threshold"])
            out.update({"v_rand": ev.get("v_rand"), "v_info": ev.get("v_info"),
                        "v_rand_threshold": ev.get("v_rand_threshold"),
                        **fine_scores(r["pred"], data.y_test)})
    log(f"[holdout] {network}: {out['accuracy']:.4f} on 25-29 (epoch {out['best_epoch']} and "
        f"t={out['threshold']} chosen on 20-24); with TTA {out['tta_accuracy']:.4f}")
    return out


def summary_record(s):
    """The part of a network summary that goes into metrics.json['summary']."""
    return {k: v for k, v in s.items() if not k.startswith("curve_")}


def pruning_levels(ds_model, data, *, repeats=3, log=print):
    """The deep-supervision UNet++ cut at X^{0,i}, i = 1..4, each scored and timed on 25-29.

    Zhou et al. 2018, Sec. 2.2: pruning level Li keeps exactly what head i
    needs. Returns one dict per level (``level``, ``head``, ``parameters``,
    ``seconds_per_slice``, ``raw_accuracy``, ``best_threshold``, ``accuracy``).
    """
    from keras_unets.models import prune_unetpp

    levels = []
    for level in (1, 2, 3, 4):
        pruned = prune_unetpp(ds_model, level)
        pred, sec = predict_uint8(pruned, data.x_test, timed=repeats > 0, repeats=repeats)
        res = sweep(pred, data.y_test)
        levels.append({"level": f"L{level}", "head": f"out{level}",
                       "parameters": int(pruned.count_params()), "seconds_per_slice": sec,
                       "raw_accuracy": res["raw_accuracy"], "best_threshold": res["best_threshold"],
                       "accuracy": res["best_accuracy"]})
        log(f"[unetpp] L{level}: {res['best_accuracy']:.4f} at {sec * 1000:.1f} ms/slice")
    return levels


def accurate_mode(ds_model, data, *, repeats=3):
    """The deep-supervision UNet++'s "accurate mode" (mean of its four heads) on 25-29.

    Zhou et al. 2018, Sec. 2.2. Keys as :func:`pruning_levels`' without
    ``level`` and ``head``.
    """
    from keras_unets.models import average_heads

    pred, sec = predict_uint8(average_heads(ds_model), data.x_test, timed=repeats > 0, repeats=repeats)
    res = sweep(pred, data.y_test)
    return {"parameters": int(ds_model.count_params()), "seconds_per_slice": sec,
            "raw_accuracy": res["raw_accuracy"], "best_threshold": res["best_threshold"],
            "accuracy": res["best_accuracy"]}
