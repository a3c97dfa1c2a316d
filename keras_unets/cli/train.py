"""``keras-unets train``, ``keras-unets predict`` and ``keras-unets profiles``.

A thin click layer over :func:`keras_unets.training.train`,
:func:`keras_unets.inference.predict_folder` and :mod:`keras_unets.training.config`.
"""
import json
import sys

import click

_RESUME_FROM_OUT = "__from_out__"


def _parse_set(pairs):
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(
                f"expected KEY=VALUE (VALUE as JSON, e.g. filters=16). Received: {pair!r}",
                param_hint="--set")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@click.command("train")
@click.argument("model")
@click.option("--profile", default="quick", show_default=True,
              help="paper, quick or smoke (see `keras-unets profiles`).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="ISBI 2012 folder (default: $ISBI2012_DIR, then ~/.keras/datasets/isbi2012).")
@click.option("--images", type=click.Path(), default=None,
              help="Your own data: a folder (or TIFF stack) of images, paired with --masks "
                   "by file stem. Without it: ISBI 2012.")
@click.option("--masks", type=click.Path(), default=None,
              help="Folder (or TIFF stack) of masks: binary (any two values, one 0) or "
                   "class indices 0..K-1.")
@click.option("--val-images", type=click.Path(), default=None,
              help="Validation images (with --val-masks).")
@click.option("--val-masks", type=click.Path(), default=None, help="Validation masks.")
@click.option("--val-fraction", type=float, default=None,
              help="Hold out this fraction of the images for validation (seeded), e.g. 0.2.")
@click.option("--classes", type=int, default=None,
              help="2 (binary) or K >= 3 classes (default: inferred from the masks).")
@click.option("--mask-suffix", default="", show_default=False,
              help="Mask stem = image stem + suffix, e.g. _mask.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory (default runs/<model>-<profile>-<timestamp>).")
@click.option("--epochs", type=int, default=None)
@click.option("--steps-per-epoch", type=int, default=None,
              help="Batches per epoch (profile default; paper UNet++/UNet 3+: one pass).")
@click.option("--batch-size", type=int, default=None)
@click.option("--crop", type=int, default=None, help="Random crop size in pixels.")
@click.option("--seed", type=int, default=None)
@click.option("--lr", "learning_rate", type=float, default=None, help="Learning rate.")
@click.option("--mixed-precision", is_flag=True, help="Keras mixed_float16 policy.")
@click.option("--strategy", type=click.Choice(["default", "mirrored"]), default="default",
              show_default=True, help="mirrored: tf.distribute.MirroredStrategy (TensorFlow).")
@click.option("--resume", default=None, is_flag=False, flag_value=_RESUME_FROM_OUT,
              metavar="[RUN_DIR]",
              help="Continue a run from its last.keras (RUN_DIR, or --out's).")
@click.option("--val-slices", default=None,
              help="Validation slices of the report split, e.g. 20-24 (held out of "
                   "training 0-24). Default: the report's test slices 25-29.")
@click.option("--split", type=click.Choice(["report", "kfold"]), default=None,
              help="report (default): train 0-24, test 25-29. kfold: validate on fold "
                   "--fold of --folds, train on every other slice, no test slices.")
@click.option("--fold", type=int, default=None, metavar="N",
              help="k-fold fold to validate on, 0..K-1 (with --split kfold).")
@click.option("--folds", type=int, default=None, metavar="K",
              help="Number of k-fold folds, 2..30 (default 5; with --split kfold).")
@click.option("--time-limit", "time_limit_minutes", type=float, default=None,
              help="Stop cleanly after this many minutes.")
@click.option("--set", "set_pairs", multiple=True, metavar="KEY=VALUE",
              help="Builder argument, e.g. --set filters=8 (repeatable).")
@click.option("--verbose", type=click.Choice(["auto", "0", "1", "2"]), default="auto",
              show_default=True, help="Keras fit verbosity.")
def train_cmd(model, profile, data_dir, images, masks, val_images, val_masks, val_fraction,
              classes, mask_suffix, out, epochs, steps_per_epoch, batch_size, crop,
              seed, learning_rate, mixed_precision, strategy, resume, val_slices,
              split, fold, folds, time_limit_minutes, set_pairs, verbose):
    """Train MODEL (e.g. unet, unetpp, unetpp_ds, unet3p) into a run directory.

    On ISBI 2012 (--data), or on your own image/mask pairs (--images and
    --masks; any size, grey or RGB, 8 or 16 bit, binary or --classes K).
    """
    from keras_unets.data import DataFormatError, DataNotFoundError
    from keras_unets.training import OptionError, RunExistsError, train

    if resume == _RESUME_FROM_OUT:
        if out is None:
            raise click.UsageError("--resume without RUN_DIR needs --out RUN_DIR.")
        resume = out
    try:
        result = train(
            model, profile=profile, data_dir=data_dir, images=images, masks=masks,
            val_images=val_images, val_masks=val_masks, val_fraction=val_fraction,
            classes=classes, mask_suffix=mask_suffix, out=out, resume=resume,
            epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
            crop=crop, seed=seed, val_slices=val_slices, split=split, fold=fold, folds=folds,
            learning_rate=learning_rate,
            mixed_precision=mixed_precision, strategy=strategy,
            time_limit_minutes=time_limit_minutes,
            model_kwargs=_parse_set(set_pairs) or None,
            verbose=verbose if verbose == "auto" else int(verbose),
            command_line=["keras-unets"] + sys.argv[1:],
        )
    except OptionError as exc:
        raise _bad_parameter(exc) from exc
    except RunExistsError as exc:
        raise click.ClickException(
            f"{exc.run_dir} already holds a run; pass --resume to continue it "
            f"(with --out {exc.run_dir}) or choose another --out directory.") from exc
    except (ValueError, FileNotFoundError, FileExistsError, DataNotFoundError,
            DataFormatError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary = result.to_json()
    summary.pop("history", None)
    click.echo(json.dumps(summary, indent=2))


def _bad_parameter(exc):
    """A :class:`keras_unets.training.OptionError` as click's error for the option's flag."""
    flags = {p.name: p.opts[0] for p in train_cmd.params if p.opts and p.opts[0].startswith("--")}
    flag = flags.get(exc.option)
    if flag is None:  # a setting without a flag of its own (e.g. from --set)
        return click.ClickException(str(exc))
    return click.BadParameter(f"must be {exc.expected}. Received: {exc.value!r}",
                              param_hint=f"'{flag}'")


@click.command("predict")
@click.argument("checkpoint", type=click.Path())
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: probabilities and masks.")
@click.option("--tile", type=int, default=None,
              help="Input tile size (default: the model's, else near 256).")
@click.option("--tta", is_flag=True, help="Average the 8 flips/90-degree rotations.")
@click.option("--threshold", type=click.IntRange(0, 255), default=None,
              help="Binary models: pred > T -> 255 (default: the run's best threshold, else 127).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Tiles per batch.")
def predict_cmd(checkpoint, input_path, out, tile, tta, threshold, batch_size):
    """Overlap-tile prediction of INPUT: a folder of images, one image, or a TIFF stack.

    CHECKPOINT is a run folder (its best.keras) or a .keras file; a run
    folder's config.json gives the intensity rule and channels the model was
    trained with and its results.json the threshold. INPUT images may have
    any names and sizes (PNG, TIFF 8/16-bit/float, JPEG; grey or RGB).

    Writes OUT/masks/<stem>.png and OUT/probabilities/<stem>.png (uint8
    0-255; mask = pred > T -> 255), each the size of its image. A K-class
    model writes class indices 0..K-1 as masks and OUT/probabilities/<stem>.tif
    (K, H, W). A file INPUT (a TIFF stack or one image) gives
    OUT/probabilities.tif and OUT/masks.tif; `keras-unets evaluate OUT/probabilities.tif --labels LABELS`
    reads them, and `keras-unets evaluate OUT/masks --labels MASKS` scores a folder.
    """
    from keras_unets.data import DataFormatError, DataNotFoundError
    from keras_unets.inference import predict_folder

    try:
        summary = predict_folder(checkpoint, input_path, out, threshold=threshold, tile=tile,
                                 tta=tta, batch_size=batch_size)
    except (DataNotFoundError, DataFormatError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, indent=2))


@click.command("profiles")
@click.option("--profile", default=None, help="Only this profile.")
@click.option("--model", default=None,
              help="Resolve for this model (defaults + per-network overrides).")
def profiles_cmd(profile, model):
    """Print the training profiles as JSON (paper, quick, smoke)."""
    from keras_unets.training.config import format_profiles

    try:
        click.echo(format_profiles(profile, model))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def register(group):
    """Add ``train``, ``predict`` and ``profiles`` to ``group``."""
    group.add_command(train_cmd)
    group.add_command(predict_cmd)
    group.add_command(profiles_cmd)
