"""Saved models load in a fresh interpreter after ``import keras_unets``.

Every registered model name, tiny and compiled as :mod:`keras_unets.training`
compiles it (the paper profile's loss, so UNet++ with BCE + Dice, UNet 3+
with logits or with its classification-guided module), and every loss the
training code can make, is saved to ``.keras`` here and loaded in ONE fresh
subprocess with ``keras.saving.load_model(p, safe_mode=True)`` and with
:func:`keras_unets.load_model`; the predictions must be the original's.
Plus the errors of :func:`keras_unets.load_model` (missing path, a file that
is not a ``.keras`` archive, a folder without a checkpoint), from the Python
API and through ``keras-unets predict`` (no traceback).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras
from click.testing import CliRunner  # noqa: E402

import keras_unets  # noqa: E402
from keras_unets.cli import main  # noqa: E402
from keras_unets.data import write_stack  # noqa: E402
from keras_unets.models import MODEL_NAMES, get_model  # noqa: E402
from keras_unets.training.config import resolve_config  # noqa: E402
from keras_unets.training import LOSS_NAMES, compile_model, load_run_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: Modules that ``import keras_unets`` may load (no builders, training or data pipelines).
LIGHT_MODULES = {"keras_unets", "keras_unets.saving", "keras_unets.models", "keras_unets.models.layers",
                 "keras_unets.losses"}

FRESH_LOAD = """
import json, sys
import numpy as np
import keras, keras_unets

def outputs(model, x):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(x, training=False))]

def loss_names(model):
    return sorted(type(v).__name__ for v in keras.tree.flatten(model.loss))

report = {"modules": sorted(m for m in sys.modules if m.split(".")[0] == "keras_unets"),
          "registered": sorted(k for k in keras.saving.get_custom_objects()
                               if k.startswith("keras_unets>")),
          "models": {}}
items = json.loads(sys.argv[1])
# keras.saving.load_model of every file first: nothing but the bare import
# may have registered the custom objects
for item in items:
    model = keras.saving.load_model(item["path"], safe_mode=True)
    x, expected = np.load(item["x"]), np.load(item["y"])
    report["models"][item["name"]] = {
        "keras": [float(np.max(np.abs(a - b))) for a, b in zip(outputs(model, x), expected.values())]}
for item in items:
    model = keras_unets.load_model(item["path"])
    x, expected = np.load(item["x"]), np.load(item["y"])
    report["models"][item["name"]].update(
        ours=[float(np.max(np.abs(a - b))) for a, b in zip(outputs(model, x), expected.values())],
        outputs=list(model.output_names), losses=loss_names(model))
print("REPORT" + json.dumps(report))
"""


def _tiny(name, loss=None):
    """The registered model ``name``, tiny, compiled as training compiles it."""
    config = resolve_config("paper", name)
    if loss is not None:
        config.update(loss=loss, from_logits=loss == "bce_logits")
        config["model_kwargs"]["output_activation"] = None if loss == "bce_logits" else "auto"
    kwargs = {**config["model_kwargs"], "filters": 4, "depth": 2,
              "input_size": 60 if name == "unet_valid" else 32}
    if "dropout_levels" in kwargs:
        kwargs["dropout_levels"] = (-2, -1)
    keras.utils.set_random_seed(0)
    model = get_model(name, **kwargs)
    compile_model(model, config, total_steps=10)
    return model


def _outputs(model, x):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(x, training=False))]


def _loss_names(model):
    return sorted(type(v).__name__ for v in keras.tree.flatten(model.loss))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``{key: (model, item for FRESH_LOAD)}`` for every model name and loss."""
    root = tmp_path_factory.mktemp("saved")
    variants = {name: (name, None) for name in MODEL_NAMES}
    variants.update({f"unet+{loss}": ("unet", loss) for loss in LOSS_NAMES})
    out = {}
    rng = np.random.default_rng(0)
    for key, (name, loss) in variants.items():
        model = _tiny(name, loss)
        x = rng.random((1,) + tuple(model.input_shape[1:]), "float32")
        path = root / f"{key}.keras"
        model.save(path)
        np.save(root / f"{key}.x.npy", x)
        np.savez(root / f"{key}.y.npz", *_outputs(model, x))
        out[key] = (model, {"name": key, "path": str(path), "x": str(root / f"{key}.x.npy"),
                            "y": str(root / f"{key}.y.npz")})
    return out


@pytest.fixture(scope="module")
def fresh_report(saved):
    """What one fresh interpreter saw loading every saved file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    items = json.dumps([item for _, item in saved.values()])
    proc = subprocess.run([sys.executable, "-c", FRESH_LOAD, items], capture_output=True,
                          text=True, env=env, timeout=600, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")][-1]
    return json.loads(line[len("REPORT"):])


def test_every_model_loads_in_a_fresh_interpreter(saved, fresh_report):
    assert set(fresh_report["models"]) == set(saved)
    for key, (model, _) in saved.items():
        got = fresh_report["models"][key]
        assert len(got["keras"]) == len(got["ours"]) == len(model.outputs), key
        assert max(got["keras"] + got["ours"]) <= 1e-6, (key, got)
        assert got["outputs"] == list(model.output_names), key
        assert got["losses"] == _loss_names(model), key


def test_variants_keep_their_custom_objects(saved, fresh_report):
    models = fresh_report["models"]
    assert set(models["unetpp_ds"]["losses"]) == {"BCEDiceLoss"}
    assert models["unetpp_ds"]["outputs"] == ["out1", "out2"]
    assert models["unet3p_ds_cgm"]["outputs"] == ["out1", "out2", "out3", "cls"]
    assert models["unet3p_ds"]["losses"] == ["BinaryCrossentropyFromLogits"] * 3
    assert models["unet+hybrid"]["losses"] == ["UNet3PlusHybridLoss"]
    assert models["unet+weighted_bce"]["losses"] == ["WeightedBinaryCrossentropy"]
    layers = {type(layer).__name__ for layer in saved["unet3p_ds_cgm"][0].layers}
    assert {"BilinearUpSampling2D", "ClassGuidance"} <= layers


def test_import_registers_every_custom_object_and_nothing_heavier(fresh_report):
    # this process has imported the builders, training and every loss: all
    # that the package registers anywhere is registered by the bare import
    here = sorted(k for k in keras.saving.get_custom_objects() if k.startswith("keras_unets>"))
    assert fresh_report["registered"] == here
    assert {"keras_unets>BCEDiceLoss", "keras_unets>BilinearUpSampling2D"} <= set(here)
    assert set(fresh_report["modules"]) <= LIGHT_MODULES, fresh_report["modules"]


def test_lazy_attributes_still_work():
    from keras_unets.inference.predict import predict_tiled
    from keras_unets.training import evaluate_run, train

    assert keras_unets.train is train
    assert keras_unets.evaluate_run is evaluate_run
    assert keras_unets.predict_tiled is predict_tiled
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        keras_unets.nope  # noqa: B018


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never trained
def test_load_model_takes_a_run_folder(saved, tmp_path):
    model, item = saved["unetpp_ds"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(Path(item["path"]).read_bytes())
    x = np.load(item["x"])
    for loaded in (keras_unets.load_model(run), load_run_model(run, "best"),
                   keras_unets.load_model(run / "best.keras", compile=False)):
        for a, b in zip(_outputs(loaded, x), _outputs(model, x)):
            np.testing.assert_allclose(a, b, atol=1e-6)
    assert keras_unets.load_model(run).compiled
    assert not keras_unets.load_model(run, compile=False).compiled
    with pytest.raises(FileNotFoundError,
                       match=r"No checkpoint .*last\.keras: the folder holds best\.keras"):
        keras_unets.load_model(run, checkpoint="last")


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"No model at .*missing\.keras: looked for a \.keras file or a run folder"):
        keras_unets.load_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match=r"bad\.keras exists but is not a Keras \.keras model "
                                         r"archive \(received 11 bytes, not a zip\); pass a "
                                         r"\.keras file saved by keras-unets or a run folder "
                                         r"holding best\.keras"):
        keras_unets.load_model(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError,
                       match=r"No checkpoint .*empty.best\.keras: the folder holds no \.keras file"):
        keras_unets.load_model(empty)
    with pytest.raises(ValueError, match=r"checkpoint must be one of \['best', 'last'\]"):
        keras_unets.load_model(empty, checkpoint="first")
    # a zip that is not a Keras archive: Keras' reason, with the file named
    import zipfile

    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"Could not load the model in .*other\.keras: "):
        keras_unets.load_model(other)


def test_predict_command_shows_load_errors_without_traceback(saved, tmp_path):
    img = tmp_path / "img.png"
    write_stack(img, np.zeros((32, 32), np.uint8))
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        tmp_path / "missing.keras": "No model at",
        bad: "exists but is not a Keras .keras model archive (received 11 bytes, not a zip)",
        empty: "the folder holds no .keras file",
    }
    for path, message in cases.items():
        res = CliRunner().invoke(main, ["predict", str(path), str(img), "--out",
                                        str(tmp_path / "o")])
        assert res.exit_code == 1, res.output
        assert message in res.output
        assert "Traceback" not in res.output and res.exception is not None
        assert isinstance(res.exception, SystemExit)
    # a run folder works as the checkpoint: its best.keras
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(Path(saved["unet"][1]["path"]).read_bytes())
    res = CliRunner().invoke(main, ["predict", str(run), str(img), "--out", str(tmp_path / "p"),
                                    "--tile", "32"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["checkpoint"] == str(run)
    assert (tmp_path / "p" / "masks.tif").exists()
