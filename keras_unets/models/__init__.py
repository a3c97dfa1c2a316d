"""U-Net, UNet++ and UNet 3+ as Keras 3 functional builders.

* :func:`build_unet` - Ronneberger et al., MICCAI 2015.
* :func:`build_unetpp`, :func:`prune_unetpp`, :func:`average_heads` - Zhou et
  al., DLMIA 2018.
* :func:`build_unet3p` - Huang et al., ICASSP 2020.
* :func:`get_model` / :data:`MODEL_NAMES` / :func:`register_model` - presets
  by name (``unet``, ``unet_report``, ``unetpp_ds``, ``unet3p_ds_cgm``, ...).
* :func:`estimate_training_memory` - will it fit a 6 GB card?
* :func:`compiled_training_memory` - XLA's own answer (JAX backend).
* :func:`compile_training_step` - the step it compiles, to run or inspect.

Output naming: a single-output model names its output layer ``output``;
deep-supervision models name their heads ``out1``..``out4`` (UNet++, on
X^{0,1..4}) or ``out1``..``out5`` (UNet 3+, ``out1`` = full-resolution
X_De^1), plus ``cls`` for the UNet 3+ classification-guided module.
:func:`main_output_name` says which output to use as "the" prediction.
"""
from keras_unets.models.blocks import (
    nearest_valid_input_sizes,
    unet_output_size,
    valid_input_sizes,
)
from keras_unets.models.memory import (
    compile_training_step,
    compiled_training_memory,
    estimate_training_memory,
)
from keras_unets.models.registry import (
    MODEL_NAMES,
    get_model,
    get_model_info,
    parse_model_spec,
    register_model,
)
from keras_unets.models.unet import build_unet
from keras_unets.models.unet3p import build_unet3p
from keras_unets.models.unetpp import average_heads, build_unetpp, prune_unetpp


def main_output_name(model):
    """Name of the output that is the model's segmentation prediction.

    * ``output`` if the model has it (every single-output builder, pruned
      and averaged UNet++ models);
    * UNet 3+ with deep supervision: ``out1``, the
      full-resolution head on X_De^1 (Huang et al. 2020 use it at inference);
    * UNet++ with deep supervision: the deepest head ``out{N}`` (on
      X^{0,N}), the fast-mode head of the full network. For the accurate mode
      (average of the heads) predict with :func:`average_heads` (model).
    * otherwise the only output.
    """
    names = list(model.output_names)
    if "output" in names:
        return "output"
    heads = sorted((n for n in names if n.startswith("out") and n[3:].isdigit()),
                   key=lambda n: int(n[3:]))
    if heads:
        if _is_unet3p(model):
            return heads[0]
        return heads[-1]
    if len(names) == 1:
        return names[0]
    raise ValueError(
        "Cannot tell the main output of this model: expected an output named "
        f"'output' or heads out1..outN. Received: output_names={names}")


def _is_unet3p(model):
    return any(layer.name.endswith("_concat") and layer.name.startswith("hd")
               for layer in model.layers)


__all__ = [
    "MODEL_NAMES",
    "average_heads",
    "build_unet",
    "build_unet3p",
    "build_unetpp",
    "estimate_training_memory",
    "compiled_training_memory",
    "compile_training_step",
    "get_model",
    "get_model_info",
    "main_output_name",
    "nearest_valid_input_sizes",
    "parse_model_spec",
    "prune_unetpp",
    "register_model",
    "unet_output_size",
    "valid_input_sizes",
]
