"""Training profiles: plain data, resolved one way into builder and fit arguments.

Resolution order (later wins): the defaults of :class:`TrainConfig` (each
key written once) -> the profile's ``changes`` -> its per-network overrides
(by family: ``unet``, ``unetpp``, ``unet3p``) -> its per-model overrides
(exact model name, e.g. ``unetpp_ds``) -> explicit arguments. Dicts
(``model_kwargs``, ``augment``) are merged key by key.

Profiles:

``paper``
    The "U-Net School" report's settings per network (Liu, Shi, Chen), for a
    GPU. U-Net: the report's Keras U-Net (zhixuhao/unet layers, 31,031,685
    parameters), Adam 1e-4, 10 epochs x 2000 steps, batch 2 (zhixuhao/unet's;
    the report states none), BCE, full 512 x 512 slices, rotation/shift/
    horizontal flip with zhixuhao's ranges (``rotation_range=0.2`` degrees,
    ``width/height_shift_range=0.05``). UNet++: SGD 1e-3, momentum 0.9,
    weight decay 1e-4, batch 1, 100 epochs, BCE + Dice per output
    (``unetpp_ds``: four heads). UNet 3+: Adam 1e-3, batch 1, 40 epochs,
    BCE on logits (no output activation; predictions pass through a
    sigmoid), its skips in the paper's order computed with
    ``factorize_skips=True``: the same function and weights without forming
    the up-sampled skip maps, so that it trains at 512 x 512 within a 6 GB
    card. The report's UNet++ and UNet 3+ looped over the 25 training
    slices: **one epoch of those networks is one pass over the training
    slices (25 steps at batch 1)**, ``steps_per_epoch=None``. The U-Net
    paper's elastic deformations and weight map (Ronneberger et al. 2015,
    sections 2-3) are switches, ``elastic`` and ``weight_map``, off as in
    the report.

``quick``
    The whole report (``make reproduce PROFILE=quick``: five trainings and
    their evaluation) in under 30 minutes on a 2-core CPU, each network at
    or above the report's accuracy (0.9189 / 0.917 / 0.923). Each network
    trains for a fixed number of minutes: U-Net 5 (Table I's half-resolution
    arm a third of that), UNet++ 5.5 with and 5.5 without deep supervision,
    UNet 3+ 9. A 16-filter U-Net, UNet++ with 8 base filters and UNet 3+
    with 16 base filters and 8 channels per full-scale skip (its skips in
    the paper's order computed with ``factorize_skips=True``). Batch 4 of
    128 x 128 random crops with flips, rotations and elastic warps; Adam
    3e-3; BCE + Dice on a sigmoid output; batch norm with momentum 0.9
    (with Keras' 0.99 the moving statistics keep much of their initial 0/1
    after a few hundred steps) and no dropout. ``lr_schedule="cosine_time"``
    (:class:`keras_unets.training.schedules.CosineTimeDecay`) runs the
    cosine over the elapsed fraction of the network's minutes, or of its
    planned steps if they run out first, so the rate reaches its floor when
    the budget ends on a slow machine and a fast one stops early; a time
    limit stops training cleanly (checkpoints and results are still
    written). Short epochs (80, 50 and 40 steps) let the report's
    best-epoch selection choose among several checkpoints.
    ``bench/bench_time_to_accuracy.py`` draws accuracy against minutes.

``smoke``
    Seconds: 4 filters, 64 x 64 crops, 2 epochs x 2 steps. For tests and the
    CI smoke run; accuracy means nothing.

Keys of a resolved config:

* ``model_kwargs``: keyword arguments for ``keras_unets.models.get_model``.
* ``optimizer`` (``"adam"``/``"sgd"``), ``learning_rate``, ``momentum``,
  ``weight_decay``, ``lr_schedule`` (``None``/``"cosine"``/``"cosine_time"``),
  ``lr_min_fraction`` (cosine floor as a fraction of ``learning_rate``).
* ``loss``: ``"bce"``, ``"bce_dice"``, ``"bce_logits"`` or ``"hybrid"``;
  ``from_logits``: the model outputs logits (built with
  ``output_activation=None``).
* ``epochs``, ``steps_per_epoch`` (``None``: one pass over the training
  slices), ``batch_size``, ``crop`` (``None``: whole slices).
* ``augment``: ``keras_unets.augment.Augmenter`` keyword arguments (Keras
  ``ImageDataGenerator`` names); ``elastic``: U-Net paper warps;
  ``weight_map``: U-Net paper weight map as sample weights.
* ``val_slices``: ``None`` = the report's test slices 25-29 (the report tuned
  its threshold there), or a selection like ``"20-24"`` held out of training.
* ``time_limit_minutes``, ``seed``, ``val_tile`` (``None``: predict whole
  validation slices, else overlap-tile with that tile size).
"""
import copy
import json
from dataclasses import asdict, dataclass, field, fields

__all__ = [
    "TrainConfig",
    "PROFILES",
    "PROFILE_NAMES",
    "CONFIG_KEYS",
    "without_retired_keys",
    "model_family",
    "get_profile",
    "resolve_config",
    "format_profiles",
]

_AUGMENT_PAPER_UNET = {
    # zhixuhao/unet data_gen_args minus shear/zoom (the report names only
    # rotation, shift and horizontal flip). rotation_range is in degrees.
    "rotation_range": 0.2,
    "width_shift_range": 0.05,
    "height_shift_range": 0.05,
    "horizontal_flip": True,
    "fill_mode": "nearest",
}

_AUGMENT_QUICK = {
    "rotation_range": 90.0,
    "horizontal_flip": True,
    "vertical_flip": True,
    "fill_mode": "reflect",
}

# The classification-guided module masks the outputs with a sigmoid branch:
# it needs an output activation (no logits).
_CGM = {"model_kwargs": {"output_activation": "auto"}, "loss": "bce",
        "from_logits": False}

@dataclass(frozen=True)
class TrainConfig:
    """Every key of a run's config with its default, written once.

    A profile lists only its differences from these defaults
    (:data:`PROFILES`); :func:`resolve_config` returns the merged plain dict
    that ``config.json`` records (:meth:`to_dict`).
    """

    model_kwargs: dict = field(default_factory=dict)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: object = None
    weight_decay: object = None
    lr_schedule: object = None
    lr_min_fraction: float = 0.0
    loss: str = "bce"
    from_logits: bool = False
    epochs: int = 10
    steps_per_epoch: object = None
    batch_size: int = 1
    crop: object = None
    augment: dict = field(default_factory=dict)
    elastic: bool = False
    weight_map: bool = False
    val_slices: object = None
    val_tile: object = None
    time_limit_minutes: object = None
    seed: int = 0

    def to_dict(self):
        """The config as a new plain dict, keys in :data:`CONFIG_KEYS` order."""
        return asdict(self)


# Each profile: its differences from TrainConfig ("changes"), then per
# network family and per model name (later wins; dicts merged key by key).
PROFILES = {
    "paper": {
        "description": "The U-Net School report's settings per network; GPU hours.",
        "changes": {},
        "networks": {
            "unet": {
                "learning_rate": 1e-4,
                "steps_per_epoch": 2000,
                "batch_size": 2,
                "augment": _AUGMENT_PAPER_UNET,
            },
            "unetpp": {
                "optimizer": "sgd",
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "loss": "bce_dice",
                "epochs": 100,
            },
            "unet3p": {
                # factorize_skips: the paper's network in less memory and
                # time (same function, weights and gradients)
                "model_kwargs": {"output_activation": None, "factorize_skips": True},
                "loss": "bce_logits",
                "from_logits": True,
                "epochs": 40,
            },
        },
        "models": {
            # "unet" in the paper profile is the report's Keras U-Net
            # (zhixuhao/unet layers, = registry preset "unet_report"):
            # 31,031,685 parameters.
            "unet": {
                "model_kwargs": {
                    "upsampling": "upsample_conv",
                    "up_activation": "relu",
                    "dropout_levels": [3, 4],
                    "head_filters": 2,
                },
            },
            "unet3p_ds_cgm": _CGM,
        },
    },
    "quick": {
        "description": "The whole report in under 30 minutes on a 2-core CPU: "
                       "U-Net 5, UNet++ 5.5 + 5.5, UNet 3+ 9 minutes of training.",
        "changes": {
            "model_kwargs": {"filters": 16, "batch_norm": True, "bn_momentum": 0.9},
            "learning_rate": 3e-3,
            "lr_schedule": "cosine_time",
            "lr_min_fraction": 0.05,
            "loss": "bce_dice",
            "batch_size": 4,
            "crop": 128,
            "augment": _AUGMENT_QUICK,
            "elastic": True,
        },
        "networks": {
            "unet": {"model_kwargs": {"dropout": 0.0}, "time_limit_minutes": 5.0,
                     "epochs": 14, "steps_per_epoch": 80},
            "unetpp": {
                "model_kwargs": {"filters": 8, "dropout": 0.0, "l2": 0.0},
                "time_limit_minutes": 5.5, "epochs": 14, "steps_per_epoch": 50,
            },
            "unet3p": {
                "model_kwargs": {"output_activation": "sigmoid", "cat_channels": 8,
                                 "factorize_skips": True},
                "time_limit_minutes": 9.0, "epochs": 28, "steps_per_epoch": 40,
            },
        },
        "models": {"unet3p_ds_cgm": _CGM},
    },
    "smoke": {
        "description": "Seconds: tiny models for tests and the CI smoke run.",
        "changes": {
            "model_kwargs": {"filters": 4},
            "epochs": 2,
            "steps_per_epoch": 2,
            "batch_size": 2,
            "crop": 64,
            "augment": {"horizontal_flip": True},
            "time_limit_minutes": 5.0,
        },
        "networks": {
            "unet": {"model_kwargs": {"dropout": 0.0}},
            "unetpp": {"model_kwargs": {"dropout": 0.0}, "loss": "bce_dice"},
            "unet3p": {
                "model_kwargs": {"output_activation": None},
                "loss": "bce_logits",
                "from_logits": True,
            },
        },
        "models": {"unet3p_ds_cgm": _CGM},
    },
}

PROFILE_NAMES = tuple(PROFILES)
CONFIG_KEYS = tuple(f.name for f in fields(TrainConfig))
_FAMILIES = ("unet3p", "unetpp", "unet")  # longest prefix first
_MERGED = ("model_kwargs", "augment")


# Config keys that run records (config.json) written by earlier versions may
# hold, with the value that meant "off": such records still load.
RETIRED_KEYS = {"ema_momentum": None, "lr_warmup_fraction": 0.0}


def without_retired_keys(config, source="config.json"):
    """A copy of a saved ``config`` without :data:`RETIRED_KEYS` that are off.

    Raises:
        ValueError: a retired key set to anything but its off value (this
            version cannot train that run the way it was trained), naming
            ``source``.
    """
    config = dict(config)
    for key, off in RETIRED_KEYS.items():
        if key not in config:
            continue
        value = config.pop(key)
        if value != off:
            raise ValueError(
                f"{source} sets {key}={value!r}, an option this version of keras-unets "
                f"no longer has; only {key}={off!r} (off) can be read. Train the run "
                f"again, or use the version that wrote it.")
    return config


def model_family(model):
    """``"unet"``, ``"unetpp"`` or ``"unet3p"`` for a model name (by prefix).

    >>> model_family("unetpp_ds"), model_family("unet3p"), model_family("unet_report")
    ('unetpp', 'unet3p', 'unet')
    """
    for family in _FAMILIES:
        if str(model).lower().startswith(family):
            return family
    return None


def _check_profile(profile):
    if profile not in PROFILES:
        raise ValueError(
            f"Unknown profile {profile!r}; use one of {list(PROFILE_NAMES)}. "
            f"Received: profile={profile!r}"
        )


def _merge(base, update):
    for key, value in update.items():
        if key in _MERGED and isinstance(value, dict):
            merged = dict(base.get(key) or {})
            merged.update(copy.deepcopy(value))
            base[key] = merged
        else:
            base[key] = copy.deepcopy(value)
    return base


def get_profile(profile, model):
    """The settings of ``profile`` for ``model`` (:class:`TrainConfig` defaults + changes).

    Args:
        profile: one of :data:`PROFILE_NAMES`.
        model: model name (e.g. ``"unet"``, ``"unetpp_ds"``, ``"unet3p"``).

    Returns:
        A new dict with every key of :data:`CONFIG_KEYS`.
    """
    _check_profile(profile)
    spec = PROFILES[profile]
    config = _merge(TrainConfig().to_dict(), spec.get("changes", {}))
    family = model_family(model)
    if family is not None:
        _merge(config, spec.get("networks", {}).get(family, {}))
    _merge(config, spec.get("models", {}).get(model, {}))
    return config


def resolve_config(profile, model, **overrides):
    """Profile settings for ``model`` with explicit ``overrides`` on top.

    ``None`` overrides are ignored (an unset CLI option keeps the profile's
    value); ``model_kwargs`` and ``augment`` dicts are merged key by key.

    Raises:
        ValueError: an override that is not a config key (listing them).
    """
    config = get_profile(profile, model)
    unknown = sorted(set(overrides) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown config keys {unknown}; valid keys are {list(CONFIG_KEYS)}."
        )
    _merge(config, {k: v for k, v in overrides.items() if v is not None})
    return config


def format_profiles(profile=None, model=None, models=None):
    """Printable JSON of profiles: all raw, or resolved for given models."""
    if profile is not None:
        _check_profile(profile)
    names = [profile] if profile else list(PROFILE_NAMES)
    if model is None and models is None:
        data = {name: PROFILES[name] for name in names}
    else:
        models = [model] if model is not None else list(models)
        data = {
            name: {m: get_profile(name, m) for m in models} for name in names
        }
    return json.dumps(data, indent=2)
