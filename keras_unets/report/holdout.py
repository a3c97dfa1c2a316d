"""A true hold-out (not in the report): slices 20-24 choose, 25-29 only measure.

Each network's main recipe is trained again on slices 0-19 only; its
checkpoint and threshold are chosen on 20-24, and slices 25-29 are used only
to measure. One more training per network (``quick``: 5, 5.5 and 9 min);
``networks=`` runs some of them, finished ones are reused.
"""
import json

from keras_unets.data import format_slices, parse_slices
from keras_unets.data.splits import BLIND_SLICES
from keras_unets.report.figures import HOLDOUT_FIGURE, draw_holdout_figure
from keras_unets.report.markdown import markdown_table
from keras_unets.report.paper import EXPERIMENTS, REPORT, REPORT_ACCURACY
from keras_unets.report.provenance import check_profile, provenance, write_experiment
from keras_unets.report.runs import (DONE_MARKER, experiment_dir, limit_kwargs, read_history,
                                     train_arm)
from keras_unets.report.scoring import blind_slices, holdout_summary
from keras_unets.report.summary import HOLDOUT_HEADERS, HOLDOUT_NOTE, holdout_row

#: The hold-out's networks (its arms) and their names in the table.
HOLDOUT_NETWORKS = {exp: REPORT[exp]["network"] for exp in EXPERIMENTS}


def holdout_networks(experiments, networks):
    """``networks`` checked for ``experiments`` (``None`` stays ``None``: all three)."""
    if networks is None:
        return None
    if "holdout" not in experiments:
        raise ValueError(
            f"`networks` applies to the holdout experiment only. "
            f"Received: experiments={list(experiments)}, networks={networks!r}")
    return check_networks(networks)


def check_networks(networks):
    """The hold-out's network list (a tuple of ``HOLDOUT_NETWORKS`` keys)."""
    if isinstance(networks, str):
        networks = [n for n in networks.replace(",", " ").split() if n]
    networks = tuple(networks)
    unknown = [n for n in networks if n not in HOLDOUT_NETWORKS]
    if unknown or not networks:
        raise ValueError(
            f"Unknown or no hold-out network(s) {unknown}. Expected some of "
            f"{', '.join(HOLDOUT_NETWORKS)}. Received: networks={list(networks)}"
        )
    return networks


def _finished_arm(run_dir):
    """The ``DONE.json`` of a finished hold-out run, with where it is and its training slices."""
    arm = json.loads((run_dir / DONE_MARKER).read_text())
    arm["run_dir"] = str(run_dir)  # where it is now
    from keras_unets.training.run_dir import RunDir

    try:  # the training slices, from the run's own record
        slices = RunDir(arm["run_dir"]).read_config()["train_slices"]
        # a list of ints (older runs: the compact string) -> "0-19"
        arm["train_slices"] = format_slices(parse_slices(slices))
    except (OSError, ValueError, KeyError):
        arm["train_slices"] = None
    return arm


def _evaluate_finished(exp_dir, data, log):
    """``(arms, summaries)`` of every network whose run folder has finished (others: none)."""
    arms, summaries = {}, []
    for name, network in HOLDOUT_NETWORKS.items():
        run_dir = exp_dir / "runs" / name
        if not (run_dir / DONE_MARKER).exists():
            continue
        arms[name] = arm = _finished_arm(run_dir)
        summaries.append(holdout_summary(network, arm, data, log=log))
        hist = read_history(arm["run_dir"])
        if "val_best_accuracy" in hist:
            # kept with the row, so that the figure can be drawn again from metrics.json
            summaries[-1]["val_curve"] = [float(v) for v in hist["val_best_accuracy"]]
    return arms, summaries


def run_holdout(profile, *, results="results", data_dir=None, command=None, log=print,
                networks=tuple(HOLDOUT_NETWORKS), seed=None, time_limit_minutes=None):
    """Each network's recipe trained on slices 0-19 only; slices 20-24 choose, 25-29 measure.

    Not in the report, whose numbers choose the epoch and the threshold on
    its test slices 25-29 (Liu et al., sec. IV). Here the profile's main
    recipe of each network (``unet``, ``unetpp`` without deep supervision,
    ``unet3p``) is trained with ``val_slices="20-24"`` held out of training,
    so the best checkpoint and the threshold are chosen on slices the
    network never saw, and 25-29 are touched only to measure. Each network
    is one arm (``runs/<network>``); arms finished earlier are reused and
    every finished arm is evaluated and reported, so the networks can be run
    one at a time (``networks``). A network without a finished run folder
    here is left out of the table. Costs one more training per network.
    """
    from keras_unets.data import load_split

    check_profile(profile)
    networks = check_networks(networks)
    exp_dir = experiment_dir(results, profile, "holdout")
    data = load_split(data_dir)
    blind_slices(data)  # the split must contain 20-24 before anything trains
    for name in networks:
        train_arm(exp_dir, name, name, profile=profile, data_dir=data_dir, log=log,
                  seed=seed, val_slices=f"{BLIND_SLICES[0]}-{BLIND_SLICES[-1]}",
                  **limit_kwargs(time_limit_minutes))
    arms, summaries = _evaluate_finished(exp_dir, data, log)
    figures = exp_dir / "figures"
    has_figure = draw_holdout_figure(summaries, figures)
    rows = [holdout_row(s, REPORT_ACCURACY.get(s["network"])) for s in summaries]
    table_md = (
        f"# True hold-out ({profile} profile)\n\n"
        f"Each network's recipe trained on slices 0-19 only. {HOLDOUT_NOTE}\n\n"
        + markdown_table(HOLDOUT_HEADERS, rows)
        + (f"\n![hold-out accuracy per epoch]({HOLDOUT_FIGURE})\n" if has_figure else "")
    )
    metrics = {
        "experiment": "holdout",
        "profile": profile,
        "val_slices": list(BLIND_SLICES),
        "arms": arms,
        "summary": summaries,
        "figures": sorted(str(p.relative_to(exp_dir)) for p in figures.glob("*.png")),
    }
    write_experiment(exp_dir, metrics=metrics, table_md=table_md, prov=provenance(command))
    log(f"[holdout] wrote {exp_dir}")
    return metrics
