"""keras_unets.report.markdown: table cells and markdown tables."""

import numpy as np
import pytest

from keras_unets.report.markdown import (fine_cell, fmt, format_seconds, markdown_table,
                                         stopped_note)


def test_fmt_and_format_seconds_hand_values():
    assert fmt(0.91891) == "0.9189"
    assert fmt(0.91895, 3) == "0.919"
    assert fmt(31030593) == "31,030,593"
    assert fmt(np.int64(7)) == "7"
    assert fmt(None) == "–" and fmt(float("nan")) == "–"
    assert fmt(True) == "yes"
    assert format_seconds(4.24) == "4.2 s"
    assert format_seconds(95) == "1 min 35 s"
    assert format_seconds(3725) == "1 h 02 min"  # 62 min 5 s
    assert format_seconds(None) == "–"


def test_markdown_table_layout_and_escaping():
    text = markdown_table(["method", "acc"], [["a|b", 0.5], ["c", None]])
    assert text.splitlines() == [
        "| method | acc |",
        "| --- | --- |",
        "| a\\|b | 0.5000 |",
        "| c | – |",
    ]
    with pytest.raises(ValueError, match=r"Received: row lengths \[1\]"):
        markdown_table(["a", "b"], [["only one"]])


def test_fine_v_rand_cell_and_rows_evaluated_before_it():
    assert fine_cell({"v_rand_fine": 0.98081, "v_rand_fine_threshold": 0.96}) == \
        "0.9808 (th=0.96)"
    # metrics.json written before the column existed, and a slice stack with no cell pixel
    assert fine_cell({"v_rand": 0.9}) == "–"
    assert fine_cell({"v_rand_fine": None, "v_rand_fine_threshold": None}) == "–"


def test_stopped_note():
    assert stopped_note({"stopped_by_time_limit": False, "time_limit_minutes": 3}) == ""
    assert stopped_note({"stopped_by_time_limit": True}) == " (time limit)"
    assert stopped_note({"stopped_by_time_limit": True,
                         "time_limit_minutes": 2.5}) == " (time limit of 2.5 min)"
