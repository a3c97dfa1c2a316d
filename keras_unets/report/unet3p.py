"""UNet 3+: Fig. 13 (accuracy on slices 25-29 per epoch, best epoch marked)."""
import time

import numpy as np

from keras_unets.report.figures import draw_fig13
from keras_unets.report.markdown import markdown_table
from keras_unets.report.paper import REPORT
from keras_unets.report.provenance import check_profile, provenance, write_experiment
from keras_unets.report.runs import experiment_dir, limit_kwargs, read_history, train_arm
from keras_unets.report.scoring import evaluation, network_summary, summary_record


def run_unet3p(profile, *, results="results", data_dir=None, command=None, log=print,
               seed=None, time_limit_minutes=None):
    """UNet 3+: Fig. 13 (accuracy on slices 25-29 per epoch, best epoch marked)."""
    from keras_unets.data import load_split

    check_profile(profile)
    exp_dir = experiment_dir(results, profile, "unet3p")
    data = load_split(data_dir)
    main = train_arm(exp_dir, "main", "unet3p", profile=profile, data_dir=data_dir, log=log,
                     seed=seed, **limit_kwargs(time_limit_minutes))
    started = time.perf_counter()  # evaluation: everything after training
    summary = network_summary("UNet 3+", main, data, log=log, **evaluation(profile))
    rep = REPORT["unet3p"]
    hist = read_history(main["run_dir"])
    figures = exp_dir / "figures"
    curve = hist.get("val_best_accuracy")
    draw_fig13(curve, figures)
    best_epoch = int(np.nanargmax(curve)) + 1 if curve else None
    rows = [["report", f"{rep['best_epoch']} of {rep['epochs']}", str(rep["accuracy"])],
            ["ours", f"{best_epoch} of {len(curve)}" if curve else "–",
             summary["accuracy_as_report"]]]
    table_md = (
        f"# UNet 3+ ({profile} profile)\n\n"
        "## Fig. 13: accuracy on slices 25-29 per epoch\n\n"
        "Best epoch and its accuracy (threshold tuned on 25-29, as the report).\n\n"
        + markdown_table(["", "best epoch", "accuracy"], rows)
        + ("\n![Fig. 13](figures/fig13_test_accuracy_per_epoch.png)\n" if curve else "")
    )
    metrics = {
        "experiment": "unet3p",
        "profile": profile,
        "report": rep,
        "best_epoch": best_epoch,
        "test_accuracy_per_epoch": curve,
        "history": hist,
        "arms": {"main": main},
        "summary": [summary_record(summary)],
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
        "evaluation_seconds": time.perf_counter() - started,
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[unet3p] wrote {exp_dir}")
    return metrics

