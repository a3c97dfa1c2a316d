"""The builders on the JAX backend (a subprocess with ``KERAS_BACKEND=jax``).

The backend is fixed when Keras is first imported, so the JAX run needs its
own interpreter: it builds each tiny model, does one ``fit`` step on 2 random
samples (XLA-compiled by the JAX trainer), predicts (direct calls, op by op:
a second compilation would double the time) and checks a ``.keras`` round
trip, then prints one JSON line that the test reads.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, os, sys, tempfile
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from keras_unets.models import get_model, main_output_name, prune_unetpp

    CONFIGS = {
        "unet_valid": dict(input_size=60, filters=4, depth=2),
        "unetpp_ds": dict(input_size=32, filters=4, depth=2),
        "unet3p_ds_cgm": dict(input_size=32, filters=4, depth=2),
    }
    out = {}
    rng = np.random.default_rng(0)
    for name, kw in CONFIGS.items():
        keras.utils.set_random_seed(0)
        model = get_model(name, **kw)
        names = list(model.output_names)
        shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
        x = rng.random((2,) + tuple(model.input_shape[1:]), dtype=np.float32)
        ys = {n: (rng.random((2,) + tuple(s[1:])) > 0.5).astype("float32")
              for n, s in zip(names, shapes)}
        if "cls" in ys:
            ys["cls"] = np.tile(np.array([[0.0, 1.0]], "float32"), (2, 1))
        y = ys if len(names) > 1 else ys[names[0]]
        model.compile(optimizer="adam", loss="binary_crossentropy")
        before = [np.array(w) for w in model.get_weights()]
        hist = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        moved = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        # direct calls run op by op: no second XLA compilation on a tiny model
        pred = [np.asarray(p) for p in keras.tree.flatten(model(x, training=False))]
        path = os.path.join(tempfile.mkdtemp(), name + ".keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        pred2 = [np.asarray(p) for p in keras.tree.flatten(loaded(x, training=False))]
        out[name] = {
            "loss": float(hist.history["loss"][0]),
            "moved": moved,
            "shapes": [list(p.shape) for p in pred],
            "finite": bool(all(np.all(np.isfinite(p)) for p in pred)),
            "max_diff": float(max(np.max(np.abs(a - b)) for a, b in zip(pred, pred2))),
            "main": main_output_name(model),
        }
        if name == "unetpp_ds":
            out[name]["pruned_params"] = int(prune_unetpp(model, 1).count_params())
    print("JSON " + json.dumps(out))
""")


def _env():
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # JAX compiles every weight initialiser and step per shape: on 2 CPU cores
    # that is most of the run. A persistent compilation cache (in pytest's own
    # ignored cache folder) makes every run after the first take seconds.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    return env


def test_tiny_models_build_step_predict_on_jax():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")][-1]
    res = json.loads(line[5:])
    # depth 2, valid padding: 60 -> 20 (see test_models_common.py)
    assert res["unet_valid"]["shapes"] == [[2, 20, 20, 1]]
    assert res["unetpp_ds"]["shapes"] == [[2, 32, 32, 1]] * 2
    assert res["unet3p_ds_cgm"]["shapes"] == [[2, 32, 32, 1]] * 3 + [[2, 2]]
    assert res["unetpp_ds"]["main"] == "out2" and res["unet3p_ds_cgm"]["main"] == "out1"
    # L1 of a depth-2, 4-filter UNet++: X00 (1->4, 4->4), X10 (4->8, 8->8),
    # up 8->4 (2x2), X01 (8->4, 4->4), head 4->1:
    # 40+148 + 296+584 + 132 + 292+148 + 5 = 1645
    assert res["unetpp_ds"]["pruned_params"] == 1645
    for name, r in res.items():
        assert r["finite"] and r["moved"] > 0, (name, r)
        assert r["loss"] == r["loss"], name  # not NaN
        assert r["max_diff"] < 1e-5, (name, r["max_diff"])


@pytest.mark.slow
def test_gpu_bench_tiny_runs_end_to_end_on_cpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--tiny", "--out",
         str(tmp_path), "--train-steps", "2", "--timeout", "400", "--budget-s", "900"],
        env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert [(r["policy"], r["status"]) for r in data["speed"]] == [
        ("float32", "ok"), ("mixed_float16", "ok")]
    assert all(r["steps_per_s"] > 0 and r["estimate_bytes"] > 0 for r in data["speed"])
    assert [r["status"] for r in data["cap"]] == ["ok"]
    assert data["cap"][0]["steps"] == 2
    md = (tmp_path / "gpu_bench.md").read_text()
    assert "unet3p_ds_cgm" in md and "Training under a 6 GiB cap" in md
