"""keras_unets.report.provenance: the provenance record, experiment files, profile choice."""
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from keras_unets.report.provenance import (default_profile, detect_gpu, provenance,
                                            write_experiment)


def test_write_experiment_writes_three_files_atomically(tmp_path):
    prov = provenance("keras-unets reproduce unet --profile smoke")
    metrics = {"x": np.float32(0.5), "arr": np.arange(3), "nan": float("nan"), "p": tmp_path}
    write_experiment(tmp_path / "exp", metrics=metrics, table_md="# T\n", prov=prov)
    m = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    assert m["x"] == 0.5 and m["arr"] == [0, 1, 2] and m["nan"] is None
    assert m["provenance"]["command"] == "keras-unets reproduce unet --profile smoke"
    table = (tmp_path / "exp" / "table.md").read_text()
    assert table.startswith("# T\n") and "keras-unets reproduce unet --profile smoke" in table
    assert json.loads((tmp_path / "exp" / "provenance.json").read_text())["versions"]["numpy"]
    assert not [p for p in (tmp_path / "exp").iterdir() if ".tmp-" in p.name]


def test_provenance_record():
    prov = provenance("cmd")
    v, m = prov["versions"], prov["machine"]
    assert v["python"].count(".") == 2 and v["numpy"] == np.__version__
    assert v["keras_backend"] in ("tensorflow", "jax", "torch", "numpy")
    assert m["cpu_count"] == os.cpu_count()
    assert f"{os.cpu_count()}-core CPU" in m["description"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["date_utc"])
    commit = prov["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)


def test_provenance_commit_named_by_the_variable_wins_over_git(monkeypatch):
    """A device copy of the tree may carry an older .git (the first lease's did):
    the commit the caller names is recorded, and no dirty flag about another commit."""
    monkeypatch.setenv("KERAS_UNETS_GIT_COMMIT", "5350ca3b0d5d")
    prov = provenance("cmd")
    assert prov["git_commit"] == "5350ca3b0d5d" and prov["git_dirty"] is None


def _fake_nvidia_smi(folder, output, rc=0):
    exe = Path(folder) / "nvidia-smi"
    echo = "".join(f"echo '{line}'\n" for line in output.splitlines())  # shell builtins only
    exe.write_text(f"#!/bin/sh\n{echo}exit {rc}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_default_profile_paper_with_gpu_quick_without(tmp_path, monkeypatch):
    monkeypatch.delenv("PROFILE", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    assert detect_gpu() is None
    assert default_profile()[0] == "quick"

    _fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1234)")
    assert detect_gpu() == "NVIDIA H100 80GB HBM3"
    profile, reason = default_profile()
    assert profile == "paper" and "H100" in reason

    _fake_nvidia_smi(tmp_path, "GPU 0: A (UUID: x)\nGPU 1: A (UUID: y)")
    assert detect_gpu() == "2 x A"

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # GPUs hidden
    assert default_profile()[0] == "quick"

    monkeypatch.setenv("PROFILE", "smoke")  # explicit choice wins
    assert default_profile() == ("smoke", "PROFILE=smoke")
    monkeypatch.setenv("PROFILE", "fast")
    with pytest.raises(ValueError, match="Received: profile='fast'"):
        default_profile()


def test_failing_nvidia_smi_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    _fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate", rc=9)
    assert detect_gpu() is None
