#!/usr/bin/env bash
# Device script for a GPU machine (JAX backend): step rate, peak memory and the
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

source bench/device_env.sh

if [ -n "${OUT:-}" ]; then
    exec "$PY" bench/gpu_bench.py --out "$OUT/gpu" "$@"
fi
exec "$PY" bench/gpu_bench.py "$@"
