"""Building blocks and argument checks shared by the three builders.

Blocks are small closures ``apply(x)`` with deterministic layer names, in the
style of ``keras.applications``. Argument checks raise ``ValueError`` with a
message that ends in ``Received: arg=...`` and, where it can, says what would
work (for example the nearest valid tile size).
"""
import keras
from keras import layers

from keras_unets.models.layers import BilinearUpSampling2D, UpsampleConv2D

PADDINGS = ("same", "valid")


# --------------------------------------------------------------------------
# Tile sizes
# --------------------------------------------------------------------------
def _valid_level_sizes(n, depth, shrink):
    """Feature-map sizes of an unpadded U-Net, or ``None`` if ``n`` is not valid."""
    sizes = []
    size = n
    for _ in range(depth):
        size -= shrink
        if size <= 0 or size % 2:
            return None
        sizes.append(size)
        size //= 2
    size -= shrink
    if size <= 0:
        return None
    sizes.append(size)
    for _ in range(depth):
        size = 2 * size - shrink
        if size <= 0:
            return None
    return sizes, size


def unet_output_size(n, depth=4, *, convs_per_level=2, kernel_size=3):
    """Output size of an unpadded ("valid") U-Net for an input tile of size ``n``.

    Ronneberger et al. 2015, Fig. 1 and section 2: every 3x3 unpadded
    convolution loses a 1-pixel border, every 2x2 max-pool halves the size and
    must see an even size. A 572x572 tile gives a 388x388 output tile:

    >>> unet_output_size(572)
    388
    >>> unet_output_size(572, depth=4) == 572 - 184
    True

    Raises ``ValueError`` naming the nearest valid sizes when ``n`` does not
    give an integer size at every level.
    """
    _check_int("depth", depth, minimum=0)
    _check_int("n", n, minimum=1)
    shrink = convs_per_level * (kernel_size - 1)
    result = _valid_level_sizes(n, depth, shrink)
    if result is None:
        below, above = nearest_valid_input_sizes(
            n, depth=depth, padding="valid", convs_per_level=convs_per_level,
            kernel_size=kernel_size)
        raise ValueError(
            f"An unpadded U-Net of depth {depth} needs an input size that stays "
            f"even before every max-pool and positive at every level; the nearest "
            f"valid sizes are "
            f"{_fmt_sizes(below, above, depth, shrink)}. Received: n={n}"
        )
    return result[1]


def valid_input_sizes(low=1, high=1024, *, depth=4, padding="valid",
                      convs_per_level=2, kernel_size=3):
    """All valid input sizes in ``[low, high]`` for a U-Net of ``depth`` poolings.

    ``padding="same"``: multiples of ``2**depth``. ``padding="valid"``: sizes
    that stay even before every max-pool and positive all the way up
    (Ronneberger et al. 2015: "select the input tile size such that all 2x2
    max-pooling operations are applied to a layer with an even x- and
    y-size"); for depth 4 these are ``124 + 16 b`` with a bottleneck of
    ``b >= 4`` pixels (188, 204, ..., 572, ...).

    >>> valid_input_sizes(560, 600)
    [572, 588]
    >>> valid_input_sizes(500, 530, padding="same")
    [512, 528]
    """
    _check_padding(padding)
    _check_int("depth", depth, minimum=0)
    shrink = convs_per_level * (kernel_size - 1)
    if padding == "same":
        step = 2 ** depth
        first = max(step, -(-low // step) * step)
        return list(range(first, high + 1, step))
    return [n for n in range(max(1, low), high + 1)
            if _valid_level_sizes(n, depth, shrink) is not None]


def nearest_valid_input_sizes(n, *, depth=4, padding="same", convs_per_level=2,
                              kernel_size=3):
    """The nearest valid input sizes ``(below, above)`` around ``n`` (``below`` may be None)."""
    step = 2 ** depth
    span = 4 * step + 64
    sizes = valid_input_sizes(max(1, n - span), n + span, depth=depth, padding=padding,
                              convs_per_level=convs_per_level, kernel_size=kernel_size)
    while not sizes or sizes[-1] < n:  # very deep nets: look further up
        span *= 4
        sizes = valid_input_sizes(max(1, n - span), n + span, depth=depth,
                                  padding=padding, convs_per_level=convs_per_level,
                                  kernel_size=kernel_size)
    below = max((s for s in sizes if s <= n), default=None)
    above = min(s for s in sizes if s >= n)
    return below, above


def _fmt_sizes(below, above, depth, shrink):
    parts = []
    for s in (below, above):
        if s is None or s in [p[0] for p in parts]:
            continue
        out = _valid_level_sizes(s, depth, shrink)
        parts.append((s, out[1] if out else None))
    return " or ".join(f"{s} (output {o})" for s, o in parts)


def check_input_shape(input_shape, *, depth, padding, input_channels, arg="input_shape"):
    """Resolve and check ``input_shape`` for a U-Net-like network of ``depth`` poolings.

    ``None`` means ``(None, None, input_channels)`` for ``same`` padding (fully
    convolutional) and ``(572, 572, input_channels)`` for ``valid`` padding
    (the paper's tile). Returns the checked tuple.
    """
    _check_padding(padding)
    if input_shape is None:
        size = None if padding == "same" else 572
        if padding == "valid" and depth != 4:
            size = nearest_valid_input_sizes(572, depth=depth, padding="valid")[1]
        return (size, size, input_channels)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(
            s is None or (isinstance(s, int) and not isinstance(s, bool) and s > 0)
            for s in shape):
        raise ValueError(
            f"`{arg}` must be (height, width, channels) with positive ints "
            f"(height/width may be None with padding='same'), e.g. (512, 512, 1). "
            f"Received: {arg}={input_shape!r}"
        )
    if shape[2] is None:
        raise ValueError(
            f"The channel dimension of `{arg}` must be known, e.g. (512, 512, 1). "
            f"Received: {arg}={input_shape!r}"
        )
    step = 2 ** depth
    for size in shape[:2]:
        if size is None:
            if padding == "valid":
                raise ValueError(
                    "An unpadded ('valid') U-Net needs a fixed tile size to crop its "
                    f"skip connections, e.g. {arg}=(572, 572, {shape[2]}); use "
                    f"padding='same' for a fully convolutional model. "
                    f"Received: {arg}={input_shape!r}"
                )
            continue
        if padding == "same" and size % step:
            below, above = nearest_valid_input_sizes(size, depth=depth, padding="same")
            near = " or ".join(str(s) for s in dict.fromkeys((below, above)) if s)
            raise ValueError(
                f"With padding='same' and depth={depth}, height and width must be "
                f"divisible by 2**depth = {step}; the nearest valid sizes to {size} "
                f"are {near}. Received: {arg}={input_shape!r}"
            )
        if padding == "valid":
            shrink = 4
            if _valid_level_sizes(size, depth, shrink) is None:
                below, above = nearest_valid_input_sizes(size, depth=depth, padding="valid")
                raise ValueError(
                    f"With padding='valid' and depth={depth}, size {size} does not give "
                    f"an even size before every max-pool and a positive size at every "
                    f"level; the nearest valid sizes are "
                    f"{_fmt_sizes(below, above, depth, shrink)}. "
                    f"Received: {arg}={input_shape!r}"
                )
    return shape


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------
def _check_int(arg, value, *, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{arg}` must be an int. Received: {arg}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{arg}` must be >= {minimum}. Received: {arg}={value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{arg}` must be <= {maximum}. Received: {arg}={value!r}")
    return value


def check_int(arg, value, *, minimum=None, maximum=None):
    """Check that ``value`` is an int in range, else ``ValueError`` naming ``arg``."""
    return _check_int(arg, value, minimum=minimum, maximum=maximum)


def check_rate(arg, value):
    """Check a dropout rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{arg}` must be a number in [0, 1). Received: {arg}={value!r}")
    return float(value)


def check_bn_momentum(value):
    """``bn_momentum`` as a float in [0, 1)."""
    try:
        m = float(value)
    except (TypeError, ValueError):
        m = None
    if m is None or isinstance(value, bool) or not 0.0 <= m < 1.0:
        raise ValueError(
            "`bn_momentum` must be a float in [0, 1) (Keras' default 0.99; 0.9 "
            f"settles the moving statistics within ~50 steps). Received: bn_momentum={value!r}")
    return m


def check_nonneg(arg, value):
    """Check a non-negative number (e.g. an L2 factor)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"`{arg}` must be a number >= 0. Received: {arg}={value!r}")
    return float(value)


def _check_padding(padding):
    if padding not in PADDINGS:
        raise ValueError(
            f"`padding` must be one of {PADDINGS}. Received: padding={padding!r}")


def check_filters(filters, depth):
    """Resolve ``filters`` (base int, doubled per level, or a sequence) to a tuple.

    ``filters=64, depth=4`` -> ``(64, 128, 256, 512, 1024)``. A sequence must
    have ``depth + 1`` positive ints.
    """
    _check_int("depth", depth, minimum=1)
    if isinstance(filters, int) and not isinstance(filters, bool):
        _check_int("filters", filters, minimum=1)
        return tuple(filters * 2 ** i for i in range(depth + 1))
    try:
        seq = tuple(filters)
    except TypeError:
        seq = None
    if (seq is None or len(seq) != depth + 1
            or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0
                       for f in seq)):
        raise ValueError(
            f"`filters` must be a positive int (filters of the first level, doubled "
            f"at every level) or a sequence of depth + 1 = {depth + 1} positive ints, "
            f"e.g. filters=64 or filters=(64, 128, 256, 512, 1024). "
            f"Received: filters={filters!r}"
        )
    return seq


def resolve_output_activation(output_activation, num_classes):
    """Resolve ``"auto"``: sigmoid for 1 class, softmax for ``num_classes >= 2``.

    ``None`` (or ``"linear"``) gives logits.
    """
    _check_int("num_classes", num_classes, minimum=1)
    if output_activation == "auto":
        return "sigmoid" if num_classes == 1 else "softmax"
    if output_activation is None or output_activation == "linear":
        return None
    if not isinstance(output_activation, str):
        raise ValueError(
            "`output_activation` must be 'auto', 'sigmoid', 'softmax', None (logits) or "
            f"another Keras activation name. Received: output_activation={output_activation!r}"
        )
    try:
        keras.activations.get(output_activation)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "`output_activation` must be 'auto', 'sigmoid', 'softmax', None (logits) or "
            f"another Keras activation name. Received: output_activation={output_activation!r}"
        ) from exc
    return output_activation


def make_input(shape, name="input"):
    """The model input (deterministically named)."""
    return keras.Input(shape=shape, name=name)


def regularizer(l2):
    """``keras.regularizers.L2(l2)`` or ``None`` for ``l2 == 0``."""
    return keras.regularizers.L2(l2) if l2 else None


# --------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------
def conv_unit(filters, *, name, n_convs=2, kernel_size=3, padding="same",
              batch_norm=False, activation="relu", dropout=0.0,
              kernel_initializer="he_normal", l2=0.0, use_bias=None, bn_momentum=0.99):
    """``n_convs`` x (conv [-> BN] -> activation [-> dropout]), named ``{name}_conv{i}``.

    Without batch norm the activation is fused into the convolution (one
    layer, as in the official UNet++ Keras code); with batch norm the order is
    conv -> BN -> activation (UNet 3+ ``unetConv2``). ``use_bias`` defaults to
    ``True`` (both official codes keep the conv bias, also before BN; the
    exact parameter counts depend on it). ``dropout`` > 0 adds a Dropout after
    every convolution (UNet++ ``standard_unit``).
    """

    def apply(x):
        bias = True if use_bias is None else use_bias
        for i in range(1, n_convs + 1):
            x = layers.Conv2D(
                filters, kernel_size, padding=padding, use_bias=bias,
                activation=None if batch_norm else activation,
                kernel_initializer=kernel_initializer,
                kernel_regularizer=regularizer(l2),
                name=f"{name}_conv{i}",
            )(x)
            if batch_norm:
                x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
                x = layers.Activation(activation, name=f"{name}_{activation}{i}")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"{name}_drop{i}")(x)
        return x

    return apply


def conv_bn_relu(filters, *, name, kernel_size=3, batch_norm=True,
                 kernel_initializer="he_normal", bn_momentum=0.99, upsample_first=1,
                 factorized=False):
    """[Bilinear up-sampling ->] one 3x3 conv (with bias) [-> BN] -> ReLU.

    The UNet 3+ skip/fusion unit. With ``upsample_first > 1`` the input is
    up-sampled before the conv, inside the conv layer (``UpsampleConv2D``,
    layer ``{name}_conv``), which never forms the up-sampled map when
    ``factorized``; see ``build_unet3p(factorize_skips=True)``.
    """

    def apply(x):
        conv_kwargs = dict(padding="same", activation=None if batch_norm else "relu",
                           kernel_initializer=kernel_initializer, name=f"{name}_conv")
        if upsample_first > 1:
            x = UpsampleConv2D(filters, kernel_size, upsample=upsample_first,
                               factorized=factorized, **conv_kwargs)(x)
        else:
            x = layers.Conv2D(filters, kernel_size, **conv_kwargs)(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        return x

    return apply


def output_head(num_classes, activation, *, name, kernel_size=1,
                kernel_initializer="he_normal", l2=0.0, upsample=1):
    """Head conv ``{name}_conv`` [-> bilinear upsampling] -> activation layer ``name``.

    The final activation layer always exists (``linear`` for logits) so that
    every output has a stable name, and runs in float32 so that mixed
    precision training keeps a float32 output (Keras mixed-precision guide).
    """

    def apply(x):
        x = layers.Conv2D(num_classes, kernel_size, padding="same",
                          kernel_initializer=kernel_initializer,
                          kernel_regularizer=regularizer(l2),
                          name=f"{name}_conv")(x)
        if upsample > 1:
            x = BilinearUpSampling2D(upsample, name=f"{name}_up")(x)
        return layers.Activation(activation or "linear", dtype="float32", name=name)(x)

    return apply
