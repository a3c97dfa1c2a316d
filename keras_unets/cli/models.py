"""``keras-unets models`` and ``keras-unets summary``: what can be built, and what it costs.

A thin layer over :mod:`keras_unets.models` (registry, builders and
:func:`~keras_unets.models.estimate_training_memory`).
"""
import json

import click

#: The report's card: GTX 1060 with 6 GB (6 GiB) of memory.
CARD_BYTES = 6 * 1024 ** 3


def _parse_overrides(pairs):
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(
                f"expected KEY=VALUE (VALUE as JSON, e.g. filters=16 or "
                f"deep_supervision=true). Received: {pair!r}", param_hint="--set")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


@click.command("models")
def models_cmd():
    """List the registered model names."""
    from keras_unets.models import MODEL_NAMES, get_model_info

    width = max(len(n) for n in MODEL_NAMES)
    for name in MODEL_NAMES:
        click.echo(f"{name:<{width}}  {get_model_info(name)['description']}")


@click.command("summary")
@click.argument("model_name", metavar="MODEL")
@click.option("--input-size", type=int, default=None,
              help="Tile size N (input N x N); default: the preset's (512, 572 for unet_valid).")
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--optimizer", default="adam", show_default=True,
              help="adam, adamw, sgd (momentum), sgd_nomomentum, rmsprop, ...")
@click.option("--dtype-policy", default="float32", show_default=True,
              type=click.Choice(["float32", "mixed_float16", "mixed_bfloat16"]))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Builder argument override, VALUE as JSON (repeatable), e.g. --set filters=16.")
@click.option("--compiled", is_flag=True,
              help="Also compile one training step with XLA (JAX backend: KERAS_BACKEND=jax) "
                   "and print its buffer assignment on JAX's device; the verdict then uses it.")
@click.option("--layers", is_flag=True, help="Also print the Keras layer summary.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead.")
def summary_cmd(model_name, input_size, batch_size, optimizer, dtype_policy, overrides,
                compiled, layers, as_json):
    """Parameters of MODEL and an estimate of its training memory.

    The estimate (weights + gradients + optimizer state + activations, see
    keras_unets.models.estimate_training_memory) says whether one training
    step fits a 6 GB card such as the report's GTX 1060. XLA needs as much or
    more (1.0-1.5x it on a CPU in float32; on a GPU capped at 6 GiB, UNet++
    peaked at 2.2x): with --compiled (JAX backend) the verdict uses XLA's own
    buffer assignment for the step (keras_unets.models.compiled_training_memory).
    """
    import keras

    from keras_unets.models import (
        compiled_training_memory,
        estimate_training_memory,
        get_model,
        get_model_info,
        main_output_name,
    )
    from keras_unets.models.memory import format_bytes

    if compiled and keras.backend.backend() != "jax":
        raise click.ClickException(
            "--compiled needs the JAX backend (XLA compiles the step through jax.jit): run "
            f"`KERAS_BACKEND=jax keras-unets summary {model_name} ... --compiled`, or leave "
            f"--compiled out for the estimate. Received: backend "
            f"{keras.backend.backend()!r}")
    xla = None
    previous_policy = keras.mixed_precision.global_policy()
    try:
        info = get_model_info(model_name)
        size = input_size or info["default_input_size"]
        if compiled:  # the compiled step runs in the model's own policy
            keras.mixed_precision.set_global_policy(dtype_policy)
        model = get_model(model_name, input_size=size, **_parse_overrides(overrides))
        mem = estimate_training_memory(model, batch_size=batch_size, optimizer=optimizer,
                                       dtype_policy=dtype_policy)
        if compiled:
            xla = compiled_training_memory(model, batch_size=batch_size, optimizer=optimizer)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    n_train = sum(_size(w) for w in model.trainable_weights)
    n_all = model.count_params()
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    outputs = {n: list(s) for n, s in zip(model.output_names, shapes)}
    decisive = xla["total"] if xla is not None else mem["total"]
    fits = decisive <= CARD_BYTES
    if as_json:
        click.echo(json.dumps({
            "model": model_name, "name": model.name, "input_shape": list(model.input_shape),
            "outputs": outputs, "main_output": main_output_name(model),
            "params": {"total": n_all, "trainable": n_train, "non_trainable": n_all - n_train},
            "memory_bytes": mem, "compiled_memory_bytes": xla,
            "batch_size": batch_size, "optimizer": optimizer,
            "dtype_policy": dtype_policy, "fits_6gb": fits,
        }, indent=2))
        return
    if layers:
        model.summary(print_fn=click.echo)
    click.echo(f"Model: {model_name} ({info['description']})")
    click.echo(f"Input: {tuple(model.input_shape[1:])}")
    for name, shape in outputs.items():
        click.echo(f"Output {name}: {tuple(shape[1:])}")
    click.echo(f"Main output: {main_output_name(model)}")
    click.echo(f"Parameters: {n_all:,} total, {n_train:,} trainable, "
               f"{n_all - n_train:,} non-trainable")
    click.echo(f"Training memory estimate (batch {batch_size}, {optimizer}, {dtype_policy}):")
    for key in ("weights", "gradients", "optimizer_state", "activations", "total"):
        click.echo(f"  {key.replace('_', ' '):<16} {format_bytes(mem[key]):>12}")
    if xla is not None:
        click.echo(f"XLA's buffer assignment for one compiled step on {xla['platform']} "
                   f"({xla['device']}):")
        for key in ("arguments", "outputs", "aliased", "temp", "total"):
            click.echo(f"  {key:<16} {format_bytes(xla[key]):>12}")
        click.echo(f"  ({xla['total'] / mem['total']:.2f}x the estimate)")
    verdict = "yes" if fits else "no"
    if xla is not None:
        basis = (f"by XLA's buffers on {xla['platform']}; add the CUDA context and the "
                 "allocator's slack on a GPU")
        if xla["platform"] == "cpu" and dtype_policy != "float32":
            basis += ("; XLA's CPU compiler computes float16 convolutions in float32, so "
                      "this overstates a GPU's mixed-precision need")
    else:
        basis = ("by the estimate, which counts the tensors only: XLA needed 1.0-1.5x it "
                 "on a CPU in float32, and a GPU capped at 6 GiB peaked at 2.2x it for "
                 "UNet++; --compiled asks XLA")
    click.echo(f"Fits a 6 GB card (6 GiB, GTX 1060 as in the report): {verdict} "
               f"({100 * decisive / CARD_BYTES:.0f}% of it, {basis}).")
    if _unet3p_skips_as_written(model):
        click.echo("UNet 3+ with its skips up-sampled before their conv, as the paper writes "
                   "it: --set factorize_skips=true computes the same network with the same "
                   "weights without those up-sampled maps (at 512 x 512, batch 1, float32: "
                   "4.3 instead of 6.6 GiB of XLA buffers; BENCHMARKS.md).")


def _unet3p_skips_as_written(model):
    """Whether ``model`` is a UNet 3+ whose deepest-to-shallowest skip up-samples, then convolves."""
    try:
        up, conv = model.get_layer("hd1_from_hd2_up"), model.get_layer("hd1_from_hd2_conv")
    except ValueError:
        return False
    return conv.input is up.output


def _size(w):
    n = 1
    for d in w.shape:
        n *= d
    return n


def register(group):
    """Add this module's commands to group."""
    group.add_command(models_cmd)
    group.add_command(summary_cmd)
