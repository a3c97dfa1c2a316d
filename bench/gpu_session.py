"""One device lease, one command: the GPU benchmark, then the paper profile.

A device session lends one GPU for about 15 minutes of device time, at most
10 minutes per command (``../.library/device/README.md``). This script does,
inside one deadline (``--deadline-s``), in this order:

1. **issue 8**: ``bench/gpu_bench.py --no-speed``: every network at 512 x
   512 trains a few hundred steps under a 6 GiB cap, at batch 1 in float32
   and at batch 2 in ``mixed_float16`` (status, step rate and peak memory of
   each), in at most ``--bench-share`` of the deadline;
2. **issue 6**: ``keras-unets reproduce EXP --profile paper --time-limit T``
   for each experiment of ``--experiments`` (default ``unet3p,unetpp,unet``,
   cheapest first), T chosen from the time left (:func:`time_limit_minutes`)
   so the whole list fits: every training arm gets the same limit, Table I's
   half-resolution arm a third of it. A run that finishes its epochs before
   the limit leaves its time to the next experiments. Results are the
   profile's ordinary ones (SUMMARY.md marks a run stopped by its limit
   with the limit); after every experiment ``results/<profile>`` without its
   ``runs/`` folders (checkpoints) is packed into
   ``<out>/results-<profile>.tar.gz``, so a cut-short lease still returns
   what finished;
3. with 90 s or more to spare: the benchmark's uncapped speed matrix
   (``gpu_bench.py --no-cap``) until the deadline.

``<out>/session.md`` (rewritten after every stage) lists what ran, with its
limit, wall time and exit status. Back on the development machine::

    tar xzf results-paper.tar.gz -C results/   # then commit results/paper

Usage (on the device, through ``bash bench/gpu_session.sh``, which installs
the carried wheels first): ``--data`` defaults to ``$ISBI2012_DIR``, else the
carried copy in ``.device/isbi2012`` (``bash bench/prepare_device.sh``). On a
CPU, ``--tiny`` runs the whole plumbing in a few minutes (the benchmark's
tiny models, ``--profile smoke``).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Training arms per experiment, in units of one full arm under the limit
# (Table I: the full-resolution arm and a half-resolution one at a third).
SKIPPED = "skipped: too little time left"
ARM_WEIGHTS = {"unet3p": 1.0, "unetpp": 2.0, "unet": 1.0 + 1.0 / 3.0, "holdout": 3.0}


def time_limit_minutes(remaining_s, experiments, *, overhead_s, min_minutes=0.5):
    """The per-arm time limit (minutes) for the first of ``experiments``.

    ``remaining_s``: seconds left for all of them; each costs ``overhead_s``
    beyond its training (start-up, compilation, evaluation, figures) and
    trains ``ARM_WEIGHTS[exp]`` arms' worth under the limit. The limit is the
    same for every arm of the experiments planned, so they share the time in
    proportion to their arms. While that would be under ``min_minutes`` the
    last experiments are dropped from the plan (the list is in priority
    order; a later call may still fit them with time the earlier ones left
    unused). ``None`` when not even the first fits.
    """
    unknown = [e for e in experiments if e not in ARM_WEIGHTS]
    if unknown:
        raise ValueError(f"Unknown experiment(s) {unknown}; expected some of "
                         f"{', '.join(ARM_WEIGHTS)}. Received: {list(experiments)}")
    for k in range(len(experiments), 0, -1):
        planned = experiments[:k]
        train_s = remaining_s - overhead_s * k
        minutes = train_s / sum(ARM_WEIGHTS[e] for e in planned) / 60.0
        if minutes >= min_minutes:
            return round(minutes, 2)
    return None


def pack_results(results_root, profile, dest):
    """``results_root/profile`` without ``runs/`` folders into ``dest`` (tar.gz, atomic).

    Returns the number of files packed (0: nothing there, no archive written).
    """
    base = Path(results_root) / profile
    if not base.is_dir():
        return 0
    files = sorted(p for p in base.rglob("*")
                   if p.is_file() and "runs" not in p.relative_to(base).parts)
    if not files:
        return 0
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with tarfile.open(tmp, "w:gz") as tar:
        for p in files:
            tar.add(p, arcname=str(p.relative_to(base.parent)))
    os.replace(tmp, dest)
    return len(files)


def _run(cmd, *, timeout, env, log):
    """Run ``cmd``; returns (exit status or "timeout", seconds).

    The command runs in its own process group, and a timeout kills the whole
    group: gpu_bench.py's worker processes too, which would otherwise go on
    holding the GPU during the next stage.
    """
    log(f"$ {' '.join(str(c) for c in cmd)}  (timeout {timeout:.0f} s)")
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=ROOT, start_new_session=True)
    try:
        status = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        status = "timeout"
    return status, time.perf_counter() - start


def _markdown(meta, stages):
    lines = [f"# GPU session ({meta['date']})", "",
             f"- deadline {meta['deadline_s']:.0f} s; profile {meta['profile']}; "
             f"data {meta['data']}; commit {meta['commit'] or 'unknown'}", ""]
    lines += ["| stage | time limit per arm | wall | status |", "| --- | --- | --- | --- |"]
    for s in stages:
        limit = "–" if s.get("limit_min") is None else f"{s['limit_min']:g} min"
        wall = "–" if s.get("seconds") is None else f"{s['seconds']:.0f} s"
        lines.append(f"| {s['stage']} | {limit} | {wall} | {s['status']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deadline-s", type=float, default=540.0,
                   help="seconds for everything (default 540: one call with timeout_s "
                        "590 and 1-2 min of start-up leave ~3 min of a 15-minute lease)")
    p.add_argument("--bench-share", type=float, default=0.45,
                   help="fraction of the deadline for gpu_bench.py (0: skip it)")
    p.add_argument("--experiments", default="unet3p,unetpp,unet")
    p.add_argument("--profile", default=None, help="default paper (--tiny: smoke)")
    p.add_argument("--overhead-s", type=float, default=None,
                   help="seconds per experiment beyond training (default 60; tiny 45)")
    p.add_argument("--data", default=None)
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results"
                                                                  / "session"))
    p.add_argument("--tiny", action="store_true",
                   help="CPU check of the plumbing: gpu_bench --tiny, the smoke profile")
    args = p.parse_args(argv)
    start = time.perf_counter()
    profile = args.profile or ("smoke" if args.tiny else "paper")
    overhead = args.overhead_s if args.overhead_s is not None else (45.0 if args.tiny else 60.0)
    experiments = [e for e in args.experiments.split(",") if e]
    try:  # unknown names fail here, before anything runs
        time_limit_minutes(0, experiments, overhead_s=0)
    except ValueError as exc:
        p.error(str(exc))
    data = args.data or os.environ.get("ISBI2012_DIR") or str(ROOT / ".device" / "isbi2012")
    if not Path(data).is_dir():
        print(f"gpu_session: no ISBI 2012 folder at {data!r}. Pass --data, set ISBI2012_DIR, "
              "or carry .device/isbi2012 (bash bench/prepare_device.sh).", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [
               q for q in os.environ.get("PYTHONPATH", "").split(os.pathsep) if q])}
    from keras_unets.io import atomic_write_text
    from keras_unets.reproduce import _commit

    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "deadline_s": args.deadline_s, "profile": profile, "data": data,
            "commit": _commit()}
    stages = []

    def left():
        return args.deadline_s - (time.perf_counter() - start)

    def record(stage):
        stages.append(stage)
        atomic_write_text(out / "session.md", _markdown(meta, stages))
        print(f"gpu_session: {json.dumps(stage)}", flush=True)

    def log(msg):
        print(f"gpu_session: {msg}", flush=True)

    tiny = ["--tiny"] if args.tiny else []

    def bench(stage, extra, budget):
        # gpu_bench checks its budget before each configuration; the timeout
        # also covers the last one it starts
        status, secs = _run([sys.executable, ROOT / "bench" / "gpu_bench.py", *tiny, *extra,
                             "--out", out / stage, "--budget-s", f"{0.8 * budget:.0f}",
                             "--timeout", f"{max(60.0, 0.5 * budget):.0f}"],
                            timeout=min(budget, left()), env=env, log=log)
        record({"stage": f"gpu_bench {' '.join(extra)}", "seconds": secs, "status": status})

    # 1. issue 8: every network trained under the 6 GiB cap at batch 1 float32
    #    and batch 2 mixed_float16 (step rate and peak memory of each)
    if args.bench_share > 0:
        bench("gpu_cap", ["--no-speed"], args.bench_share * args.deadline_s)

    # 2. issue 6: the paper profile, as many experiments as the time allows
    for i, exp in enumerate(experiments):
        reserve = 10.0  # packing the results, writing session.md
        limit = time_limit_minutes(left() - reserve, experiments[i:], overhead_s=overhead)
        if limit is None:
            record({"stage": f"reproduce {exp}", "limit_min": None, "seconds": None,
                    "status": SKIPPED})
            continue
        cmd = [sys.executable, "-m", "keras_unets", "reproduce",
               exp, "--profile", profile, "--time-limit", f"{limit:g}", "--data", data,
               "--results", args.results]
        status, secs = _run(cmd, timeout=left() - reserve, env=env, log=log)
        packed = pack_results(args.results, profile, out / f"results-{profile}.tar.gz")
        record({"stage": f"reproduce {exp}", "limit_min": limit, "seconds": secs,
                "status": status, "files_packed": packed})
    # 3. with time to spare: the uncapped speed matrix (batch 1 and 2, both policies)
    if args.bench_share > 0 and left() >= 90:
        bench("gpu_speed", ["--no-cap"], left() - 5)
    log(f"done in {time.perf_counter() - start:.0f} s; results in {out}")
    failed = [s for s in stages if s["status"] not in (0, SKIPPED)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
