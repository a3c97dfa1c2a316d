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
