#!/usr/bin/env bash
# Download, on a machine with package-index access, the wheels that the GPU
# device scripts (bench/gpu.sh, bench/gpu_session.sh) install there: Keras 3
# and the two small dependencies the device image lacks. The image (its
# package list in ../.library/device/KINDS.md, read 2026-11-17) has JAX,
# numpy, scipy, opencv-python-headless, matplotlib, click, tifffile, tqdm,
# tensorboard, h5py, rich, absl-py, ml-dtypes and packaging, but neither
# TensorFlow nor Keras, namex or optree; carrying only what is missing keeps
# the image's own versions of the rest (bench/device_env.sh checks the
# imports and names what is missing). wheels/ is git-ignored: pass it in the
# device call's `carry` list.
# Usage: bash bench/fetch_wheels.sh [PYTHON_VERSION]  (default 3.12, the device's)
set -euo pipefail
cd "$(dirname "$0")/.."
pyver="${1:-3.12}"
PY="${PYTHON:-python3}"
mkdir -p wheels
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d wheels "keras==3.15.1" namex optree
ls -l wheels
