"""The three networks side by side: results/<profile>/SUMMARY.md.

Reads the metrics.json that experiments/unet.py, unetpp.py and unet3p.py
wrote and rewrites one table: per network, the report's accuracy, ours with
the threshold tuned on the test slices 25-29 (as the report did) and ours
blind (last checkpoint, threshold tuned on training slices 20-24), V_rand,
V_info, parameters, training time and machine, inference time per slice;
then every figure. Every experiment script and `make reproduce-*` target
also rewrites it, so this script is only needed after editing results.
"""
from _common import parse_args, run


def main():
    args = parse_args(__doc__.splitlines()[0])

    from keras_unets.report import summary

    path = summary.write_summary(args.profile, results=args.results)
    print(path.read_text())


if __name__ == "__main__":
    run(main)
