#!/usr/bin/env bash
# Download, on a machine with package-index access, the wheels that the GPU
# device script (bench/gpu.sh) installs there: Keras 3 and the small pure-Python
# dependencies the device image lacks (it has JAX, numpy, scipy, opencv, but no
# TensorFlow or Keras). wheels/ is git-ignored: pass it in the device call's
# `carry` list. Usage: bash bench/fetch_wheels.sh [PYTHON_VERSION]  (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
pyver="${1:-3.12}"
PY="${PYTHON:-python3}"
mkdir -p wheels
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d wheels "keras==3.15.1" namex optree rich h5py absl-py markdown-it-py mdurl pygments \
    ml_dtypes packaging tifffile tqdm
ls -l wheels
