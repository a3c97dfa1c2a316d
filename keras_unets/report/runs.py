"""Training arms of the experiments: train, reuse a finished run, resume an interrupted one.

Each arm is a run folder ``<results>/<profile>/<experiment>/runs/<arm>`` of
:func:`keras_unets.training.train`. A finished arm has ``DONE.json`` (its
summary, with the commit that trained it) and is reused; one with a
completed epoch but no marker is resumed. A run folder trained with another
seed, or a finished one trained under another time limit, than the one
asked for is refused (:class:`RunMismatchError`), never reported as this one.
"""
import json
import math
from pathlib import Path

from keras_unets.io import atomic_write_json
from keras_unets.report.provenance import code_state, keras_backend, machine_description

DONE_MARKER = "DONE.json"


def profile_settings(profile, model_name):
    """The resolved profile dict for ``model_name`` (``keras_unets.training.config``)."""
    from keras_unets.training.config import get_profile

    return dict(get_profile(profile, model_name))


def experiment_dir(results, profile, experiment):
    """``<results>/<profile>/<experiment>``: where an experiment writes."""
    return Path(results) / profile / experiment


def _run_files(run_dir):
    """:class:`keras_unets.training.run_dir.RunDir` of ``run_dir`` (Keras loads on first use)."""
    from keras_unets.training.run_dir import RunDir

    return RunDir(run_dir)


def read_history(run_dir):
    """``history.csv`` of a run directory as ``{column: [float, ...]}`` (NaN where unparsable)."""
    return _run_files(run_dir).read_history(missing=float("nan"))


def train_arm(exp_dir, arm, model_name, *, profile, data_dir=None, log=print, seed=None,
              **kwargs):
    """Train one arm into ``exp_dir/runs/<arm>``; reuse or resume it when possible.

    A finished arm has ``DONE.json`` (its summary) and is not retrained; a run
    directory without it (an interrupted run) is resumed with
    ``train(resume=run_dir)``. ``seed`` overrides the profile's training seed
    (``None`` keeps it); a run directory trained with another seed is an
    error, never reused as if it were this one. So is a finished run whose
    time limit differs from the one asked for (``time_limit_minutes`` in
    ``kwargs``, else the profile's); an interrupted run is resumed under the
    new limit. Returns the summary dict.
    """
    from keras_unets.training import train

    run_dir = Path(exp_dir) / "runs" / arm
    marker = run_dir / DONE_MARKER
    saved = _run_config(run_dir)
    _check_run_seed(run_dir, saved, profile, model_name, seed)
    if marker.exists():
        _check_run_time_limit(run_dir, saved, profile, model_name,
                              kwargs.get("time_limit_minutes"))
    if seed is not None:
        kwargs["seed"] = int(seed)
    if marker.exists():
        summary = json.loads(marker.read_text())
        summary["run_dir"] = str(run_dir)  # where it is now (results may have moved)
        log(f"[{arm}] reusing finished run {run_dir} ({summary.get('epochs')} epochs)")
        return summary
    resume = run_dir if _run_files(run_dir).has_run else None
    log(f"[{arm}] {'resuming' if resume else 'training'} {model_name} "
        f"(profile {profile}) in {run_dir}")
    result = train(model_name, profile=profile, data_dir=data_dir, out=run_dir,
                   resume=resume, **kwargs)
    seconds = float(result.train_seconds)
    try:  # training time summed over resumed calls, when train() recorded it
        seconds = float(_run_files(run_dir).read_results()["train_seconds_total"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    summary = {
        "arm": arm,
        "model_name": model_name,
        "run_dir": str(run_dir),
        "epochs": int(result.last_epoch),
        "best_epoch": int(result.best_epoch),
        "best_threshold": int(result.best_threshold),
        "best_accuracy": float(result.best_accuracy),
        "train_seconds": seconds,
        "stopped_by_time_limit": bool(result.stopped_by_time_limit),
        "time_limit_minutes": _run_config(run_dir).get("time_limit_minutes"),
        "val_slices": list(result.val_slices),
        "val_source": result.val_source,
        "seed": _run_config(run_dir).get("seed"),
        "machine": machine_description(),
        "keras_backend": keras_backend(),
        # the code that trained it (evaluation may be re-run by later commits)
        **code_state(),
    }
    atomic_write_json(marker, summary)
    return summary


class RunMismatchError(ValueError):
    """A run directory holds a training with other settings than the ones asked for."""


class SeedMismatchError(RunMismatchError):
    """A run directory holds a training with another seed than the one asked for."""


class TimeLimitMismatchError(RunMismatchError):
    """A finished run directory was trained under another time limit than the one asked for."""


def _run_config(run_dir):
    """The ``config`` dict of ``run_dir/config.json`` (``{}`` if absent or unreadable)."""
    try:
        cfg = _run_files(run_dir).read_config()["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # not a readable run record: train() reports it when resuming
    return cfg if isinstance(cfg, dict) else {}


def _check_run_seed(run_dir, saved, profile, model_name, seed):
    """Refuse to reuse or resume ``run_dir`` (its config ``saved``) trained with another seed."""
    had = saved.get("seed")
    if had is None:
        return
    wanted = int(profile_settings(profile, model_name)["seed"] if seed is None else seed)
    if int(had) != wanted:
        raise SeedMismatchError(
            f"{run_dir} was trained with seed {had}, but seed {wanted} was asked "
            f"for; its results would be mixed with this run's. Use another results folder "
            f"(--results, or the default results/seed-{wanted} of --seed {wanted}) or "
            f"move {run_dir} away."
        )


def limit_kwargs(minutes):
    """``train()`` keyword for a time-limit override (none for ``None``: the profile's)."""
    return {} if minutes is None else {"time_limit_minutes": float(minutes)}


def _limit_text(minutes):
    return "no time limit" if not minutes else f"a time limit of {float(minutes):g} min"


def _check_run_time_limit(run_dir, saved, profile, model_name, minutes):
    """Refuse to reuse a finished run (its config ``saved``) trained under another time limit.

    ``minutes=None`` asks for the profile's limit. A run cut short by a
    3-minute limit is not the profile's run, and a full run is not what a
    time-limited call asked for: either would be reported as the other.
    """
    if "time_limit_minutes" not in saved:
        return
    had = saved["time_limit_minutes"] or None
    wanted = (profile_settings(profile, model_name).get("time_limit_minutes")
              if minutes is None else minutes) or None
    same = (had is None and wanted is None) or (
        had is not None and wanted is not None
        and math.isclose(float(had), float(wanted), rel_tol=1e-9))
    if not same:
        raise TimeLimitMismatchError(
            f"{run_dir} is a finished run trained with {_limit_text(had)}, "
            f"but {_limit_text(wanted)} was asked for; its results would be reported as "
            f"this run's. Use another results folder (--results) or move {run_dir} away."
        )
