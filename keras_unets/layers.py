"""Custom Keras layers used by the builders.

Only what the stock ``keras.layers`` cannot express lives here. Every layer is
written with ``keras.ops`` (TensorFlow, JAX and PyTorch backends) and is
registered for serialization, so a ``.keras`` file loads without
``custom_objects``.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_unets")
class ClassGuidance(keras.layers.Layer):
    """UNet 3+ classification-guided module (CGM): mask a map by the predicted class.

    Huang et al., "UNet 3+: A Full-Scale Connected UNet for Medical Image
    Segmentation", ICASSP 2020, section 2.3: a classification branch on the
    deepest feature map predicts whether the organ is present; its
    ``argmax`` (0 = absent, 1 = present) multiplies every segmentation side
    output, which suppresses false positives on images without the organ.

    Called on ``[segmentation, class_scores]`` with ``segmentation`` of shape
    ``(B, H, W, C)`` and ``class_scores`` of shape ``(B, 2)``; returns
    ``segmentation * argmax(class_scores)`` broadcast over ``H, W, C``.

    The mask is an ``argmax``: it passes no gradient to the classification
    branch (wrapped in ``stop_gradient`` to make that explicit on every
    backend), so the branch must be trained with its own classification
    loss on the model's ``cls`` output. The segmentation input does receive
    the gradient, multiplied by the 0/1 mask.

    Note: the official PyTorch code (ZJUGiveLab/UNet-Version,
    ``UNet_3Plus_DeepSup_CGM``) multiplies the *logits* and applies the
    sigmoid afterwards, so a "no organ" decision gives 0.5 everywhere; the
    builders here apply this layer to the *activated* map (probabilities), so
    "no organ" gives an empty mask, which is what the paper describes.
    """

    def call(self, inputs):
        seg, scores = inputs
        present = ops.cast(ops.argmax(scores, axis=-1), seg.dtype)
        present = ops.stop_gradient(present)
        return seg * ops.reshape(present, (-1, 1, 1, 1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])


def _upsample_axis(x, factor, axis):
    """Bilinear (half-pixel centres, edge clamp) up-sampling of axis 1 or 2 by an int factor.

    Output index ``o = factor * i + r`` samples source index ``i + d_r`` with
    ``d_r = (r + 0.5) / factor - 0.5``, i.e. ``(1 - |d_r|)`` of index ``i``
    plus ``|d_r|`` of its neighbour on that side (indices past the edges
    repeat the edge), the same numbers as ``tf.image.resize`` /
    ``jax.image.resize`` with ``"bilinear"`` for an integer up-sampling factor.
    """
    if factor == 1:
        return x
    if axis == 1:
        first, last, inner = x[:, :1], x[:, -1:], (lambda a: a[:, :-2], lambda a: a[:, 2:])
    else:
        first, last, inner = x[:, :, :1], x[:, :, -1:], (lambda a: a[:, :, :-2],
                                                           lambda a: a[:, :, 2:])
    padded = ops.concatenate([first, x, last], axis=axis)
    before, after = inner[0](padded), inner[1](padded)
    parts = []
    for r in range(factor):
        d = (r + 0.5) / factor - 0.5
        if d < 0:
            parts.append(x * (1.0 + d) + before * (-d))
        else:
            parts.append(x * (1.0 - d) + after * d)
    y = ops.stack(parts, axis=axis + 1)
    shape = ops.shape(x)
    if axis == 1:
        return ops.reshape(y, (-1, shape[1] * factor, shape[2], shape[3]))
    return ops.reshape(y, (-1, shape[1], shape[2] * factor, shape[3]))


@keras.saving.register_keras_serializable(package="keras_unets")
class BilinearUpSampling2D(keras.layers.UpSampling2D):
    """``UpSampling2D(interpolation="bilinear")`` that works at any input size.

    Same numbers as ``keras.layers.UpSampling2D(size, interpolation="bilinear")``
    (half-pixel centres, edges clamped; UNet 3+'s ``nn.Upsample(mode=
    'bilinear')`` in Huang et al., ICASSP 2020, and its deep-supervision
    heads), written as shifted, weighted sums with ``keras.ops``. Keras
    3.15's own bilinear path checks ``size[0] <= 0`` in Python, which fails
    on the TensorFlow backend once ``predict`` retraces a model for a new
    input size with unknown height and width ("Using a symbolic tf.Tensor as
    a Python bool"): a UNet 3+ could then predict at only one image size per
    model. With static height and width (training on fixed crops, JAX) the
    stock resize runs; the weighted sums only when they are unknown.
    Integer factors only, as ``UpSampling2D``.
    """

    def __init__(self, size=(2, 2), data_format=None, **kwargs):
        kwargs.pop("interpolation", None)
        super().__init__(size=size, data_format=data_format, interpolation="bilinear",
                         **kwargs)

    def call(self, inputs):
        spatial = (2, 3) if self.data_format == "channels_first" else (1, 2)
        if all(inputs.shape[a] is not None for a in spatial):
            return super().call(inputs)
        return self.call_dynamic(inputs)

    def call_dynamic(self, inputs):
        """The weighted-sum path (any backend; also for tests against the stock path)."""
        x = inputs
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        fh, fw = (int(v) for v in self.size)
        x = _upsample_axis(_upsample_axis(x, fh, axis=1), fw, axis=2)
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 3, 1, 2))
        return x


@keras.saving.register_keras_serializable(package="keras_unets")
class UpsampleConv2D(keras.layers.Conv2D):
    """Bilinear up-sampling by an integer factor, then a ``Conv2D``, in one layer.

    ``UpsampleConv2D(filters, 3, upsample=f)`` computes what
    ``BilinearUpSampling2D(f)`` followed by ``Conv2D(filters, 3)`` computes,
    with the same weights (``kernel``, ``bias``): UNet 3+'s full-scale skip
    from a deeper decoder map in the paper's order (Huang et al., ICASSP
    2020, section 2.1: up-sample, then a 3x3 conv to 64 channels).

    ``remat=True`` is why it exists. The up-sampled map is ``f**2`` times the
    input, at the input's channel count (up to 1024 channels at 16x for
    X_En^5 in UNet 3+), and the conv's weight gradient needs it, so autodiff
    keeps it for the backward pass. Under ``keras.remat`` (gradient
    checkpointing, Chen et al. 2016, "Training Deep Nets with Sublinear
    Memory Cost") the layer keeps only its (small) input and recomputes the
    up-sampling, and the conv, in the backward pass. Same outputs and
    gradients; less memory for somewhat more compute. JAX, TensorFlow and
    PyTorch backends (``keras.remat``).

    Args:
        filters, kernel_size, **kwargs: as ``keras.layers.Conv2D``.
        upsample: integer up-sampling factor (>= 1) of both spatial axes.
        remat: recompute instead of storing (see above).
    """

    def __init__(self, filters, kernel_size, upsample=2, remat=False, **kwargs):
        if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
            raise ValueError(f"`upsample` must be an int >= 1. Received: upsample={upsample!r}")
        if not isinstance(remat, bool):
            raise ValueError(f"`remat` must be True or False. Received: remat={remat!r}")
        super().__init__(filters, kernel_size, **kwargs)
        self.upsample = upsample
        self.remat = remat
        self._up = BilinearUpSampling2D(upsample, data_format=self.data_format,
                                        name=f"{self.name}_upsampling")

    def _upsample_conv(self, inputs):
        return keras.layers.Conv2D.call(self, self._up.call(inputs))

    def call(self, inputs):
        if self.remat:
            return keras.remat(self._upsample_conv)(inputs)
        return self._upsample_conv(inputs)

    def build(self, input_shape):
        super().build(self._up.compute_output_shape(input_shape))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._up.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "upsample": self.upsample, "remat": self.remat}
