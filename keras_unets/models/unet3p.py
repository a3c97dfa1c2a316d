"""UNet 3+ (Huang et al., ICASSP 2020).

Reference: H. Huang, L. Lin, R. Tong, H. Hu, Q. Zhang, Y. Iwamoto, X. Han,
Y.-W. Chen, J. Wu, "UNet 3+: A Full-Scale Connected UNet for Medical Image
Segmentation", ICASSP 2020, pp. 1055-1059; official PyTorch code
ZJUGiveLab/UNet-Version (``UNet_3Plus``, ``UNet_3Plus_DeepSup``,
``UNet_3Plus_DeepSup_CGM``).

Section 2.1 (full-scale skip connections): every decoder node X_De^i takes
*all* scales: the shallower encoder maps X_En^{1..i-1} max-pooled down to its
size, the same-scale encoder map X_En^i, and the deeper decoder maps
X_De^{i+1..5} bilinearly up-sampled (X_De^5 = the bottleneck X_En^5). Each of
the 5 inputs goes through a 3x3 conv to 64 channels + BN + ReLU; the 5 x 64 =
320 channels are fused by a 3x3 conv (320) + BN + ReLU. Encoder: two 3x3 conv
(with bias) + BN + ReLU per level, filters 64-1024, 2x2 max-pool. The
official code pools with ``ceil_mode=True``; here ``MaxPooling2D(padding=
"same")`` has the same ceil behaviour.

Section 2.2 (full-scale deep supervision): a 3x3 conv head on each of
X_De^1..X_De^5, bilinear up-sampling to full size (x1, 2, 4, 8, 16), sigmoid:
outputs ``out1`` (X_De^1, the full-resolution main head) .. ``out5``.

Section 2.3 (classification-guided module, CGM): Dropout 0.5 -> 1x1 conv to
2 channels -> global max-pool -> sigmoid on X_En^5 (output ``cls``); its
argmax (0/1) multiplies every segmentation output. The argmax passes no
gradient (:class:`keras_unets.models.layers.ClassGuidance`), so ``cls`` needs its own
loss (binary cross-entropy against one-hot [absent, present], index 1 =
present as the argmax reads it; :func:`keras_unets.augment.cgm_targets` makes
it from each training crop: present if the crop's label has a cell pixel.
Every whole ISBI slice has cells, small crops can be all membrane). Unlike
the official code, which multiplies the logits before the sigmoid (so
"absent" gives 0.5), the mask is applied to the activated map (so "absent"
gives 0); a CGM model therefore needs an output activation
(``output_activation=None`` is refused).

Parameter counts of the official PyTorch code (Huang et al. 2020; the
paper's 26.97M), trainable: 26,970,625 (plain), 26,988,485 (deep
supervision), 26,990,535 (deep supervision + CGM); ``count_params()``
adds 2 x 6,528 BN moving statistics: 26,983,681 plain.
"""
import keras
from keras import layers

from keras_unets.models import blocks
from keras_unets.models.layers import BilinearUpSampling2D, ClassGuidance

__all__ = ["CGM_OUTPUT", "build_unet3p"]

#: Name of the classification-guided module's output (``cgm=True``): class
#: scores ``(B, 2)`` ``[absent, present]``, not a map. The batch source
#: (:func:`keras_unets.augment.cgm_targets`) and the threshold sweep skip
#: it by this name.
CGM_OUTPUT = "cls"


def build_unet3p(
    *,
    input_shape=None,
    input_channels=1,
    num_classes=1,
    filters=64,
    depth=4,
    cat_channels=None,
    factorize_skips=False,
    batch_norm=True,
    bn_momentum=0.99,
    deep_supervision=False,
    cgm=False,
    cgm_dropout=0.5,
    output_activation="auto",
    kernel_initializer="he_normal",
    name="unet3p",
):
    """Build UNet 3+ (Huang et al. 2020) as a Keras functional model.

    Args:
        input_shape: ``(H, W, C)``; ``None`` = ``(None, None, input_channels)``.
            H and W must be divisible by ``2**depth``.
        input_channels: channels when ``input_shape`` is None.
        num_classes: output channels (1 -> sigmoid, K >= 2 -> softmax with
            ``output_activation="auto"``).
        filters: encoder filters of the first level (doubled per level) or
            ``depth + 1`` ints. Paper: 64 (64-1024).
        depth: max-pool steps (paper: 4, i.e. 5 scales); every decoder node
            has ``depth + 1`` inputs.
        cat_channels: channels of each full-scale skip (paper: 64 =
            ``filters[0]``); the fused decoder width is
            ``cat_channels * (depth + 1)`` (paper: 320).
        factorize_skips: compute each deeper skip's up-sample-then-conv
            exactly without forming the up-sampled map
            (:class:`keras_unets.models.layers.UpsampleConv2D` with
            ``factorized=True``, layer ``hd{d}_from_hd{k}_conv``; no
            ``hd{d}_from_hd{k}_up`` layer): the 3x3 kernel's channel mixing
            runs at the source's resolution, and the shifted bilinear
            up-sampling is two contractions. Same function (to float
            rounding), weights and weight order as without it
            (``set_weights`` carries over); no intermediate larger than 1.5x
            a skip's ``cat_channels``-wide output. The paper and quick
            profiles' setting. Measured at 512 x 512, batch 1, float32: XLA's
            buffers 4,384 MiB against 6,722 as written; a TensorFlow training
            step at 256 x 256 in 0.60x the time (BENCHMARKS.md "UNet 3+ skip
            order").
        batch_norm: BN after every conv (paper/official: True).
        bn_momentum: momentum of the BatchNormalization moving statistics
            (Keras default 0.99). After N steps they still hold 0.99**N of
            their initial 0/1 (5 % after 300 steps), so short runs validate
            better with 0.9 (the ``quick`` profile). Ignored without BN.
        deep_supervision: heads ``out1``..``out{depth+1}`` on every decoder
            scale, up-sampled to full size, instead of one head ``output``.
        cgm: add the classification-guided module (output ``cls``, masks
            every segmentation output); needs an output activation.
        cgm_dropout: Dropout rate of the CGM branch (official: 0.5).
        output_activation: ``"auto"``, a Keras activation name or ``None``
            (logits; the report trained UNet 3+ with BCE on logits).
        kernel_initializer: official code: Kaiming (``"he_normal"``).
        name: model name.

    Returns:
        ``keras.Model``. Decoder node ``hd{d}`` concatenates its inputs in
        layer ``hd{d}_concat`` (order: pooled encoder maps e1..e{d-1}, e{d},
        up-sampled decoder maps hd{d+1}..hd{depth+1}).

    Example:
        >>> import math
        >>> m = build_unet3p(input_shape=(320, 320, 1))
        >>> sum(math.prod(w.shape) for w in m.trainable_weights)
        26970625
    """
    blocks.check_int("depth", depth, minimum=1)
    filters = blocks.check_filters(filters, depth)
    blocks.check_int("num_classes", num_classes, minimum=1)
    blocks.check_int("input_channels", input_channels, minimum=1)
    shape = blocks.check_input_shape(input_shape, depth=depth, padding="same",
                                     input_channels=input_channels)
    if cat_channels is None:
        cat_channels = filters[0]
    blocks.check_int("cat_channels", cat_channels, minimum=1)
    cgm_dropout = blocks.check_rate("cgm_dropout", cgm_dropout)
    if not isinstance(factorize_skips, bool):
        raise ValueError(f"`factorize_skips` must be True or False. Received: "
                         f"factorize_skips={factorize_skips!r}")
    bn_momentum = blocks.check_bn_momentum(bn_momentum)
    for arg, value in (("deep_supervision", deep_supervision), ("cgm", cgm),
                       ("batch_norm", batch_norm)):
        if not isinstance(value, bool):
            raise ValueError(f"`{arg}` must be True or False. Received: {arg}={value!r}")
    activation = blocks.resolve_output_activation(output_activation, num_classes)
    if cgm and activation is None:
        raise ValueError(
            "The classification-guided module masks the activated outputs (a 0/1 "
            "mask on logits would give p = 0.5 where the class is absent); use "
            "output_activation='auto' or 'sigmoid' with cgm=True, or cgm=False for "
            "logits. Received: output_activation=None")
    n_scales = depth + 1
    up_channels = cat_channels * n_scales

    inputs = blocks.make_input(shape)
    # Encoder: e1..e{n_scales}; e{n_scales} is hd{n_scales}.
    enc = {}
    x = inputs
    for k in range(1, n_scales + 1):
        if k > 1:
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"e{k}_pool")(x)
        x = blocks.conv_unit(filters[k - 1], name=f"e{k}", batch_norm=batch_norm,
                             bn_momentum=bn_momentum,
                             kernel_initializer=kernel_initializer, use_bias=True)(x)
        enc[k] = x

    dec = {n_scales: enc[n_scales]}
    for d in range(depth, 0, -1):
        parts = []
        for k in range(1, d):  # shallower encoder maps, max-pooled down
            f = 2 ** (d - k)
            p = layers.MaxPooling2D(f, strides=f, padding="same",
                                    name=f"hd{d}_from_e{k}_pool")(enc[k])
            parts.append(_skip(cat_channels, f"hd{d}_from_e{k}", batch_norm,
                               kernel_initializer, bn_momentum)(p))
        parts.append(_skip(cat_channels, f"hd{d}_from_e{d}", batch_norm,
                           kernel_initializer, bn_momentum)(enc[d]))
        for k in range(d + 1, n_scales + 1):  # deeper decoder maps, up-sampled
            f = 2 ** (k - d)
            if factorize_skips:
                parts.append(_skip(cat_channels, f"hd{d}_from_hd{k}", batch_norm,
                                   kernel_initializer, bn_momentum, upsample_first=f,
                                   factorized=True)(dec[k]))
            else:
                u = BilinearUpSampling2D(f, name=f"hd{d}_from_hd{k}_up")(dec[k])
                parts.append(_skip(cat_channels, f"hd{d}_from_hd{k}", batch_norm,
                                   kernel_initializer, bn_momentum)(u))
        merged = layers.Concatenate(axis=-1, name=f"hd{d}_concat")(parts)
        dec[d] = blocks.conv_bn_relu(up_channels, name=f"hd{d}_fuse",
                                     batch_norm=batch_norm, bn_momentum=bn_momentum,
                                     kernel_initializer=kernel_initializer)(merged)

    cls = None
    if cgm:
        c = layers.Dropout(cgm_dropout, name=f"{CGM_OUTPUT}_dropout")(enc[n_scales])
        c = layers.Conv2D(2, 1, kernel_initializer=kernel_initializer, name=f"{CGM_OUTPUT}_conv")(c)
        c = layers.GlobalMaxPooling2D(name=f"{CGM_OUTPUT}_pool")(c)
        cls = layers.Activation("sigmoid", dtype="float32", name=CGM_OUTPUT)(c)

    def head(k, out_name):
        out = blocks.output_head(
            num_classes, activation, name=out_name if cls is None else f"{out_name}_seg",
            kernel_size=3, kernel_initializer=kernel_initializer,
            upsample=2 ** (k - 1))(dec[k])
        if cls is not None:
            out = ClassGuidance(dtype="float32", name=out_name)([out, cls])
        return out

    if deep_supervision:
        outputs = [head(k, f"out{k}") for k in range(1, n_scales + 1)]
    else:
        outputs = [head(1, "output")]
    if cls is not None:
        outputs.append(cls)
    if len(outputs) == 1:
        outputs = outputs[0]
    return keras.Model(inputs, outputs, name=name)


def _skip(channels, name, batch_norm, kernel_initializer, bn_momentum, upsample_first=1,
          factorized=False):
    return blocks.conv_bn_relu(channels, name=name, batch_norm=batch_norm,
                               kernel_initializer=kernel_initializer, bn_momentum=bn_momentum,
                               upsample_first=upsample_first, factorized=factorized)
