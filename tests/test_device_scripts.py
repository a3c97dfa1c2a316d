"""The GPU device scripts (bench/gpu_session.py, bench/gpu_bench.py).

No GPU here: the pure parts are tested on hand values, and the whole run
(the shell wrapper, the capped benchmark, one reproduce experiment under a
time limit, the packed results) runs on the CPU with ``--tiny`` (tiny
benchmark models, the smoke profile, a 128 x 128 crop of the data).
"""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


session = _load("gpu_session")


def test_time_limit_shares_the_time_left_in_proportion_to_the_arms():
    # 600 s, 3 experiments at 60 s overhead each: 420 s of training over
    # 1 + 2 + 4/3 arms -> 96.9 s = 1.62 min per arm
    assert session.time_limit_minutes(600, ["unet3p", "unetpp", "unet"],
                                      overhead_s=60) == 1.62
    # the last experiment alone gets all that is left (U-Net: 4/3 of an arm)
    assert session.time_limit_minutes(200, ["unet"], overhead_s=40) == 2.0
    # 250 s do not fit all three at 0.5 min per arm (100 s / 4.33 arms = 0.38
    # min): U-Net is dropped from the plan, UNet 3+ and UNet++ share 150 s
    assert session.time_limit_minutes(250, ["unet3p", "unetpp", "unet"],
                                      overhead_s=50) == 0.83
    assert session.time_limit_minutes(130, ["unet3p", "unetpp", "unet"],
                                      overhead_s=50) == 1.33  # UNet 3+ alone
    # under half a minute per arm even alone: skip (None)
    assert session.time_limit_minutes(100, ["unetpp"], overhead_s=60) is None
    assert session.time_limit_minutes(100, [], overhead_s=0) is None
    with pytest.raises(ValueError, match=r"Unknown experiment\(s\) \['unet4'\].*Received"):
        session.time_limit_minutes(600, ["unet3p", "unet4"], overhead_s=0)


def test_pack_results_leaves_out_checkpoints_and_writes_atomically(tmp_path):
    base = tmp_path / "results" / "paper"
    for rel in ("SUMMARY.md", "unet3p/metrics.json", "unet3p/figures/fig13.png",
                "unet3p/runs/main/best.keras", "unet3p/runs/main/DONE.json",
                "unetpp/.metrics.json.tmp-123"):  # another run's atomic write in flight
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(rel)
    dest = tmp_path / "out" / "results-paper.tar.gz"
    assert session.pack_results(tmp_path / "results", "paper", dest) == 3
    with tarfile.open(dest) as tar:
        assert sorted(tar.getnames()) == ["paper/SUMMARY.md", "paper/unet3p/figures/fig13.png",
                                          "paper/unet3p/metrics.json"]
    assert [p.name for p in dest.parent.iterdir()] == ["results-paper.tar.gz"]  # no .part
    assert session.pack_results(tmp_path / "results", "quick", tmp_path / "q.tar.gz") == 0
    assert not (tmp_path / "q.tar.gz").exists()


def _finish(stage):
    while stage.poll(time.perf_counter()) is None:
        time.sleep(0.1)
    return stage


def test_stage_kills_the_whole_process_group_at_its_limit(tmp_path):
    """A stage past its limit is killed with its children (gpu_bench's workers)."""
    marker = tmp_path / "child.pid"
    child = ("import subprocess, sys, time; "
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
             f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    st = _finish(session.Stage("sleepy", [sys.executable, "-c", child], env=dict(os.environ),
                               log_path=tmp_path / "logs" / "01.log",
                               kill_at=time.perf_counter() + 3))
    assert st.status == "timeout" and st.seconds < 30
    pid = int(marker.read_text())
    for _ in range(50):  # the grandchild is gone (reaped by init, or a zombie at most)
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except (ProcessLookupError, FileNotFoundError):
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"grandchild {pid} still running")
    st = _finish(session.Stage("exit3", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"],
                               env=dict(os.environ), log_path=tmp_path / "logs" / "02.log",
                               kill_at=time.perf_counter() + 60))
    assert st.status == 3 and st.tail().splitlines() == [f"$ {sys.executable} -c print('bye'); "
                                                         "raise SystemExit(3)", "bye"]


def test_gpu_bench_cap_configs_parse_and_reject():
    bench = _load("gpu_bench")
    assert bench.parse_cap_configs(bench.DEFAULT_CAP_CONFIGS) == [(1, "float32"),
                                                                  (2, "mixed_float16")]
    assert bench.parse_cap_configs(" 4:mixed_bfloat16 ,") == [(4, "mixed_bfloat16")]
    for bad in ("1", "0:float32", "2:float16", "x:float32"):
        with pytest.raises(ValueError, match=f"BATCH:POLICY.*received {bad!r}"):
            bench.parse_cap_configs(bad)


def test_session_refuses_unknown_experiments_and_missing_data(tmp_path):
    env = dict(os.environ, ISBI2012_DIR=str(tmp_path / "nowhere"))
    script = str(ROOT / "bench" / "gpu_session.py")
    out = subprocess.run([sys.executable, script, "--out", str(tmp_path / "o")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no ISBI 2012 folder at" in out.stderr
    assert "bench/prepare_device.sh" in out.stderr
    out = subprocess.run([sys.executable, script, "--experiments", "unet,unet4", "--data",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Unknown experiment(s) ['unet4']" in out.stderr
    assert not (tmp_path / "o").exists()


@pytest.fixture
def small_data(tmp_path, synthetic_isbi_full_dir):
    from keras_unets.data import load_isbi2012, write_stack

    full = load_isbi2012(synthetic_isbi_full_dir)
    cut = slice(192, 320)
    dest = tmp_path / "isbi_small"
    for name, stack in (("train-volume.tif", full.train_images),
                        ("train-labels.tif", full.train_labels),
                        ("test-volume.tif", full.test_images)):
        write_stack(dest / name, np.ascontiguousarray(stack[:, cut, cut]))
    return dest


@pytest.mark.slow  # about 4 minutes, with per-stage time limits that a busy machine overruns
def test_tiny_session_end_to_end_on_cpu(tmp_path, small_data):
    """bash bench/gpu_session.sh --tiny: what a device lease would run, on the CPU."""
    out, results = tmp_path / "out", tmp_path / "results"
    no_wheels = tmp_path / "no-wheels"  # this Python has Keras; wheels/ may hold the device's
    no_wheels.mkdir()
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out), DEVICE_WHEELS=str(no_wheels),
               KERAS_UNETS_GIT_COMMIT="0123abc")
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_session.sh"), "--tiny", "--deadline-s", "300",
         "--experiments", "unet3p", "--data", str(small_data), "--results", str(results)],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    md = (out / "gpu-run.md").read_text()
    assert "| gpu_bench --no-speed | – |" in md and "| 0 |" in md
    assert "profile smoke" in md and "commit 0123abc" in md
    log = (out / "gpu-run.log").read_text()  # the wrapper's tee
    assert "gpu_session: done in" in log
    stages = [json.loads(line.split("gpu_session: ", 1)[1]) for line in log.splitlines()
              if line.startswith('gpu_session: {"stage": ')]
    # one stage after the other, in the planned order
    assert [s["stage"] for s in stages][:2] == ["gpu_bench --no-speed", "reproduce unet3p"]
    # the capped benchmark ran (tiny: batch 1, float32)
    cap = json.loads((out / "gpu_cap" / "gpu_bench.json").read_text())
    assert cap["speed"] == [] and [(r["batch"], r["policy"], r["status"])
                                   for r in cap["cap"]] == [(1, "float32", "ok")]
    # the reproduce stage: its limit reached the run, its results were packed
    stage = stages[1]
    assert stage["status"] == 0 and stage["limit_min"] >= 0.5 and stage["files_packed"] > 0
    metrics = json.loads((results / "smoke" / "unet3p" / "metrics.json").read_text())
    assert metrics["arms"]["main"]["time_limit_minutes"] == stage["limit_min"]
    assert metrics["provenance"]["versions"]["keras_backend"] == "jax"
    assert metrics["provenance"]["command"].startswith("python -m keras_unets reproduce unet3p")
    assert metrics["provenance"]["git_commit"] == "0123abc"  # the variable names what was sent
    with tarfile.open(out / "results-smoke.tar.gz") as tar:
        names = tar.getnames()
    assert "smoke/unet3p/metrics.json" in names and "smoke/SUMMARY.md" in names
    assert not [n for n in names if "/runs/" in n or ".tmp-" in n]
    # every stage's own output, in one archive
    with tarfile.open(out / "logs.tar.gz") as tar:
        logs = {n: tar.extractfile(n).read().decode() for n in tar.getnames()}
    assert len(logs) == len(stages) and any("reproduce unet3p" in t for t in logs.values())
    # at most 8 files come back from a device call
    assert len([f for f in out.rglob("*") if f.is_file()]) <= 8


def test_session_cap_models_all_build():
    """Every network of the lease's capped stage is a valid spec that builds."""
    from keras_unets.models import get_model, parse_model_spec

    specs = session.CAP_MODELS.split(",")
    # the paper profile's UNet 3+ (factorized) before the paper's order as written
    assert specs[:4] == ["unet_report", "unetpp_ds", "unet3p:factorize_skips=true", "unet3p"]
    for spec in specs:
        name, kwargs = parse_model_spec(spec)
        model = get_model(name, input_size=32, filters=4, depth=2, **kwargs)
        assert model.count_params() > 0, spec
    model = get_model("unet3p", input_size=32, filters=4, depth=2,
                      **parse_model_spec("unet3p:factorize_skips=true")[1])
    layer = model.get_layer("hd1_from_hd3_conv")
    assert type(layer).__name__ == "UpsampleConv2D" and layer.factorized
