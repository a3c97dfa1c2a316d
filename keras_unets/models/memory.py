"""A back-of-the-envelope estimate of the memory that training a model needs.

The report trained its U-Net on a 6 GB GTX 1060 and had to use batch 1 for
UNet++; :func:`estimate_training_memory` tells, before training, whether a
configuration can fit such a card.
"""
import math

import keras

#: Optimizer state slots per trainable weight.
OPTIMIZER_SLOTS = {
    "adam": 2, "adamw": 2, "nadam": 2, "adamax": 2, "lion": 1,
    "rmsprop": 1, "adagrad": 1, "sgd": 1, "momentum": 1, "sgd_nomomentum": 0,
    "none": 0,
}

#: Bytes per activation element for a dtype policy (weights stay float32).
POLICY_ACTIVATION_BYTES = {
    "float32": 4, "mixed_float16": 2, "mixed_bfloat16": 2, "float16": 2,
    "bfloat16": 2, "float64": 8,
}

GIB = 1024 ** 3
MIB = 1024 ** 2


def estimate_training_memory(model, batch_size=1, optimizer="adam",
                             dtype_policy="float32"):
    """Estimate the device memory of one training step, in bytes.

    The estimate adds up

    * ``weights``: every weight of the model (trainable and not), stored in
      float32 (also under mixed precision, whose variables stay float32);
    * ``gradients``: one float32 value per trainable weight;
    * ``optimizer_state``: Adam/AdamW keep 2 slots (first and second moment)
      per trainable weight, SGD with momentum and RMSprop 1, plain SGD 0
      (``"sgd_nomomentum"``);
    * ``activations``: the sum of every layer's output sizes (all outputs of
      every layer, times ``batch_size``), at 4 bytes (float32) or 2 bytes
      (``mixed_float16`` / ``mixed_bfloat16``). These are the tensors that
      back-propagation keeps. It is an upper-ish estimate: an in-place ReLU or
      a dropout mask may be cheaper, XLA may fuse or rematerialise, while
      convolution workspaces and allocator fragmentation are not counted.

    Args:
        model: a built ``keras.Model`` whose layers have fully known output
            shapes apart from the batch (build it with a fixed
            ``input_shape``).
        batch_size: training batch size (>= 1).
        optimizer: a name in :data:`OPTIMIZER_SLOTS` or a ``keras.optimizers``
            instance (its class name is used).
        dtype_policy: a name in :data:`POLICY_ACTIVATION_BYTES`.

    Returns:
        dict of ints (bytes): ``weights``, ``gradients``, ``optimizer_state``,
        ``activations``, ``total``.

    Example: the paper U-Net (31,030,593 weights) with Adam needs
    4 x 31,030,593 x (1 + 1 + 2) bytes = 473.5 MiB before activations.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}")
    if isinstance(optimizer, keras.optimizers.Optimizer):
        opt_name = type(optimizer).__name__.lower()
        if opt_name == "sgd" and not getattr(optimizer, "momentum", 0):
            opt_name = "sgd_nomomentum"
    else:
        opt_name = str(optimizer).lower()
    if opt_name not in OPTIMIZER_SLOTS:
        raise ValueError(f"`optimizer` must be one of {sorted(OPTIMIZER_SLOTS)} or a "
                         f"keras optimizer. Received: optimizer={optimizer!r}")
    policy = getattr(dtype_policy, "name", dtype_policy)
    if policy not in POLICY_ACTIVATION_BYTES:
        raise ValueError(f"`dtype_policy` must be one of {sorted(POLICY_ACTIVATION_BYTES)}. "
                         f"Received: dtype_policy={dtype_policy!r}")

    n_all = sum(math.prod(w.shape) for w in model.weights)
    n_train = sum(math.prod(w.shape) for w in model.trainable_weights)
    weights = 4 * n_all
    gradients = 4 * n_train
    optimizer_state = 4 * n_train * OPTIMIZER_SLOTS[opt_name]

    per_sample = 0
    for layer in model.layers:
        for tensor in keras.tree.flatten(layer.output):
            dims = tuple(tensor.shape)[1:]
            if any(d is None for d in dims):
                raise ValueError(
                    f"Layer {layer.name!r} has an output of unknown size {tuple(tensor.shape)}; "
                    "build the model with a fixed input_shape, e.g. (512, 512, 1), to "
                    f"estimate its activations. Received: model={model.name!r}")
            per_sample += math.prod(dims)
    activations = per_sample * batch_size * POLICY_ACTIVATION_BYTES[policy]
    total = weights + gradients + optimizer_state + activations
    return {
        "weights": int(weights),
        "gradients": int(gradients),
        "optimizer_state": int(optimizer_state),
        "activations": int(activations),
        "total": int(total),
    }


def format_bytes(n):
    """``1536 * 1024**2 -> '1.50 GiB'``; below 1 GiB in MiB."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"
