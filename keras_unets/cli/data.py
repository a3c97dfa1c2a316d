"""``keras-unets data``: download and check the ISBI 2012 data.

A thin layer over :mod:`keras_unets.data.download` and :mod:`keras_unets.data`.
"""
import json

import click


@click.group("data")
def data():
    """Download and check the ISBI 2012 EM data."""


@data.command("download")
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=None,
    help="Destination folder (default: $ISBI2012_DIR, else "
    "~/.keras/datasets/isbi2012).",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    help="Base URL to download from instead of the built-in mirrors "
    "(repeatable; also $ISBI2012_MIRRORS).",
)
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Socket timeout per request, in seconds.")
@click.option("--force", is_flag=True, help="Download even if verified files are there.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def download(dest, mirrors, timeout, force, no_progress):
    """Download the three ISBI 2012 TIFF volumes and verify them.

    Each file is checked against the git blob id of the official file and
    written atomically; a failed mirror is skipped for the next one.
    """
    from keras_unets.data.download import DownloadError, download_isbi2012

    try:
        path = download_isbi2012(
            dest,
            mirrors=mirrors or None,
            progress=not no_progress,
            timeout=timeout,
            force=force,
        )
    except (DownloadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"ISBI 2012 data ready in {path}")
    click.echo(f"Use it with keras-unets train/reproduce --data {path} or ISBI2012_DIR={path}")


@data.command("check")
@click.argument("directory", required=False, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(directory, as_json):
    """Validate an ISBI 2012 data DIRECTORY and print its pixel hashes.

    DIRECTORY defaults to $ISBI2012_DIR, else ~/.keras/datasets/isbi2012.
    Exits with status 1 when the directory is not usable.
    """
    from keras_unets.data import ENV_VAR, default_data_dir
    from keras_unets.data.download import check_data_dir

    if directory is None:
        import os

        directory = os.environ.get(ENV_VAR) or str(default_data_dir())
    report = check_data_dir(directory)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ok"]:
        raise SystemExit(1)


def _print_report(report):
    click.echo(f"ISBI 2012 data in {report['path']}")
    for layout, volumes in report["volumes"].items():
        used = " (used by load_isbi2012)" if layout == report["layout"] else ""
        click.echo(f"  {layout} layout{used}:")
        for key, vol in volumes.items():
            if "error" in vol:
                click.echo(f"    {key:<13} unreadable")
                continue
            shape = "x".join(str(s) for s in vol["shape"])
            match = "matches known pixels" if vol["pixels_match"] else "UNKNOWN pixels"
            click.echo(
                f"    {key:<13} {shape} {vol['dtype']}  sha256 {vol['pixel_sha256']}"
                f"  {match}"
            )
            if "official_bytes" in vol:
                kind = "official file" if vol["official_bytes"] else "re-encoded file"
                click.echo(f"    {'':<13} git blob {vol['git_blob_id']} ({kind})")
            if "cell_fraction" in vol:
                click.echo(
                    f"    {'':<13} labels binary {{0, 255}}, "
                    f"{100 * (1 - vol['cell_fraction']):.2f} % membrane"
                )
    for warning in report["warnings"]:
        click.echo(f"  warning: {warning}")
    for error in report["errors"]:
        click.echo(f"  error: {error}", err=True)
    click.echo("OK" if report["ok"] else "NOT OK")


def register(group):
    """Add the ``data`` command group to ``group``."""
    group.add_command(data)
