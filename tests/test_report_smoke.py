"""The reproduction pipeline end to end: a smoke run of every experiment through to
every table and figure file (keras_unets.report).

The smoke run trains the ``smoke`` profile (tiny models, a few steps) on a
small copy of the ISBI 2012 data (the 30 labelled slices cropped to 128 x 128
and written to a temporary folder) so the whole pipeline takes about a minute
on 2 CPU cores.
"""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_unets.report.figures import HOLDOUT_FIGURE
from keras_unets.report.holdout import check_networks, run_holdout
from keras_unets.report.markdown import fmt, format_seconds
from keras_unets.report.paper import EXPERIMENTS
from keras_unets.report.pipeline import reproduce
from keras_unets.report.runs import read_history, train_arm
from keras_unets.report.scoring import load_model, predict_uint8
from keras_unets.report.summary import write_summary

from report_fakes import ROOT, fake_metrics, is_png


FIGURES = {
    "unet": ["figures/fig10_threshold.png", "figures/fig11_accuracy_per_epoch.png"],
    "unetpp": ["figures/fig12_training_accuracy.png", "figures/unetpp_pruning.png",
               "figures/unetpp_test_accuracy_per_epoch.png"],
    "unet3p": ["figures/fig13_test_accuracy_per_epoch.png"],
    "holdout": [HOLDOUT_FIGURE],
}


SMOKE_SIZE = 128  # the 30 labelled slices cropped to 128 x 128 around the centre


@contextlib.contextmanager
def _file_lock(path):
    """An exclusive lock across processes (pytest-xdist workers); POSIX flock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no parallel workers to fear
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def smoke_run(synthetic_isbi_full_dir, tmp_path_factory):
    """``reproduce(all, profile="smoke")`` once per test run, even under xdist.

    Returns ``(results/smoke root, log lines, small data folder)``. The data
    is a 128 x 128 crop of 30 synthetic slices in the ISBI 2012 layout. With
    ``pytest -n``, the workers share one run through a lock in the common
    temporary folder instead of each training the five smoke models.
    """
    from keras_unets.data import load_isbi2012, write_stack

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    work = shared / "reproduce-smoke"
    with _file_lock(shared / "reproduce-smoke.lock"):
        done = work / "done.json"
        if not done.exists():
            full = load_isbi2012(synthetic_isbi_full_dir)
            lo = (full.train_images.shape[1] - SMOKE_SIZE) // 2
            cut = slice(lo, lo + SMOKE_SIZE)
            small = work / "isbi_small"
            for name, stack in (("train-volume.tif", full.train_images),
                                ("train-labels.tif", full.train_labels),
                                ("test-volume.tif", full.test_images)):
                write_stack(small / name, np.ascontiguousarray(stack[:, cut, cut]))
            log = []
            # the hold-out in two calls: UNet 3+ with the three experiments,
            # then the other two networks (the first is reused, not retrained)
            path = reproduce([*EXPERIMENTS, "holdout"], "smoke", results=work / "results",
                             data_dir=small, command="pytest smoke", log=log.append,
                             networks=["unet3p"])
            assert path == work / "results" / "smoke" / "SUMMARY.md"
            log.append("--- second call ---")
            # ... with the smoke profile's own 5-minute limit given explicitly
            reproduce(["holdout"], "smoke", results=work / "results", data_dir=small,
                      command="pytest smoke holdout", log=log.append, networks="unet,unetpp",
                      time_limit_minutes=5)
            done.write_text(json.dumps(log))
    return work / "results" / "smoke", json.loads(done.read_text()), work / "isbi_small"


@pytest.fixture(scope="module")
def smoke_results(smoke_run):
    """(results/smoke root, log lines) of the smoke run."""
    return smoke_run[0], smoke_run[1]


@pytest.fixture(scope="module")
def small_isbi(smoke_run):
    """The 128 x 128 ISBI-layout data folder the smoke run trained on."""
    return smoke_run[2]


def _metrics(root, exp):
    return json.loads((root / exp / "metrics.json").read_text())


def _check_accuracy(value):
    assert isinstance(value, float) and 0.0 <= value <= 1.0, value


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_smoke_every_file_is_written(smoke_results, exp):
    root, _ = smoke_results
    d = root / exp
    for name in ("metrics.json", "table.md", "provenance.json"):
        assert (d / name).is_file() and (d / name).stat().st_size > 50, name
    for fig in FIGURES[exp]:
        assert is_png(d / fig), fig
    m = _metrics(root, exp)
    assert sorted(m["figures"]) == sorted(FIGURES[exp])
    assert m["profile"] == "smoke" and m["provenance"]["command"] == "pytest smoke"
    table = (d / "table.md").read_text()
    for fig in FIGURES[exp]:
        assert f"]({fig})" in table
    assert "## Provenance" in table and "pytest smoke" in table
    assert m["evaluation_seconds"] > 0
    for s in m["summary"]:
        for key in ("accuracy_as_report", "accuracy_blind", "accuracy_unbinarised"):
            _check_accuracy(s[key])
        # Binarising at any t < 255 keeps every pixel that raw equality counts
        # (0 stays 0, 255 stays 255), so the tuned accuracy is never lower.
        assert s["accuracy_as_report"] >= s["accuracy_unbinarised"]
        assert 0 <= s["threshold_as_report"] <= 255 and 0 <= s["threshold_blind"] <= 255
        for key in ("v_rand", "v_info", "v_rand_fine", "v_info_fine"):
            assert s[key] is None or 0.0 <= s[key] <= 1.0
        # the 0.01 grid holds the challenge's 0.1 grid: never lower
        for key in ("v_rand", "v_info"):
            assert (s[key] is None) == (s[f"{key}_fine"] is None)
            assert s[key] is None or s[f"{key}_fine"] >= s[key]
        assert s["v_rand_fine_threshold"] is None or 0.0 <= s["v_rand_fine_threshold"] <= 1.0
        assert s["parameters"] > 100 and s["epochs"] == 2
        assert 0 < s["seconds_per_slice"] < 30 and s["train_seconds"] > 0
        for key in ("tta_accuracy_as_report", "tta_accuracy_blind"):
            _check_accuracy(s[key])
        assert 0 <= s["tta_threshold_as_report"] <= 255
        assert 0 <= s["tta_threshold_blind"] <= 255
        assert 0 < s["tta_seconds_per_slice"] < 240


def test_smoke_histories_have_epoch_times_and_the_blind_accuracy(smoke_results):
    """What bench/bench_time_to_accuracy.py reads: wall clock and both rules per epoch."""
    root, _ = smoke_results
    histories = [_metrics(root, "unet")["history"], _metrics(root, "unet3p")["history"],
                 *_metrics(root, "unetpp")["history"].values()]
    for hist in histories:
        elapsed = hist["elapsed_seconds"]
        assert len(elapsed) == 2 and 0 < elapsed[0] < elapsed[1]
        for best, blind in zip(hist["val_best_accuracy"], hist["val_blind_accuracy"]):
            # the threshold tuned on 25-29 itself is never beaten by one from 20-24
            assert 0.0 <= blind <= best <= 1.0


def test_smoke_numbers_match_an_independent_recomputation(smoke_results, small_isbi):
    """The U-Net's 'as the report' accuracy, recomputed with plain numpy."""
    from keras_unets.data import load_split

    root, _ = smoke_results
    s = _metrics(root, "unet")["summary"][0]
    data = load_split(small_isbi)
    model = load_model(root / "unet" / "runs" / "full", "best")
    assert model.count_params() == s["parameters"]
    pred, _ = predict_uint8(model, data.x_test)
    t = s["threshold_as_report"]
    binarised = np.where(pred > t, 255, 0)
    assert np.mean(binarised == data.y_test) == pytest.approx(s["accuracy_as_report"], abs=1e-12)
    # ... and no threshold does better (it is the best of the sweep)
    best = max(np.mean(np.where(pred > u, 255, 0) == data.y_test) for u in range(256))
    assert best == pytest.approx(s["accuracy_as_report"], abs=1e-12)
    # the membrane-only prediction (t = 255) is one of the candidates
    assert s["accuracy_as_report"] >= np.mean(data.y_test == 0)


def test_smoke_tta_numbers_match_an_independent_recomputation(smoke_results, small_isbi):
    """The U-Net's TTA accuracies, recomputed by transforming whole slices by hand.

    Each of the 8 flips / right-angle rotations of every test slice is predicted
    without TTA, mapped back and averaged; then the thresholds are tuned as
    documented (on 25-29 for "as the report", on training slices 20-24 for
    "blind"). Batches differ from predict_tiled's, so a rounding to uint8 may
    flip a few pixels: the accuracies agree to 5e-4.
    """
    from keras_unets.data import load_split
    from keras_unets.metrics import to_uint8
    from keras_unets.inference.predict import predict_tiled

    def by_hand(model, images):
        total = np.zeros(images.shape, np.float64)
        for flip in (False, True):
            for k in range(4):
                x = np.rot90(images[:, :, ::-1] if flip else images, k, axes=(1, 2))
                p = np.asarray(predict_tiled(model, np.ascontiguousarray(x), progress=False))
                p = np.rot90(p, -k, axes=(1, 2))
                total += p[:, :, ::-1] if flip else p
        return to_uint8((total / 8).astype(np.float32))

    def best(pred, labels):
        accs = [np.mean(np.where(pred > u, 255, 0) == labels) for u in range(256)]
        return int(np.argmax(accs)), max(accs)

    root, _ = smoke_results
    s = _metrics(root, "unet")["summary"][0]
    data = load_split(small_isbi)
    run = root / "unet" / "runs" / "full"
    t, acc = best(by_hand(load_model(run, "best"), data.x_test), data.y_test)
    assert acc == pytest.approx(s["tta_accuracy_as_report"], abs=5e-4)
    last = load_model(run, "last")
    t_blind, _ = best(by_hand(last, data.x_train[20:25]), data.y_train[20:25])
    acc_blind = np.mean(np.where(by_hand(last, data.x_test) > t_blind, 255, 0) == data.y_test)
    assert acc_blind == pytest.approx(s["tta_accuracy_blind"], abs=5e-4)


def test_smoke_table1(smoke_results):
    root, _ = smoke_results
    m = _metrics(root, "unet")
    assert set(m["table1"]) == {"resize_prediction", "resize_label", "retrain_full"}
    for row in m["table1"].values():
        _check_accuracy(row["raw_accuracy"])
        _check_accuracy(row["best_accuracy"])
        assert row["best_accuracy"] >= row["raw_accuracy"]
    assert m["table1"]["retrain_full"]["best_accuracy"] == m["summary"][0]["accuracy_as_report"]
    assert len(m["threshold_curve_25_29"]) == 256
    assert max(m["threshold_curve_25_29"]) == pytest.approx(m["summary"][0]["accuracy_as_report"])
    half = json.loads((root / "unet" / "runs" / "half" / "DONE.json").read_text())
    assert half["epochs"] == 1  # a third of the smoke profile's 2 epochs, rounded up
    table = (root / "unet" / "table.md").read_text()
    assert "0.6754" in table and "0.7545" in table and "0.6996" in table


def test_smoke_table2_and_pruning(smoke_results):
    root, _ = smoke_results
    m = _metrics(root, "unetpp")
    levels = m["pruning"]
    assert [lv["level"] for lv in levels] == ["L1", "L2", "L3", "L4"]
    params = [lv["parameters"] for lv in levels]
    assert params == sorted(params) and len(set(params)) == 4  # each level adds nodes
    for lv in levels:
        _check_accuracy(lv["accuracy"])
        assert lv["seconds_per_slice"] > 0
    assert m["table2"]["ds"] == {lv["head"]: lv["accuracy"] for lv in levels}
    assert m["table2"]["no_ds"] == m["summary"][0]["accuracy_as_report"]
    assert [s["network"] for s in m["summary"]] == ["UNet++", "UNet++ (deep supervision)"]
    table = (root / "unetpp" / "table.md").read_text()
    assert "0.878" in table and "0.917" in table


def test_smoke_fig13_best_epoch(smoke_results):
    root, _ = smoke_results
    m = _metrics(root, "unet3p")
    curve = m["test_accuracy_per_epoch"]
    assert len(curve) == 2
    assert m["best_epoch"] == int(np.argmax(curve)) + 1


def test_smoke_summary_links_and_rows(smoke_results):
    root, _ = smoke_results
    text = (root / "SUMMARY.md").read_text()
    for network, acc in (("U-Net", "0.9189"), ("UNet++", "0.917"), ("UNet 3+", "0.923")):
        assert re.search(rf"^\| {re.escape(network)} \| {acc} \|", text, re.M), network
    main = text.split("## With test-time augmentation", 1)[0]
    assert "| V_rand | V_rand, 0.01 grid | V_info |" in main
    for s in (s for exp in EXPERIMENTS for s in _metrics(root, exp)["summary"]):
        row = re.search(rf"^\| {re.escape(s['network'])} \|.*$", main, re.M).group(0)
        fine = (fmt(s["v_rand_fine"]) if s["v_rand_fine"] is None else
                f"{s['v_rand_fine']:.4f} (th={s['v_rand_fine_threshold']:.2f})")
        assert f"| {fmt(s['v_rand'])} | {fine} | {fmt(s['v_info'])} |" in row, row
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == sum(len(v) for v in FIGURES.values())
    for link in links:
        assert is_png(root / link), link
    assert "Not run yet" not in text
    assert "2 epochs" in text and "-core CPU" in text
    # the wall clock: the last call (the hold-out's second call), each
    # experiment's arms, evaluation and latest time in all
    clock = text.split("## Wall clock", 1)[1].split("\n## ", 1)[0]
    assert "The last `keras-unets reproduce` call (holdout) took **" in clock
    record = json.loads((root / "wall_clock.json").read_text())
    assert set(record["experiments"]) == {*EXPERIMENTS, "holdout"}
    assert record["last_call"]["provenance"]["command"] == "pytest smoke holdout"
    for exp in EXPERIMENTS:
        row = re.search(rf"^\| {exp} \|.*$", clock, re.M).group(0)
        minutes = format_seconds(record["experiments"][exp]["seconds"])
        assert row.endswith(f"| {minutes} |"), row
    tta = text.split("## With test-time augmentation", 1)[1].split("## Figures")[0]
    for network in ("U-Net", "UNet++", "UNet++ (deep supervision)", "UNet 3+"):
        row = re.search(rf"^\| {re.escape(network)} \|.*$", tta, re.M).group(0)
        assert re.search(r"\| 0\.\d{4} \(t=\d+\) \| 0\.\d{4} \(t=\d+\) \| [+-]0\.\d{4} / "
                         r"[+-]0\.\d{4} \| \d+ ms \|$", row), row
    held = text.split("## True hold-out (not in the report)", 1)[1].split("## Figures")[0]
    for network, acc in (("U-Net", "0.9189"), ("UNet++", "0.917"), ("UNet 3+", "0.923")):
        assert re.search(rf"^\| {re.escape(network)} \| {acc} \| 0-19 \| [12] of 2 \| \d+ \| "
                         r"0\.\d{4} \| 0\.\d{4} \(t=\d+\) \| 0\.\d{4} \(t=\d+\) \|",
                         held, re.M), network
    assert "- holdout: `pytest smoke holdout`" in text


def test_smoke_rerun_reuses_finished_runs(smoke_results, small_isbi):
    """A second run of a target reuses every finished training (no retraining)."""
    root, first_log = smoke_results
    first_log = first_log[:first_log.index("--- second call ---")]
    # full, half, ds, no_ds, main and the hold-out's unet3p
    assert sum("training " in line for line in first_log) == 6
    ckpt = root / "unet3p" / "runs" / "main" / "best.keras"
    before = ckpt.stat().st_mtime_ns
    done = json.loads((root / "unet3p" / "runs" / "main" / "DONE.json").read_text())
    log = []
    again = train_arm(root / "unet3p", "main", "unet3p", profile="smoke",
                      data_dir=small_isbi, log=log.append)
    assert again == done and ckpt.stat().st_mtime_ns == before
    assert log == [f"[main] reusing finished run {root / 'unet3p' / 'runs' / 'main'} (2 epochs)"]


def _smoke_env(root, small_isbi):
    return dict(os.environ, PROFILE="smoke", RESULTS=str(root.parent),
                ISBI2012_DIR=str(small_isbi), MPLBACKEND="Agg")


def test_smoke_holdout_trains_without_20_24_and_reuses(smoke_results):
    root, log = smoke_results
    second = log[log.index("--- second call ---") + 1:]
    trained = [line for line in second if "training " in line]
    assert len(trained) == 2 and "[unet] training unet" in trained[0]
    assert "[unetpp] training unetpp" in trained[1]
    m = _metrics(root, "holdout")
    assert m["provenance"]["command"] == "pytest smoke holdout"
    assert [s["network"] for s in m["summary"]] == ["U-Net", "UNet++", "UNet 3+"]
    assert sorted(m["figures"]) == FIGURES["holdout"]
    assert is_png(root / "holdout" / FIGURES["holdout"][0])
    for name in ("unet", "unetpp", "unet3p"):
        run = root / "holdout" / "runs" / name
        config = json.loads((run / "config.json").read_text())
        assert config["train_slices"] == list(range(20))
        assert config["val_slices"] == [20, 21, 22, 23, 24]
        assert config["val_source"] == "holdout" and config["model_name"] == name
        assert m["arms"][name]["val_slices"] == [20, 21, 22, 23, 24]
        assert m["arms"][name]["time_limit_minutes"] == 5.0 and config["config"][
            "time_limit_minutes"] == 5.0
    # unet3p trained in the first call and was not retrained by the second
    first = (root / "holdout" / "runs" / "unet3p" / "DONE.json").stat().st_mtime_ns
    assert first < (root / "holdout" / "runs" / "unet" / "DONE.json").stat().st_mtime_ns
    for s in m["summary"]:
        for key in ("accuracy", "tta_accuracy", "accuracy_test_threshold",
                    "accuracy_holdout_slices", "tta_accuracy_test_threshold"):
            _check_accuracy(s[key])
        # the threshold tuned on 25-29 is the best there, so never below the held-out one's
        assert s["accuracy_test_threshold"] >= s["accuracy"]
        assert s["tta_accuracy_test_threshold"] >= s["tta_accuracy"]
        assert 0 <= s["threshold"] <= 255 and 1 <= s["best_epoch"] <= s["epochs"] == 2
        assert 0 <= s["threshold_test"] <= 255 and 0 <= s["tta_threshold_test"] <= 255
        assert s["train_slices"] == "0-19"
        for key in ("v_rand", "v_info"):  # the 0.01 grid holds the challenge's
            assert s[key] is None or s[f"{key}_fine"] >= s[key]


def _committed_holdout(root, dest):
    """``dest/smoke/holdout`` as a clone has it: metrics.json, and the UNet 3+ run only."""
    exp = dest / "smoke" / "holdout"
    exp.mkdir(parents=True)
    shutil.copy(root / "holdout" / "metrics.json", exp)
    shutil.copytree(root / "holdout" / "runs" / "unet3p", exp / "runs" / "unet3p")
    return exp


def test_holdout_leaves_out_networks_without_a_run_folder(smoke_results, small_isbi, tmp_path):
    """Re-running one network over committed results (no weights): the table has the
    networks whose run folders are here, each evaluated again; the earlier
    metrics.json is not read (even cut short), its other rows are not carried over."""
    root, _ = smoke_results
    exp = _committed_holdout(root, tmp_path)
    (exp / "metrics.json").write_text((exp / "metrics.json").read_text()[:-40])  # cut short
    old = {s["network"]: s for s in _metrics(root, "holdout")["summary"]}
    log = []
    m = run_holdout("smoke", results=tmp_path, data_dir=small_isbi, command="pytest rerun",
                    log=log.append, networks=["unet3p"])
    assert not any("training " in line for line in log)  # the UNet 3+ run is reused
    assert [s["network"] for s in m["summary"]] == ["UNet 3+"] and list(m["arms"]) == ["unet3p"]
    s3 = m["summary"][0]  # evaluated again from its run folder: the same numbers
    for key in ("accuracy", "tta_accuracy", "accuracy_test_threshold"):
        assert s3[key] == pytest.approx(old["UNet 3+"][key], abs=1e-9)
    assert s3["val_curve"] == old["UNet 3+"]["val_curve"] and len(s3["val_curve"]) == 2
    assert _metrics(tmp_path / "smoke", "holdout")["summary"] == m["summary"]
    table = (exp / "table.md").read_text()
    assert "| UNet 3+ |" in table and "| U-Net |" not in table and "| UNet++ |" not in table
    assert "carried" not in table and m["figures"] == FIGURES["holdout"]
    held = write_summary("smoke", results=tmp_path).read_text().split(
        "## True hold-out (not in the report)", 1)[1].split("##")[0]
    assert "| UNet 3+ |" in held and "| U-Net |" not in held and "carried" not in held
    # a finished run folder of a network not asked for is evaluated again too
    shutil.copytree(root / "holdout" / "runs" / "unet", exp / "runs" / "unet")
    m = run_holdout("smoke", results=tmp_path, data_dir=small_isbi, command="again",
                    log=log.append, networks="unet3p")
    assert [s["network"] for s in m["summary"]] == ["U-Net", "UNet 3+"]
    assert m["summary"][0]["accuracy"] == pytest.approx(old["U-Net"]["accuracy"], abs=1e-9)
    assert not any("training " in line for line in log)


def test_smoke_summary_gets_the_seed_spread_of_a_seed_folder(smoke_results, tmp_path):
    """SUMMARY.md of the smoke results plus a copy as seed 4 (its hold-out shifted by 0.01)."""
    root, _ = smoke_results
    for exp in (*EXPERIMENTS, "holdout"):
        (tmp_path / "smoke" / exp).mkdir(parents=True)
        shutil.copy(root / exp / "metrics.json", tmp_path / "smoke" / exp)
    m = _metrics(root, "holdout")
    for rec in m["summary"]:
        rec["accuracy"] = rec["accuracy"] - 0.01
    fake_metrics(tmp_path / "seed-4" / "smoke" / "holdout", m["summary"])
    text = write_summary("smoke", results=tmp_path).read_text()
    assert "## Seed spread (not in the report)" in text
    for rec in _metrics(root, "holdout")["summary"]:
        row = (f"| {rec['network']} | hold-out | {rec['accuracy']:.4f} | "
               f"{rec['accuracy'] - 0.01:.4f} | {rec['accuracy'] - 0.005:.4f} | 0.01000 |")
        assert row in text, (row, text)
    assert "as the report |" not in text.split("## Seed spread")[1].split("##")[0]


def test_smoke_holdout_numbers_match_an_independent_recomputation(smoke_results, small_isbi):
    """UNet 3+'s hold-out accuracy: checkpoint and threshold from 20-24 only, by plain numpy."""
    from keras_unets.data import load_isbi2012
    from keras_unets.metrics.isbi import isbi_scores

    root, _ = smoke_results
    s = next(s for s in _metrics(root, "holdout")["summary"] if s["network"] == "UNet 3+")
    data = load_isbi2012(small_isbi)
    run = root / "holdout" / "runs" / "unet3p"
    history = read_history(run)["val_best_accuracy"]
    assert s["best_epoch"] == int(np.argmax(history)) + 1  # chosen on 20-24 during training
    model = load_model(run, "best")
    held_x, held_y = data.train_images[20:25], data.train_labels[20:25]
    held, _ = predict_uint8(model, held_x)
    accs = [np.mean(np.where(held > u, 255, 0) == held_y) for u in range(256)]
    t = int(np.argmax(accs))
    assert t == s["threshold"]
    assert max(accs) == pytest.approx(s["accuracy_holdout_slices"], abs=1e-12)
    test, _ = predict_uint8(model, data.train_images[25:30])
    acc = np.mean(np.where(test > t, 255, 0) == data.train_labels[25:30])
    assert acc == pytest.approx(s["accuracy"], abs=1e-12)
    t_test = s["threshold_test"]
    acc_test = np.mean(np.where(test > t_test, 255, 0) == data.train_labels[25:30])
    assert acc_test == pytest.approx(s["accuracy_test_threshold"], abs=1e-12)
    if s["v_rand_fine"] is not None:  # the stored threshold gives the stored score
        at = isbi_scores(test, data.train_labels[25:30], thresholds=(s["v_rand_fine_threshold"],))
        assert at.v_rand == pytest.approx(s["v_rand_fine"], abs=1e-12)


def test_holdout_bad_network_names_fail_before_training(tmp_path, small_isbi):
    with pytest.raises(ValueError, match=r"Expected some of unet, unetpp, unet3p\. Received: "
                       r"networks=\['unet', 'vnet'\]"):
        reproduce(["holdout"], "smoke", results=tmp_path, data_dir=small_isbi,
                  networks="unet,vnet", log=lambda _: None)
    with pytest.raises(ValueError, match=r"Received: networks=\[\]"):
        check_networks("")
    assert check_networks(" unet3p, unet ") == ("unet3p", "unet")
    with pytest.raises(ValueError, match=r"holdout experiment only\. Received: "
                       r"experiments=\['unet'\], networks='unet'"):
        reproduce(["unet"], "smoke", results=tmp_path, data_dir=small_isbi,
                  networks="unet", log=lambda _: None)
    assert not (tmp_path / "smoke").exists()
    env = dict(os.environ, ISBI2012_DIR=str(small_isbi))
    cli = [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce"]
    out = subprocess.run([*cli, "holdout", "--profile", "smoke", "--networks", "vnet",
                          "--results", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "Invalid value for --networks" in out.stderr
    assert "networks=['vnet']" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([*cli, "unet", "--profile", "smoke", "--networks", "unet",
                          "--results", str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "applies to the holdout experiment only" in out.stderr
    assert not (tmp_path / "smoke").exists()


def test_smoke_figures_redrawn_from_committed_results(smoke_results, tmp_path):
    """As a clone has the results (no run folders): every figure comes back."""
    root, _ = smoke_results
    for exp in (*EXPERIMENTS, "holdout"):
        dest = tmp_path / "smoke" / exp
        shutil.copytree(root / exp, dest, ignore=shutil.ignore_patterns("runs"))
        for fig in FIGURES[exp]:
            (dest / fig).write_bytes(b"placeholder")
    env = dict(os.environ, PROFILE="smoke")
    out = subprocess.run(
        [sys.executable, "-c", "from keras_unets.cli import main; main()", "reproduce", "figures",
         "--results", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    for exp in (*EXPERIMENTS, "holdout"):
        m = _metrics(tmp_path / "smoke", exp)
        assert m["figures_redrawn"]["command"].endswith("reproduce figures --results "
                                                        + str(tmp_path))
        for fig in FIGURES[exp]:
            assert is_png(tmp_path / "smoke" / exp / fig), fig
    assert len(_metrics(root, "unet")["threshold_curve_20_24"]) == 256
    assert "[unet3p] redrew figures/fig13_test_accuracy_per_epoch.png" in out.stdout
    # the numbers are the run's own
    assert _metrics(tmp_path / "smoke", "unet3p")["summary"] == _metrics(root, "unet3p")["summary"]


def test_smoke_summary_script(smoke_results, small_isbi):
    """experiments/summary.py in a subprocess rewrites SUMMARY.md from the metrics."""
    root, _ = smoke_results
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "summary.py"),
                          "--results", str(root.parent)],
                         capture_output=True, text=True, env=_smoke_env(root, small_isbi),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "profile: smoke (PROFILE=smoke)" in out.stdout and "| UNet 3+ | 0.923 |" in out.stdout
    assert (root / "SUMMARY.md").read_text() in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("script", ["unet.py", "unetpp.py", "unet3p.py"])
def test_smoke_experiment_scripts_run(smoke_results, small_isbi, script):
    """experiments/<net>.py reuses the smoke trainings and prints its table."""
    root, _ = smoke_results
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / script),
                          "--results", str(root.parent), "--data", str(small_isbi)],
                         capture_output=True, text=True, env=_smoke_env(root, small_isbi),
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reusing finished run" in out.stdout and "report" in out.stdout
    assert out.stdout.strip().endswith("SUMMARY.md")
