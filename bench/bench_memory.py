"""Benchmark: the training-memory estimate against XLA's buffer assignment.

For issue 8's goal configurations (each network at 512 x 512: batch 1 in
float32, batch 2 in ``mixed_float16``; Adam) and UNet 3+ with its skips
computed without its up-sampled maps (``factorize_skips=True``, the paper
profile's), this script prints side by side

* ``estimate_training_memory`` (``keras-unets summary``): weights, gradients,
  Adam slots and every layer output, counted from the shapes;
* ``compiled_training_memory`` (``keras-unets summary --compiled``): XLA's
  buffer assignment for the jitted training step (forward, backward, Adam
  update, state donated), compiled by JAX for this machine's device.

Each configuration runs in its own ``KERAS_BACKEND=jax`` subprocess (the
backend and the dtype policy are per process). On a CPU the XLA figure is
what XLA's CPU compiler needs: it fuses and schedules differently from XLA on
a GPU, and it computes float16 convolutions in float32, so the
``mixed_float16`` rows are not a GPU prediction. On a device machine the same
script gives the GPU's buffer assignment (see bench/gpu_session.py).

Run: ``.venv/bin/python bench/bench_memory.py [--models unet_report,...]``
Results: ``bench/results/memory.md`` (``--out`` to change).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_unets.io import atomic_write_text  # noqa: E402

DEFAULT_MODELS = "unet_report,unetpp_ds,unet3p,unet3p:factorize_skips=true"
DEFAULT_CONFIGS = "1:float32,2:mixed_float16"
CARD = 6 * 1024 ** 3
MIB = 1024 ** 2

WORKER = """
import json, sys, time
import keras
from keras_unets.models import (compiled_training_memory, estimate_training_memory,
                                get_model, parse_model_spec)
spec, size, batch, policy = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keras.mixed_precision.set_global_policy(policy)
name, kwargs = parse_model_spec(spec)
model = get_model(name, input_size=size, **kwargs)
est = estimate_training_memory(model, batch_size=batch, optimizer="adam", dtype_policy=policy)
t0 = time.perf_counter()
xla = compiled_training_memory(model, batch_size=batch, optimizer="adam")
compile_s = time.perf_counter() - t0
print("RESULT " + json.dumps({"params": int(model.count_params()), "estimate": est,
                              "compiled": xla, "compile_s": compile_s}))
"""


def parse_configs(text):
    """``"1:float32,2:mixed_float16"`` -> ``[(1, "float32"), (2, "mixed_float16")]``."""
    out = []
    for item in text.split(","):
        batch, sep, policy = item.strip().partition(":")
        if not sep or not batch.isdigit() or int(batch) < 1 or not policy:
            raise ValueError(f"--configs takes BATCH:POLICY items, e.g. "
                             f"'1:float32,2:mixed_float16'. Received: {text!r}")
        out.append((int(batch), policy))
    return out


def run_worker(code, args, backend, timeout):
    """Run ``code`` in a fresh interpreter with ``KERAS_BACKEND=backend``.

    Returns the JSON of its ``RESULT `` line, or ``{"error": ...}`` with the
    exit status and the last lines of its output.
    """
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def measure(spec, size, batch, policy, timeout):
    """Run the worker for one configuration; its result dict, or an error dict."""
    return run_worker(WORKER, [spec, size, batch, policy], "jax", timeout)


def markdown(rows, meta):
    lines = [
        "Estimate (`keras-unets summary`) against XLA's buffer assignment for one "
        "compiled training step (`keras-unets summary --compiled`), Adam, BCE.",
        f"Machine: {meta['machine']}; XLA device: {meta['device']}; "
        f"JAX {meta['jax']}, Keras {meta['keras']}, Python {meta['python']}.",
        f"Command: `{meta['command']}`",
        "",
        "| model | input | batch | policy | parameters | estimate (MiB) | XLA (MiB) "
        "| XLA / estimate | XLA within 6 GiB? | compile (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        head = f"| `{r['model']}` | {r['size']} | {r['batch']} | {r['policy']} "
        if "error" in r:
            lines.append(head + f"| - | - | - | - | - | {r['error']} |")
            continue
        est, xla = r["estimate"]["total"], r["compiled"]["total"]
        lines.append(
            head + f"| {r['params']:,} | {est / MIB:,.0f} | {xla / MIB:,.0f} | "
            f"{xla / est:.2f}x | {'yes' if xla <= CARD else '**no**'} | "
            f"{r['compile_s']:.1f} |")
    lines += ["", "XLA = arguments + outputs - aliased (donated state) + temporaries. "
              "Not counted by either: the allocator's pool and fragmentation, "
              "convolution-autotuning scratch, the CUDA context."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="comma-separated model specs (name[:key=value[+key=value]])")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="BATCH:POLICY items")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--timeout", type=int, default=600, help="seconds per configuration")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "memory.md"))
    args = p.parse_args(argv)
    configs = parse_configs(args.configs)
    env = dict(os.environ, KERAS_BACKEND="jax")
    probe = subprocess.run(
        [sys.executable, "-c", "import jax, keras; d = jax.devices()[0]; "
         "print(jax.__version__, keras.__version__, d.platform, "
         "getattr(d, 'device_kind', d))"],
        env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit("bench_memory.py needs JAX (pip install jax): "
                 + probe.stderr.strip().splitlines()[-1])
    jax_v, keras_v, plat, kind = probe.stdout.split()[-4:]
    meta = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
            "device": f"{plat} ({kind})", "jax": jax_v, "keras": keras_v,
            "python": platform.python_version(),
            "command": " ".join(["python", "bench/bench_memory.py", *(argv if argv is not None
                                                                       else sys.argv[1:])])}
    rows = []
    for spec in [m.strip() for m in args.models.split(",") if m.strip()]:
        for batch, policy in configs:
            t = time.perf_counter()
            r = measure(spec, args.size, batch, policy, args.timeout)
            r.update(model=spec, size=args.size, batch=batch, policy=policy)
            rows.append(r)
            status = r.get("error") or (f"estimate {r['estimate']['total'] / MIB:,.0f} MiB, "
                                        f"XLA {r['compiled']['total'] / MIB:,.0f} MiB")
            print(f"{spec} b{batch} {policy}: {status} ({time.perf_counter() - t:.0f} s)",
                  flush=True)
    text = markdown(rows, meta)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    atomic_write_text(str(Path(args.out).with_suffix(".json")),
                      json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
