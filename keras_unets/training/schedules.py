"""Learning-rate schedules, optimizers and losses of a training run.

:func:`cosine_time_lr` and :class:`CosineTimeDecay` (a cosine over whichever
budget runs out first, time or steps); :func:`make_optimizer`,
:func:`make_loss` and :func:`compile_model` turn a resolved config
(:mod:`keras_unets.training.config`) into the compiled model's optimizer and
losses.
"""
import math
import time

import keras

__all__ = ["cosine_time_lr", "CosineTimeDecay", "LR_SCHEDULES", "LOSS_NAMES", "make_optimizer",
           "make_loss", "compile_model"]


def cosine_time_lr(learning_rate, fraction, alpha=0.0):
    """Cosine decay from ``learning_rate`` to ``alpha * learning_rate``.

    ``fraction`` (clipped to [0, 1]) is how much of the training budget is
    spent: ``lr = learning_rate * (alpha + (1 - alpha) * (1 + cos(pi * f)) / 2)``,
    the same curve as ``keras.optimizers.schedules.CosineDecay`` with
    ``f = step / decay_steps`` (Loshchilov and Hutter, SGDR, ICLR 2017).
    """
    f = min(1.0, max(0.0, float(fraction)))
    a = float(alpha)
    return float(learning_rate) * (a + (1.0 - a) * 0.5 * (1.0 + math.cos(math.pi * f)))


class CosineTimeDecay(keras.callbacks.Callback):
    """Cosine learning-rate decay over whichever budget runs out first: time or steps.

    A step-count cosine schedule planned on one machine ends early on a slower
    one: a time limit then stops training while the learning rate is still
    high. This callback sets the optimizer's learning rate before every batch
    from ``f = max(elapsed / seconds, step / total_steps)`` with
    :func:`cosine_time_lr`, so the decay reaches its floor when the time limit
    (:class:`TimeLimit`, same ``minutes``) or the planned steps end, whichever
    comes first. ``initial_step`` carries a resumed run's spent steps (its
    time budget starts afresh, as :class:`TimeLimit`'s does). The rate in
    effect is logged as ``lr`` at each epoch end.

    The optimizer must hold a plain float learning rate (not a schedule).
    Backends that keep optimizer state outside the variables for a whole epoch
    (JAX's ``fit``) see the rate set at each epoch's start only.
    """

    def __init__(self, learning_rate, *, total_steps, minutes=None, alpha=0.0,
                 initial_step=0):
        super().__init__()
        if total_steps is None or int(total_steps) < 1:
            raise ValueError(f"total_steps must be a positive int. Received: {total_steps!r}")
        if minutes is not None and float(minutes) <= 0:
            raise ValueError(f"minutes must be positive or None. Received: {minutes!r}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.seconds = None if minutes is None else float(minutes) * 60.0
        self.alpha = float(alpha)
        self.step = int(initial_step)
        self.start = None
        self.current = self.learning_rate

    def fraction(self, now=None):
        """The spent fraction of the budget (time or steps, the larger)."""
        f = self.step / self.total_steps
        if self.seconds is not None and self.start is not None:
            now = time.monotonic() if now is None else now
            f = max(f, (now - self.start) / self.seconds)
        return min(1.0, f)

    def _apply(self):
        self.current = cosine_time_lr(self.learning_rate, self.fraction(), self.alpha)
        self.model.optimizer.learning_rate = self.current

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self._apply()

    def on_epoch_begin(self, epoch, logs=None):
        self._apply()

    def on_train_batch_begin(self, batch, logs=None):
        self._apply()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.current


# "cosine_time": the optimizer holds a float rate that
# keras_unets.training.schedules.CosineTimeDecay sets before every batch.
LR_SCHEDULES = (None, "none", "constant", "cosine", "cosine_time")


def make_optimizer(config, total_steps):
    import keras

    lr = float(config["learning_rate"])
    if config.get("lr_schedule") not in LR_SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {list(LR_SCHEDULES)}. "
            f"Received: lr_schedule={config.get('lr_schedule')!r}"
        )
    if config.get("lr_schedule") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, int(total_steps)),
            alpha=float(config.get("lr_min_fraction") or 0.0))
    name = str(config["optimizer"]).lower()
    wd = config.get("weight_decay") or None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, weight_decay=wd)
    if name == "sgd":
        # Keras' weight_decay subtracts lr * wd * w each step (decoupled);
        # PyTorch's SGD adds wd * w to the gradient before momentum. Equal
        # without momentum; a small difference with momentum 0.9.
        return keras.optimizers.SGD(learning_rate=lr, momentum=config.get("momentum") or 0.0,
                                    weight_decay=wd)
    raise ValueError(f"optimizer must be 'adam' or 'sgd'. Received: optimizer={name!r}")


LOSS_NAMES = ("bce", "bce_logits", "weighted_bce", "bce_dice", "hybrid")


def make_loss(name, from_logits):
    """A serializable loss object by profile name (:mod:`keras_unets.losses`)."""
    import keras

    from keras_unets import losses as L

    name = str(name).lower()
    if name == "bce":
        if from_logits:
            return L.BinaryCrossentropyFromLogits()
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "bce_logits":
        if not from_logits:
            raise ValueError("loss='bce_logits' needs from_logits=True (a model "
                             "built with output_activation=None).")
        return L.BinaryCrossentropyFromLogits()
    if name == "weighted_bce":
        return L.WeightedBinaryCrossentropy(from_logits=from_logits)
    if name == "bce_dice":
        if from_logits:
            raise ValueError("loss='bce_dice' needs probabilities (from_logits=False).")
        return L.BCEDiceLoss()
    if name == "hybrid":
        return L.UNet3PlusHybridLoss(from_logits=from_logits)
    raise ValueError(f"Unknown loss {name!r}; use one of {list(LOSS_NAMES)}.")


def compile_model(model, config, total_steps, *, classes=2):
    """Compile with the profile's loss on every segmentation output.

    The UNet 3+ classification-guided module's output ``cls`` (Huang et al.,
    ICASSP 2020, sec. 2.3) gets binary cross-entropy on probabilities against
    :func:`keras_unets.augment.cgm_targets` (``[absent, present]``) and a
    binary accuracy (``cls_accuracy`` in the history); the losses are summed
    with weight 1. ``classes=K >= 3`` (a K-channel softmax, one-hot targets)
    trains every output with :class:`keras_unets.losses.CategoricalCEDiceLoss`
    instead of the profile's binary loss.
    """
    import keras

    from keras_unets.models.unet3p import CGM_OUTPUT
    from keras_unets.models import main_output_name

    names = list(model.output_names)
    main = main_output_name(model)
    logits = bool(config["from_logits"])
    if CGM_OUTPUT in names and logits:
        raise ValueError(
            "A model with the classification-guided module outputs probabilities "
            "(its mask multiplies activated maps): train it with from_logits=False "
            "and a probability loss ('bce', 'weighted_bce', 'bce_dice', 'hybrid'). "
            f"Received: from_logits=True, loss={config['loss']!r}")
    if classes > 2:
        from keras_unets.losses import CategoricalCEDiceLoss

        def output_loss():
            return CategoricalCEDiceLoss(from_logits=logits)

        acc = keras.metrics.CategoricalAccuracy(name="acc")
    else:
        def output_loss():
            return make_loss(config["loss"], logits)

        acc = keras.metrics.BinaryAccuracy(name="acc", threshold=0.0 if logits else 0.5)
    if len(names) == 1:
        loss = output_loss()
        metrics = [acc]
    else:
        loss = {n: output_loss() for n in names if n != CGM_OUTPUT}
        metrics = {main: [acc]}
        if CGM_OUTPUT in names:
            loss[CGM_OUTPUT] = keras.losses.BinaryCrossentropy(name="cls_bce")
            metrics[CGM_OUTPUT] = [keras.metrics.BinaryAccuracy(name="accuracy")]
    model.compile(optimizer=make_optimizer(config, total_steps), loss=loss, metrics=metrics)
