"""Build the Jupyter notebooks from their percent-format ``.py`` sources.

Each ``notebooks/NN_name.py`` (cells separated by ``# %%`` lines, markdown
cells by ``# %% [markdown]`` with every line commented, as jupytext and
VS Code write them) becomes ``notebooks/NN_name.ipynb``: nbformat v4.5 JSON,
outputs empty, deterministic cell ids, so a rebuild of an unchanged source
gives identical bytes. No jupytext needed.

    python notebooks/build.py            # (re)write every notebook
    python notebooks/build.py --check    # exit 1 if a notebook is out of date
    python notebooks/build.py 01_unet.py # only these sources
"""
import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.py$")
CELL_MARKER = re.compile(r"^# %%(?P<title>[^\[]*)(?:\[(?P<kind>\w+)\])?\s*$")

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3",
                 "codemirror_mode": {"name": "ipython", "version": 3},
                 "file_extension": ".py", "mimetype": "text/x-python"}


def _split_lines(text):
    """Notebook ``source``: a list of lines, each but the last ending in ``\\n``."""
    lines = text.split("\n")
    return [ln + "\n" for ln in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _uncomment(line):
    if line.startswith("# "):
        return line[2:]
    if line.startswith("#"):
        return line[1:]
    return line


def parse_percent(text):
    """``[(kind, source_text), ...]`` with kind ``"code"`` or ``"markdown"``.

    Lines before the first ``# %%`` marker form a code cell (unless blank).
    Markdown lines lose their leading ``# ``; leading and trailing blank lines
    of each cell are dropped.
    """
    cells, kind, lines = [], "code", []

    def flush():
        body = list(lines)
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        if body:
            if kind == "markdown":
                body = [_uncomment(ln) for ln in body]
            cells.append((kind, "\n".join(body)))

    for line in text.splitlines():
        match = CELL_MARKER.match(line)
        if match:
            flush()
            cell_kind = (match.group("kind") or "code").lower()
            if cell_kind not in ("code", "markdown", "md"):
                raise ValueError(
                    f"Unknown cell kind [{cell_kind}]; use '# %%' (code) or "
                    f"'# %% [markdown]'. Received: {line!r}"
                )
            kind = "markdown" if cell_kind in ("markdown", "md") else "code"
            lines = []
        else:
            lines.append(line)
    flush()
    return cells


def to_notebook(cells, name):
    """An nbformat v4.5 notebook dict (ids derived from ``name`` and position)."""
    out = []
    for i, (kind, source) in enumerate(cells):
        cell_id = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:12]
        cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": _split_lines(source)}
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        out.append(cell)
    return {
        "cells": out,
        "metadata": {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(source_path):
    """The notebook JSON text for one percent-format source file."""
    source_path = Path(source_path)
    nb = to_notebook(parse_percent(source_path.read_text(encoding="utf-8")), source_path.stem)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def sources(names=None):
    """The ``NN_name.py`` sources in this folder (or the named ones)."""
    if names:
        paths = [HERE / Path(n).name for n in names]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise SystemExit(f"build.py: no such notebook source: {', '.join(missing)}")
        return paths
    return sorted(p for p in HERE.glob("*.py") if SOURCE_PATTERN.match(p.name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help="NN_name.py files (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a notebook differs from its source")
    args = parser.parse_args(argv)
    stale = []
    for src in sources(args.sources):
        target = src.with_suffix(".ipynb")
        text = render(src)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(target.name)
            continue
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        print(f"wrote {target.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
