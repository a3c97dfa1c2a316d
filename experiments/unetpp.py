"""UNet++ on ISBI 2012, as in section V.B of the "U-Net School" report.

UNet++ (Zhou et al., DLMIA 2018) nests dense skip pathways between the
encoder and decoder and can be trained with deep supervision: a 1x1 sigmoid
head on each of X^{0,1..4}. The report trained it with and without deep
supervision (Table II): the heads out1..out4 reached 0.878 / 0.886 / 0.891 /
0.894, the model without deep supervision 0.917, and Fig. 12 showed the
training accuracy per epoch of both.

What the report could not show is why deep supervision is there at all:
pruning. Cutting the trained DS model at X^{0,i} (level Li) keeps only what
head i needs, so inference gets faster. We time L1..L4 on the test slices.

Run: ``python experiments/unetpp.py [--profile quick|paper|smoke]`` (or
``make reproduce-unetpp``). Output: results/<profile>/unetpp/ and SUMMARY.md.
"""
from _common import parse_args, run


def main():
    args = parse_args(__doc__.splitlines()[0])

    from keras_unets.report import paper, summary, unetpp

    # Trains `unetpp_ds` and `unetpp` (reusing finished runs), evaluates each
    # head as the pruned sub-network, times it, draws Fig. 12 and the pruning
    # curve, writes metrics.json, table.md and provenance.json.
    metrics = unetpp.run_unetpp(args.profile, results=args.results, data_dir=args.data,
                                command=args.command)

    # Table II and the pruning levels, side by side with the report.
    heads = paper.REPORT["unetpp"]["ds_heads"]
    for level in metrics["pruning"]:
        print(f"{level['level']} ({level['head']}): report {heads[level['head']]:.3f}   "
              f"ours {level['accuracy']:.4f}   {level['seconds_per_slice'] * 1000:.1f} ms/slice   "
              f"{level['parameters']:,} parameters")
    print(f"no deep supervision: report {paper.REPORT['unetpp']['no_ds']:.3f}   "
          f"ours {metrics['table2']['no_ds']:.4f}")

    print(summary.write_summary(args.profile, results=args.results))


if __name__ == "__main__":
    run(main)
