"""U-Net on ISBI 2012, as in section V.A of the "U-Net School" report.

The report (Liu, Shi, Chen) trained the Keras U-Net of Ronneberger et al.
(MICCAI 2015) on slices 0-24 and measured pixel accuracy on slices 25-29:

1. Table I. Their first network worked at 256 x 256 while the data is
   512 x 512. They tried three fixes: resize the prediction up to 512,
   resize the label down to 256, or retrain the network at 512, and scored
   0.6754 / 0.7545 / 0.6996, because they compared unbinarised uint8
   probability maps with 0/255 labels. We train the same recipe at half and
   at full resolution and score all three ways, raw and binarised.
2. Fig. 10. Binarising at the best threshold fixes it: the report found
   t = 87 of 0-255. We sweep all 256 thresholds in one histogram pass.
3. Fig. 11. Accuracy per epoch; the report's best was 0.9189.

Run: ``python experiments/unet.py [--profile quick|paper|smoke]`` (or
``make reproduce-unet``). Output: results/<profile>/unet/ and SUMMARY.md.
"""
from _common import parse_args, run


def main():
    args = parse_args(__doc__.splitlines()[0])

    from keras_unets.report import paper, summary, unet

    # Trains the full- and half-resolution arms (reusing finished ones),
    # evaluates Table I, draws Fig. 10 and Fig. 11, writes metrics.json,
    # table.md and provenance.json.
    metrics = unet.run_unet(args.profile, results=args.results, data_dir=args.data,
                            command=args.command)

    # Table I, side by side with the report.
    for name, row in metrics["table1"].items():
        report = paper.REPORT["unet"]["table1"][name]
        print(f"{name:18s} report {report:.4f}   ours raw {row['raw_accuracy']:.4f}   "
              f"binarised {row['best_accuracy']:.4f} (t={row['best_threshold']})")

    print(summary.write_summary(args.profile, results=args.results))


if __name__ == "__main__":
    run(main)
