#!/usr/bin/env bash
# Run on the development machine before a GPU lease (it needs the
# package index and the ISBI 2012 data): puts what the device scripts need
# into two git-ignored folders that the device call carries:
#   wheels/           Keras 3 and the small dependencies the device image lacks
#                     (bench/fetch_wheels.sh, for the device's Python 3.12)
#   .device/isbi2012  the three ISBI 2012 TIFF volumes (or png/) from $ISBI2012_DIR
# and prints the device call. Usage: ISBI2012_DIR=... bash bench/prepare_device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src="${ISBI2012_DIR:-}"
if [ -z "$src" ] || [ ! -d "$src" ]; then
    echo "prepare_device.sh: ISBI2012_DIR=${src:-<unset>} is not a folder; set it to the" \
         "ISBI 2012 data (train-volume.tif, train-labels.tif, test-volume.tif or png/)." >&2
    exit 2
fi
bash bench/fetch_wheels.sh 3.12
rm -rf .device/isbi2012.part
mkdir -p .device/isbi2012.part
if [ -f "$src/train-volume.tif" ] && [ -f "$src/train-labels.tif" ] && [ -f "$src/test-volume.tif" ]; then
    cp "$src/train-volume.tif" "$src/train-labels.tif" "$src/test-volume.tif" .device/isbi2012.part/
elif [ -d "$src/png" ]; then
    cp -r "$src/png" .device/isbi2012.part/
else
    echo "prepare_device.sh: $src has neither the three TIFF volumes nor png/." >&2
    exit 2
fi
rm -rf .device/isbi2012
mv .device/isbi2012.part .device/isbi2012
du -sh wheels .device
if ! git diff --quiet HEAD -- . ':(exclude)results'; then
    echo "prepare_device.sh: WARNING: uncommitted changes. The call names HEAD's commit," \
         "and the device runs the work tree: commit first, so the two agree." >&2
fi
echo "device call:"
echo "  command:   KERAS_UNETS_GIT_COMMIT=$(git rev-parse HEAD) bash bench/gpu_session.sh --deadline-s 540"
echo "  carry:     [\"wheels\", \".device\"]"
echo "  timeout_s: 590"
