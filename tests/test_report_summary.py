"""keras_unets.report.summary: SUMMARY.md rows, seed folders and the seed spread."""
import re

import pytest

from keras_unets.report.summary import (_trained_at, _tta_row, default_results, results_seed,
                                         seed_roots, seed_spread, seed_spread_section,
                                         seed_training, write_summary)

from report_fakes import fake_metrics


def test_tta_row_of_the_summary():
    s = {"network": "UNet 3+", "accuracy_as_report": 0.9210, "accuracy_blind": 0.9204,
         "tta_accuracy_as_report": 0.92176, "tta_threshold_as_report": 126,
         "tta_accuracy_blind": 0.9201, "tta_threshold_blind": 130,
         "tta_seconds_per_slice": 3.61}
    assert _tta_row(s, 0.923) == ["UNet 3+", "0.923", "0.9218 (t=126)", "0.9201 (t=130)",
                                  "+0.0008 / -0.0003", "3610 ms"]
    # metrics written before TTA existed: dashes, and no TTA section at all
    old = {k: v for k, v in s.items() if not k.startswith("tta_")}
    assert _tta_row(old, None) == ["UNet 3+", "–", "–", "–", "–", "–"]


def test_trained_at_names_other_code_only():
    same = {"a": {"git_commit": "c" * 40, "git_dirty": False}}
    assert _trained_at("c" * 40, same) == ""
    other = {"a": {"git_commit": "c" * 40, "git_dirty": False},
             "b": {"git_commit": "d" * 40, "git_dirty": True}}
    assert _trained_at("c" * 40, other) == "; run b trained at commit dddddddddddd (dirty)"
    # a run finished before DONE.json recorded its commit
    assert _trained_at("c" * 40, {"a": {}}) == "; run a trained at commit unknown"
    # runs of two older commits, each commit with the runs it trained
    mixed = {"unet": {"git_commit": "d" * 40}, "unetpp": {"git_commit": "d" * 40},
             "unet3p": {"git_commit": "c" * 40}, "x": {"git_commit": "e" * 40}}
    assert _trained_at("c" * 40, mixed) == (
        "; runs unet, unetpp trained at commit dddddddddddd; run x trained at commit eeeeeeeeeeee")


def test_summary_of_a_seed_folder_names_its_seed(tmp_path):
    assert results_seed(default_results(3)) == 3
    assert results_seed("results") is None
    assert results_seed(tmp_path / "seed-x") is None
    for root, seed_arg, shown in ((tmp_path / "results", "", "results/quick"),
                                  (tmp_path / "results" / "seed-3", " SEED=3",
                                   "results/seed-3/quick")):
        (root / "quick").mkdir(parents=True)
        text = write_summary("quick", results=root).read_text()
        assert text.startswith("# U-Net School, reproduced (quick profile"
                               + (", seed 3)" if seed_arg else ")"))
        assert f"every `make reproduce-*{seed_arg}` target from `{shown}/*/metrics.json`" in text
        missing = re.search(r"^Not run yet: (.*)$", text, re.M).group(1)
        assert missing == ", ".join(f"{e} (`make reproduce-{e} PROFILE=quick{seed_arg}`)"
                                    for e in ("unet", "unetpp", "unet3p")) + "."


def test_seed_spread_hand_values_and_summary_section(tmp_path):
    fake_metrics(tmp_path / "quick" / "holdout", [
        {"network": "UNet 3+", "accuracy": 0.92, "tta_accuracy": 0.925, "epochs": 14,
         "train_seconds": 1800.2, "stopped_by_time_limit": True, "time_limit_minutes": 30.0,
         "v_rand_fine": 0.97},
        {"network": "U-Net", "accuracy": 0.93, "tta_accuracy": 0.931, "epochs": 9,
         "train_seconds": 1790.0, "stopped_by_time_limit": True}])
    fake_metrics(tmp_path / "seed-1" / "quick" / "holdout", [
        {"network": "UNet 3+", "accuracy": 0.926, "tta_accuracy": None, "epochs": 30,
         "train_seconds": 928.3, "stopped_by_time_limit": False, "v_rand_fine": 0.975}])
    fake_metrics(tmp_path / "seed-12" / "quick" / "unet3p", [
        {"network": "UNet 3+", "accuracy_as_report": 0.93, "accuracy_blind": 0.929}])
    fake_metrics(tmp_path / "seed-2" / "quick" / "holdout", [
        {"network": "UNet 3+", "accuracy": 0.923}])
    fake_metrics(tmp_path / "seed-x" / "quick" / "holdout", [  # not a seed folder
        {"network": "UNet 3+", "accuracy": 0.5}])
    fake_metrics(tmp_path / "seed-3" / "paper" / "holdout", [  # another profile
        {"network": "UNet 3+", "accuracy": 0.5}])
    roots = seed_roots("quick", tmp_path)
    assert list(roots) == [0, 1, 2, 12] and roots[12] == tmp_path / "seed-12" / "quick"
    seeds, rows = seed_spread("quick", tmp_path)
    assert seeds == [0, 1, 2, 12]
    # U-Net (one seed) and the TTA measure (one seed) and the main run (one seed) are left out
    assert len(rows) == 2
    network, measure, *per_seed, mean, spread = rows[0]
    assert (network, measure) == ("UNet 3+", "hold-out")
    assert per_seed == [0.92, 0.926, 0.923, None]
    assert mean == pytest.approx(0.923, abs=1e-12) and spread == "0.00600"
    # the fine-grid V_rand of the hold-out rows, after the accuracies (seed 2 has none)
    network, measure, *per_seed, mean, spread = rows[1]
    assert (network, measure) == ("UNet 3+", "hold-out V_rand, 0.01 grid")
    assert per_seed == [0.97, 0.975, None, None]
    assert mean == pytest.approx(0.9725, abs=1e-12) and spread == "0.00500"
    text = "\n".join(seed_spread_section("quick", tmp_path))
    assert "## Seed spread (not in the report)" in text
    assert re.search(r"\| UNet 3\+ \| hold-out \| 0\.9200 \| 0\.9260 \| 0\.9230 \| – \| "
                     r"0\.9230 \| 0\.00600 \|", text), text
    assert "| network | measure | seed 0 | seed 1 | seed 2 | seed 12 | mean | max - min |" in text
    # how each seed trained: only UNet 3+'s hold-out has two seeds with a record
    assert seed_training("quick", tmp_path) == ([0, 1, 2, 12], [
        ["UNet 3+", "hold-out", "14 epochs, 30 min 00 s (time limit of 30 min)",
         "30 epochs, 15 min 28 s", None, None]])
    assert ("| UNet 3+ | hold-out | 14 epochs, 30 min 00 s (time limit of 30 min) | "
            "30 epochs, 15 min 28 s | – | – |") in text
    assert "depends on the machine's speed" in text
    # a seed folder's own summary has no spread (no seed folders under it)
    assert seed_spread_section("quick", tmp_path / "seed-1") == []
