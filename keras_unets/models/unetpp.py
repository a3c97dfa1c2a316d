"""UNet++ (Zhou, Rahman Siddiquee, Tajbakhsh and Liang, DLMIA 2018).

Reference: Z. Zhou, M. M. Rahman Siddiquee, N. Tajbakhsh, J. Liang, "UNet++:
A Nested U-Net Architecture for Medical Image Segmentation", DLMIA 2018,
LNCS 11045, pp. 3-11; official Keras code MrGiovanni/UNetPlusPlus
(``model_logic.py``, ``Nest_Net``).

Section 2 of the paper: node X^{i,j} (i = down-sampling level, j = position
along the skip pathway) computes

    X^{i,j} = H(X^{i-1,j})                                  for j = 0
    X^{i,j} = H([X^{i,0}, ..., X^{i,j-1}, U(X^{i+1,j-1})])  for j > 0

with H a convolution unit and U an up-sampling layer, so X^{i,j} receives
j + 1 inputs (dense skip pathway). As in the official code: H = two
(3x3 conv + ReLU, he_normal, L2 1e-4, Dropout 0.5), no batch norm; U =
``Conv2DTranspose`` 2x2 stride 2 without activation; the concatenation order
is ``[U(X^{i+1,j-1}), X^{i,0}, ..., X^{i,j-1}]``; filters 32-64-128-256-512.

Deep supervision (section 2): 1x1 conv + sigmoid heads on X^{0,1..4}
(named ``out1``..``out4``), trained with equal weights. Two inference modes:
"accurate" averages the four heads (:func:`average_heads`), "fast" picks one
head, which is the same as pruning (:func:`prune_unetpp`): level Li keeps only
the sub-network that ends at X^{0,i}, sharing its weights with the full model.

Parameter counts of the official Keras code (Zhou et al. 2018; the paper's
9.04M): 9,041,601 without deep supervision, 9,041,700 with (4 heads);
pruned L1..L4: 100,961 / 511,105 / 2,204,961 / 9,041,601.
"""
import keras
from keras import layers

from keras_unets.models import blocks


def node_name(i, j):
    """Deterministic name prefix of node X^{i,j}: ``"x{i}_{j}"``."""
    return f"x{i}_{j}"


def build_unetpp(
    *,
    input_shape=None,
    input_channels=1,
    num_classes=1,
    filters=32,
    depth=4,
    dropout=0.5,
    batch_norm=False,
    bn_momentum=0.99,
    l2=1e-4,
    deep_supervision=False,
    output_activation="auto",
    kernel_initializer="he_normal",
    name="unetpp",
):
    """Build UNet++ (Zhou et al. 2018) as a Keras functional model.

    Args:
        input_shape: ``(H, W, C)``; ``None`` = ``(None, None, input_channels)``.
            H and W must be divisible by ``2**depth``.
        input_channels: channels when ``input_shape`` is None.
        num_classes: output channels (1 -> sigmoid, K >= 2 -> softmax with
            ``output_activation="auto"``).
        filters: first-level filters (doubled per level) or ``depth + 1``
            ints. Paper: 32 (32-512).
        depth: down-sampling levels (paper: 4, nodes X^{0..4, 0..4}).
        dropout: Dropout after every convolution (official code: 0.5).
        batch_norm: conv -> BN -> ReLU in the units (not in the paper).
        bn_momentum: momentum of the BatchNormalization moving statistics
            (Keras default 0.99). After N steps they still hold 0.99**N of
            their initial 0/1 (5 % after 300 steps), so short runs validate
            better with 0.9 (the ``quick`` profile). Ignored without BN.
        l2: L2 factor on the unit and head kernels (official code: 1e-4).
        deep_supervision: heads ``out1``..``out{depth}`` on X^{0,1..depth}
            instead of one head ``output`` on X^{0,depth}.
        output_activation: ``"auto"``, a Keras activation name or ``None``
            (logits).
        kernel_initializer: official code: ``"he_normal"``.
        name: model name.

    Returns:
        ``keras.Model``. Layers of node X^{i,j} are named ``x{i}_{j}_*``; the
        node's concatenation is ``x{i}_{j}_concat`` and its up-sampling of
        X^{i+1,j-1} is ``x{i}_{j}_up``.

    Example:
        >>> build_unetpp(input_shape=(96, 96, 1)).count_params()
        9041601
    """
    blocks.check_int("depth", depth, minimum=1)
    filters = blocks.check_filters(filters, depth)
    blocks.check_int("num_classes", num_classes, minimum=1)
    blocks.check_int("input_channels", input_channels, minimum=1)
    shape = blocks.check_input_shape(input_shape, depth=depth, padding="same",
                                     input_channels=input_channels)
    dropout = blocks.check_rate("dropout", dropout)
    bn_momentum = blocks.check_bn_momentum(bn_momentum)
    l2 = blocks.check_nonneg("l2", l2)
    if not isinstance(deep_supervision, bool):
        raise ValueError("`deep_supervision` must be True or False. "
                         f"Received: deep_supervision={deep_supervision!r}")
    activation = blocks.resolve_output_activation(output_activation, num_classes)

    def unit(i, j):
        return blocks.conv_unit(
            filters[i], name=node_name(i, j), batch_norm=batch_norm, dropout=dropout,
            bn_momentum=bn_momentum,
            kernel_initializer=kernel_initializer, l2=l2, use_bias=not batch_norm)

    inputs = blocks.make_input(shape)
    x = {}
    # Built in the official order: each new encoder node X^{i,0} is followed by
    # the anti-diagonal of nodes X^{i-j,j} that it completes.
    for i in range(depth + 1):
        prev = inputs if i == 0 else layers.MaxPooling2D(
            2, strides=2, name=f"pool{i - 1}")(x[i - 1, 0])
        x[i, 0] = unit(i, 0)(prev)
        for j in range(1, i + 1):
            r = i - j
            up = layers.Conv2DTranspose(
                filters[r], 2, strides=2, padding="same",
                name=f"{node_name(r, j)}_up")(x[r + 1, j - 1])
            merged = layers.Concatenate(axis=-1, name=f"{node_name(r, j)}_concat")(
                [up] + [x[r, k] for k in range(j)])
            x[r, j] = unit(r, j)(merged)

    if deep_supervision:
        outputs = [
            blocks.output_head(num_classes, activation, name=f"out{j}",
                               kernel_initializer=kernel_initializer, l2=l2)(x[0, j])
            for j in range(1, depth + 1)
        ]
    else:
        outputs = blocks.output_head(num_classes, activation, name="output",
                                     kernel_initializer=kernel_initializer,
                                     l2=l2)(x[0, depth])
    return keras.Model(inputs, outputs, name=name)


def _heads(model):
    names = [n for n in model.output_names if n.startswith("out") and n[3:].isdigit()]
    return sorted(names, key=lambda n: int(n[3:]))


def prune_unetpp(model, level, *, name=None):
    """Extract the pruned UNet++ L``level`` that shares ``model``'s weights.

    Zhou et al. 2018, section 2 ("model pruning"): with deep supervision, the
    sub-network ending at X^{0,level} (nodes X^{i,j} with i + j <= level and
    the head ``out{level}``) is an independent segmentation network; at
    inference the deeper part can be dropped. The returned model reuses the
    parent's layers (same variables: training one trains the other) and has a
    single output named ``output``.

    Args:
        model: a model from :func:`build_unetpp`. Levels below its depth need
            ``deep_supervision=True`` (the heads on X^{0,1..} exist only then);
            the full level works for both.
        level: 1..depth.
        name: model name (default ``"{model.name}_L{level}"``).
    """
    heads = _heads(model)
    depth = len(heads) if heads else _unetpp_depth(model)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= depth:
        raise ValueError(f"`level` must be an int in 1..{depth} for this model. "
                         f"Received: level={level!r}")
    name = name or f"{model.name}_L{level}"
    if not heads:
        if level != depth:
            raise ValueError(
                "Pruning below the full depth needs the deep-supervision heads on "
                "X^{0,1..}: build the model with build_unetpp(deep_supervision=True) "
                f"and train it with deep supervision. Received: level={level!r} "
                f"for a model without deep supervision (depth {depth})")
        return keras.Model(model.input, model.get_layer("output").output, name=name)
    head = model.get_layer(f"out{level}").output
    out = layers.Identity(dtype="float32", name="output")(head)
    return keras.Model(model.input, out, name=name)


def _unetpp_depth(model):
    depth = 0
    for layer in model.layers:
        if layer.name.startswith("x0_") and layer.name.endswith("_concat"):
            depth = max(depth, int(layer.name.split("_")[1]))
    if depth == 0:
        raise ValueError(
            "This does not look like a model from build_unetpp (no x0_<j>_concat "
            f"layers). Received: model={model.name!r}")
    return depth


def average_heads(model, *, name=None):
    """UNet++ "accurate" inference mode: the average of the deep-supervision heads.

    Zhou et al. 2018, section 2: "in the accurate mode, the outputs from all
    segmentation branches are averaged". Returns a model that shares
    ``model``'s weights with one output ``output`` = mean(out1..outN). The
    training model keeps its separate heads (each gets its own loss); this is
    the model to evaluate or to predict with in accurate mode. The fast mode is
    :func:`prune_unetpp` (or simply the head ``out{depth}``).
    """
    heads = _heads(model)
    if len(heads) < 2:
        raise ValueError(
            "average_heads needs a deep-supervision model with heads out1..outN "
            "(build_unetpp(deep_supervision=True)). "
            f"Received: model with outputs {list(model.output_names)}")
    outs = [model.get_layer(h).output for h in heads]
    avg = layers.Average(dtype="float32", name="output")(outs)
    return keras.Model(model.input, avg, name=name or f"{model.name}_accurate")
