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
X_De^1), plus ``cls`` for the UNet 3+ classification-guided module
(:data:`keras_unets.models.unet3p.CGM_OUTPUT`).
:func:`main_output_name` says which output to use as "the" prediction.

Custom layers (:mod:`keras_unets.models.layers`) and the helpers the
builders share (:mod:`keras_unets.models.blocks`) are submodules; the names
above are imported on first use, so importing a submodule alone (as
``import keras_unets`` does with ``layers``) loads no builder.
"""
import importlib

#: Public names of the submodules, imported on first use (PEP 562), so that
#: ``keras_unets.models.layers`` (which ``import keras_unets`` loads to
#: register the custom layers) does not build the model zoo with it.
_LAZY = {
    "nearest_valid_input_sizes": "blocks",
    "unet_output_size": "blocks",
    "valid_input_sizes": "blocks",
    "compile_training_step": "memory",
    "compiled_training_memory": "memory",
    "estimate_training_memory": "memory",
    "MODEL_NAMES": "registry",
    "get_model": "registry",
    "get_model_info": "registry",
    "parse_model_spec": "registry",
    "register_model": "registry",
    "build_unet": "unet",
    "build_unet3p": "unet3p",
    "CGM_OUTPUT": "unet3p",
    "average_heads": "unetpp",
    "build_unetpp": "unetpp",
    "prune_unetpp": "unetpp",
}


def __getattr__(name):
    """``keras_unets.models.get_model`` etc.: import the owning submodule on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f"keras_unets.models.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_unets.models' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    "CGM_OUTPUT",
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
