"""Helpers shared by the tests of keras_unets.report (tests/test_report_*.py)."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    """A PNG file of more than 1000 bytes (a drawn figure, not a placeholder)."""
    path = Path(path)
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def fake_run_config(run_dir, seed):
    """A run folder holding only the ``config.json`` of a training with ``seed``."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"model_name": "unet3p",
                                                     "config": {"seed": seed}}))


def fake_finished_run(run_dir, *, seed=0, time_limit_minutes=None):
    """A finished run folder (``config.json`` and ``DONE.json``) of that seed and time limit."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(
        {"model_name": "unet3p",
         "config": {"seed": seed, "time_limit_minutes": time_limit_minutes}}))
    (run_dir / "DONE.json").write_text(json.dumps({"arm": run_dir.name, "best_accuracy": 0.9}))


def fake_metrics(folder, summary):
    """``folder/metrics.json`` with only a ``summary`` list."""
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"summary": summary}))
