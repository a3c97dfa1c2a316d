"""UNet++: Table II (deep-supervision heads against no deep supervision), Fig. 12, pruning.

What the report could not show: the deep-supervision model pruned to
L1..L4, accuracy against inference time (Zhou et al. 2018, Sec. 2.2).
"""
import time

from keras_unets.report.figures import draw_pruning, draw_unetpp_epoch_figures
from keras_unets.report.markdown import markdown_table
from keras_unets.report.paper import REPORT
from keras_unets.report.provenance import check_profile, provenance, write_experiment
from keras_unets.report.runs import experiment_dir, limit_kwargs, read_history, train_arm
from keras_unets.report.scoring import (accurate_mode, evaluation, load_model, network_summary,
                                        pruning_levels, summary_record, timing_note)


def _table2_rows(levels, summary):
    """Table II: each head of the DS model, and the model without DS, beside the report."""
    rep = REPORT["unetpp"]
    return [
        ["with deep supervision, report", *[str(rep["ds_heads"][f"out{i}"]) for i in (1, 2, 3, 4)]],
        ["with deep supervision, ours", *[lv["accuracy"] for lv in levels]],
        ["without deep supervision, report", "/", "/", "/", str(rep["no_ds"])],
        ["without deep supervision, ours", "/", "/", "/", summary["accuracy_as_report"]],
    ]


def _pruning_rows(levels, accurate):
    """The pruning table: each level and the accurate mode, time saved against L4."""
    full_time = levels[-1]["seconds_per_slice"]
    prune_rows = [[lv["level"], lv["parameters"], f"{lv['seconds_per_slice'] * 1000:.1f}",
                   f"{100.0 * (1 - lv['seconds_per_slice'] / full_time):.1f} %",
                   lv["accuracy"], str(lv["best_threshold"])] for lv in levels]
    prune_rows.append(["accurate mode (mean of out1..out4)", accurate["parameters"],
                       f"{accurate['seconds_per_slice'] * 1000:.1f}",
                       f"{100.0 * (1 - accurate['seconds_per_slice'] / full_time):.1f} %",
                       accurate["accuracy"], str(accurate["best_threshold"])])
    return prune_rows


def _table_md(profile, table2, prune_rows, n_test, curves, test_curves):
    """table.md: Table II, the pruning table and the figures."""
    return (
        f"# UNet++ ({profile} profile)\n\n"
        "## Table II: deep supervision heads against no deep supervision\n\n"
        "Pixel accuracy on slices 25-29, binarised at the threshold tuned on 25-29 "
        "(per head), best checkpoint of each run.\n\n"
        + markdown_table(["", "out1", "out2", "out3", "out4"], table2)
        + "\n## Pruning (not in the report): the deep-supervision model cut at X^{0,i}\n\n"
        f"Inference time per slice: overlap-tile predictions of the {n_test} test slices, "
        f"batch 4, {timing_note(profile)}.\n\n"
        + markdown_table(["level", "parameters", "ms per slice", "time saved vs L4",
                          "accuracy", "threshold"], prune_rows)
        + "\n![pruning](figures/unetpp_pruning.png)\n"
        + ("\n![Fig. 12](figures/fig12_training_accuracy.png)\n" if curves else "")
        + ("\n![test accuracy per epoch](figures/unetpp_test_accuracy_per_epoch.png)\n"
           if test_curves else "")
    )


def run_unetpp(profile, *, results="results", data_dir=None, command=None, log=print,
               seed=None, time_limit_minutes=None):
    """UNet++: Table II, Fig. 12, pruned L1..L4 accuracy against inference time.

    Trains UNet++ with deep supervision (``unetpp_ds``, heads out1..out4 on
    X^{0,1..4}) and without (``unetpp``). Each head of the DS model is
    evaluated as the pruned sub-network ending at X^{0,i} (Zhou et al. 2018,
    Sec. 2.2: pruning level Li keeps exactly what head i needs), timed on
    the test slices.
    """
    from keras_unets.data import load_split

    check_profile(profile)
    exp_dir = experiment_dir(results, profile, "unetpp")
    data = load_split(data_dir)
    ds = train_arm(exp_dir, "ds", "unetpp_ds", profile=profile, data_dir=data_dir, log=log,
                   seed=seed, **limit_kwargs(time_limit_minutes))
    no_ds = train_arm(exp_dir, "no_ds", "unetpp", profile=profile, data_dir=data_dir,
                      log=log, seed=seed, **limit_kwargs(time_limit_minutes))

    started = time.perf_counter()  # evaluation: everything after training
    ev = evaluation(profile)
    summary = network_summary("UNet++", no_ds, data, log=log, **ev)
    summary_ds = network_summary("UNet++ (deep supervision)", ds, data, log=log, **ev)
    ds_model = load_model(ds["run_dir"], "best")
    levels = pruning_levels(ds_model, data, repeats=ev["repeats"], log=log)
    accurate = accurate_mode(ds_model, data, repeats=ev["repeats"])

    figures = exp_dir / "figures"
    h_ds, h_no = read_history(ds["run_dir"]), read_history(no_ds["run_dir"])
    curves, test_curves = draw_unetpp_epoch_figures(h_ds, h_no, figures)
    draw_pruning(levels, figures)
    table_md = _table_md(profile, _table2_rows(levels, summary), _pruning_rows(levels, accurate),
                         len(data.x_test), curves, test_curves)
    metrics = {
        "experiment": "unetpp",
        "profile": profile,
        "report": REPORT["unetpp"],
        "table2": {"ds": {lv["head"]: lv["accuracy"] for lv in levels},
                   "no_ds": summary["accuracy_as_report"]},
        "pruning": levels,
        "accurate_mode": accurate,
        "history": {"ds": h_ds, "no_ds": h_no},
        "arms": {"ds": ds, "no_ds": no_ds},
        "summary": [summary_record(summary), summary_record(summary_ds)],
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
        "evaluation_seconds": time.perf_counter() - started,
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[unetpp] wrote {exp_dir}")
    return metrics
