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
