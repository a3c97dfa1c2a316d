"""CLI commands (placeholder: filled in by the issue that owns it)."""


def register(group):
    """Add this module's commands to group."""
