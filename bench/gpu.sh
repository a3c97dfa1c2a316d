#!/usr/bin/env bash
# Device script for a GPU session (JAX backend): step rate, peak memory and the
# 6 GB-cap training check of the three networks (bench/gpu_bench.py).
#
# The device machine has JAX but neither TensorFlow nor Keras: Keras 3 and the
# pure-Python dependencies it lacks (e.g. namex, optree, rich, h5py, absl-py,
# markdown-it-py, mdurl, pygments) are installed from the carried wheels in
# wheels/ at the repository root (no network there). keras_unets itself runs
# from the source tree (PYTHONPATH), so TensorFlow is never needed.
#
# Usage (from anywhere):  bash bench/gpu.sh [gpu_bench.py options]
#   e.g. a short device check that fits a few minutes:
#   bash bench/gpu.sh --steps 10 --train-steps 200 --budget-s 420
# Results go to $OUT/gpu (the device's output folder) when OUT is set, else
# bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

shopt -s nullglob
wheels=(wheels/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    echo "gpu.sh: installing ${#wheels[@]} carried wheel(s) from wheels/ (--no-deps)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "${wheels[@]}"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing=$("$PY" - <<'PY'
import importlib
names = ["jax", "numpy", "keras", "keras_unets.models"]
bad = []
for n in names:
    try:
        importlib.import_module(n)
    except Exception as exc:  # noqa: BLE001
        bad.append(f"{n}: {type(exc).__name__}: {exc}")
print("\n".join(bad))
PY
)
if [ -n "$missing" ]; then
    echo "gpu.sh: cannot import what the benchmark needs:" >&2
    echo "$missing" >&2
    echo "Put Keras 3 and its missing dependencies as wheels in wheels/ " \
         "(bash bench/fetch_wheels.sh on a machine with the package index; carry wheels/)." >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__)"

if [ -n "${OUT:-}" ]; then
    exec "$PY" bench/gpu_bench.py --out "$OUT/gpu" "$@"
fi
exec "$PY" bench/gpu_bench.py "$@"
