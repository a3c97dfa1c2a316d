# Sourced by the device scripts (bench/gpu.sh, bench/gpu_session.sh) from the
# repository root: installs the carried wheels (wheels/, no network on the
# device), selects the JAX backend and checks that what the scripts need
# imports. PY is the Python to use.
# DEVICE_WHEELS: another folder of wheels (default wheels/; the tests point it
# at an empty one, as the wheels here are built for the device's Python).
shopt -s nullglob
wheel_dir="${DEVICE_WHEELS:-wheels}"
wheels=("$wheel_dir"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
    echo "$(basename "$0"): installing ${#wheels[@]} carried wheel(s) from $wheel_dir/ (--no-deps)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "${wheels[@]}"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

missing=$("$PY" - <<'PY'
import importlib
names = ["jax", "numpy", "scipy", "cv2", "tifffile", "click", "matplotlib", "keras",
         "keras_unets.models", "keras_unets.training", "keras_unets.report.pipeline"]
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
    echo "$(basename "$0"): cannot import what it needs:" >&2
    echo "$missing" >&2
    echo "Put Keras 3 and its missing dependencies as wheels in wheels/ " \
         "(bash bench/fetch_wheels.sh on a machine with the package index; carry wheels/)." >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__)"

