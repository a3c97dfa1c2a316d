"""Reproduce the "U-Net School" report: every table and figure, side by side.

Liu, Shi, Chen, "U-Net School for Medical Image Segmentation" (SJTU), trained
U-Net (Ronneberger et al., MICCAI 2015), UNet++ (Zhou et al., DLMIA 2018) and
UNet 3+ (Huang et al., ICASSP 2020) on ISBI 2012 slices 0-24 and measured
pixel accuracy on slices 25-29 (``keras_unets.data.get_split("report")``).
This package runs the same experiments with :func:`keras_unets.training.train`
and writes, per profile and experiment::

    results/<profile>/<experiment>/
        metrics.json      every number below, the report's numbers, provenance
        table.md          the report's table(s) with ours beside them
        provenance.json   the exact command, git commit, versions, machine
        figures/*.png     the report's figures (matplotlib, Agg)
        runs/<arm>/       training run directories (not meant for git)
    results/<profile>/SUMMARY.md   one table for the three networks + figures

Experiments (u-net-school-report.txt section V):

- ``unet``: Table I (a network at half resolution on full-resolution data:
  resize the prediction up, resize the label down, or retrain at full
  resolution; each with and without binarisation), Fig. 10 (accuracy against
  threshold 0-255, best threshold marked), Fig. 11 (accuracy per epoch).
- ``unetpp``: Table II (deep-supervision heads out1..out4 against no deep
  supervision), Fig. 12 (training accuracy per epoch with and without deep
  supervision), and what the report could not show: the DS model pruned to
  L1..L4, accuracy against inference time (Zhou et al. 2018, Sec. 2.2).
- ``unet3p``: Fig. 13 (test accuracy per epoch, best epoch marked).

Decisions where the report is silent (documented here and in SUMMARY.md):

- Table I, "retrain at 512" is the experiment's main run itself (the profile's
  U-Net recipe at full resolution); the half-resolution arm trains the same
  recipe on slices resized to H/2 x W/2 (images INTER_AREA, labels INTER_AREA
  then ``> 127``), for a third of the main run's epochs (and time limit), so
  ``make reproduce-unet`` stays within ~1.35x one training.
- "Ours, as the report": the checkpoint with the best validation accuracy on
  slices 25-29 and the threshold tuned on 25-29, as the report did (it picked
  both on its test slices). "Ours, blind": the LAST checkpoint (no model
  selection on the test slices) with the threshold tuned on training slices
  20-24. Those slices were seen in training (not a true held-out set; the
  ``holdout`` experiment below is one, at the cost of a second training),
  but the test slices 25-29 are used only to measure, never to choose.
- True hold-out (``holdout``, ``make reproduce-holdout``; not in the report
  and not in ``all``): each network's main recipe trained again on slices
  0-19 only, its checkpoint and threshold chosen on 20-24 and slices 25-29
  used only to measure. One more training per network (``quick``: 5 +
  5.5 + 9 min); ``networks=`` runs some of them, finished ones are reused, and a
  network without a finished run folder is left out of its table.
- Seed spread (``seed=N``, ``--seed N``, ``make ... SEED=N``): every arm
  trained with seed N instead of the profile's, into ``results/seed-N/``
  (:func:`~keras_unets.report.summary.default_results`) so it never mixes
  with the profile's runs; a run folder of another seed is refused
  (:class:`~keras_unets.report.runs.SeedMismatchError`).
  ``results/<profile>/SUMMARY.md`` gets a "Seed spread" table of every
  measure that two or more seeds have
  (:func:`~keras_unets.report.summary.seed_spread`).
- Time limit (``time_limit_minutes=M``, ``--time-limit M``, ``make ...
  TIME_LIMIT=M``): every arm stops after M minutes instead of the
  profile's limit (Table I's half arm: M / 3), e.g. the ``paper`` profile
  in a GPU lease (``bench/gpu_session.py``). A finished run of another
  limit is refused (:class:`~keras_unets.report.runs.TimeLimitMismatchError`);
  an interrupted one is resumed under the new limit. SUMMARY.md names the
  limit of a run it stopped.
- Test-time augmentation (``paper`` and ``smoke``; ``quick`` leaves it out,
  :data:`~keras_unets.report.scoring.EVALUATION`, as it costs 8 predictions
  per slice for a table the report does not have): both numbers are also
  given with each slice predicted as the mean over its 8 flips /
  right-angle rotations (``tta_*`` keys in metrics.json, a second table in
  SUMMARY.md); the U-Net paper averaged 7 rotated versions for its ISBI
  2012 entry. Same checkpoints, thresholds re-tuned by the same two rules.
- Provenance: ``provenance.json`` names the commit that evaluated; each
  arm's ``DONE.json`` (``metrics.json["arms"]``) names the commit that
  trained it, and SUMMARY.md says when they differ (a reused run).
- Resumable: a finished arm has ``runs/<arm>/DONE.json`` and is reused
  (a run stopped by the profile's time limit counts as finished); an arm
  with a completed epoch (``state.json``) but no marker is resumed with
  ``train(resume=...)``, its time limit starting afresh. Evaluation, tables
  and figures are recomputed on every call (seconds to a minute).
- Cost (``quick``, 2-core CPU, bounded by each network's minutes of
  training): ``unet`` 5 + at most 1.7 min, ``unetpp`` 2 x 5.5 min, ``unet3p`` 9
  min, so ``make reproduce`` takes under 30 minutes with the evaluation;
  ``smoke`` about 2-3 minutes for everything. Each call records its wall
  clock in ``results/<profile>/wall_clock.json`` and SUMMARY.md shows it
  per experiment, arm and evaluation.
- Inference time: overlap-tile prediction of the test slices with
  :func:`keras_unets.inference.predict_tiled`'s defaults, best of 3 timed calls
  after a warm-up (``quick``: one timed call after a warm-up; ``smoke``: a
  single call without warm-up, not meaningful).
- Figures again without training
  (:func:`~keras_unets.report.figures.redraw_figures`, ``keras-unets
  reproduce figures``): the figures are drawn from the histories, threshold
  curves and pruning levels kept in metrics.json, so results written by
  older plotting code can be redrawn by the current one; the numbers are
  not touched.

Modules, one job each (no module imports one below it in this list):

- :mod:`~keras_unets.report.paper`: the report's numbers (:data:`~keras_unets.report.paper.REPORT`);
- :mod:`~keras_unets.report.markdown`: table cells and markdown tables;
- :mod:`~keras_unets.report.provenance`: profile choice, machine, commit,
  versions; writing an experiment's metrics.json, table.md, provenance.json;
- :mod:`~keras_unets.report.runs`: training arms, their reuse and resumption,
  the seed and time-limit checks (``DONE.json``);
- :mod:`~keras_unets.report.scoring`: as the report, blind, TTA, hold-out,
  pruning, V_rand / V_info;
- :mod:`~keras_unets.report.figures`: every figure, and drawing them again;
- :mod:`~keras_unets.report.summary`: SUMMARY.md and the seed spread;
- :mod:`~keras_unets.report.unet`, :mod:`~keras_unets.report.unetpp`,
  :mod:`~keras_unets.report.unet3p`, :mod:`~keras_unets.report.holdout`:
  the experiments;
- :mod:`~keras_unets.report.pipeline`: :func:`~keras_unets.report.pipeline.reproduce`, what
  ``keras-unets reproduce`` runs.
"""
