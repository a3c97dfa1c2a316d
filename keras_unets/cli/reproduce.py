"""``keras-unets reproduce``: the report's experiments, tables and figures.

A thin layer over :mod:`keras_unets.report` (imported lazily so that
``keras-unets --help`` stays fast)::

    keras-unets reproduce unet|unetpp|unet3p|all|holdout|summary|figures
                          [--profile quick|paper|smoke] [--results DIR] [--data DIR]
                          [--networks unet,unetpp,unet3p]   (holdout only)
                          [--seed N]   (results/seed-N unless --results)
                          [--time-limit MINUTES]   (each training's cap)
"""
import os
import shlex
import sys

import click

_EXPERIMENTS = ("unet", "unetpp", "unet3p")


def register(group):
    """Add the ``reproduce`` command to ``group``."""
    group.add_command(reproduce)


@click.command("reproduce")
@click.argument("experiment",
                type=click.Choice([*_EXPERIMENTS, "all", "holdout", "summary", "figures"]))
@click.option("--profile", type=click.Choice(["paper", "quick", "smoke"]), default=None,
              help="Default: $PROFILE, else paper when a GPU is visible, else quick.")
@click.option("--results", default=None, type=click.Path(file_okay=False),
              help="Results root; writes <results>/<profile>/<experiment>/ "
                   "(default: results, or results/seed-N with --seed N).")
@click.option("--data", "data_dir", default=None, type=click.Path(),
              help="ISBI 2012 folder (default: $ISBI2012_DIR, then ~/.keras/datasets/isbi2012).")
@click.option("--networks", default=None,
              help="holdout only: comma-separated networks to train (default: all three); "
                   "the table also has every other network whose finished run folder "
                   "is there.")
@click.option("--seed", default=None, type=click.IntRange(min=0),
              help="Train with this seed instead of the profile's (a seed spread); "
                   "results go to results/seed-N unless --results is given.")
@click.option("--time-limit", "time_limit", default=None,
              type=click.FloatRange(min=0, min_open=True), metavar="MINUTES",
              help="Stop each training after MINUTES instead of the profile's limit "
                   "(Table I's half-resolution arm: a third), e.g. to fit the paper "
                   "profile into a GPU lease.")
def reproduce(experiment, profile, results, data_dir, networks, seed, time_limit):
    """Train, evaluate and write the report's tables and figures for EXPERIMENT.

    unet: Table I, Fig. 10, Fig. 11. unetpp: Table II, Fig. 12, pruning L1..L4.
    unet3p: Fig. 13. all: the three. holdout (not in the report): each
    network trained on slices 0-19, epoch and threshold chosen on 20-24,
    measured on 25-29. summary: only rewrite SUMMARY.md. figures: only draw
    the figures again from each metrics.json (no training).
    Every run rewrites <results>/<profile>/SUMMARY.md; finished trainings are
    reused and interrupted ones resumed.
    """
    from keras_unets.report import figures, holdout, pipeline, provenance, summary

    # the program as invoked (keras-unets, or "python -m keras_unets"), then its quoted arguments
    command = " ".join([os.path.basename(sys.argv[0]), *(shlex.quote(a) for a in sys.argv[1:])])
    if profile is None:
        try:
            profile, reason = provenance.default_profile()
        except ValueError as exc:  # $PROFILE names no profile
            raise click.BadParameter(str(exc), param_hint="PROFILE") from None
    else:
        reason = "--profile"
    try:
        if experiment == "summary":
            click.echo(f"profile: {profile} ({reason})")
            root = summary.default_results(seed) if results is None else results
            click.echo(f"summary: {summary.write_summary(profile, results=root)}")
            return
        if experiment == "figures":
            click.echo(f"profile: {profile} ({reason})")
            root = summary.default_results(seed) if results is None else results
            try:
                figures.redraw_figures(profile, results=root, command=command, log=click.echo)
            except (FileNotFoundError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
            return
        todo = _EXPERIMENTS if experiment == "all" else (experiment,)
        try:  # before the data is resolved: a usage error, not a traceback
            networks = holdout.holdout_networks(todo, networks)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--networks") from None
        pipeline.reproduce(todo, profile, results=results, data_dir=data_dir, command=command,
                           log=click.echo, reason=reason, networks=networks, seed=seed,
                           time_limit_minutes=time_limit)
    except Exception as exc:
        # Missing or malformed data (the data layer's message says where to put
        # the files), or a run folder trained with another seed or time limit:
        # no traceback.
        if type(exc).__name__ in ("DataNotFoundError", "DataFormatError", "SeedMismatchError",
                                  "TimeLimitMismatchError"):
            raise click.ClickException(str(exc)) from None
        raise
