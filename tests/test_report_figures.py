"""keras_unets.report.figures: the report's figures, and drawing them again from metrics.json."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from keras_unets.report.figures import (HOLDOUT_FIGURE, _train_accuracy, plot_epoch_curves,
                                         plot_pruning, plot_threshold_curve, redraw_figures)

from report_fakes import is_png


def test_figures_are_pngs_and_check_their_input(tmp_path):
    t = np.arange(256)
    curve = 0.78 + 0.14 * np.exp(-((t - 90) / 60.0) ** 2)
    assert is_png(plot_threshold_curve(curve, tmp_path / "f10.png", report_threshold=87))
    assert is_png(plot_epoch_curves({"a": [0.8, 0.9, 0.85], "b": [0.7, 0.75, 0.8]},
                                    tmp_path / "f11.png", reference=(0.9189, "report")))
    assert is_png(plot_pruning(["L1", "L2"], [0.85, 0.9], [0.01, 0.02],
                               tmp_path / "prune.png", parameters=[100961, 511105]))
    with pytest.raises(ValueError, match=r"Received: shape=\(10,\)"):
        plot_threshold_curve(np.zeros(10), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="same length"):
        plot_pruning(["L1"], [0.8, 0.9], [0.1], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def _fake_experiment(root, exp, metrics, figures):
    """``root/quick/exp`` with ``metrics`` and a placeholder for each listed figure."""
    d = root / "quick" / exp
    (d / "figures").mkdir(parents=True)
    metrics = {**metrics, "experiment": exp, "figures": figures}
    (d / "metrics.json").write_text(json.dumps(metrics))
    for f in figures:
        (d / f).write_bytes(b"placeholder")
    return d


def test_redraw_figures_from_metrics_only(tmp_path):
    """What metrics.json keeps is enough; only listed figures are replaced."""
    curve = [0.90, 0.92, None, 0.91]  # None: a NaN written by json
    u3 = _fake_experiment(tmp_path, "unet3p", {"history": {"val_best_accuracy": curve},
                                               "summary": [{"accuracy_as_report": 0.92}]},
                          ["figures/fig13_test_accuracy_per_epoch.png"])
    # Fig. 10 cannot be redrawn without its 20-24 curve (older results): it stays
    unet = _fake_experiment(tmp_path, "unet", {"history": {"val_best_accuracy": curve,
                                                           "acc": [0.8, 0.85, 0.86, 0.87]},
                                               "threshold_curve_25_29": [0.9] * 256},
                            ["figures/fig10_threshold.png", "figures/fig11_accuracy_per_epoch.png"])
    # a row without a stored curve (older results) draws nothing, and the
    # figure metrics.json does not list is not created
    ho = _fake_experiment(tmp_path, "holdout", {"summary": [{"network": "U-Net"}]}, [])
    before = json.loads((u3 / "metrics.json").read_text())
    log = []
    paths = redraw_figures("quick", results=tmp_path, command="pytest redraw", log=log.append)
    assert sorted(paths) == [unet / "figures/fig11_accuracy_per_epoch.png",
                             u3 / "figures/fig13_test_accuracy_per_epoch.png"]
    assert all(is_png(p) for p in paths)
    assert (unet / "figures/fig10_threshold.png").read_bytes() == b"placeholder"
    assert not (ho / "figures" / Path(HOLDOUT_FIGURE).name).exists()
    after = json.loads((u3 / "metrics.json").read_text())
    stamp = after.pop("figures_redrawn")
    assert after == before  # the numbers are not touched
    assert stamp["command"] == "pytest redraw" and re.match(r"\d{4}-\d\d-\d\dT", stamp["date_utc"])
    assert "figures_redrawn" not in json.loads((ho / "metrics.json").read_text())
    assert "[holdout] redrew nothing (no figure it can draw)" in log
    assert not list(u3.glob(".redraw-*"))  # the temporary folder is gone


def test_redraw_figures_errors_name_the_folder_and_write_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No metrics\.json under .*quick/\{unet,unetpp,"
                       r"unet3p,holdout\}: nothing to redraw\. Run `keras-unets reproduce all"):
        redraw_figures("quick", results=tmp_path)
    u3 = _fake_experiment(tmp_path, "unet3p", {"history": {"val_best_accuracy": [0.9, 0.91]}},
                          ["figures/fig13_test_accuracy_per_epoch.png"])
    (tmp_path / "quick" / "unetpp").mkdir()
    (tmp_path / "quick" / "unetpp" / "metrics.json").write_text('{"experiment": "unetpp", ')
    with pytest.raises(ValueError, match=r"Cannot read .*unetpp/metrics\.json \(JSONDecodeError: "
                       r".*nothing was redrawn\. Restore it"):
        redraw_figures("quick", results=tmp_path)
    # read before anything is written: the readable experiment is untouched too
    assert (u3 / "figures/fig13_test_accuracy_per_epoch.png").read_bytes() == b"placeholder"
    with pytest.raises(ValueError, match="Unknown profile"):
        redraw_figures("fast", results=tmp_path)


def test_history_column_choice():
    hist = {"loss": [1.0], "out1_acc": [0.7], "out4_acc": [0.8], "val_best_accuracy": [0.9]}
    assert _train_accuracy(hist, "out4") == ("out4_acc", [0.8])
    assert _train_accuracy({"accuracy": [0.5], "val_accuracy": [0.6]}) == ("accuracy", [0.5])
    assert _train_accuracy({"acc": [0.5], "val_acc": [0.6]}) == ("acc", [0.5])
    assert _train_accuracy({"loss": [1.0]}) == (None, None)
