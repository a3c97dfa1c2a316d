"""The training loop: ``model.fit``'s contract, one ``train_on_batch`` per step."""

__all__ = ["train_loop"]


def train_loop(model, dataset, *, epochs, initial_epoch=0, callbacks=(), verbose=0):
    """Train like ``model.fit(dataset, ...)``, one ``train_on_batch`` per step.

    Same contract as ``fit`` for what :func:`train` uses: callbacks get
    ``on_train_begin/end``, ``on_epoch_begin/end`` (with the epoch's running
    metrics in the logs) and ``on_train_batch_begin/end``; metrics reset at
    each epoch; ``model.stop_training`` (set by e.g. ``TimeLimit``) ends
    training after the current batch, and the epoch still ends normally, so
    its checkpoint and threshold sweep are written; ``dataset.on_epoch_end()``
    is called after every finished epoch. Logged metrics are the running
    mean of the per-batch values over the epoch (what ``fit`` logs for mean
    metrics such as loss and accuracy, batches being of equal size).
    ``dataset`` is indexable
    (``dataset[i]`` is ``(x, y)`` or ``(x, y, sample_weight)``) with
    ``len(dataset)`` steps per epoch, e.g. a
    :class:`~keras_unets.augment.SegmentationDataset`.

    Why not ``fit``: on TensorFlow, ``fit`` wraps a ``PyDataset`` in
    ``tf.data.Dataset.from_generator``. On a 2-core CPU that
    path showed intermittent slow epochs: ``bench/bench_fit_loop.py``
    measured UNet 3+ epochs of 9.77 and 5.92 s per step through ``fit``
    against 6.59 and 6.56 s through this loop, 1.12x (U-Net) and 1.19x
    (UNet 3+) in medians (BENCHMARKS.md). In a 30-minute training of UNet 3+
    the gain did not show: UNet 3+ trained 6 epochs x 60 steps either way. The loop
    is kept because it is steadier and easier to reason about; the data
    (about 4 ms per batch) is produced between steps, not in parallel.

    Returns:
        The ``keras.callbacks.History`` of this call.
    """
    import keras

    steps = len(dataset)
    if steps < 1:
        raise ValueError(f"train_loop needs a dataset with at least one batch. "
                         f"Received: len(dataset)={steps}")
    history = keras.callbacks.History()
    cbs = keras.callbacks.CallbackList(
        list(callbacks) + [history], add_progbar=bool(verbose), model=model,
        verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    cbs.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        sums, done = {}, 0
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            batch = dataset[step]
            # train_on_batch resets the metrics on every call: keep the
            # running means that fit's logs would show
            batch_logs = model.train_on_batch(*batch, return_dict=True)
            done += 1
            for k, v in batch_logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            logs = {k: v / done for k, v in sums.items()}
            cbs.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        cbs.on_epoch_end(epoch, dict(logs))
        dataset.on_epoch_end()
        if model.stop_training:
            break
    cbs.on_train_end(dict(logs))
    return history
