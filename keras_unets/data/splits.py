"""Splits of the labelled slices into training and test slices: the one definition.

``get_split("report")`` is the "U-Net School" report's split (train 0-24,
test 25-29 of the 30 labelled ISBI 2012 slices); ``"kfold"`` gives
contiguous folds, ``"all"`` the U-Net paper's train-on-everything setting,
and a slice selection such as ``"20-24"`` names the test slices directly
(:func:`parse_slices`, written back by :func:`format_slices`).
"""
import re
from typing import NamedTuple

import numpy as np

__all__ = ["ISBI2012_SLICES", "BLIND_SLICES", "SPLIT_NAMES", "Split", "parse_slices", "format_slices", "get_split"]

#: Labelled slices of ISBI 2012 (the training volume), what ``"report"`` splits.
ISBI2012_SLICES = 30

#: Training slices of the report's split that tune the "blind" binarisation
#: threshold (25-29 then only measure), and that the hold-out run holds out.
BLIND_SLICES = tuple(range(20, 25))

#: Named splits accepted by :func:`get_split`.
SPLIT_NAMES = ("report", "kfold", "all")


class Split(NamedTuple):
    """A named split of the 30 labelled slices into train and test indices."""

    name: str
    train: tuple
    test: tuple



def parse_slices(spec, n_slices=None):
    """Parse a slice selection such as ``"25-29,3"`` into sorted indices.

    Ranges are inclusive (``"25-29"`` = 25, 26, 27, 28, 29), as in the
    report's test set. Also accepts an int or an iterable of ints.

    >>> parse_slices("25-29,3")
    (3, 25, 26, 27, 28, 29)

    Raises:
        ValueError: malformed, empty, reversed, negative or (with
            ``n_slices``) out-of-range indices.
    """
    if isinstance(spec, (int, np.integer)):
        indices = [int(spec)]
    elif isinstance(spec, str):
        indices = []
        parts = [part.strip() for part in spec.split(",")]
        for part in parts:
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not match:
                raise ValueError(
                    f"Cannot parse slice selection {spec!r} at {part!r}; use "
                    "indices and inclusive ranges like '25-29' or '0-24,27'. "
                    f"Received: slices={spec!r}"
                )
            start = int(match.group(1))
            stop = int(match.group(2)) if match.group(2) is not None else start
            if stop < start:
                raise ValueError(
                    f"Reversed range {part!r} in slice selection; write it as "
                    f"'{stop}-{start}'. Received: slices={spec!r}"
                )
            indices.extend(range(start, stop + 1))
    else:
        try:
            indices = [int(i) for i in spec]
        except (TypeError, ValueError):
            raise ValueError(
                "Slices must be a string like '25-29', an int or a list of "
                f"ints. Received: slices={spec!r}"
            ) from None
    if not indices:
        raise ValueError(f"Empty slice selection. Received: slices={spec!r}")
    bad = [i for i in indices if i < 0 or (n_slices is not None and i >= n_slices)]
    if bad:
        limit = f"0..{n_slices - 1}" if n_slices is not None else ">= 0"
        raise ValueError(
            f"Slice indices {sorted(set(bad))} out of range {limit}. "
            f"Received: slices={spec!r}"
        )
    return tuple(sorted(set(indices)))


def format_slices(indices):
    """Inverse of :func:`parse_slices`: ``(0, 1, 2, 7)`` -> ``"0-2,7"``."""
    indices = sorted(set(int(i) for i in indices))
    runs = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def get_split(name="report", *, n_folds=5, fold=0, n_slices=ISBI2012_SLICES):
    """Split the labelled slices into train and test indices.

    Args:
        name: ``"report"`` (default): train 0-24, test 25-29, the held-out
            slices of the "U-Net School" report. ``"kfold"``: fold ``fold`` of
            ``n_folds`` contiguous folds (serial sections are correlated with
            their neighbours, so contiguous folds keep neighbours of a test
            slice out of training as much as possible; fold sizes differ by at
            most one, larger folds first). ``"all"``: train on every slice, no
            test slices (the U-Net paper's setting for the challenge). Any
            other string is read by :func:`parse_slices` as the test slices,
            e.g. ``"20-24"``, with the remaining slices for training.
        n_folds: number of folds for ``"kfold"`` (2..n_slices).
        fold: which fold is the test set (0..n_folds-1).
        n_slices: number of labelled slices (30 in ISBI 2012).

    Returns:
        ``Split(name, train, test)`` with tuples of slice indices.
    """
    if not isinstance(n_slices, (int, np.integer)) or n_slices < 1:
        raise ValueError(f"n_slices must be a positive int. Received: n_slices={n_slices!r}")
    everything = tuple(range(n_slices))
    if isinstance(name, Split):
        return name
    if not isinstance(name, str):
        raise ValueError(
            f"Split name must be one of {SPLIT_NAMES} or a slice selection like "
            f"'25-29'. Received: name={name!r}"
        )
    key = name.strip().lower()
    if key == "report":
        if n_slices != ISBI2012_SLICES:
            raise ValueError(
                "The 'report' split (train 0-24, test 25-29) needs the 30 ISBI "
                f"2012 slices. Received: n_slices={n_slices}; use 'kfold' or a "
                "slice selection."
            )
        return Split("report", everything[:25], everything[25:])
    if key == "all":
        return Split("all", everything, ())
    if key == "kfold":
        if not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= n_slices:
            raise ValueError(
                f"n_folds must be an int in 2..{n_slices}. Received: n_folds={n_folds!r}"
            )
        if not isinstance(fold, (int, np.integer)) or not 0 <= fold < n_folds:
            raise ValueError(
                f"fold must be an int in 0..{n_folds - 1} for n_folds={n_folds}. "
                f"Received: fold={fold!r}"
            )
        folds = np.array_split(np.arange(n_slices), n_folds)
        test = tuple(int(i) for i in folds[fold])
        train = tuple(i for i in everything if i not in test)
        return Split(f"kfold{n_folds}-{fold}", train, test)
    try:
        test = parse_slices(name, n_slices=n_slices)
    except ValueError as exc:
        raise ValueError(
            f"Unknown split {name!r}: use one of {SPLIT_NAMES} or a slice "
            f"selection like '25-29' for the test slices. ({exc})"
        ) from None
    train = tuple(i for i in everything if i not in test)
    return Split(format_slices(test), train, test)
