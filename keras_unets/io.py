"""Atomic file writes: a crash or kill never leaves a half-written file.

Everything is written to a temporary file in the destination folder and then
moved into place with :func:`os.replace`, which is atomic on POSIX and Windows.
A kill can leave such a temporary file behind (``.<name>.tmp-<pid>``, see
:func:`temporary_sibling`); :func:`remove_temporaries` clears them.

JSON is written strictly (RFC 8259): NaN and infinities, which Python's
``json`` would write as the non-standard ``NaN``/``Infinity``, become ``null``.
"""
import contextlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np

_TEMPORARY = re.compile(r"^\..+\.tmp-\d+(\.[A-Za-z0-9]+)?$")


def temporary_sibling(path, *, keep_suffix=False):
    """The temporary name this process writes ``path`` to before moving it into place.

    ``.<name>.tmp-<pid>`` in the same folder; with ``keep_suffix`` the
    suffix is repeated at the end (``.last.keras.tmp-12.keras``) for writers
    that insist on it, such as ``keras.Model.save``.
    """
    path = Path(path)
    suffix = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def remove_temporaries(folder):
    """Delete the temporary files a killed writer left in ``folder``; return their names."""
    removed = []
    for p in sorted(Path(folder).glob(".*.tmp-*")):
        if p.is_file() and _TEMPORARY.match(p.name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p.name)
    return removed


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a temporary sibling of ``path`` and move it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def finite_json(obj):
    """``obj`` with every NaN/infinite float (numpy scalars and arrays too) as ``None``.

    Dicts, lists and tuples are converted recursively (tuples become lists);
    numpy scalars and arrays become Python numbers and lists; anything else
    is returned as it is.
    """
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite_json(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def atomic_write_json(path, obj, *, indent=2):
    """Write ``obj`` as strict JSON to ``path`` atomically (non-finite floats as ``null``).

    Objects JSON cannot hold (paths, ...) are written as their ``str``.
    """
    text = json.dumps(finite_json(obj), indent=indent, sort_keys=False, default=str,
                      allow_nan=False)
    atomic_write_text(path, text + "\n")


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
