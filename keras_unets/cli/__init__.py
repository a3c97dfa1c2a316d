"""``keras-unets`` command line: a thin click layer over the Python API.

Each sub-module exposes ``register(group)`` that adds its commands.
"""
import importlib

import click

from keras_unets import __version__

_COMMAND_MODULES = ("data", "evaluate", "models", "train", "reproduce")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keras-unets")
def main():
    """U-Net, UNet++ and UNet 3+ on ISBI 2012, with Keras 3."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"keras_unets.cli.{_name}").register(main)
