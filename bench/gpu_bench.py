"""GPU benchmark (JAX backend): step rate and peak memory of the three networks,
and whether they train under the report's 6 GB card.

The report trained on a GTX 1060 with 6 GB and had to use batch 1 for UNet++.
This script measures, on the device it runs on (one subprocess per
configuration, so that every peak-memory figure belongs to one model):

1. **speed**: for each model at 512x512, batch 1 and 2, ``float32`` and
   ``mixed_float16``: median training-step time over ``--steps`` steps after
   ``--warmup`` steps (the first includes XLA compilation), steps/s, and the
   peak device memory ``jax.devices()[0].memory_stats()["peak_bytes_in_use"]``
   (``XLA_PYTHON_CLIENT_PREALLOCATE=false``, so the figure is what was used,
   not a preallocated pool), next to ``estimate_training_memory``;
2. **6 GB cap**: each model trains ``--train-steps`` steps (Adam) in each
   ``--cap-configs`` configuration (default batch 1 in float32 and batch 2
   in ``mixed_float16``, the issue's two goals) with
   ``XLA_PYTHON_CLIENT_MEM_FRACTION = 6 GiB / total device memory``: "ok"
   with its step rate and peak, or "OOM". ``--no-speed`` runs only these
   (the short device check: they time the steps too).

Data are random tiles (speed and memory do not depend on the pixel values).
Results: ``<out>/gpu_bench.json`` and ``<out>/gpu_bench.md`` (written after
every configuration, so a run cut short keeps what it measured).

Run on the device with ``bash bench/gpu.sh``; on a CPU machine,
``KERAS_BACKEND=jax python bench/gpu_bench.py --tiny`` runs the whole plumbing
with tiny models in about a minute. Without a GPU and without ``--tiny`` it
does nothing (so ``make bench`` never overwrites GPU results with CPU ones).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAP_GIB = 6.0
# the last entry: UNet 3+ as the paper profile builds it (factorize_skips:
# the same function and weights without the up-sampled skip maps), which
# fits when the paper's order as written does not. A model entry is a
# registry name, optionally with builder arguments:
# "name:key=value[+key=value]" (keras_unets.models.parse_model_spec).
DEFAULT_MODELS = "unet_report,unetpp_ds,unet3p,unet3p:factorize_skips=true"
TINY_OVERRIDES = {"filters": 4, "depth": 2}
# --tiny exercises every code path (deep supervision + CGM outputs, both
# policies, the capped run) with the fewest subprocesses: XLA compilation
# dominates on a CPU (~20 s per configuration on 2 shared cores).
TINY_DEFAULTS = {"models": "unet3p_ds_cgm", "batches": "1", "policies": "float32,mixed_float16",
                 "cap_configs": "1:float32"}
DEFAULT_CAP_CONFIGS = "1:float32,2:mixed_float16"
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def parse_cap_configs(text):
    """``"1:float32,2:mixed_float16"`` -> ``[(1, "float32"), (2, "mixed_float16")]``."""
    configs = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        batch, sep, policy = item.partition(":")
        if not sep or not batch.isdigit() or int(batch) < 1 or policy not in POLICIES:
            raise ValueError(f"--cap-configs wants BATCH:POLICY items with a batch >= 1 and a "
                             f"policy in {', '.join(POLICIES)}; received {item!r} in {text!r}")
        configs.append((int(batch), policy))
    return configs


# --------------------------------------------------------------------------
# Worker (runs in its own process with the JAX backend)
# --------------------------------------------------------------------------
def _worker(args):
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np

    from keras_unets.models import estimate_training_memory, get_model, parse_model_spec

    keras.mixed_precision.set_global_policy(args.policy)
    keras.utils.set_random_seed(0)
    name, extra = parse_model_spec(args.model)
    overrides = {**json.loads(args.overrides), **extra}
    model = get_model(name, input_size=args.size, **overrides)
    names = list(model.output_names)
    loss = {n: "binary_crossentropy" for n in names}
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=loss if len(names) > 1 else "binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((args.batch,) + tuple(model.input_shape[1:]), dtype=np.float32)
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    ys = {n: (rng.random((args.batch,) + tuple(s[1:])) > 0.5).astype("float32")
          for n, s in zip(names, shapes)}
    y = ys if len(names) > 1 else ys[names[0]]

    def step():
        out = model.train_on_batch(x, y)  # returns host floats: synchronises
        return float(out[0] if isinstance(out, list) else out)

    result = {"model": args.model, "batch": args.batch, "policy": args.policy,
              "size": args.size, "params": int(model.count_params()),
              "device": str(jax.devices()[0]), "platform": jax.devices()[0].platform}
    t0 = time.perf_counter()
    first_loss = step()
    result["first_step_s"] = time.perf_counter() - t0
    for _ in range(max(0, args.warmup - 1)):
        step()
    n = args.steps if args.mode == "speed" else args.train_steps
    times = []
    last_loss = first_loss
    for _ in range(n):
        t = time.perf_counter()
        last_loss = step()
        times.append(time.perf_counter() - t)
    med = statistics.median(times) if times else float("nan")
    result.update({"steps": n, "median_step_s": med,
                   "steps_per_s": 1.0 / med if times else float("nan"),
                   "first_loss": first_loss, "last_loss": last_loss,
                   "loss_finite": bool(np.isfinite(last_loss))})
    stats = jax.devices()[0].memory_stats() or {}
    result["peak_bytes"] = stats.get("peak_bytes_in_use")
    result["bytes_limit"] = stats.get("bytes_limit")
    result["estimate_bytes"] = estimate_training_memory(
        model, batch_size=args.batch, optimizer="adam", dtype_policy=args.policy)["total"]
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------
def _probe(env, timeout):
    code = ("import json, jax; d = jax.devices()[0]; s = d.memory_stats() or {}; "
            "print('PROBE ' + json.dumps({'device': str(d), 'platform': d.platform, "
            "'kind': getattr(d, 'device_kind', ''), 'bytes_limit': s.get('bytes_limit'), "
            "'jax': jax.__version__}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=timeout)
    for line in out.stdout.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    raise RuntimeError(f"JAX probe failed:\n{out.stderr[-2000:]}")


def _total_memory_bytes(probe):
    """Total device memory: nvidia-smi if present, else JAX's limit / 0.75 (its default fraction)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return int(float(out.stdout.splitlines()[0]) * 1024 ** 2)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if probe.get("bytes_limit"):
        return int(probe["bytes_limit"] / 0.75)
    return None


def _run_worker(mode, model, batch, policy, args, env, overrides):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode,
           "--model", model, "--batch", str(batch), "--policy", policy,
           "--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--train-steps", str(args.train_steps), "--overrides", json.dumps(overrides)]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                             timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"model": model, "batch": batch, "policy": policy, "status": "timeout",
                "wall_s": time.perf_counter() - t0}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res["status"] = "ok"
            res["wall_s"] = time.perf_counter() - t0
            return res
    err = out.stderr[-3000:]
    oom = any(s in err for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory"))
    return {"model": model, "batch": batch, "policy": policy,
            "status": "OOM" if oom else f"error (exit {out.returncode})",
            "error_tail": err[-800:], "wall_s": time.perf_counter() - t0}


def _mib(b):
    if b is None:
        return "n/a"
    return f"{b / 1024 ** 2:,.0f}" if b >= 10 * 1024 ** 2 else f"{b / 1024 ** 2:.2f}"


def _markdown(meta, speed, cap):
    lines = [
        "# GPU benchmark: step rate and peak memory (JAX backend)",
        "",
        f"Device: {meta['device']} ({meta['kind'] or meta['platform']}), "
        f"total memory {_mib(meta['total_bytes'])} MiB; JAX {meta['jax']}, "
        f"Keras {meta['keras']}; {meta['date']}. Input {meta['size']}x{meta['size']}, "
        f"Adam, random tiles; {meta['steps']} timed steps after {meta['warmup']} warm-up "
        f"step(s) (the first includes XLA compilation).{' TINY models (CPU check).' if meta['tiny'] else ''}",
        "",
        "## Speed and peak memory",
        "",
        "| model | params | batch | policy | status | first step (s) | median step (s) "
        "| steps/s | peak MiB | estimate MiB | peak / estimate |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in speed:
        ok = r["status"] == "ok"
        ratio = (f"{r['peak_bytes'] / r['estimate_bytes']:.2f}"
                 if ok and r.get("peak_bytes") and r.get("estimate_bytes") else "n/a")
        lines.append(
            f"| {r['model']} | {r.get('params', 0):,} | {r['batch']} | {r['policy']} | "
            f"{r['status']} | {r.get('first_step_s', float('nan')):.2f} | "
            f"{r.get('median_step_s', float('nan')):.4f} | {r.get('steps_per_s', float('nan')):.2f} | "
            f"{_mib(r.get('peak_bytes'))} | {_mib(r.get('estimate_bytes'))} | {ratio} |")
    lines += [
        "",
        f"## Training under a {meta['cap_gib']:g} GiB cap "
        f"(XLA_PYTHON_CLIENT_MEM_FRACTION={meta['fraction'] or 'n/a'})",
        "",
        "| model | batch | policy | steps | status | steps/s | peak MiB | estimate MiB "
        "| fits the estimate's verdict | first loss | last loss |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    cap_bytes = meta["cap_gib"] * 1024 ** 3
    for r in cap:
        ok = r["status"] == "ok"
        est = r.get("estimate_bytes")
        verdict = "n/a" if est is None else (
            "agrees" if (est <= cap_bytes) == ok else "disagrees")
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['policy']} | {r.get('steps', 0)} | "
            f"{r['status']} | {r.get('steps_per_s', float('nan')):.2f} | "
            f"{_mib(r.get('peak_bytes'))} | {_mib(est)} | {verdict} | "
            f"{r.get('first_loss', float('nan')):.4f} | {r.get('last_loss', float('nan')):.4f} |")
    lines += ["", "Estimate = `keras_unets.models.estimate_training_memory` "
              "(weights + gradients + Adam state + every layer output); peak = "
              "`memory_stats()['peak_bytes_in_use']` of the worker process.", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true",
                   help="tiny models (filters 4, depth 2, 32x32), 2 steps: the CPU check")
    p.add_argument("--models", default=None,
                   help=f"comma-separated registry names (default {DEFAULT_MODELS}; "
                        f"tiny: {TINY_DEFAULTS['models']})")
    p.add_argument("--size", type=int, default=None, help="tile size (default 512; tiny 32)")
    p.add_argument("--batches", default=None, help="default 1,2 (tiny: 1)")
    p.add_argument("--policies", default=None, help="default float32,mixed_float16")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 20; tiny 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 3; tiny 1)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="steps under the memory cap (default 300; tiny 3)")
    p.add_argument("--cap-gib", type=float, default=CAP_GIB)
    p.add_argument("--no-cap", action="store_true", help="skip the capped training runs")
    p.add_argument("--no-speed", action="store_true",
                   help="skip the uncapped speed runs (the capped runs time their steps too)")
    p.add_argument("--cap-configs", default=None,
                   help=f"BATCH:POLICY list for the capped runs (default {DEFAULT_CAP_CONFIGS}; "
                        f"tiny: {TINY_DEFAULTS['cap_configs']})")
    p.add_argument("--timeout", type=float, default=300, help="seconds per subprocess")
    p.add_argument("--budget-s", type=float, default=540,
                   help="stop starting new configurations after this many seconds")
    p.add_argument("--out", default=None,
                   help="results folder (default bench/results, tiny: bench/results/tiny)")
    # worker-only
    p.add_argument("--worker", choices=["speed", "train"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--policy", help=argparse.SUPPRESS)
    p.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    tiny = args.tiny
    for key, full in (("models", DEFAULT_MODELS), ("batches", "1,2"),
                      ("policies", "float32,mixed_float16"),
                      ("cap_configs", DEFAULT_CAP_CONFIGS)):
        if getattr(args, key) is None:
            setattr(args, key, TINY_DEFAULTS[key] if tiny else full)
    args.size = args.size or (32 if tiny else 512)
    args.steps = args.steps if args.steps is not None else (2 if tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    args.train_steps = args.train_steps if args.train_steps is not None else (3 if tiny else 300)
    if args.worker:
        args.mode = args.worker
        return _worker(args)

    try:  # a bad list fails before anything runs
        cap_configs = parse_cap_configs(args.cap_configs)
    except ValueError as exc:
        p.error(str(exc))
    from keras_unets.io import atomic_write_json, atomic_write_text

    start = time.perf_counter()
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [
               q for q in os.environ.get("PYTHONPATH", "").split(os.pathsep) if q])}
    env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    probe = _probe(env, args.timeout)
    if probe["platform"] != "gpu" and not tiny:
        print(f"gpu_bench: no GPU visible to JAX ({probe['device']}); nothing to do. "
              "Use --tiny for the CPU check of the plumbing.")
        return 0
    total = _total_memory_bytes(probe) if probe["platform"] == "gpu" else None
    fraction = None if not total else min(1.0, args.cap_gib * 1024 ** 3 / total)
    try:
        from importlib.metadata import version
        keras_version = version("keras")
    except Exception:  # noqa: BLE001 - only for the report line
        keras_version = "?"
    overrides = TINY_OVERRIDES if tiny else {}
    meta = {**probe, "total_bytes": total, "cap_gib": args.cap_gib, "fraction":
            None if fraction is None else round(fraction, 4), "size": args.size,
            "steps": args.steps, "warmup": args.warmup, "tiny": tiny, "keras": keras_version,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out_dir = Path(args.out or (ROOT / "bench" / "results" / ("tiny" if tiny else "")))
    models = [m for m in args.models.split(",") if m]
    batches = [int(b) for b in args.batches.split(",") if b]
    policies = [q for q in args.policies.split(",") if q]
    speed, cap = [], []

    def save():
        atomic_write_json(out_dir / "gpu_bench.json", {"meta": meta, "speed": speed, "cap": cap})
        atomic_write_text(out_dir / "gpu_bench.md", _markdown(meta, speed, cap))

    def over_budget():
        return time.perf_counter() - start > args.budget_s

    def run_each(mode, configs, worker_env, into):
        for model, batch, policy in configs:
            if over_budget():
                print(f"gpu_bench: budget of {args.budget_s:.0f} s spent; skipping the "
                      f"{mode} run of {model} b{batch} {policy}", flush=True)
                continue
            res = _run_worker(mode, model, batch, policy, args, worker_env, overrides)
            into.append(res)
            print(json.dumps(res), flush=True)
            save()

    if not args.no_speed:
        run_each("speed", [(m, b, q) for m in models for b in batches for q in policies],
                 env, speed)
    if not args.no_cap:
        cap_env = dict(env)
        if fraction is not None:
            cap_env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.4f}"
        run_each("train", [(m, b, q) for b, q in cap_configs for m in models], cap_env, cap)
    save()
    print(_markdown(meta, speed, cap))
    failed = [r for r in speed if r["status"] not in ("ok", "OOM")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
