"""Custom Keras layers used by the builders.

Only what the stock ``keras.layers`` cannot express lives here. Every layer is
written with ``keras.ops`` (tested on the TensorFlow and JAX backends) and is
registered for serialization, so a ``.keras`` file loads without
``custom_objects`` (after ``import keras_unets``, which imports this module).
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


def _shifted_upsampling_matrix(n, factor, shift, dtype):
    """``(n * factor, n)`` matrix of bilinear up-sampling by ``factor``, rows moved by ``shift``.

    Row ``o`` holds the weights of output index ``o + shift`` over the ``n``
    source indices (half-pixel centres, edges clamped, as
    :func:`_upsample_axis`), or zeros where ``o + shift`` falls outside the
    output: the zero padding of a 'same' convolution. ``n`` may be a tensor
    (unknown size).
    """
    size = n * factor
    o = ops.arange(size) + shift
    inside = ops.cast(ops.logical_and(o >= 0, o < size), "float32")
    src = (ops.cast(o, "float32") + 0.5) / factor - 0.5
    first = ops.floor(src)
    frac = src - first
    first = ops.cast(first, "int32")
    idx = ops.arange(n)
    lo = ops.cast(ops.equal(ops.clip(first, 0, n - 1)[:, None], idx[None, :]), "float32")
    hi = ops.cast(ops.equal(ops.clip(first + 1, 0, n - 1)[:, None], idx[None, :]), "float32")
    weights = (lo * (1.0 - frac)[:, None] + hi * frac[:, None]) * inside[:, None]
    return ops.cast(weights, dtype)


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
    2020, section 2.1: up-sample, then a 3x3 conv to 64 channels). The
    up-sampled map is ``f**2`` times the input, at the input's channel count
    (up to 1024 channels at 16x for X_En^5 in UNet 3+).

    ``factorized=True`` computes the same function without ever forming
    the up-sampled input. Up-sampling acts on each channel alone and the
    conv mixes channels at each kernel offset, so the two commute: with
    ``W_o`` the kernel's ``cin x filters`` matrix at offset ``o`` and
    ``U`` the up-sampling, ``conv(U x, W) = sum_o shift_o(U(x W_o))``,
    zero padding included. The layer applies all ``W_o`` at once as a
    1x1 conv at the input's (low) resolution; up-sampling is separable
    (``U z = A z B^T`` per channel), and so is a shift, so the sum over
    offsets is two contractions with the shifted up-sampling matrices of
    the rows and of the columns. The output is the only tensor at full
    resolution; the largest intermediate, between the two contractions,
    has ``kernel_size / f`` times its size (1.5x for 3x3 at ``f = 2``,
    less for larger factors). The channel mixing runs on ``f**2`` times
    fewer pixels. Same weights and outputs (to float rounding); odd kernel
    sizes, stride 1, no dilation, ``padding="same"``, ``channels_last``.

    Args:
        filters, kernel_size, **kwargs: as ``keras.layers.Conv2D``.
        upsample: integer up-sampling factor (>= 1) of both spatial axes.
        factorized: the commuted computation (see above).
    """

    def __init__(self, filters, kernel_size, upsample=2, factorized=False, **kwargs):
        if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 1:
            raise ValueError(f"`upsample` must be an int >= 1. Received: upsample={upsample!r}")
        if not isinstance(factorized, bool):
            raise ValueError(f"`factorized` must be True or False. Received: "
                             f"factorized={factorized!r}")
        super().__init__(filters, kernel_size, **kwargs)
        if factorized:
            problems = []
            if any(k % 2 == 0 for k in self.kernel_size):
                problems.append(f"kernel_size={self.kernel_size} (odd sizes only)")
            if tuple(self.strides) != (1, 1):
                problems.append(f"strides={self.strides} (1 only)")
            if tuple(self.dilation_rate) != (1, 1):
                problems.append(f"dilation_rate={self.dilation_rate} (1 only)")
            if self.padding != "same":
                problems.append(f"padding={self.padding!r} ('same' only)")
            if self.data_format != "channels_last":
                problems.append(f"data_format={self.data_format!r} ('channels_last' only)")
            if self.groups != 1:
                problems.append(f"groups={self.groups} (1 only)")
            if problems:
                raise ValueError("`factorized=True` supports a plain 'same' convolution. "
                                 "Received: " + ", ".join(problems))
        self.upsample = upsample
        self.factorized = factorized
        self._up = BilinearUpSampling2D(upsample, data_format=self.data_format,
                                        name=f"{self.name}_upsampling")

    def _upsample_conv(self, inputs):
        return keras.layers.Conv2D.call(self, self._up.call(inputs))

    def _factorized_call(self, inputs):
        kh, kw = self.kernel_size
        cin, cout, f = self.kernel.shape[2], self.filters, self.upsample
        # every W_o at once: a 1x1 conv with kh * kw * cout outputs, offset-major
        mix = ops.reshape(ops.transpose(self.kernel, (2, 0, 1, 3)), (1, 1, cin, kh * kw * cout))
        y = ops.conv(inputs, mix, strides=1, padding="valid", data_format="channels_last")
        shape = ops.shape(y)
        h, w = shape[1], shape[2]
        y = ops.reshape(y, (-1, h, w, kh, kw, cout))
        # shift_o(U z) = A_dy z B_dx^T per channel, with A_dy (B_dx) the
        # up-sampling matrix of the rows (columns) moved by the offset: the
        # sum over the kh * kw offsets is two contractions, and the only
        # full-resolution tensor is the output
        rows = ops.stack([_shifted_upsampling_matrix(h, f, ky - kh // 2, y.dtype)
                          for ky in range(kh)])  # (kh, H, h)
        cols = ops.stack([_shifted_upsampling_matrix(w, f, kx - kw // 2, y.dtype)
                          for kx in range(kw)])  # (kw, W, w)
        t = ops.einsum("bhwyxc,xWw->byhWc", y, cols)
        out = ops.einsum("yHh,byhWc->bHWc", rows, t)
        if self.use_bias:
            out = out + self.bias
        if self.activation is not None:
            out = self.activation(out)
        return out

    def call(self, inputs):
        if self.factorized:
            return self._factorized_call(inputs)
        return self._upsample_conv(inputs)

    def build(self, input_shape):
        super().build(self._up.compute_output_shape(input_shape))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self._up.compute_output_shape(input_shape))

    def get_config(self):
        return {**super().get_config(), "upsample": self.upsample,
                "factorized": self.factorized}

    @classmethod
    def from_config(cls, config):
        # checkpoints saved by earlier versions hold "remat": false
        config = dict(config)
        if config.pop("remat", False):
            raise ValueError(
                f"Layer {config.get('name')!r} was saved with remat=True, an option this "
                "version of keras-unets no longer has; only remat=False (off) can be loaded.")
        return super().from_config(config)
