"""Shared command line of the experiment scripts (``python experiments/unet.py --help``)."""
import argparse
import shlex
import sys
from pathlib import Path

# Run from a checkout without installing: make the package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(description):
    """``--profile``, ``--results``, ``--data``; the profile defaults like ``make``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", choices=["paper", "quick", "smoke"], default=None,
                        help="default: $PROFILE, else paper with a GPU, else quick")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    parser.add_argument("--data", default=None,
                        help="ISBI 2012 folder (default: $ISBI2012_DIR, ~/.keras/datasets/isbi2012)")
    args = parser.parse_args()
    from keras_unets.report.provenance import default_profile

    if args.profile is None:
        args.profile, reason = default_profile()
    else:
        reason = "--profile"
    print(f"profile: {args.profile} ({reason})")
    args.command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    return args


def run(main):
    """Run ``main()``; a missing data folder exits 1 with the data layer's message."""
    try:
        main()
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ == "DataNotFoundError":
            print(f"Error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
