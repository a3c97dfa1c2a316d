"""``python -m keras_unets ...``: the ``keras-unets`` command without its script.

For a source tree on ``PYTHONPATH`` that was never pip-installed (e.g. the
copy that ``bench/gpu_session.py`` runs on a device machine).
"""
import sys

from keras_unets.cli import main

if __name__ == "__main__":
    sys.argv[0] = "python -m keras_unets"  # what provenance records as the command
    main(prog_name="keras-unets")
