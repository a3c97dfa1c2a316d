"""Shared pytest fixtures.

The ISBI 2012 data is read from ``ISBI2012_DIR``. In CI (``CI`` set) a missing
data directory is an error, not a skip; on a developer machine tests that need
the data are skipped with a message saying how to point at it.
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def isbi_dir():
    """Path of the local ISBI 2012 copy (``ISBI2012_DIR``)."""
    value = os.environ.get("ISBI2012_DIR")
    path = Path(value) if value else None
    if path is not None and path.is_dir():
        return path
    msg = (
        f"ISBI2012_DIR={value!r} is not a directory; set it to a folder with "
        "train-volume.tif, train-labels.tif, test-volume.tif (or png/)."
    )
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)
