"""One device lease, one command: the GPU benchmark and the paper profile, side by side.

A device session lends one GPU for about 15 minutes of device time, at most
10 minutes per command (``../.library/device/README.md``). One H200 is far
larger than what one of these trainings uses (batch 1-2 at 512 x 512: a few
GiB, kernels too small to fill the chip), so everything runs **at once**
inside one deadline (``--deadline-s``), each in its own process group:

1. **issue 8**: ``bench/gpu_bench.py --no-speed --jobs N``: every network at
   512 x 512 trains ``--train-steps`` steps under a 6 GiB cap, at batch 1 in
   float32 and at batch 2 in ``mixed_float16`` (status, step rate and peak
   memory of each), all configurations at once (peak memory is per process,
   so it is exact; the step rates are shared-GPU rates, and say so);
2. **issue 6**: ``keras-unets reproduce EXP --profile paper --time-limit T``
   for each experiment of ``--experiments`` (default ``unet3p,unetpp,unet``),
   each with its own limit sized to the deadline
   (:func:`parallel_time_limits`: every training arm of EXP gets T, Table
   I's half-resolution arm a third of it). Results are the profile's
   ordinary ones (SUMMARY.md marks a run stopped by its limit with the
   limit); each time one finishes, ``results/<profile>`` without its
   ``runs/`` folders (checkpoints) is packed into
   ``<out>/results-<profile>.tar.gz``, so a cut-short lease still returns
   what finished; when all have, SUMMARY.md is rewritten from all of them;
3. with 90 s or more to spare once those are done: the benchmark's uncapped
   speed matrix (``gpu_bench.py --no-cap``, one configuration at a time, so
   its step rates are the GPU's alone) until the deadline.

Anything still running at the deadline is killed with its process group.
``<out>/session.md`` (rewritten after every stage) lists what ran, with its
limit, wall time and exit status; each stage's own output goes to
``<out>/logs.tar.gz`` (one file: a device call returns at most 8), and the
last lines of a failed stage's output to ``session.log``. Back on the
development machine::

    tar xzf results-paper.tar.gz -C results/   # then commit results/paper

Usage (on the device, through ``bash bench/gpu_session.sh``, which installs
the carried wheels first): ``--data`` defaults to ``$ISBI2012_DIR``, else the
carried copy in ``.device/isbi2012`` (``bash bench/prepare_device.sh``). On a
CPU, ``--tiny`` runs the whole plumbing in a few minutes (the benchmark's
tiny models, ``--profile smoke``).
"""
import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Training arms per experiment, in units of one full arm under the limit
# (Table I: the full-resolution arm and a half-resolution one at a third).
SKIPPED = "skipped: too little time"
ARM_WEIGHTS = {"unet3p": 1.0, "unetpp": 2.0, "unet": 1.0 + 1.0 / 3.0, "holdout": 3.0}


def parallel_time_limits(window_s, experiments, *, overhead_s, min_minutes=0.5):
    """Per-arm time limits (minutes) for experiments that all start now.

    ``window_s``: seconds until they must all be done; each costs
    ``overhead_s`` beyond its training (start-up, compilation, evaluation,
    figures) and trains ``ARM_WEIGHTS[exp]`` arms one after the other, so its
    arms get ``(window_s - overhead_s) / ARM_WEIGHTS[exp]``. Returns
    ``{exp: minutes}``, ``None`` for an experiment whose limit would be under
    ``min_minutes`` (it is skipped).
    """
    unknown = [e for e in experiments if e not in ARM_WEIGHTS]
    if unknown:
        raise ValueError(f"Unknown experiment(s) {unknown}; expected some of "
                         f"{', '.join(ARM_WEIGHTS)}. Received: {list(experiments)}")
    limits = {}
    for exp in experiments:
        minutes = round((window_s - overhead_s) / ARM_WEIGHTS[exp] / 60.0, 2)
        limits[exp] = minutes if minutes >= min_minutes else None
    return limits


def _packable(path, base):
    rel = path.relative_to(base).parts
    # checkpoints stay behind; so do atomic writes in flight (.NAME.tmp-PID)
    return "runs" not in rel and not (path.name.startswith(".") and ".tmp-" in path.name)


def pack_tree(base, dest, arc_root, keep=lambda p: True):
    """The files under ``base`` that ``keep`` accepts into ``dest`` (tar.gz, atomic).

    Names in the archive are relative to ``arc_root``. A file that vanishes
    while packing (another process replaced it) is left out. Returns the
    number of files packed (0: nothing there, no archive written).
    """
    base = Path(base)
    if not base.is_dir():
        return 0
    files = sorted(p for p in base.rglob("*") if p.is_file() and keep(p))
    if not files:
        return 0
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    packed = 0
    with tarfile.open(tmp, "w:gz") as tar:
        for p in files:
            try:
                tar.add(p, arcname=str(p.relative_to(arc_root)))
                packed += 1
            except FileNotFoundError:
                continue
    os.replace(tmp, dest)
    return packed


def pack_results(results_root, profile, dest):
    """``results_root/profile`` without ``runs/`` folders into ``dest`` (tar.gz, atomic).

    Returns the number of files packed (0: nothing there, no archive written).
    """
    base = Path(results_root) / profile
    return pack_tree(base, dest, base.parent, keep=lambda p: _packable(p, base))


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


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
        _kill_group(proc)
        status = "timeout"
    return status, time.perf_counter() - start


class Stage:
    """One command running in its own process group, its output in its own log."""

    def __init__(self, name, cmd, *, env, log_path, kill_at, limit_min=None):
        self.name, self.limit_min, self.kill_at = name, limit_min, kill_at
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log_path, "w")
        self._fh.write(f"$ {' '.join(str(c) for c in cmd)}\n")
        self._fh.flush()
        self.start = time.perf_counter()
        self.proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=ROOT,
                                     stdout=self._fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.status = self.seconds = None

    def poll(self, now):
        """The exit status (or "timeout", after killing the group) once done, else None."""
        if self.status is None:
            rc = self.proc.poll()
            if rc is None and now >= self.kill_at:
                _kill_group(self.proc)
                rc = "timeout"
            if rc is not None:
                self.status, self.seconds = rc, now - self.start
                self._fh.close()
        return self.status

    def tail(self, n=25):
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def _markdown(meta, stages):
    lines = [f"# GPU session ({meta['date']})", "",
             f"- deadline {meta['deadline_s']:.0f} s; profile {meta['profile']}; "
             f"data {meta['data']}; commit {meta['commit'] or 'unknown'}",
             "- the capped benchmark and the reproduce runs ran at the same time on the one "
             "device (their wall times overlap); the speed matrix, if any, ran alone after them",
             ""]
    lines += ["| stage | time limit per arm | wall | status |", "| --- | --- | --- | --- |"]
    for s in stages:
        limit = "–" if s.get("limit_min") is None else f"{s['limit_min']:g} min"
        wall = "–" if s.get("seconds") is None else f"{s['seconds']:.0f} s"
        lines.append(f"| {s['stage']} | {limit} | {wall} | {s['status']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deadline-s", type=float, default=480.0,
                   help="seconds for everything (default 480: one call with timeout_s "
                        "530 and 1-2 min of start-up fit a 15-minute lease with room to spare)")
    p.add_argument("--bench-share", type=float, default=0.5,
                   help="at most this fraction of the deadline for the capped benchmark "
                        "(0: skip the benchmark)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="steps per capped configuration (default: gpu_bench's, 300)")
    p.add_argument("--cap-configs", default=None,
                   help="BATCH:POLICY list of the capped runs (default: gpu_bench's, "
                        "1:float32,2:mixed_float16)")
    p.add_argument("--experiments", default="unet3p,unetpp,unet")
    p.add_argument("--profile", default=None, help="default paper (--tiny: smoke)")
    p.add_argument("--overhead-s", type=float, default=None,
                   help="seconds per experiment beyond training (default 150; tiny 60)")
    p.add_argument("--data", default=None)
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results"
                                                                  / "session"))
    p.add_argument("--tiny", action="store_true",
                   help="CPU check of the plumbing: gpu_bench --tiny, the smoke profile")
    args = p.parse_args(argv)
    start = time.perf_counter()
    profile = args.profile or ("smoke" if args.tiny else "paper")
    overhead = args.overhead_s if args.overhead_s is not None else (60.0 if args.tiny else 150.0)
    experiments = [e for e in args.experiments.split(",") if e]
    try:  # unknown names fail here, before anything runs
        parallel_time_limits(0, experiments, overhead_s=0)
    except ValueError as exc:
        p.error(str(exc))
    data = args.data or os.environ.get("ISBI2012_DIR") or str(ROOT / ".device" / "isbi2012")
    if not Path(data).is_dir():
        print(f"gpu_session: no ISBI 2012 folder at {data!r}. Pass --data, set ISBI2012_DIR, "
              "or carry .device/isbi2012 (bash bench/prepare_device.sh).", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="gpu_session_logs_")) / "logs"
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [
               q for q in os.environ.get("PYTHONPATH", "").split(os.pathsep) if q])}
    env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)  # gpu_bench sets its cap itself
    from keras_unets.io import atomic_write_text
    from keras_unets.reproduce import _commit

    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "deadline_s": args.deadline_s, "profile": profile, "data": data,
            "commit": _commit()}
    stages = []
    reserve = 20.0  # the last SUMMARY.md, packing, session.md
    end = start + args.deadline_s - reserve

    def left():
        return end - time.perf_counter()

    def record(stage):
        stages.append(stage)
        atomic_write_text(out / "session.md", _markdown(meta, stages))
        pack_tree(logs, out / "logs.tar.gz", logs.parent)
        print(f"gpu_session: {json.dumps(stage)}", flush=True)

    def log(msg):
        print(f"gpu_session: {msg}", flush=True)

    tiny = ["--tiny"] if args.tiny else []
    steps = [] if args.train_steps is None else ["--train-steps", str(args.train_steps)]
    caps = [] if args.cap_configs is None else ["--cap-configs", args.cap_configs]

    def bench_cmd(stage, extra, budget):
        return [sys.executable, ROOT / "bench" / "gpu_bench.py", *tiny, *extra, *steps,
                "--out", out / stage, "--budget-s", f"{0.8 * budget:.0f}",
                "--timeout", f"{max(60.0, budget - 10):.0f}"]

    running = []
    counter = itertools.count(1)

    def launch(name, cmd, *, kill_at, limit_min=None):
        log(f"start {name}: $ {' '.join(str(c) for c in cmd)}")
        log_name = f"{next(counter):02d}-{name.replace(' ', '_').replace('-', '')}.log"
        running.append(Stage(name, cmd, env=env, log_path=logs / log_name, kill_at=kill_at,
                             limit_min=limit_min))

    # 1. issue 8: every network trained under the 6 GiB cap at batch 1 float32
    #    and batch 2 mixed_float16, all configurations at once
    if args.bench_share > 0:
        budget = args.bench_share * args.deadline_s
        launch("gpu_bench --no-speed", bench_cmd("gpu_cap", ["--no-speed", "--jobs", "0", *caps], budget),
               kill_at=min(end, time.perf_counter() + budget))
    # 2. issue 6: the paper profile, every experiment at once, each sized to the deadline
    limits = parallel_time_limits(left(), experiments, overhead_s=overhead)
    for exp in experiments:
        if limits[exp] is None:
            record({"stage": f"reproduce {exp}", "limit_min": None, "seconds": None,
                    "status": SKIPPED})
            continue
        launch(f"reproduce {exp}",
               [sys.executable, "-m", "keras_unets", "reproduce", exp, "--profile", profile,
                "--time-limit", f"{limits[exp]:g}", "--data", data, "--results", args.results],
               kill_at=end, limit_min=limits[exp])
    while running:
        time.sleep(0.5)
        now = time.perf_counter()
        for st in [s for s in running if s.poll(now) is not None]:
            running.remove(st)
            stage = {"stage": st.name, "limit_min": st.limit_min, "seconds": st.seconds,
                     "status": st.status}
            if st.name.startswith("reproduce"):
                stage["files_packed"] = pack_results(args.results, profile,
                                                     out / f"results-{profile}.tar.gz")
            if st.status != 0:
                log(f"{st.name} ended with {st.status}; its last lines:\n{st.tail()}")
            record(stage)
    if any(s["stage"].startswith("reproduce") and s["status"] != SKIPPED for s in stages):
        # each run rewrote SUMMARY.md when it ended; once more, from all of them
        status, secs = _run([sys.executable, "-m", "keras_unets", "reproduce", "summary",
                             "--profile", profile, "--results", args.results],
                            timeout=max(5.0, left() + reserve - 10), env=env, log=log)
        packed = pack_results(args.results, profile, out / f"results-{profile}.tar.gz")
        record({"stage": "reproduce summary", "seconds": secs, "status": status,
                "files_packed": packed})
    # 3. with time to spare: the uncapped speed matrix, alone on the device
    if args.bench_share > 0 and left() >= 90:
        launch("gpu_bench --no-cap", bench_cmd("gpu_speed", ["--no-cap"], left()),
               kill_at=end)
        st = running.pop()
        while st.poll(time.perf_counter()) is None:
            time.sleep(0.5)
        if st.status != 0:
            log(f"{st.name} ended with {st.status}; its last lines:\n{st.tail()}")
        record({"stage": st.name, "seconds": st.seconds, "status": st.status})
    log(f"done in {time.perf_counter() - start:.0f} s; results in {out}")
    failed = [s for s in stages if s["status"] not in (0, SKIPPED)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
