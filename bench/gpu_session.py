"""One device lease, one command: the 6 GiB check, then the paper profile.

A device lease lends one GPU for about 15 minutes of device time, at most
10 minutes per command. This script does,
inside one deadline (``--deadline-s``), one stage at a time, each in its own
process group (killed with its children at the stage's limit):

1. **issue 8**: ``bench/gpu_bench.py --no-speed``: every network of
   ``--cap-models`` at 512 x 512 trains ``--train-steps`` steps under a
   6 GiB cap, at batch 1 in float32 and at batch 2 in ``mixed_float16``
   (status, step rate and peak memory of each), in at most ``--bench-share``
   of the deadline;
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

One stage at a time, because the first lease (2026-11-28, BENCHMARKS.md) ran
them all at once and lost most of them: eleven processes compiling and
autotuning on one GPU took minutes per first step, and the uncapped
trainings' memory pools starved the others (out-of-memory errors).

``<out>/gpu-run.md`` (rewritten after every stage) lists what ran, with its
limit, wall time and exit status; each stage's own output goes to
``<out>/logs.tar.gz`` (one file: a device call returns at most 8), and the
last lines of a failed stage's output to ``gpu-run.log``. Back on the
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


class Stage:
    """One command running in its own process group, its output in its own log."""

    def __init__(self, name, cmd, *, env, log_path, kill_at):
        self.name, self.kill_at = name, kill_at
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
    lines = [f"# GPU run ({meta['date']})", "",
             f"- deadline {meta['deadline_s']:.0f} s; profile {meta['profile']}; "
             f"data {meta['data']}; commit {meta['commit'] or 'unknown'}",
             ""]
    lines += ["| stage | time limit per arm | wall | status |", "| --- | --- | --- | --- |"]
    for s in stages:
        limit = "–" if s.get("limit_min") is None else f"{s['limit_min']:g} min"
        wall = "–" if s.get("seconds") is None else f"{s['seconds']:.0f} s"
        lines.append(f"| {s['stage']} | {limit} | {wall} | {s['status']} |")
    return "\n".join(lines) + "\n"


#: Networks of the capped stage, in order (batch 1 float32 of every one runs
#: before any batch 2 run). UNet 3+ first as the paper profile builds it
#: (factorize_skips: the paper's function without its up-sampled maps,
#: 4.3 GiB by XLA's CPU buffer assignment), then as the paper writes it
#: (6.6 GiB on the CPU: likely over the cap; bench/bench_memory.py).
CAP_MODELS = "unet_report,unetpp_ds,unet3p:factorize_skips=true,unet3p"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deadline-s", type=float, default=540.0,
                   help="seconds for everything (default 540: one call with timeout_s "
                        "590 and the ~30 s start of 2026-11-28 leave ~4 min of a 15-minute "
                        "lease)")
    p.add_argument("--bench-share", type=float, default=0.55,
                   help="at most this fraction of the deadline for the capped benchmark "
                        "(0: skip it and the speed matrix)")
    p.add_argument("--cap-models", default=CAP_MODELS,
                   help="networks of the capped runs (gpu_bench --models; default "
                        f"{CAP_MODELS}: the paper-order UNet 3+ last, as XLA's CPU buffer "
                        "assignment already puts it over 6 GiB, bench/results/memory.md)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="steps per capped configuration (default: gpu_bench's, 300)")
    p.add_argument("--cap-configs", default=None,
                   help="BATCH:POLICY list of the capped runs (default: gpu_bench's, "
                        "1:float32,2:mixed_float16)")
    p.add_argument("--experiments", default="unet3p,unetpp,unet")
    p.add_argument("--profile", default=None, help="default paper (--tiny: smoke)")
    p.add_argument("--overhead-s", type=float, default=None,
                   help="seconds per experiment beyond training (default 90; tiny 45)")
    p.add_argument("--data", default=None)
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results"
                                                                  / "gpu-run"))
    p.add_argument("--tiny", action="store_true",
                   help="CPU check of the plumbing: gpu_bench --tiny, the smoke profile")
    args = p.parse_args(argv)
    start = time.perf_counter()
    profile = args.profile or ("smoke" if args.tiny else "paper")
    overhead = args.overhead_s if args.overhead_s is not None else (45.0 if args.tiny else 90.0)
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
    logs = Path(tempfile.mkdtemp(prefix="gpu_session_logs_")) / "logs"
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [
               q for q in os.environ.get("PYTHONPATH", "").split(os.pathsep) if q])}
    env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)  # gpu_bench sets its cap itself
    from keras_unets.io import atomic_write_text
    from keras_unets.report.provenance import code_state

    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "deadline_s": args.deadline_s, "profile": profile, "data": data,
            "commit": code_state()["git_commit"]}
    stages = []
    reserve = 10.0  # packing, gpu-run.md
    end = start + args.deadline_s - reserve

    def left():
        return end - time.perf_counter()

    def record(stage):
        stages.append(stage)
        atomic_write_text(out / "gpu-run.md", _markdown(meta, stages))
        pack_tree(logs, out / "logs.tar.gz", logs.parent)
        print(f"gpu_session: {json.dumps(stage)}", flush=True)

    def log(msg):
        print(f"gpu_session: {msg}", flush=True)

    tiny = ["--tiny"] if args.tiny else []
    steps = [] if args.train_steps is None else ["--train-steps", str(args.train_steps)]
    caps = [] if args.cap_configs is None else ["--cap-configs", args.cap_configs]
    models = [] if args.tiny else ["--models", args.cap_models]

    def bench_cmd(stage, extra, budget):
        return [sys.executable, ROOT / "bench" / "gpu_bench.py", *tiny, *extra, *steps,
                "--out", out / stage, "--budget-s", f"{0.8 * budget:.0f}",
                "--timeout", f"{max(60.0, 0.4 * budget):.0f}"]

    counter = itertools.count(1)

    def run_stage(name, cmd, *, timeout, limit_min=None, **extra):
        """Run one stage to its end (killed with its group after ``timeout``), record it."""
        log(f"start {name} (limit {timeout:.0f} s): $ {' '.join(str(c) for c in cmd)}")
        log_name = f"{next(counter):02d}-{name.replace(' ', '_').replace('-', '')}.log"
        st = Stage(name, cmd, env=env, log_path=logs / log_name,
                   kill_at=time.perf_counter() + max(1.0, timeout))
        while st.poll(time.perf_counter()) is None:
            time.sleep(0.5)
        if st.status != 0:
            log(f"{name} ended with {st.status}; its last lines:\n{st.tail()}")
        stage = {"stage": name, "limit_min": limit_min, "seconds": st.seconds,
                 "status": st.status}
        stage.update({k: f() for k, f in extra.items()})
        record(stage)
        return stage

    # 1. issue 8: every network trained under the 6 GiB cap at batch 1 float32
    #    and batch 2 mixed_float16 (step rate and peak memory of each)
    if args.bench_share > 0:
        budget = args.bench_share * args.deadline_s
        run_stage("gpu_bench --no-speed",
                  bench_cmd("gpu_cap", ["--no-speed", *models, *caps], budget),
                  timeout=min(budget, left()))
    # 2. issue 6: the paper profile, as many experiments as the time allows
    for i, exp in enumerate(experiments):
        limit = time_limit_minutes(left(), experiments[i:], overhead_s=overhead)
        if limit is None:
            record({"stage": f"reproduce {exp}", "limit_min": None, "seconds": None,
                    "status": SKIPPED})
            continue
        run_stage(f"reproduce {exp}",
                  [sys.executable, "-m", "keras_unets", "reproduce", exp, "--profile", profile,
                   "--time-limit", f"{limit:g}", "--data", data, "--results", args.results],
                  timeout=left(), limit_min=limit,
                  files_packed=lambda: pack_results(args.results, profile,
                                                    out / f"results-{profile}.tar.gz"))
    # 3. with time to spare: the uncapped speed matrix (batch 1 and 2, both policies)
    if args.bench_share > 0 and left() >= 90:
        run_stage("gpu_bench --no-cap", bench_cmd("gpu_speed", ["--no-cap"], left()),
                  timeout=left())
    log(f"done in {time.perf_counter() - start:.0f} s; results in {out}")
    failed = [s for s in stages if s["status"] not in (0, SKIPPED)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
