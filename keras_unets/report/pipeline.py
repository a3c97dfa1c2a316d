"""Run the report's experiments and rewrite SUMMARY.md (``keras-unets reproduce``).

:func:`reproduce` resolves the data folder (downloading it when none is
given anywhere), runs each named experiment (:data:`RUNNERS`) and rewrites
``<results>/<profile>/SUMMARY.md``.
"""
import json
import math
import time
from pathlib import Path

import numpy as np

from keras_unets.report.holdout import holdout_networks, run_holdout
from keras_unets.report.markdown import format_seconds
from keras_unets.report.paper import EXPERIMENTS
from keras_unets.report.provenance import check_profile, default_profile
from keras_unets.report.summary import default_results, write_summary
from keras_unets.report.unet import run_unet
from keras_unets.report.unet3p import run_unet3p
from keras_unets.report.unetpp import run_unetpp

#: The experiment runners by name: the report's three and the hold-out.
RUNNERS = {"unet": run_unet, "unetpp": run_unetpp, "unet3p": run_unet3p,
           "holdout": run_holdout}


def _log_profile(log, profile, reason=None):
    log(f"profile: {profile}" + (f" ({reason})" if reason else ""))


def _data_dir_or_download(data_dir, log):
    """Resolve the data folder; with no folder given anywhere, download it.

    An explicit ``data_dir`` or ``$ISBI2012_DIR`` is used as is (a missing
    folder there is an error). Otherwise the default cache folder
    (``~/.keras/datasets/isbi2012``) is filled by
    :func:`keras_unets.data.download.download_isbi2012`; when that fails (offline),
    the error says where to put the files by hand.
    """
    import os

    from keras_unets.data import ENV_VAR, DataNotFoundError, default_data_dir, resolve_data_dir

    try:
        return resolve_data_dir(data_dir)
    except DataNotFoundError:
        if data_dir is not None or os.environ.get(ENV_VAR):
            raise
    from keras_unets.data.download import DownloadError, download_isbi2012

    dest = default_data_dir()
    log(f"ISBI 2012 data not found; downloading it into {dest}")
    try:
        download_isbi2012(dest)
    except DownloadError as exc:
        raise DataNotFoundError(
            f"ISBI 2012 data not found and the download failed:\n{exc}") from None
    return resolve_data_dir(dest)


def check_time_limit(minutes):
    """``minutes`` as a time-limit override: ``None`` or a positive finite number."""
    if minutes is None:
        return None
    ok = (isinstance(minutes, (int, float, np.integer, np.floating))
          and not isinstance(minutes, bool))
    value = float(minutes) if ok else float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"time_limit_minutes must be a positive number of minutes (or None for the "
            f"profile's limit); received {minutes!r}"
        )
    return value


#: Where a profile's results folder records how long its experiments took.
WALL_CLOCK = "wall_clock.json"


def record_wall_clock(root, seconds, total, command=None):
    """Merge one ``reproduce`` call's timings into ``root/wall_clock.json``.

    ``seconds``: each experiment's wall clock in this call (training and
    evaluation; a reused training costs only its evaluation); ``total``: the
    whole call, data loading and SUMMARY.md included. Each experiment keeps
    its latest time; ``last_call`` is this call.
    """
    from keras_unets.io import atomic_write_json
    from keras_unets.report.provenance import provenance

    path = Path(root) / WALL_CLOCK
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {}
    prov = provenance(command)
    experiments = dict(record.get("experiments") or {})
    experiments.update({exp: {"seconds": s, "date_utc": prov["date_utc"]}
                        for exp, s in seconds.items()})
    atomic_write_json(path, {"experiments": experiments, "last_call": {
        "experiments": list(seconds), "seconds": total, "provenance": prov}})
    return path


def reproduce(experiments=EXPERIMENTS, profile=None, *, results=None, data_dir=None,
              command=None, log=print, reason=None, networks=None, seed=None,
              time_limit_minutes=None):
    """Run the named experiments, then rewrite SUMMARY.md. Returns its path.

    ``profile=None`` picks :func:`default_profile` and prints why (``reason``
    says why an explicit profile was chosen, for the log). The data
    folder is resolved first, so missing data fails before anything trains
    (``keras_unets.data.DataNotFoundError`` says where to put the files).
    ``experiments`` may also name ``"holdout"`` (:func:`run_holdout`, not
    part of the default three); ``networks`` limits it to some networks.
    ``seed`` overrides every profile's training seed (for a seed spread);
    ``results=None`` is :func:`default_results`. ``time_limit_minutes``
    caps every training arm at that many minutes instead of the profile's
    limit (Table I's half-resolution arm: a third of it), e.g. to fit the
    ``paper`` profile into a GPU lease; a finished run of another limit is
    refused (:class:`TimeLimitMismatchError`), never reported as this one.
    """
    started = time.perf_counter()
    if seed is not None and (isinstance(seed, bool) or int(seed) != seed or seed < 0):
        raise ValueError(f"seed must be a non-negative integer; received {seed!r}")
    time_limit_minutes = check_time_limit(time_limit_minutes)
    seed_default_root = results is None and seed is not None
    if results is None:
        results = default_results(seed)
    if profile is None:
        profile, reason = default_profile()
    elif reason is None:
        reason = "chosen"
    check_profile(profile)
    _log_profile(log, profile, reason)
    if isinstance(experiments, str):
        experiments = [experiments]
    unknown = [e for e in experiments if e not in RUNNERS]
    if unknown:
        raise ValueError(
            f"Unknown experiment(s) {unknown}. Expected some of {', '.join(RUNNERS)}. "
            f"Received: experiments={list(experiments)}"
        )
    networks = holdout_networks(experiments, networks)
    holdout_kwargs = {} if networks is None else {"networks": networks}
    if experiments:
        data_dir = _data_dir_or_download(data_dir, log)
        log(f"data: {data_dir}")
    seconds = {}
    for exp in experiments:
        start = time.perf_counter()
        RUNNERS[exp](profile, results=results, data_dir=data_dir, command=command, log=log,
                     seed=seed, time_limit_minutes=time_limit_minutes,
                     **(holdout_kwargs if exp == "holdout" else {}))
        seconds[exp] = time.perf_counter() - start
        log(f"[{exp}] done in {format_seconds(seconds[exp])}")
    if experiments:
        total = time.perf_counter() - started
        record_wall_clock(Path(results) / profile, seconds, total, command)
        log(f"wall clock: {format_seconds(total)}")
    path = write_summary(profile, results=results)
    log(f"summary: {path}")
    base = Path(default_results())
    if seed_default_root and (base / profile).is_dir():  # its seed-spread table
        log(f"summary: {write_summary(profile, results=base)}")
    return path
