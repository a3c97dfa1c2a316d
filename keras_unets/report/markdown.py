"""Markdown cells and tables of the report's table.md and SUMMARY.md files."""
import numpy as np


def fmt(value, digits=4):
    """Format a table cell: floats to ``digits`` decimals, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "–"
        return f"{float(value):.{digits}f}"
    return str(value)


def markdown_table(headers, rows):
    """A GitHub markdown table; cells go through :func:`fmt` unless already str."""
    def cell(v):
        return (v if isinstance(v, str) else fmt(v)).replace("|", "\\|").replace("\n", " ")

    if any(len(r) != len(headers) for r in rows):
        bad = [len(r) for r in rows if len(r) != len(headers)]
        raise ValueError(
            f"Every row needs {len(headers)} cells (one per header). "
            f"Received: row lengths {bad}"
        )
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def format_seconds(seconds):
    """``3725.0 -> "1 h 02 min"``, ``95 -> "1 min 35 s"``, ``4.2 -> "4.2 s"``."""
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fine_cell(s):
    """SUMMARY.md's 'V_rand, 0.01 grid' cell: ``0.9808 (th=0.96)``, or "–" for older rows."""
    if s.get("v_rand_fine") is None:
        return "–"
    return f"{fmt(s['v_rand_fine'])} (th={fmt(s.get('v_rand_fine_threshold'), 2)})"


def stopped_note(s):
    """' (time limit)' or ' (time limit of N min)' for a run stopped by its limit."""
    if not s.get("stopped_by_time_limit"):
        return ""
    minutes = s.get("time_limit_minutes")
    return f" (time limit of {float(minutes):g} min)" if minutes else " (time limit)"
