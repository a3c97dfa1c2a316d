"""The model of a run: built for its data, checked against its crop, placed on a strategy."""
from keras_unets.training.options import OptionError

__all__ = []


def _model_kwargs_for_data(model_name, config, data):
    """Builder arguments: the data's input channels and output classes."""
    kwargs = dict(config["model_kwargs"])
    if data.own:
        kwargs.setdefault("input_channels", data.channels)
        kwargs.setdefault("num_classes", 1 if data.binary else data.classes)
    return kwargs


def _check_model_for_data(model, data, valid_padding):
    """Before anything is written: the model can train and validate on the data."""
    from keras_unets.models.unet3p import CGM_OUTPUT

    if not data.binary and CGM_OUTPUT in model.output_names:
        raise OptionError("classes", data.classes,
                          "2 with a classification-guided module model (its mask is a "
                          "binary 'is there foreground' branch); for K classes train "
                          "unet3p_ds or unet3p")
    if data.own and data.x_val is not None and valid_padding:
        stackable = data.binary and data.channels == 1 and len(
            {x.shape for x in data.x_val}) == 1
        if not stackable:
            raise OptionError("model_kwargs", {"padding": "valid"}, "a same-padding model "
                              "(padding='same') for validation images of different sizes, "
                              "colour or classes; an unpadded network validates only grey "
                              "binary images of one size")


def _check_crop_for_model(model, crop, channels=1):
    """A same-padding model must take ``crop x crop`` tiles (e.g. a multiple of 2**depth)."""
    from keras_unets.inference.predict import check_tile, model_stride

    if channels != 1:  # check_tile runs grey tiles: a colour model is checked by its stride
        stride = model_stride(model)
        if crop % stride:
            below, above = crop // stride * stride, -(-crop // stride) * stride
            raise OptionError("crop", crop, f"a multiple of the model's stride {stride} "
                              f"(e.g. {below or above} or {above})")
        return
    try:
        check_tile(model, crop)
    except ValueError as exc:
        raise OptionError("crop", crop, f"a size the model takes ({exc})") from exc


def _valid_padding_input(model_name, kwargs, config, channels=1):
    """Valid-padding U-Nets train on tiles of the crop size (a valid size)."""
    from keras_unets.models import get_model_info

    padding = kwargs.get("padding", get_model_info(model_name)["preset"].get("padding"))
    if padding == "valid" and "input_shape" not in kwargs:
        size = int(config["crop"] or 512)
        kwargs["input_shape"] = (size, size, int(channels))
    return kwargs


def _build_model(model_name, config, get_model, *, kwargs=None, channels=1):
    """The config's model; a crop an unpadded network cannot take is named as ``crop``."""
    kwargs = dict(config["model_kwargs"]) if kwargs is None else dict(kwargs)
    kwargs = _valid_padding_input(model_name, kwargs, config, channels)
    try:
        return get_model(model_name, **kwargs)
    except ValueError as exc:
        if "input_shape" in kwargs and "input_shape" not in config["model_kwargs"]:
            raise OptionError("crop", config["crop"],
                              f"an input size the unpadded network takes ({exc})") from exc
        raise


def _model_io_sizes(model, crop, channels=1):
    """``(input tile, output size)`` of the model for training crops (``None`` for whole images)."""
    shape = tuple(model.inputs[0].shape)
    tile = shape[1] if shape[1] is not None else crop
    if tile is None:
        return None, None
    out = model.compute_output_shape((1, tile, tile, int(channels)))
    if isinstance(out, dict):
        out = list(out.values())[0]
    elif isinstance(out, (list, tuple)) and isinstance(out[0], (list, tuple)):
        out = out[0]
    return tile, out[1]


def _strategy_scope(strategy):
    import contextlib

    import keras

    if strategy in (None, "default"):
        return None, contextlib.nullcontext()
    if strategy != "mirrored":
        raise ValueError(
            f"strategy must be 'default' or 'mirrored'. Received: strategy={strategy!r}"
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "strategy='mirrored' uses tf.distribute.MirroredStrategy and needs "
            "the TensorFlow backend (KERAS_BACKEND=tensorflow). Received: "
            f"backend={keras.backend.backend()!r}"
        )
    import tensorflow as tf

    strat = tf.distribute.MirroredStrategy()
    return strat, strat.scope()
