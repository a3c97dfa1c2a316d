"""The notebook walkthroughs: built from their sources, executable, stored executed.

``test_notebook_executes_fast`` runs each notebook top to bottom with nbclient in
the CI setting (``KERAS_UNETS_NB_FAST=1``: tiny models, a few training steps),
in a temporary folder, and fails on any cell error. The stored notebooks are
executed in the readable setting by ``python notebooks/build.py --execute``
(``make notebooks-execute``); ``test_stored_notebooks_are_executed`` checks that
this was done.
"""
import base64
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01_unet", "02_unet_plus_plus", "03_unet_3plus", "04_your_own_data"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_build():
    spec = importlib.util.spec_from_file_location("nb_build", ROOT / "notebooks" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _text(value):
    return "".join(value) if isinstance(value, list) else value


def _outputs(nb):
    """``[(cell source, [outputs])]`` of the code cells."""
    return [(_text(c["source"]), c["outputs"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _printed(outputs):
    text = []
    for out in outputs:
        if out["output_type"] == "stream":
            text.append(_text(out["text"]))
        elif out["output_type"] in ("display_data", "execute_result"):
            data = out.get("data", {})
            text.append(_text(data.get("text/markdown", data.get("text/plain", ""))))
    return "".join(text)


def _pngs(nb):
    return [base64.b64decode(_text(out["data"]["image/png"]))
            for _, outs in _outputs(nb) for out in outs
            if out["output_type"] in ("display_data", "execute_result")
            and "image/png" in out.get("data", {})]


# ---------------------------------------------------------------------------
# build.py
# ---------------------------------------------------------------------------
def test_percent_format_parsing_hand_case():
    build = _load_build()
    text = ("import os\n\n# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n"
            "# %%\nx = 1\n\n\ny = 2\n\n# %% A titled cell\nprint(x)\n")
    assert build.parse_percent(text) == [
        ("code", "import os"),
        ("markdown", "# Title\n\nSome *text*."),
        ("code", "x = 1\n\n\ny = 2"),
        ("code", "print(x)"),
    ]
    nb = build.to_notebook(build.parse_percent(text), "demo")
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] == 5
    assert nb["cells"][2]["source"] == ["x = 1\n", "\n", "\n", "y = 2"]
    assert nb["cells"][1]["cell_type"] == "markdown" and "outputs" not in nb["cells"][1]
    assert len({c["id"] for c in nb["cells"]}) == 4
    with pytest.raises(ValueError, match=r"Received: '# %% \[raw\]'"):
        build.parse_percent("# %% [raw]\nx\n")


def test_merge_keeps_outputs_of_unchanged_cells_and_check_ignores_outputs(tmp_path):
    build = _load_build()
    old = build.to_notebook([("code", "a = 1"), ("markdown", "# T"), ("code", "print(a)"),
                             ("code", "b = 2")], "demo")
    for n, cell in enumerate(c for c in old["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = n + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"out {n}\n"]}]
    # "print(a)" edited; a new cell inserted before "b = 2" (which moves)
    new = build.to_notebook([("code", "a = 1"), ("markdown", "# T"), ("code", "print(a + 1)"),
                             ("code", "c = 3"), ("code", "b = 2")], "demo")
    merged = build.merge_outputs(new, old)
    code = [c for c in merged["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == [1, None, None, 3]
    assert [_printed(c["outputs"]) for c in code] == ["out 0\n", "", "", "out 2\n"]
    assert new["cells"][0]["outputs"] == []  # the input is not modified
    # --check compares types and sources only: outputs do not make it stale
    assert build.signature(merged) == build.signature(new) != build.signature(old)


def test_clean_executed_strips_volatile_parts():
    build = _load_build()
    nb = build.to_notebook([("code", "import keras")], "demo")
    nb["metadata"]["language_info"]["version"] = "3.11.2"
    cell = nb["cells"][0]
    cell["metadata"] = {"execution": {"iopub.execute_input": "2025-01-01T00:00:00Z"}}
    cell["outputs"] = [
        {"output_type": "stream", "name": "stderr",
         "text": "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                 "I0000 00:00:1795807949.195764   31293 cudart_stub.cc:31] Could not find cuda drivers\n"},
        {"output_type": "stream", "name": "stderr", "text": "UserWarning: something real\n"},
        {"output_type": "stream", "name": "stdout", "text": "I0000 stays on stdout\n"},
    ]
    clean = build.clean_executed(nb)
    assert clean["metadata"]["language_info"] == build.LANGUAGE_INFO
    assert clean["cells"][0]["metadata"] == {}
    assert [o["text"] for o in clean["cells"][0]["outputs"]] == [
        "UserWarning: something real\n", "I0000 stays on stdout\n"]


def test_notebooks_are_built_and_up_to_date():
    build = _load_build()
    assert [p.stem for p in build.sources()] == NOTEBOOKS
    assert build.main(["--check"]) == 0, "run: python notebooks/build.py"
    # Required/allowed keys from nbformat's v4.5 JSON schema
    # (jupyter/nbformat, nbformat/v4/nbformat.v4.5.schema.json): cells have
    # additionalProperties false; ids match ^[a-zA-Z0-9-_]+$, 1-64 characters.
    keys = {"code": {"id", "cell_type", "metadata", "source", "outputs", "execution_count"},
            "markdown": {"id", "cell_type", "metadata", "source"}}
    for name in NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        assert set(nb) == {"metadata", "nbformat_minor", "nbformat", "cells"}
        assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5
        assert {"name", "display_name"} <= set(nb["metadata"]["kernelspec"])
        for cell in nb["cells"]:
            assert set(cell) == keys[cell["cell_type"]]
            assert re.fullmatch(r"[a-zA-Z0-9\-_]{1,64}", cell["id"])
            assert all(isinstance(line, str) for line in cell["source"])
        assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"])
        code = "\n".join(src for src, _ in _outputs(nb))
        compile(code, name, "exec")  # the notebook's code is valid Python
        # the cells call the package's API (no copies of its code) and read the setting
        assert "from keras_unets" in code and "KERAS_UNETS_NB_FAST" in code
        assert not re.search(r"^\s*(def|class) ", code, re.M), f"{name}: logic belongs in the package"


def test_stored_notebooks_are_executed():
    """The committed notebooks carry outputs of the readable setting (build.py --execute)."""
    for name in NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        cells = _outputs(nb)
        counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
        assert None not in counts, f"{name}: run python notebooks/build.py --execute"
        assert counts == list(range(1, len(counts) + 1)), f"{name}: executed out of order"
        assert not [o for _, outs in cells for o in outs if o["output_type"] == "error"]
        pngs = _pngs(nb)
        assert pngs and all(p.startswith(PNG_MAGIC) for p in pngs), name
        assert "KERAS_UNETS_NB_FAST is unset" in _printed(cells[0][1]), (
            f"{name} was stored in the CI setting; execute without KERAS_UNETS_NB_FAST")


# ---------------------------------------------------------------------------
# Execution (CI setting)
# ---------------------------------------------------------------------------
# what each notebook must show, found in its printed and displayed text
EXPECTED = {
    "01_unet": ["paper U-Net (64-1024 filters): 31,030,593 parameters", "| enc0 |",
                "best threshold", "| V_rand |"],
    "02_unet_plus_plus": ["paper UNet++ with deep supervision: 9,041,700 parameters",
                          "X^{0,4} <- ", "L1:", "L4:", "| V_rand |"],
    "03_unet_3plus": ["paper UNet 3+: 26,970,625 trainable parameters", "hd3_from_hd5_relu",
                      "ClassGuidance", "absent -> max", "| V_rand |"],
    "04_your_own_data": ["sizes: [(144, 256), (160, 224), (192, 160), (208, 176)]",
                         "| U-Net |", "| Otsu |", "classes: 3", "confusion matrix"],
}
# data, augmented pair, sweep, errors (+ heads, pruning; + skips, CGM)
MIN_FIGURES = {"01_unet": 4, "02_unet_plus_plus": 4, "03_unet_3plus": 5,
               "04_your_own_data": 3}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_fast(name, synthetic_isbi_full_dir, tmp_path, monkeypatch):
    """Top to bottom in the CI setting, in a temporary folder; any cell error fails.

    The data: synthetic slices in the ISBI 2012 layout and shape (the
    notebooks show fixed windows of the 512 x 512 slices).
    """
    build = _load_build()
    monkeypatch.setenv("KERAS_UNETS_NB_FAST", "1")
    monkeypatch.setenv("ISBI2012_DIR", str(synthetic_isbi_full_dir))
    monkeypatch.delenv("KERAS_UNETS_NB_RUNS", raising=False)
    nb = build.build_notebook(ROOT / "notebooks" / f"{name}.py")
    executed = build.execute_notebook(nb, cwd=tmp_path, timeout=600)

    import nbformat

    nbformat.validate(nbformat.from_dict(executed))
    cells = _outputs(executed)
    assert all(o["output_type"] != "error" for _, outs in cells for o in outs)
    counts = [c["execution_count"] for c in executed["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))
    text = "".join(_printed(outs) for _, outs in cells)
    assert "KERAS_UNETS_NB_FAST is set" in text
    for needle in EXPECTED[name]:
        assert needle in text, f"{name}: {needle!r} not in the outputs"
    pngs = _pngs(executed)
    assert len(pngs) >= MIN_FIGURES[name] and all(p.startswith(PNG_MAGIC) for p in pngs)
    # the training run went to the working folder, not to notebooks/
    assert list((tmp_path / "_runs").glob("*/best.keras"))
