"""U-Net (Ronneberger, Fischer and Brox, MICCAI 2015).

Reference: O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks
for Biomedical Image Segmentation", MICCAI 2015, LNCS 9351, pp. 234-241.

Section 2 of the paper: the contracting path repeats two unpadded 3x3
convolutions, each followed by a ReLU, and a 2x2 max-pool with stride 2 that
doubles the number of channels (64 -> 1024). Every step of the expansive path
upsamples the map with a 2x2 "up-convolution" that halves the channels,
concatenates the correspondingly cropped map of the contracting path, and
applies two 3x3 convolutions + ReLU. A final 1x1 convolution maps the 64
channels to the classes: 23 convolutional layers. "Drop-out layers at the end
of the contracting path perform further implicit data augmentation"
(section 3.1; the rate is not given, 0.5 is customary). A 572x572 input tile
gives a 388x388 output tile.

Parameter counts, as counted from the official Caffe prototxt (Ronneberger
et al. 2015): 31,030,593 for 1 -> 1 sigmoid, 31,030,658 for 1 -> 2 softmax,
whatever the padding.

The same builder also expresses

* the Keras U-Net that the "U-Net School" report trained (zhixuhao/unet:
  ``UpSampling2D`` + 2x2 conv + ReLU as up-conv, Dropout 0.5 after the 512
  and 1024 blocks, an extra 3x3 conv to 2 channels before the 1x1 sigmoid,
  ``same`` padding): ``build_unet(upsampling="upsample_conv",
  up_activation="relu", dropout_levels=(-2, -1), head_filters=2)``,
  31,031,685 parameters (registry name ``unet_report``);
* the U-Net baseline of the UNet++ paper (Zhou et al. 2018, official Keras
  ``U_Net``: filters 32-512, Dropout 0.5 after every conv, L2 1e-4):
  ``build_unet(filters=32, dropout=0.0, unit_dropout=0.5, l2=1e-4)``,
  7,759,521 parameters (registry name ``unet_unetpp_baseline``).
"""
import keras
from keras import layers

from keras_unets.models import blocks

UPSAMPLINGS = ("transpose", "upsample_conv")


def build_unet(
    *,
    input_shape=None,
    input_channels=1,
    num_classes=1,
    filters=64,
    depth=4,
    padding="same",
    batch_norm=False,
    bn_momentum=0.99,
    dropout=0.5,
    dropout_levels=None,
    unit_dropout=0.0,
    upsampling="transpose",
    up_activation=None,
    head_filters=None,
    output_activation="auto",
    kernel_initializer="he_normal",
    l2=0.0,
    name="unet",
):
    """Build the U-Net of Ronneberger et al. (2015) as a Keras functional model.

    Args:
        input_shape: ``(H, W, C)``. ``None``: ``(None, None, input_channels)``
            with ``same`` padding (fully convolutional; H and W must then be
            multiples of ``2**depth`` at call time) or ``(572, 572, C)`` with
            ``valid`` padding. With ``same`` padding H and W must be divisible
            by ``2**depth``; with ``valid`` padding they must stay even before
            every max-pool (see :func:`valid_input_sizes`).
        input_channels: channels when ``input_shape`` is None.
        num_classes: output channels. 1 -> sigmoid, K >= 2 -> softmax (with
            ``output_activation="auto"``).
        filters: filters of the first level (doubled at every level) or a
            sequence of ``depth + 1`` ints. Paper: 64 (64-1024).
        depth: number of max-pool steps. Paper: 4.
        padding: ``"valid"`` (paper: unpadded convs, centre-cropped skips,
            output smaller than input, for overlap-tile) or ``"same"``.
        batch_norm: conv -> BN -> ReLU in every unit (not in the paper).
        bn_momentum: momentum of the BatchNormalization moving statistics
            (Keras default 0.99). After N steps they still hold 0.99**N of
            their initial 0/1 (5 % after 300 steps), so short runs validate
            better with 0.9 (the ``quick`` profile). Ignored without BN.
        dropout: rate of the Dropout layers at the end of the contracting
            path (paper section 3.1); 0 disables them.
        dropout_levels: levels (0 = first, ``depth`` = bottleneck) after whose
            conv block that Dropout is applied; the dropped map is also the
            skip; negative values count from the bottleneck (-1). Default
            ``(depth,)``: the end of the contracting path.
        unit_dropout: Dropout after every convolution (UNet++ paper baseline).
        upsampling: ``"transpose"`` (paper's 2x2 up-conv: ``Conv2DTranspose``
            2x2 stride 2 halving the channels) or ``"upsample_conv"``
            (``UpSampling2D`` then a 2x2 ``same`` conv; zhixuhao/unet).
        up_activation: activation of the up-conv (``None``; the report's
            Keras U-Net uses ``"relu"``).
        head_filters: if set, an extra 3x3 ``same`` conv + ReLU with that many
            filters before the final 1x1 conv (the report's Keras U-Net: 2).
        output_activation: ``"auto"`` (sigmoid for 1 class, softmax
            otherwise), a Keras activation name, or ``None`` for logits.
        kernel_initializer: paper section 3: Gaussian with std
            sqrt(2 / N) = ``"he_normal"``.
        l2: L2 factor on the unit and head convolution kernels (not on the
            up-convs, as in the UNet++ official code); 0 = none.
        name: model name.

    Returns:
        ``keras.Model`` with one output layer named ``"output"``.

    Example:
        >>> model = build_unet(input_shape=(572, 572, 1), padding="valid")
        >>> model.output_shape
        (None, 388, 388, 1)
        >>> model.count_params()
        31030593
    """
    blocks.check_int("depth", depth, minimum=1)
    filters = blocks.check_filters(filters, depth)
    blocks.check_int("num_classes", num_classes, minimum=1)
    blocks.check_int("input_channels", input_channels, minimum=1)
    shape = blocks.check_input_shape(input_shape, depth=depth, padding=padding,
                                     input_channels=input_channels)
    dropout = blocks.check_rate("dropout", dropout)
    bn_momentum = blocks.check_bn_momentum(bn_momentum)
    unit_dropout = blocks.check_rate("unit_dropout", unit_dropout)
    l2 = blocks.check_nonneg("l2", l2)
    if dropout_levels is None:
        dropout_levels = (depth,)
    try:
        levels = tuple(dropout_levels)
    except TypeError:
        levels = None
    if levels is None or not all(
            isinstance(v, int) and not isinstance(v, bool) and -depth - 1 <= v <= depth
            for v in levels):
        raise ValueError(
            f"`dropout_levels` must be a sequence of levels in 0..depth={depth} "
            f"(depth = bottleneck; negative values count from it: -1 = bottleneck), "
            f"e.g. ({depth},) or (-2, -1). Received: dropout_levels={dropout_levels!r}")
    dropout_levels = {v % (depth + 1) for v in levels}
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"`upsampling` must be one of {UPSAMPLINGS}. "
                         f"Received: upsampling={upsampling!r}")
    if head_filters is not None:
        blocks.check_int("head_filters", head_filters, minimum=1)
    activation = blocks.resolve_output_activation(output_activation, num_classes)

    def unit(f, unit_name):
        return blocks.conv_unit(
            f, name=unit_name, padding=padding, batch_norm=batch_norm, bn_momentum=bn_momentum,
            dropout=unit_dropout, kernel_initializer=kernel_initializer, l2=l2,
            use_bias=not batch_norm)

    inputs = blocks.make_input(shape)
    x = inputs
    skips = []
    for level in range(depth + 1):
        x = unit(filters[level], f"enc{level}")(x)
        if dropout and level in dropout_levels:
            x = layers.Dropout(dropout, name=f"enc{level}_dropout")(x)
        if level < depth:
            skips.append(x)
            x = layers.MaxPooling2D(2, strides=2, name=f"enc{level}_pool")(x)

    for level in reversed(range(depth)):
        f = filters[level]
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(f, 2, strides=2, activation=up_activation,
                                       kernel_initializer=kernel_initializer,
                                       name=f"dec{level}_upconv")(x)
        else:
            x = layers.UpSampling2D(2, name=f"dec{level}_upsample")(x)
            x = layers.Conv2D(f, 2, padding="same", activation=up_activation,
                              kernel_initializer=kernel_initializer,
                              name=f"dec{level}_upconv")(x)
        skip = skips[level]
        if padding == "valid":
            skip = _center_crop_to(skip, x, name=f"dec{level}_crop")
        x = layers.Concatenate(axis=-1, name=f"dec{level}_concat")([skip, x])
        x = unit(f, f"dec{level}")(x)

    if head_filters is not None:
        x = layers.Conv2D(head_filters, 3, padding="same", activation="relu",
                          kernel_initializer=kernel_initializer,
                          kernel_regularizer=blocks.regularizer(l2),
                          name="head_conv")(x)
    outputs = blocks.output_head(num_classes, activation, name="output",
                                 kernel_initializer=kernel_initializer, l2=l2)(x)
    return keras.Model(inputs, outputs, name=name)


def _center_crop_to(skip, target, *, name):
    """Centre-crop ``skip`` to the spatial size of ``target`` (paper Fig. 1, grey arrows)."""
    dh = skip.shape[1] - target.shape[1]
    dw = skip.shape[2] - target.shape[2]
    if dh < 0 or dw < 0:  # cannot happen for sizes accepted by check_input_shape
        raise ValueError(f"Skip map {skip.shape} is smaller than {target.shape}.")
    return layers.Cropping2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)),
                             name=name)(skip)
