"""XLA's buffer assignment for a training step (``compiled_training_memory``,
``keras-unets summary --compiled``, ``bench/bench_memory.py``).

The function needs the JAX backend, fixed when Keras is first imported, so
the checks that compile run in a ``KERAS_BACKEND=jax`` subprocess on tiny
models; this process (TensorFlow backend) checks the errors.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_models_jax import _env

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, math
import keras
import numpy as np
from click.testing import CliRunner
assert keras.backend.backend() == "jax", keras.backend.backend()
from keras_unets.cli import main
from keras_unets.models import compiled_training_memory, get_model

out = {}
model = get_model("unet", input_size=32, filters=4, depth=2)
def nbytes(variables):
    return sum(math.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
               for v in variables)
for batch in (1, 2):
    out[f"b{batch}"] = compiled_training_memory(model, batch_size=batch)
opt = keras.optimizers.Adam()
opt.build(model.trainable_variables)
# the model's variables (weights, batch-norm statistics, dropout seed state)
state = nbytes(model.trainable_variables) + nbytes(model.non_trainable_variables)
out["expected_arguments_b1"] = state + nbytes(opt.variables) + 4 * 32 * 32 + 4 * 32 * 32
out["sgd"] = compiled_training_memory(model, batch_size=1, optimizer="sgd_nomomentum")
for bad in ({"batch_size": 0}, {"optimizer": "adadelta"}):
    try:
        compiled_training_memory(model, **bad)
        out[str(bad)] = "no error"
    except ValueError as exc:
        out[str(bad)] = str(exc)
res = CliRunner().invoke(main, ["summary", "unet", "--input-size", "32", "--set", "filters=4",
                                "--set", "depth=2", "--compiled", "--json"])
out["cli_json"] = {"code": res.exit_code, "output": res.output}
res = CliRunner().invoke(main, ["summary", "unet", "--input-size", "32", "--set", "filters=4",
                                "--set", "depth=2", "--compiled",
                                "--dtype-policy", "mixed_float16"])
out["cli_text"] = {"code": res.exit_code, "output": res.output,
                   "policy_after": keras.mixed_precision.global_policy().name}
# UNet 3+ with factorize_skips: the same gradients as the paper's order as
# written, and no up-sampled maps to keep
import jax
kw = dict(input_size=32, filters=4, depth=2, cat_channels=3)
paper, fac = get_model("unet3p", **kw), get_model("unet3p", factorize_skips=True, **kw)
fac.set_weights(paper.get_weights())
x = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
y = (x > 0.5).astype("float32")
grads = []
for m in (paper, fac):
    ntv = [v.value for v in m.non_trainable_variables]
    def loss(tv, m=m, ntv=ntv):
        p, _ = m.stateless_call(tv, ntv, x, training=True)
        return keras.ops.mean(keras.losses.binary_crossentropy(y, p))
    grads.append(jax.grad(loss)([v.value for v in m.trainable_variables]))
out["fac_grad_max_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                               for a, b in zip(*grads))
out["grad_max"] = max(float(np.max(np.abs(np.asarray(a)))) for a in grads[0])
out["fac_compiled"] = compiled_training_memory(fac)
out["paper_compiled"] = compiled_training_memory(paper)
# one step of the compiled executable: a loss, and the weights move
import jax.numpy as jnp
from keras_unets.models import compile_training_step
step, opt, info = compile_training_step(fac, batch_size=2)
loss, tv, _, _ = step([jnp.array(v.value) for v in fac.trainable_variables],
                      [jnp.array(v.value) for v in fac.non_trainable_variables],
                      [jnp.array(v.value) for v in opt.variables], x, [y])
out["step_loss"] = float(loss)
out["step_info"] = info
out["step_weight_moved"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(v.value))))
                               for a, v in zip(tv, fac.trainable_variables))
print("JSON " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def jax_result():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON ")][-1]
    return json.loads(line[5:])


def test_compiled_memory_adds_up(jax_result):
    b1, b2 = jax_result["b1"], jax_result["b2"]
    for r in (b1, b2):
        assert r["total"] == r["arguments"] + r["outputs"] - r["aliased"] + r["temp"]
        assert r["platform"] == "cpu" and r["temp"] > 0
        # the donated state (weights, Adam slots) comes back in place: nearly
        # every output byte is written into an argument's buffer
        assert 0 < r["aliased"] <= r["outputs"] <= 1.05 * r["aliased"]
    # arguments: every weight, the optimizer's variables, one image and one label
    assert b1["arguments"] == jax_result["expected_arguments_b1"]
    assert b2["arguments"] == b1["arguments"] + 2 * 4 * 32 * 32
    assert b2["temp"] > b1["temp"]  # twice the activations
    # plain SGD keeps no slots: fewer arguments than Adam's two per weight
    assert jax_result["sgd"]["arguments"] < b1["arguments"]


def test_compiled_memory_rejects_bad_arguments(jax_result):
    assert "batch_size" in jax_result["{'batch_size': 0}"]
    msg = jax_result["{'optimizer': 'adadelta'}"]
    assert "adadelta" in msg and "adam" in msg


def test_cli_summary_compiled(jax_result):
    res = jax_result["cli_json"]
    assert res["code"] == 0, res["output"]
    info = json.loads(res["output"][res["output"].index("{"):])
    assert info["compiled_memory_bytes"]["total"] == jax_result["b1"]["total"]
    assert info["fits_6gb"] is True and info["memory_bytes"]["total"] > 0
    text = jax_result["cli_text"]
    assert text["code"] == 0, text["output"]
    assert "XLA's buffer assignment for one compiled step on cpu" in text["output"]
    assert "by XLA's buffers on cpu" in text["output"]
    assert "overstates a GPU's mixed-precision need" in text["output"]  # --dtype-policy mixed
    assert text["policy_after"] == "float32"  # --dtype-policy does not leak


def test_compiled_memory_needs_jax():
    import keras

    from keras_unets.cli import main
    from keras_unets.models import compiled_training_memory, get_model

    if keras.backend.backend() == "jax":
        pytest.skip("this process runs the JAX backend")
    model = get_model("unet", input_size=16, filters=2, depth=1)
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=jax"):
        compiled_training_memory(model)
    res = CliRunner().invoke(main, ["summary", "unet", "--input-size", "16", "--set",
                                    "filters=2", "--set", "depth=1", "--compiled"])
    assert res.exit_code != 0
    assert "JAX backend" in res.output and "tensorflow" in res.output


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_memory", ROOT / "bench" / "bench_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_memory_configs():
    bench = _bench()
    assert bench.parse_configs("1:float32, 2:mixed_float16") == [
        (1, "float32"), (2, "mixed_float16")]
    for bad in ("1", "0:float32", "x:float32", "2:"):
        with pytest.raises(ValueError, match="BATCH:POLICY"):
            bench.parse_configs(bad)


def test_bench_memory_tiny_run(tmp_path):
    out = tmp_path / "memory.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_memory.py"), "--models",
         "unet:filters=4+depth=2,unet3p:filters=4+depth=2+factorize_skips=true",
         "--size", "32", "--configs", "1:float32", "--out", str(out)],
        env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    assert len(rows) == 2 and all("| yes |" in r for r in rows), text
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["meta"]["device"].startswith("cpu")
    for row in data["rows"]:
        assert row["compiled"]["total"] > 0 and row["estimate"]["total"] > 0


def test_factorize_skips_on_jax(jax_result):
    # the same gradients as the paper's order as written, and fewer buffers
    assert jax_result["grad_max"] > 0
    assert jax_result["fac_grad_max_diff"] <= 1e-5 * max(1.0, jax_result["grad_max"])
    fac, paper = jax_result["fac_compiled"], jax_result["paper_compiled"]
    assert fac["arguments"] == paper["arguments"]  # same weights and state
    assert fac["total"] < paper["total"]  # the up-sampled maps are not kept


def test_compile_training_step_runs(jax_result):
    assert jax_result["step_loss"] > 0
    assert jax_result["step_weight_moved"] > 0
    info = jax_result["step_info"]
    assert info["platform"] == "cpu"
    assert info["memory"]["total"] > jax_result["fac_compiled"]["total"]  # batch 2, not 1
