"""What produced a result: profile choice, machine, code state, versions.

:func:`provenance` is the record each experiment writes to its
``provenance.json`` (and ``metrics.json``); :func:`code_state` names the
commit that trained a run in its ``DONE.json`` (:mod:`keras_unets.report.runs`).
"""
import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_unets.io import atomic_write_json, atomic_write_text

PROFILE_NAMES = ("paper", "quick", "smoke")


def detect_gpu():
    """Name of a visible NVIDIA GPU, or ``None``, without importing TensorFlow.

    Uses ``nvidia-smi -L`` when it is on ``PATH``; ``CUDA_VISIBLE_DEVICES``
    set to ``""`` or ``"-1"`` hides every GPU.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return None
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("GPU")]
    if out.returncode != 0 or not lines:
        return None
    # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)" -> "NVIDIA H100 80GB HBM3"
    name = lines[0].split(":", 1)[1].split("(UUID")[0].strip()
    return f"{len(lines)} x {name}" if len(lines) > 1 else name


def default_profile():
    """``(profile, reason)``: ``$PROFILE`` if set, else paper with a GPU, else quick."""
    env = os.environ.get("PROFILE", "").strip()
    if env:
        return check_profile(env), f"PROFILE={env}"
    gpu = detect_gpu()
    if gpu:
        return "paper", f"GPU visible: {gpu}"
    return "quick", "no GPU visible (nvidia-smi); PROFILE=paper to override"


def check_profile(profile):
    """Validate a profile name; returns it."""
    if profile not in PROFILE_NAMES:
        raise ValueError(
            f"Unknown profile. Expected one of {', '.join(PROFILE_NAMES)}. "
            f"Received: profile={profile!r}"
        )
    return profile


def _version(dist):
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def _git(*args):
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=20,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def keras_backend():
    """The Keras backend in use (or that will be used), without importing Keras."""
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except Exception:  # pragma: no cover - partially imported keras
            pass
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    cfg = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(cfg.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def machine_description(gpu=None):
    """One line naming the machine, e.g. ``"2-core CPU (Intel Xeon ...)"``."""
    gpu = detect_gpu() if gpu is None else gpu
    cpu = f"{os.cpu_count()}-core CPU" + (f" ({_cpu_model()})" if _cpu_model() else "")
    return f"{gpu} GPU, {cpu}" if gpu else cpu


def _git_dirty():
    """Uncommitted changes to tracked files outside results/ (None: not a git checkout)."""
    # results/ holds the outputs being (re)written: not a code change
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":/",
                  ":(exclude,top)results")
    return bool(status) if status is not None else None


def code_state():
    """The code that produces a result: ``{"git_commit": ..., "git_dirty": ...}``.

    ``$KERAS_UNETS_GIT_COMMIT``, if set, names the commit, and git is not
    asked (``git_dirty`` None): it is for copies of the work tree sent
    elsewhere (a device machine's), where the caller names the commit it
    sent; such a copy may carry no ``.git``, or one older than the tree (the
    first lease's did). Else ``git rev-parse HEAD`` and :func:`_git_dirty`.
    """
    named = os.environ.get("KERAS_UNETS_GIT_COMMIT")
    if named:
        return {"git_commit": named, "git_dirty": None}
    return {"git_commit": _git("rev-parse", "HEAD") or None, "git_dirty": _git_dirty()}


def provenance(command=None):
    """What produced a result: command, git commit, versions, machine.

    ``command`` defaults to this process's command line (``sys.argv``).
    """
    if command is None:
        command = " ".join(shlex.quote(a) for a in sys.argv)
    gpu = detect_gpu()
    return {
        "command": command,
        "cwd": os.getcwd(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **code_state(),
        "versions": {
            "python": platform.python_version(),
            "keras_unets": _version("keras-unets"),
            "keras": _version("keras"),
            "keras_backend": keras_backend(),
            "tensorflow": _version("tensorflow"),
            "jax": _version("jax"),
            "numpy": np.__version__,
            "opencv": _version("opencv-python") or _version("opencv-python-headless"),
        },
        "machine": {
            "description": machine_description(gpu),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "cpu": _cpu_model(),
            "gpu": gpu,
        },
    }


def jsonable(obj):
    """``obj`` as JSON can hold it: numpy scalars and arrays as numbers and lists,
    paths as strings, NaN and infinities as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def provenance_markdown(prov):
    """A short markdown block: command, commit, versions, machine."""
    v = prov["versions"]
    commit = prov.get("git_commit") or "unknown"
    if prov.get("git_dirty"):
        commit += " (with uncommitted changes)"
    return (
        "## Provenance\n\n"
        f"- command: `{prov['command']}`\n"
        f"- date: {prov['date_utc']}, git commit {commit}\n"
        f"- machine: {prov['machine']['description']}; {prov['machine']['platform']}\n"
        f"- versions: Python {v['python']}, keras {v['keras']} "
        f"(backend {v['keras_backend']}), tensorflow {v['tensorflow']}, "
        f"jax {v['jax']}, numpy {v['numpy']}, keras-unets {v['keras_unets']}\n"
    )


def write_experiment(exp_dir, *, metrics, table_md, prov):
    """Write ``metrics.json``, ``table.md`` and ``provenance.json`` atomically."""
    exp_dir = Path(exp_dir)
    metrics = dict(metrics, provenance=prov)
    atomic_write_json(exp_dir / "metrics.json", jsonable(metrics))
    atomic_write_json(exp_dir / "provenance.json", jsonable(prov))
    atomic_write_text(exp_dir / "table.md", table_md.rstrip() + "\n\n" + provenance_markdown(prov))
    return exp_dir / "metrics.json"

