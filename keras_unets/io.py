"""Atomic file writes: a crash or kill never leaves a half-written file.

Everything is written to a temporary file in the destination folder and then
moved into place with :func:`os.replace`, which is atomic on POSIX and Windows.
"""
import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a temporary sibling of ``path`` and move it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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


def atomic_write_json(path, obj, *, indent=2):
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, sort_keys=False, default=str)
        fh.write("\n")


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
