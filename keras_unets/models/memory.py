"""A back-of-the-envelope estimate of the memory that training a model needs.

The report trained its U-Net on a 6 GB GTX 1060 and had to use batch 1 for
UNet++; :func:`estimate_training_memory` tells, before training, whether a
configuration can fit such a card.

Two figures:

* :func:`estimate_training_memory`, on any backend: a count of the tensors
  (weights, gradients, optimizer state, every layer output).
* :func:`compiled_training_memory`, on the JAX backend: XLA's own buffer
  assignment for one compiled training step on the device JAX would use
  (``jax.stages.Compiled.memory_analysis``): what the step's buffers need,
  without the allocator's pool, autotuning scratch or the CUDA context.
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

#: Keras optimizers for the names of :data:`OPTIMIZER_SLOTS` (SGD "momentum"
#: and "sgd" with momentum 0.9, as the report's UNet++).
_OPTIMIZERS = {
    "adam": ("Adam", {}), "adamw": ("AdamW", {}), "nadam": ("Nadam", {}),
    "adamax": ("Adamax", {}), "lion": ("Lion", {}), "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}), "sgd": ("SGD", {"momentum": 0.9}),
    "momentum": ("SGD", {"momentum": 0.9}), "sgd_nomomentum": ("SGD", {}),
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
      back-propagation keeps. XLA fuses some of them away but adds the
      backward pass's temporaries, and convolution workspaces and allocator
      fragmentation are not counted: measured (``bench/bench_memory.py``, XLA
      on a CPU, float32, 512 x 512), XLA's buffers for the step were 1.00x
      this estimate for UNet 3+, 1.33x for the report's U-Net and 1.46x for
      UNet++ with deep supervision; on an H200 capped at 6 GiB, that UNet++
      peaked at 2.2x (BENCHMARKS.md). Treat it as a lower bound, and ask
      XLA (:func:`compiled_training_memory`) when the margin is thin.

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


def compile_training_step(model, batch_size=1, optimizer="adam"):
    """Compile one training step of ``model`` with XLA (JAX backend).

    The step does what the step Keras' JAX trainer compiles for ``fit``
    does, without metrics or loss scaling: a forward pass in training mode
    (``model.stateless_call``), binary cross-entropy summed over the
    outputs, its gradient, and the optimizer update
    (``optimizer.stateless_apply``), jitted with the model and optimizer
    state donated. It is lowered on abstract shapes (nothing is allocated)
    and compiled for JAX's default device.

    Args:
        model: a built ``keras.Model`` with a fixed input shape.
        batch_size: training batch size (>= 1).
        optimizer: a name in :data:`OPTIMIZER_SLOTS` except ``"none"``.

    Returns:
        ``(compiled, optimizer, info)``: ``compiled(trainable, non_trainable,
        optimizer_variables, x, ys)`` returns ``(loss, trainable,
        non_trainable, optimizer_variables)`` (lists of arrays in the order of
        ``model.trainable_variables``, ``model.non_trainable_variables``,
        ``optimizer.variables``; ``ys`` one float32 array per output; the
        three state lists are donated, so pass arrays you no longer need and
        go on with the returned ones);
        ``optimizer`` the built Keras optimizer whose ``variables`` give the
        initial state; ``info`` a dict with ``platform``, ``device`` and
        ``memory`` (XLA's buffer sizes as :func:`compiled_training_memory`
        returns them, or None where XLA gives no analysis).

    Raises:
        RuntimeError: the Keras backend is not JAX.
        ValueError: a bad ``batch_size`` or ``optimizer``, or a model input of
            unknown size.
    """
    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(
            "compile_training_step and compiled_training_memory need the JAX backend "
            "(they compile the step "
            "with XLA through jax.jit): set KERAS_BACKEND=jax before Keras is "
            f"imported. Received: backend {backend!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}")
    opt_name = str(optimizer).lower()
    if opt_name not in _OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {sorted(_OPTIMIZERS)}. "
                         f"Received: optimizer={optimizer!r}")
    in_shape = tuple(model.input_shape)[1:]
    if any(d is None for d in in_shape):
        raise ValueError(f"The model's input has an unknown size {tuple(model.input_shape)}; "
                         "build it with a fixed input_shape, e.g. (512, 512, 1). "
                         f"Received: model={model.name!r}")
    import jax

    cls_name, kwargs = _OPTIMIZERS[opt_name]
    opt = getattr(keras.optimizers, cls_name)(learning_rate=1e-4, **kwargs)
    opt.build(model.trainable_variables)
    out_shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]

    def loss_fn(trainable, non_trainable, x, ys):
        preds, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        preds = keras.tree.flatten(preds)
        loss = 0.0
        for y, p in zip(ys, preds):
            p = keras.ops.cast(p, "float32")
            loss = loss + keras.ops.mean(keras.losses.binary_crossentropy(y, p))
        return loss, non_trainable

    def step(trainable, non_trainable, opt_vars, x, ys):
        (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, non_trainable, x, ys)
        trainable, opt_vars = opt.stateless_apply(opt_vars, grads, trainable)
        return loss, trainable, non_trainable, opt_vars

    def spec(v):
        return jax.ShapeDtypeStruct(tuple(v.shape), v.dtype)

    args = (
        [spec(v.value) for v in model.trainable_variables],
        [spec(v.value) for v in model.non_trainable_variables],
        [spec(v.value) for v in opt.variables],
        jax.ShapeDtypeStruct((batch_size,) + in_shape, "float32"),
        [jax.ShapeDtypeStruct((batch_size,) + tuple(s)[1:], "float32") for s in out_shapes],
    )
    device = jax.devices()[0]
    compiled = jax.jit(step, donate_argnums=(0, 1, 2)).lower(*args).compile()
    stats = compiled.memory_analysis()
    memory = None
    if stats is not None:
        memory = {
            "arguments": int(stats.argument_size_in_bytes),
            "outputs": int(stats.output_size_in_bytes),
            "aliased": int(stats.alias_size_in_bytes),
            "temp": int(stats.temp_size_in_bytes),
        }
        memory["total"] = (memory["arguments"] + memory["outputs"] - memory["aliased"]
                           + memory["temp"])
    info = {"platform": device.platform,
            "device": getattr(device, "device_kind", str(device)), "memory": memory}
    return compiled, opt, info


def compiled_training_memory(model, batch_size=1, optimizer="adam"):
    """XLA's buffer assignment for one training step of ``model`` (JAX backend).

    Compiles the step of :func:`compile_training_step` and reads the
    executable's ``memory_analysis()``: what its buffers need on JAX's
    default device. Not counted: the allocator's pool and fragmentation,
    the scratch that convolution autotuning asks for at compile time, the
    CUDA context. The model's own dtype policy applies (build it under
    ``mixed_float16`` to measure mixed precision).

    The figure depends on the compiler: XLA on a CPU fuses and schedules
    differently from XLA on a GPU (and, on a CPU, may compute float16
    convolutions in float32), so compile on the device the question is
    about.

    Args:
        model: a built ``keras.Model`` with a fixed input shape.
        batch_size: training batch size (>= 1).
        optimizer: a name in :data:`OPTIMIZER_SLOTS` except ``"none"``.

    Returns:
        dict: ``arguments``, ``outputs``, ``aliased`` (outputs written into
        donated arguments), ``temp`` and ``total`` (= arguments + outputs -
        aliased + temp) in bytes, ``platform`` / ``device`` (where it was
        compiled).

    Raises:
        RuntimeError: the Keras backend is not JAX, or XLA gave no analysis.
        ValueError: a bad ``batch_size`` or ``optimizer``, or a model input of
            unknown size.
    """
    _, _, info = compile_training_step(model, batch_size=batch_size, optimizer=optimizer)
    memory = info.pop("memory")
    if memory is None:
        raise RuntimeError(f"XLA gave no memory analysis for the compiled step on "
                           f"{info['platform']!r} ({info['device']}); estimate_training_memory "
                           "works on every backend.")
    return {**memory, **info}


def format_bytes(n):
    """``1536 * 1024**2 -> '1.50 GiB'``; below 1 GiB in MiB."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"
