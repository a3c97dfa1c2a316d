"""Build the Jupyter notebooks from their percent-format ``.py`` sources, and run them.

Each ``notebooks/NN_name.py`` (cells separated by ``# %%`` lines, markdown
cells by ``# %% [markdown]`` with every line commented, as jupytext and
VS Code write them) becomes ``notebooks/NN_name.ipynb``: nbformat v4.5 JSON
written like Jupyter writes it (sorted keys, one-space indent), with
deterministic cell ids. No jupytext needed.

    python notebooks/build.py             # (re)write the sources into the notebooks
    python notebooks/build.py --check     # exit 1 if a notebook's cells differ from its source
    python notebooks/build.py --execute   # rebuild and execute, storing outputs and figures
    python notebooks/build.py --execute 01_unet.py   # only these sources

Outputs. The stored notebooks are executed (``--execute``: nbclient, a kernel
running this Python, so this venv; working directory ``notebooks/``;
figures inline as ``image/png``), so they read well without running. A plain
build keeps the outputs of every code cell whose source did not change
(matched by position, else by identical source) and leaves changed cells
empty: **run ``--execute`` after editing a source** to refresh them (outputs
of later cells may depend on the edit). ``--check`` compares only the cells'
types and sources, so executed outputs never make it fail.

Setting. The notebooks read ``KERAS_UNETS_NB_FAST``: unset (or ``0``) is the
stored setting, a short real training per network (about 2 minutes of CPU
each on a 2-core machine); ``KERAS_UNETS_NB_FAST=1`` is the CI setting (tiny
models, seconds; tests/test_notebooks.py). ``--execute`` passes the variable
through, so store notebooks without it.

Volatile parts are removed after execution (cell execution timestamps, the
kernel's version in the notebook metadata), so re-executing gives a diff of
the numbers and figures only.
"""
import argparse
import copy
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.py$")
CELL_MARKER = re.compile(r"^# %%(?P<title>[^\[]*)(?:\[(?P<kind>\w+)\])?\s*$")

KERNEL_NAME = "python3"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": KERNEL_NAME}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3",
                 "codemirror_mode": {"name": "ipython", "version": 3},
                 "file_extension": ".py", "mimetype": "text/x-python"}
FAST_ENV = "KERAS_UNETS_NB_FAST"
DEFAULT_TIMEOUT = 1800  # seconds per cell
# C++ log lines of TensorFlow/absl that reach the kernel's stderr: not part of
# the walkthrough, and they differ between machines.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]"
    r"|To enable the following instructions:|.*This TensorFlow binary is optimized)")


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
        "metadata": {"kernelspec": dict(KERNELSPEC), "language_info": copy.deepcopy(LANGUAGE_INFO)},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def build_notebook(source_path):
    """The notebook dict (no outputs) of one percent-format source file."""
    source_path = Path(source_path)
    return to_notebook(parse_percent(source_path.read_text(encoding="utf-8")), source_path.stem)


def dumps(nb):
    """Notebook JSON text as Jupyter writes it (``nbformat.writes``) plus a final newline."""
    import nbformat

    return nbformat.writes(nbformat.from_dict(copy.deepcopy(nb)), version=4) + "\n"


def render(source_path):
    """The notebook JSON text (no outputs) for one percent-format source file."""
    return dumps(build_notebook(source_path))


def _source_text(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def signature(nb):
    """What ``--check`` compares: ``[(cell_type, source), ...]``."""
    return [(c["cell_type"], _source_text(c)) for c in nb["cells"]]


def merge_outputs(new, old):
    """``new`` with the outputs of ``old``'s code cells whose source is unchanged.

    A cell keeps the outputs and execution count of the old cell at the same
    position if both sources are equal, else of the first unused old code cell
    with the same source; other cells stay unexecuted.
    """
    new = copy.deepcopy(new)
    old_code = [c for c in old.get("cells", []) if c.get("cell_type") == "code"]
    used = set()
    for i, cell in enumerate(new["cells"]):
        if cell["cell_type"] != "code":
            continue
        text = _source_text(cell)
        match = None
        if i < len(old["cells"]):
            same = old["cells"][i]
            if same.get("cell_type") == "code" and _source_text(same) == text:
                match = id(same)
                cell["outputs"] = copy.deepcopy(same.get("outputs", []))
                cell["execution_count"] = same.get("execution_count")
        if match is None:
            for candidate in old_code:
                if id(candidate) not in used and _source_text(candidate) == text:
                    match = id(candidate)
                    cell["outputs"] = copy.deepcopy(candidate.get("outputs", []))
                    cell["execution_count"] = candidate.get("execution_count")
                    break
        if match is not None:
            used.add(match)
    return new


def _clean_stream(text):
    lines = text.splitlines(keepends=True)
    return "".join(ln for ln in lines if not NOISE.match(ln))


def clean_executed(nb):
    """Strip what changes between runs without meaning: timings, kernel version, log noise."""
    nb = json.loads(json.dumps(nb))  # plain dicts
    nb["metadata"] = {"kernelspec": dict(KERNELSPEC), "language_info": copy.deepcopy(LANGUAGE_INFO)}
    for cell in nb["cells"]:
        cell["metadata"] = {}
        if cell["cell_type"] != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = _clean_stream(_source_text({"source": out.get("text", "")}))
                if not text.strip():
                    continue
                out = dict(out, text=text)
            outputs.append(out)
        cell["outputs"] = outputs
    return nb


def kernel_manager_class(kernel_dir):
    """An nbclient kernel manager class whose ``python3`` kernel is *this* Python.

    A kernelspec named ``python3`` elsewhere (user or system Jupyter folders)
    may start another interpreter without this package; this one, written to
    ``kernel_dir``, runs ``sys.executable`` with this environment's ``bin``
    first on ``PATH``. nbclient creates the manager itself, so it also shuts
    the kernel down and removes its connection file.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = Path(kernel_dir) / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        # figures inline as image/png, whatever MPLBACKEND the caller has
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNELSPEC["display_name"], "language": "python", "env": env}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")

    class VenvKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("kernel_spec_manager", KernelSpecManager(
                kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False))
            super().__init__(**kwargs)

    return VenvKernelManager


def execute_notebook(nb, *, cwd, timeout=DEFAULT_TIMEOUT):
    """Run every cell of ``nb`` (a dict) top to bottom; return the cleaned, executed notebook.

    Raises ``nbclient.exceptions.CellExecutionError`` at the first cell that
    fails (with its traceback). The kernel inherits this process's
    environment (``ISBI2012_DIR``, ``KERAS_UNETS_NB_FAST``, ...).
    """
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.reads(dumps(nb), as_version=4)
    with tempfile.TemporaryDirectory(prefix="keras-unets-kernel-") as kernel_dir:
        client = NotebookClient(
            node, kernel_manager_class=kernel_manager_class(kernel_dir), kernel_name=KERNEL_NAME,
            timeout=int(timeout), record_timing=False, allow_errors=False,
            resources={"metadata": {"path": str(cwd)}},
        )
        client.execute()
    return clean_executed(node)


def sources(names=None):
    """The ``NN_name.py`` sources in this folder (or the named ones)."""
    if names:
        paths = [HERE / Path(n).name for n in names]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise SystemExit(f"build.py: no such notebook source: {', '.join(missing)}")
        return paths
    return sorted(p for p in HERE.glob("*.py") if SOURCE_PATTERN.match(p.name))


def _read(path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _write(path, text):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote {path.relative_to(HERE.parent)}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help="NN_name.py files (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="do not write; exit 1 if a notebook's cells differ from its source")
    mode.add_argument("--execute", action="store_true",
                      help="rebuild and execute each notebook in notebooks/, storing its outputs")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"--execute: seconds allowed per cell (default {DEFAULT_TIMEOUT})")
    args = parser.parse_args(argv)
    stale = []
    for src in sources(args.sources):
        target = src.with_suffix(".ipynb")
        nb = build_notebook(src)
        current = _read(target)
        if args.check:
            if current is None or signature(current) != signature(nb):
                stale.append(target.name)
            continue
        if args.execute:
            fast = os.environ.get(FAST_ENV, "")
            print(f"executing {src.name} ({FAST_ENV}={fast!r}) ...", flush=True)
            nb = execute_notebook(nb, cwd=HERE, timeout=args.timeout)
        elif current is not None:
            nb = merge_outputs(nb, current)
        text = dumps(nb)
        if current is None or text != target.read_text(encoding="utf-8"):
            _write(target, text)
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
