"""train_loop: fit's callback contract with one train_on_batch per step."""
import keras
import numpy as np
import pytest

from keras_unets.training import train_loop


class _Batches(keras.utils.PyDataset):
    def __init__(self, n=3):
        super().__init__()
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(n, 4, 8, 8, 1)).astype("float32")
        self.y = (rng.random(size=(n, 4, 8, 8, 1)) > 0.5).astype("float32")
        self.epochs_ended = 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _model():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inp)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


class _Recorder(keras.callbacks.Callback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.events, self.batch_logs, self.epoch_logs = [], [], []
        self.stop_at = stop_at

    def on_train_begin(self, logs=None):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(f"batch {batch}")
        self.batch_logs.append(dict(logs))
        if self.stop_at is not None and len(self.batch_logs) == self.stop_at:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end {epoch}")
        self.epoch_logs.append(dict(logs))

    def on_train_end(self, logs=None):
        self.events.append("train_end")


def test_same_weights_and_epoch_logs_as_fit():
    data = _Batches()
    a, b = _model(), _model()
    rec = _Recorder()
    hist = train_loop(a, data, epochs=3, initial_epoch=1, callbacks=[rec])
    b.fit(_Batches(), epochs=2, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    assert rec.events == ["train_begin", "epoch_begin 1", "batch 0", "batch 1", "batch 2",
                          "epoch_end 1", "epoch_begin 2", "batch 0", "batch 1", "batch 2",
                          "epoch_end 2", "train_end"]
    assert data.epochs_ended == 2
    assert hist.epoch == [1, 2]
    # epoch logs are the mean of the per-batch values, as fit reports them
    assert set(rec.epoch_logs[0]) == {"loss", "accuracy"}
    assert rec.batch_logs[2] == rec.epoch_logs[0]


def test_epoch_logs_are_running_means():
    model = _model()
    data = _Batches()
    seen = []

    class PerBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            x, y = data[batch]
            seen.append(float(keras.ops.convert_to_numpy(keras.ops.mean(
                keras.losses.binary_crossentropy(y, model(x))))))

    rec = _Recorder()
    train_loop(model, data, epochs=1, callbacks=[PerBatch(), rec])
    np.testing.assert_allclose([r["loss"] for r in rec.batch_logs],
                               np.cumsum(seen) / np.arange(1, 4), rtol=1e-4)


def test_stop_training_ends_the_epoch_normally():
    data = _Batches()
    rec = _Recorder(stop_at=2)
    train_loop(_model(), data, epochs=5, callbacks=[rec])
    assert rec.events == ["train_begin", "epoch_begin 0", "batch 0", "batch 1",
                          "epoch_end 0", "train_end"]
    assert data.epochs_ended == 1


def test_empty_dataset_is_an_error():
    data = _Batches(n=0)
    with pytest.raises(ValueError, match="len\\(dataset\\)=0"):
        train_loop(_model(), data, epochs=1)
