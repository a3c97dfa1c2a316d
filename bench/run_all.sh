#!/usr/bin/env bash
# Run every CPU benchmark script bench/bench_*.py in turn (each writes
# bench/results/*.md). bench/gpu_bench.py is a device script: bench/gpu.sh runs it.
# Usage: bash bench/run_all.sh            (PY=path/to/python to choose the interpreter)
# A failing script is reported and the others still run; the exit status is
# non-zero when any failed.
set -u
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
if [ ! -x "$PY" ]; then PY="$(command -v python3)"; fi
shopt -s nullglob
scripts=(bench/bench_*.py)
if [ ${#scripts[@]} -eq 0 ]; then
    echo "bench/run_all.sh: no bench/bench_*.py scripts found" >&2
    exit 1
fi
failed=()
for script in "${scripts[@]}"; do
    echo "=== $script ($(date -u +%H:%M:%S) UTC)"
    start=$(date +%s)
    if "$PY" "$script"; then
        echo "=== $script: ok in $(( $(date +%s) - start )) s"
    else
        echo "=== $script: FAILED (exit $?)" >&2
        failed+=("$script")
    fi
done
mkdir -p bench/results
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench/run_all.sh: ${#failed[@]} of ${#scripts[@]} failed: ${failed[*]}" >&2
    exit 1
fi
echo "bench/run_all.sh: all ${#scripts[@]} scripts ran; results in bench/results/"
