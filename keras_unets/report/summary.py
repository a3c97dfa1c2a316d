"""SUMMARY.md of a profile: the three networks side by side, the hold-out, the seed spread.

``<results>/<profile>/SUMMARY.md`` is regenerated from the experiments'
``metrics.json`` by every ``make reproduce-*`` target (and ``keras-unets
reproduce summary``). Runs with an explicit seed go to ``results/seed-N``
(:func:`default_results`); the profile's own SUMMARY.md gets a table of
every measure that two or more seeds have (:func:`seed_spread`).
"""
import json
import re
from pathlib import Path

import numpy as np

from keras_unets.io import atomic_write_text
from keras_unets.report.markdown import (fine_cell, fmt, format_seconds, markdown_table,
                                         stopped_note)
from keras_unets.report.paper import EXPERIMENTS, REPORT, REPORT_ACCURACY
from keras_unets.report.provenance import check_profile
from keras_unets.report.runs import profile_settings
from keras_unets.report.scoring import timing_note


def _trained_at(eval_commit, arms):
    """'; run(s) NAME, ... trained at commit ...' for each reused run trained by other code.

    Names the runs, so a folder that mixes runs of this commit with older
    ones (a hold-out rerun of one network) does not read as all older.
    """
    by_commit = {}
    for name, a in sorted(arms.items()):
        commit = a.get("git_commit") or "unknown"
        if commit != eval_commit or a.get("git_dirty"):
            label = commit[:12] + (" (dirty)" if a.get("git_dirty") else "")
            by_commit.setdefault(label, []).append(name)
    return "".join(f"; {'runs' if len(names) > 1 else 'run'} {', '.join(names)} trained at commit {label}"
                   for label, names in sorted(by_commit.items()))


def _tta_row(s, report):
    """One row of SUMMARY.md's TTA table (dashes for metrics without ``tta_*`` keys)."""
    head = [s["network"], "–" if report is None else str(report)]
    if "tta_accuracy_as_report" not in s:
        return head + ["–"] * 4
    gain = (f"{s['tta_accuracy_as_report'] - s['accuracy_as_report']:+.4f} / "
            f"{s['tta_accuracy_blind'] - s['accuracy_blind']:+.4f}")
    return head + [
        f"{fmt(s['tta_accuracy_as_report'])} (t={s['tta_threshold_as_report']})",
        f"{fmt(s['tta_accuracy_blind'])} (t={s['tta_threshold_blind']})",
        gain, f"{s['tta_seconds_per_slice'] * 1000:.0f} ms",
    ]


def holdout_row(s, report):
    """One row of the hold-out table (:data:`HOLDOUT_HEADERS`) of table.md and SUMMARY.md."""
    return [
        s["network"], "–" if report is None else str(report), s.get("train_slices") or "–",
        f"{s['best_epoch']} of {s['epochs']}", str(s["threshold"]), s["accuracy"],
        f"{fmt(s['tta_accuracy'])} (t={s['tta_threshold']})",
        f"{fmt(s['accuracy_test_threshold'])} (t={s['threshold_test']})",
        s.get("v_rand"), fine_cell(s), s.get("v_info"),
        format_seconds(s["train_seconds"])
        + stopped_note(s),
    ]


HOLDOUT_NOTE = (
    "The checkpoint (best epoch on 20-24) and the threshold (tuned on 20-24) are chosen "
    "on slices the network never saw, and 25-29 only measure. The column \"same "
    "checkpoint, threshold from 25-29\" shows what tuning the threshold on the test "
    "slices, as the report did, would give."
)
HOLDOUT_HEADERS = ["network", "report", "trained on", "epoch (chosen on 20-24)",
                   "threshold (from 20-24)", "accuracy on 25-29", "+ TTA",
                   "same checkpoint, threshold from 25-29", "V_rand", "V_rand, 0.01 grid",
                   "V_info", "training"]


def default_results(seed=None):
    """The results root: ``results``, or ``results/seed-N`` for an explicit seed.

    Runs with an explicit seed go to their own root, so they never mix with
    (or reuse) the profile's runs and each gets its own SUMMARY.md. (A
    ``results/seed-N`` whose N is the profile's own seed is left out of
    :func:`seed_spread`, which counts ``results/<profile>`` for that seed.)
    """
    return "results" if seed is None else f"results/seed-{int(seed)}"


# (experiment, metrics.json summary key, label) of the seed-spread table
SPREAD_MEASURES = (
    ("holdout", "accuracy", "hold-out"),
    ("holdout", "tta_accuracy", "hold-out + TTA"),
    ("main", "accuracy_as_report", "as the report"),
    ("main", "accuracy_blind", "blind"),
    ("holdout", "v_rand_fine", "hold-out V_rand, 0.01 grid"),
    ("main", "v_rand_fine", "V_rand, 0.01 grid"),
)


def results_seed(results):
    """N for a results root named ``seed-N`` (what ``--seed N`` writes), else ``None``."""
    match = re.fullmatch(r"seed-(\d+)", Path(results).name)
    return None if match is None else int(match.group(1))


def seed_roots(profile, results="results"):
    """``{seed: folder}`` of the profile's runs: ``results/<profile>`` and ``results/seed-N/<profile>``.

    The profile's own folder counts as the profile's seed (every network of
    the built-in profiles uses the same one); ``results/seed-N`` are the
    folders that ``--seed N`` writes by default (:func:`default_results`).
    """
    base = Path(results)
    roots = {int(profile_settings(profile, "unet")["seed"]): base / profile}
    for folder in sorted(base.glob("seed-*")):
        seed = results_seed(folder)
        if seed is not None and (folder / profile).is_dir():
            roots.setdefault(seed, folder / profile)
    return dict(sorted(roots.items()))


def _seed_records(profile, results="results"):
    """The summary records of every seed's runs: ``(seeds, [(seed, kind, record)])``.

    ``seeds``: the seeds with any ``metrics.json`` under :func:`seed_roots`;
    ``kind``: ``"holdout"`` for the hold-out experiment, else ``"main"``.
    """
    records, seeds = [], set()
    for seed, root in seed_roots(profile, results).items():
        for exp in (*EXPERIMENTS, "holdout"):
            path = root / exp / "metrics.json"
            if not path.exists():
                continue
            seeds.add(seed)
            kind = "holdout" if exp == "holdout" else "main"
            summary = json.loads(path.read_text()).get("summary", [])
            records += [(seed, kind, rec) for rec in summary]
    return sorted(seeds), records


def _spread_rows(seeds, records):
    values = {}  # (network, label) -> {seed: value}
    for seed, kind, rec in records:
        for k, key, label in SPREAD_MEASURES:
            if k == kind and rec.get(key) is not None:
                values.setdefault((rec["network"], label), {})[seed] = float(rec[key])
    order = {label: i for i, (_, _, label) in enumerate(SPREAD_MEASURES)}
    rows = []
    for (network, label), by_seed in sorted(values.items(),
                                            key=lambda kv: (order[kv[0][1]], kv[0][0])):
        if len(by_seed) < 2:
            continue
        got = list(by_seed.values())
        rows.append([network, label, *[by_seed.get(s) for s in seeds],
                     float(np.mean(got)), f"{max(got) - min(got):.5f}"])
    return rows


def _training_rows(seeds, records):
    cells = {}  # (network, run) -> {seed: text}
    for seed, kind, rec in records:
        if rec.get("epochs") is None or rec.get("train_seconds") is None:
            continue
        run = "hold-out" if kind == "holdout" else "main"
        cells.setdefault((rec["network"], run), {})[seed] = (
            f"{rec['epochs']} epochs, {format_seconds(rec['train_seconds'])}"
            + stopped_note(rec))
    return [[network, run, *[by_seed.get(s) for s in seeds]]
            for (network, run), by_seed in sorted(cells.items(),
                                                  key=lambda kv: (kv[0][1], kv[0][0]))
            if len(by_seed) >= 2]


def seed_spread(profile, results="results"):
    """Per network and measure, the accuracy (or fine-grid V_rand) on 25-29 of each seed's run.

    Returns ``(seeds, rows)``: the seeds with any metrics, and rows
    ``[network, measure, value per seed (None if not run), mean, max - min]``
    (the range as a string with 5 decimals: seeds can agree to 4),
    only for measures that at least two seeds have. The runs are read from
    :func:`seed_roots`' ``metrics.json`` files.
    """
    seeds, records = _seed_records(profile, results)
    return seeds, _spread_rows(seeds, records)


def seed_training(profile, results="results"):
    """Per network and run kind, how each seed's run trained: epochs and time.

    Returns ``(seeds, rows)`` with rows ``[network, run, text per seed]``,
    e.g. ``"14 epochs, 30 min 00 s (time limit)"`` (``None`` if not run),
    for the runs of at least two seeds. A time limit makes the amount of
    training depend on the machine's speed: two seeds trained on machines of
    different speeds differ in more than the seed, and this says so.
    """
    seeds, records = _seed_records(profile, results)
    return seeds, _training_rows(seeds, records)


def seed_spread_section(profile, results="results"):
    """SUMMARY.md lines of :func:`seed_spread` (none when no measure has two seeds)."""
    seeds, records = _seed_records(profile, results)  # read once for both tables
    spread = _spread_rows(seeds, records)
    if not spread:
        return []
    training = _training_rows(seeds, records)
    lines = [
        "\n## Seed spread (not in the report)\n",
        "The same recipes trained again with other seeds (`make reproduce-* SEED=N`, "
        f"written to `results/seed-N/{profile}/`); pixel accuracy on slices 25-29 by the "
        "rule of each table above, and the V_rand of the same checkpoints on the 0.01 grid. "
        "Only measures that two or more seeds have are shown.\n",
        markdown_table(["network", "measure", *[f"seed {s}" for s in seeds], "mean",
                        "max - min"], spread),
    ]
    if training:
        lines += [
            "\nHow each seed's run trained. Under a time limit the number of epochs "
            "depends on the machine's speed, so seeds trained on machines of different "
            "speeds differ in more than the seed.\n",
            markdown_table(["network", "run", *[f"seed {s}" for s in seeds]], training),
        ]
    return lines


def _network_row(s, report, machine):
    """One row of SUMMARY.md's main table (a network summary of metrics.json)."""
    return [
        s["network"], "–" if report is None else str(report),
        f"{fmt(s['accuracy_as_report'])} (t={s['threshold_as_report']})",
        f"{fmt(s['accuracy_blind'])} (t={s['threshold_blind']})",
        s.get("v_rand"), fine_cell(s), s.get("v_info"), int(s["parameters"]),
        f"{format_seconds(s['train_seconds'])}, {s['epochs']} epochs"
        + stopped_note(s),
        s.get("train_machine") or machine, f"{s['seconds_per_slice'] * 1000:.0f} ms",
    ]


class _Found:
    """What SUMMARY.md gathers from the metrics.json files, experiment by experiment."""

    def __init__(self):
        self.rows, self.tta_rows, self.figures, self.provs, self.missing = [], [], [], [], []
        self.arms, self.evaluation = {}, {}

    def add(self, exp, m):
        """Record ``exp``'s provenance, arms, timing and figures (its ``metrics.json`` ``m``)."""
        self.provs.append((exp, m.get("provenance", {})))
        self.arms[exp] = m.get("arms", {})
        self.evaluation[exp] = m.get("evaluation_seconds")
        self.figures += [(exp, f) for f in m.get("figures", [])]


def _read_experiments(root):
    """The main and TTA rows of the report's three experiments under ``root``."""
    found = _Found()
    for exp in EXPERIMENTS:
        path = root / exp / "metrics.json"
        if not path.exists():
            found.missing.append(exp)
            found.rows.append([REPORT[exp]["network"], str(REPORT[exp]["accuracy"]),
                               "not run yet", *["–"] * 8])
            continue
        m = json.loads(path.read_text())
        found.add(exp, m)
        machine = m.get("provenance", {}).get("machine", {}).get("description", "–")
        for s in m.get("summary", []):
            report = REPORT_ACCURACY.get(s["network"])
            found.rows.append(_network_row(s, report, machine))
            found.tta_rows.append(_tta_row(s, report))
    return found


def _introduction(profile, seed):
    """SUMMARY.md's title and the rules of its columns."""
    seed_arg = "" if seed is None else f" SEED={seed}"
    return [
        f"# U-Net School, reproduced ({profile} profile"
        + ("" if seed is None else f", seed {seed}") + ")\n",
        "Pixel accuracy on ISBI 2012 training slices 25-29 (trained on 0-24), as in "
        "Liu, Shi, Chen, \"U-Net School for Medical Image Segmentation\". Regenerated by "
        f"every `make reproduce-*{seed_arg}` target from `{default_results(seed)}/{profile}/*/metrics.json`.\n",
        "- **ours, as the report**: checkpoint with the best accuracy on 25-29, "
        "binarisation threshold tuned on 25-29 (what the report did: both chosen on "
        "its test slices).",
        "- **ours, blind**: last checkpoint, threshold tuned on training slices 20-24 "
        "(seen in training, but the test slices are used only to measure).",
        "- V_rand / V_info: the ISBI 2012 challenge's foreground-restricted scores after "
        "thinning (`keras_unets.metrics.evaluate`, best checkpoint): averaged over slices "
        "25-29, maximised over thresholds 0.0, 0.1, ..., 1.0 as the challenge's script does. "
        "V_rand on the 0.01 grid maximises over 0.00, 0.01, ..., 1.00 instead "
        "(`keras_unets.metrics.isbi.FINE_THRESHOLDS`; th = where), so that a network whose best "
        "threshold falls between the challenge's is not marked down for it; \"–\" for rows "
        "evaluated before it was added.",
        "- inference: overlap-tile prediction (`keras_unets.inference.predict_tiled` defaults: "
        f"tile near 256 px, batch 4), seconds per test slice, {timing_note(profile)}.\n",
    ]


def _tables(found):
    """The main table and, when any row has TTA numbers, the TTA table."""
    text = []
    if found.rows:
        text.append(markdown_table(
            ["network", "report", "ours, as the report", "ours, blind", "V_rand",
             "V_rand, 0.01 grid", "V_info", "parameters", "training", "machine",
             "inference / slice"], found.rows))
    if any(r[2] != "–" for r in found.tta_rows):
        text += [
            "\n## With test-time augmentation\n",
            "The same checkpoints and threshold rules, each slice predicted as the mean over "
            "its 8 flips and right-angle rotations (`predict_tiled(tta=True)`; for its "
            "ISBI 2012 entry the U-Net paper averaged 7 rotated versions of the input). The "
            "gain is against the table above; inference is one timed call.\n",
            markdown_table(["network", "report", "ours, as the report + TTA",
                            "ours, blind + TTA", "gain (as the report / blind)",
                            "inference / slice"], found.tta_rows),
        ]
    return text


def _holdout_section(root, found):
    """The hold-out's table, when ``root/holdout/metrics.json`` exists."""
    holdout = root / "holdout" / "metrics.json"
    if not holdout.exists():
        return []
    m = json.loads(holdout.read_text())
    found.add("holdout", m)
    return [
        "\n## True hold-out (not in the report)\n",
        "The same recipes trained on slices 0-19 only (`make reproduce-holdout`). "
        f"{HOLDOUT_NOTE}\n",
        markdown_table(HOLDOUT_HEADERS, [holdout_row(s, REPORT_ACCURACY.get(s["network"]))
                                         for s in m.get("summary", [])]),
    ]


def _minutes(seconds):
    return "–" if seconds is None else format_seconds(seconds)


def _wall_clock_section(root, found):
    """How long each experiment took: its trainings, its evaluation, its last run in all."""
    from keras_unets.report.pipeline import WALL_CLOCK

    try:
        record = json.loads((root / WALL_CLOCK).read_text())
    except (OSError, ValueError):
        record = {}
    experiments = record.get("experiments") or {}
    rows = []
    for exp, arms in found.arms.items():
        trained = ", ".join(f"{arm} {_minutes(a.get('train_seconds'))}"
                            for arm, a in arms.items())
        rows.append([exp, trained or "–", _minutes(found.evaluation.get(exp)),
                     _minutes((experiments.get(exp) or {}).get("seconds"))])
    if not rows:
        return []
    text = ["\n## Wall clock\n"]
    last = record.get("last_call")
    if last:
        prov = last.get("provenance") or {}
        text.append(
            f"The last `keras-unets reproduce` call ({', '.join(last.get('experiments', []))}) "
            f"took **{_minutes(last.get('seconds'))}** in all (data, training, evaluation "
            f"and this file; Python's start and imports not counted), "
            f"{prov.get('date_utc', '?')}, {prov.get('machine', {}).get('description', '?')}. "
            "Per experiment: each training arm (its time limit counts from the arm's "
            "first step), the evaluation after training, and the experiment in all in "
            "its latest run (a reused training costs only its evaluation).\n")
    text.append(markdown_table(["experiment", "training per arm", "evaluation",
                                "experiment in all"], rows))
    return text


def _figures_section(figures):
    """Every experiment's figures, linked."""
    if not figures:
        return []
    text = ["\n## Figures\n"]
    for exp, fig in figures:
        name = Path(fig).stem.replace("_", " ")
        text.append(f"### {exp}: {name}\n\n![{exp} {name}]({exp}/{fig})\n")
    return text


def _provenance_section(provs, arms):
    """One line per experiment: command, date, commit, versions, machine, older runs."""
    if not provs:
        return []
    text = ["\n## Provenance\n"]
    for exp, p in provs:
        v = p.get("versions", {})
        text.append(
            f"- {exp}: `{p.get('command', '?')}` at {p.get('date_utc', '?')}, commit "
            f"{(p.get('git_commit') or 'unknown')[:12]}{' (dirty)' if p.get('git_dirty') else ''}; "
            f"keras {v.get('keras')} ({v.get('keras_backend')}), Python {v.get('python')}, "
            f"numpy {v.get('numpy')}; {p.get('machine', {}).get('description', '?')}"
            + _trained_at(p.get("git_commit"), arms.get(exp, {})))
    text.append("")
    return text


def write_summary(profile, *, results="results"):
    """(Re)write ``results/<profile>/SUMMARY.md`` from the experiments' metrics.json."""
    check_profile(profile)
    root = Path(results) / profile
    seed = results_seed(results)
    seed_arg = "" if seed is None else f" SEED={seed}"
    found = _read_experiments(root)
    text = _introduction(profile, seed) + _tables(found) + _holdout_section(root, found)
    text += _wall_clock_section(root, found)
    text += seed_spread_section(profile, results)
    if found.missing:
        targets = {exp: f"reproduce-{exp}" for exp in EXPERIMENTS}
        text.append("\nNot run yet: " + ", ".join(
            f"{e} (`make {targets[e]} PROFILE={profile}{seed_arg}`)" for e in found.missing)
            + ".\n")
    text += _figures_section(found.figures)
    text += _provenance_section(found.provs, found.arms)
    path = root / "SUMMARY.md"
    atomic_write_text(path, "\n".join(text))
    return path
