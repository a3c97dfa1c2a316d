"""UNet 3+ on ISBI 2012, as in section V.C of the "U-Net School" report.

UNet 3+ (Huang et al., ICASSP 2020) feeds every decoder node from all
scales: shallower encoder maps max-pooled, the same-scale encoder map, and
deeper decoder maps upsampled. The report trained it with Adam 1e-3, batch 1,
BCE on logits, tested on slices 25-29 after each of 40 epochs (Fig. 13) and
found the best accuracy, 0.923, at epoch 18: the best of the three networks.

We train the profile's UNet 3+, record the accuracy on slices 25-29 at the
best threshold after every epoch, and mark the best epoch.

Run: ``python experiments/unet3p.py [--profile quick|paper|smoke]`` (or
``make reproduce-unet3p``). Output: results/<profile>/unet3p/ and SUMMARY.md.
"""
from _common import parse_args, run


def main():
    args = parse_args(__doc__.splitlines()[0])

    from keras_unets.report import paper, summary, unet3p

    # Trains `unet3p` (reusing a finished run), draws Fig. 13, writes
    # metrics.json, table.md and provenance.json.
    metrics = unet3p.run_unet3p(args.profile, results=args.results, data_dir=args.data,
                                command=args.command)

    report = paper.REPORT["unet3p"]
    ours = metrics["summary"][0]
    print(f"report: {report['accuracy']:.3f} at epoch {report['best_epoch']} of {report['epochs']}")
    print(f"ours:   {ours['accuracy_as_report']:.4f} at epoch {metrics['best_epoch']} "
          f"of {len(metrics['test_accuracy_per_epoch'] or [])}")

    print(summary.write_summary(args.profile, results=args.results))


if __name__ == "__main__":
    run(main)
