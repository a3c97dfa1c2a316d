#!/usr/bin/env bash
# One device lease, one command: bench/gpu_session.py (the 6 GiB training check
# of issue 8, then the paper profile of issue 6 for as many experiments as the
# deadline allows, then the speed matrix with any time left; one at a time).
#
# Before the lease, on the development machine: bash bench/prepare_device.sh
# (the carried wheels in wheels/ and the data in .device/isbi2012). Then one
# device call, e.g.
#   command: KERAS_UNETS_GIT_COMMIT=<sha> bash bench/gpu_session.sh --deadline-s 540
#   carry:   ["wheels", ".device"]      timeout_s: 590
# Everything comes back under $OUT: gpu-run.md, gpu-run.log, gpu_cap/ and
# gpu_speed/ (gpu_bench.json, .md), logs.tar.gz (each stage's output), results-paper.tar.gz (results/paper
# without checkpoints: tar xzf results-paper.tar.gz -C results/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/gpu-run.log") 2>&1
fi

source bench/device_env.sh

exec "$PY" bench/gpu_session.py "$@"
