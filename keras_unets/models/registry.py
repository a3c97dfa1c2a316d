"""Model registry: build a network by name, so that the CLI, profiles and
experiments can ask for ``"unet3p_ds"`` instead of importing builders.

Each entry is a builder plus preset keyword arguments; ``get_model(name,
**overrides)`` calls ``builder(**{**preset, **overrides})``.
"""
import difflib
import inspect
import json

from keras_unets.models.unet import build_unet
from keras_unets.models.unet3p import build_unet3p
from keras_unets.models.unetpp import build_unetpp

_REGISTRY = {}

#: Names of the registered models (a live list: ``register_model`` appends).
MODEL_NAMES = []


def register_model(name, builder, *, description="", default_input_size=512,
                   overwrite=False, **preset):
    """Register ``builder`` with preset keyword arguments under ``name``.

    Args:
        name: registry key (``str``).
        builder: callable taking keyword arguments and returning a
            ``keras.Model``.
        description: one line for ``keras-unets models``.
        default_input_size: tile size used by ``keras-unets summary`` and
            :func:`get_model` ``input_size`` when none is given.
        overwrite: replace an existing entry instead of raising.
        **preset: keyword arguments passed to ``builder``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty str. Received: name={name!r}")
    if not callable(builder):
        raise ValueError(f"`builder` must be callable. Received: builder={builder!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"A model named {name!r} is already registered; pass "
                         f"overwrite=True to replace it. Received: name={name!r}")
    _REGISTRY[name] = {
        "builder": builder,
        "preset": dict(preset),
        "description": description,
        "default_input_size": default_input_size,
    }
    if name not in MODEL_NAMES:
        MODEL_NAMES.append(name)


def get_model_info(name):
    """The registry entry of ``name``: builder, preset, description, default_input_size."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), MODEL_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model; known names: {', '.join(MODEL_NAMES)}.{hint} "
                         f"Received: name={name!r}")
    entry = _REGISTRY[name]
    return {**entry, "preset": dict(entry["preset"])}


def _check_overrides(name, builder, overrides):
    """Unknown builder arguments: a ValueError naming them and the ones that exist."""
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # a registered builder taking **kwargs checks its own
    accepted = set(params)
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        close = {key: difflib.get_close_matches(key, accepted, n=1) for key in unknown}
        hints = "".join(f" Did you mean {c[0]!r} for {k!r}?" for k, c in close.items() if c)
        raise ValueError(
            f"{builder.__name__} (model {name!r}) has no argument {', '.join(unknown)}.{hints} "
            f"It takes: {', '.join(sorted(accepted))}. Received: {unknown[0]}="
            f"{overrides[unknown[0]]!r}"
        )


def get_model(name, *, input_size=None, **overrides):
    """Build the registered model ``name`` with ``overrides`` on its preset.

    ``input_size=N`` is a shortcut for ``input_shape=(N, N, input_channels)``.

    >>> get_model("unet_report", input_size=256).count_params()
    31031685
    """
    info = get_model_info(name)
    _check_overrides(name, info["builder"], overrides)
    kwargs = {**info["preset"], **overrides}
    if input_size is not None:
        if "input_shape" in overrides:
            raise ValueError("Give either `input_size` or `input_shape`, not both. "
                             f"Received: input_size={input_size!r}, "
                             f"input_shape={overrides['input_shape']!r}")
        channels = kwargs.get("input_channels", 1)
        kwargs["input_shape"] = (input_size, input_size, channels)
    return info["builder"](**kwargs)


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------
register_model(
    "unet", build_unet,
    description="U-Net (Ronneberger 2015), 64-1024, 2x2 up-conv, same padding; 31,030,593 params",
)
register_model(
    "unet_valid", build_unet, padding="valid", default_input_size=572,
    description="U-Net as in the paper: unpadded convs, cropped skips, 572 -> 388 tiles",
)
register_model(
    "unet_report", build_unet, upsampling="upsample_conv", up_activation="relu",
    dropout_levels=(-2, -1), head_filters=2,
    description="The report's Keras U-Net (zhixuhao/unet layers); 31,031,685 params",
)
register_model(
    "unet_unetpp_baseline", build_unet, filters=32, dropout=0.0, unit_dropout=0.5,
    l2=1e-4,
    description="U-Net baseline of the UNet++ paper (32-512, dropout per conv); 7,759,521 params",
)
register_model(
    "unetpp", build_unetpp,
    description="UNet++ (Zhou 2018), 32-512, no deep supervision; 9,041,601 params",
)
register_model(
    "unetpp_ds", build_unetpp, deep_supervision=True,
    description="UNet++ with deep supervision, heads out1..out4; 9,041,700 params",
)
register_model(
    "unet3p", build_unet3p,
    description="UNet 3+ (Huang 2020), 64-1024, full-scale skips; 26,970,625 trainable",
)
register_model(
    "unet3p_ds", build_unet3p, deep_supervision=True,
    description="UNet 3+ with full-scale deep supervision out1..out5; 26,988,485 trainable",
)
register_model(
    "unet3p_ds_cgm", build_unet3p, deep_supervision=True, cgm=True,
    description="UNet 3+ with deep supervision and classification-guided module; "
                "26,990,535 trainable",
)


def parse_model_spec(spec):
    """Split ``"name:key=value[+key=value]"`` into ``(name, overrides)``.

    The compact form of a registry name with builder arguments, for command
    lines that take a comma-separated list of models (the benchmark
    scripts). Values are read as JSON when they parse (numbers,
    ``true``/``false``, lists), else kept as strings; the name is checked
    against the registry.

    >>> parse_model_spec("unet:upsampling=upsample_conv+filters=32")
    ('unet', {'upsampling': 'upsample_conv', 'filters': 32})
    >>> parse_model_spec("unet")
    ('unet', {})
    """
    if not isinstance(spec, str):
        raise ValueError(f"A model spec is a str 'name[:key=value[+key=value]]'. "
                         f"Received: {spec!r}")
    name, _, rest = spec.partition(":")
    get_model_info(name)  # unknown names raise, with the known ones
    overrides = {}
    for item in rest.split("+") if rest else ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"A model spec is 'name[:key=value[+key=value]]'; "
                             f"{item!r} is not key=value. Received: {spec!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides
