"""ThresholdSweep, AtomicCheckpoint and TimeLimit callbacks.

Hand-derived cases use an identity "model" so the prediction is the image:
for pixels [0, 100, 200, 255] with labels [0, 0, 255, 255], ``pred > t`` is
right on all four pixels for 100 <= t < 200, and the lowest such t is 100.
"""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import layers

from keras_unets.training import (
    AtomicCheckpoint,
    EpochClock,
    CosineTimeDecay,
    ThresholdSweep,
    TimeLimit,
    cosine_time_lr,
    load_state,
    read_threshold_table,
)
from keras_unets.metrics import threshold_sweep, to_uint8


def _identity_model(name="output"):
    inp = keras.Input((None, None, 1))
    return keras.Model(inp, layers.Identity(name=name)(inp))


IMG = np.array([[[0, 100], [200, 255]]], np.uint8)
LAB = np.array([[[0, 0], [255, 255]]], np.uint8)


def test_hand_case_identity_model(tmp_path):
    cb = ThresholdSweep(IMG, LAB, csv_path=tmp_path / "t.csv",
                        curve_path=tmp_path / "curve.png",
                        history_path=tmp_path / "acc.png")
    cb.set_model(_identity_model())
    cb.on_train_begin()
    logs = {"loss": 0.3}
    cb.on_epoch_end(0, logs)
    assert logs["val_best_threshold"] == 100
    assert logs["val_best_accuracy"] == 1.0
    assert logs["loss"] == 0.3  # other keys untouched
    rows = read_threshold_table(tmp_path / "t.csv")
    assert len(rows) == 1 and rows[0]["output"] == "output"
    acc = np.array([rows[0][f"acc_{t:03d}"] for t in range(256)])
    # t < 100: pixel 100 is wrongly called cell -> 3/4; 100..199 all right;
    # 200..254: pixel 200 wrongly membrane -> 3/4; 255: all membrane -> 1/2
    expected = np.r_[np.full(100, 0.75), np.ones(100), np.full(55, 0.75), 0.5]
    np.testing.assert_allclose(acc, expected)
    for png in ("curve.png", "acc.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_blind_threshold_is_tuned_on_the_tune_slices_and_measured_on_validation():
    # tune pixels [0, 150, 180, 255] with labels [0, 0, 255, 255]: the lowest
    # threshold right on all four is 150; on the validation hand case
    # (pixels 0, 100, 200, 255) t = 150 is right everywhere too, t = 170 as
    # well, while t = 220 (tuned on [0, 210, 230, 255]) calls 200 membrane
    for tune_img, t, acc in (([[0, 150], [180, 255]], 150, 1.0),
                             ([[0, 210], [230, 255]], 210, 0.75)):
        cb = ThresholdSweep(IMG, LAB, tune=(np.array([tune_img], np.uint8), LAB))
        cb.set_model(_identity_model())
        cb.on_train_begin()
        logs = {}
        cb.on_epoch_end(0, logs)
        assert logs["val_blind_threshold"] == t
        assert logs["val_blind_accuracy"] == acc
        assert logs["val_best_accuracy"] == 1.0  # tuned on validation itself
    with pytest.raises(ValueError, match=r"tune=\(images, labels\).*Received: images uint8 \(1, 3, 3\)"):
        ThresholdSweep(IMG, LAB, tune=(np.zeros((1, 3, 3), np.uint8), np.zeros((1, 3, 3))))


def test_epoch_clock_logs_seconds_since_the_first_step_plus_offset(monkeypatch):
    import keras_unets.training.callbacks as callbacks

    now = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])
    clock = EpochClock(offset_seconds=50.0)
    clock.on_train_begin()
    for epoch, t in enumerate((112.5, 130.0)):
        now[0] = t
        logs = {}
        clock.on_epoch_end(epoch, logs)
        assert logs["elapsed_seconds"] == 50.0 + t - 100.0


def test_csv_resume_drops_redone_epochs(tmp_path):
    path = tmp_path / "t.csv"
    cb = ThresholdSweep(IMG, LAB, csv_path=path)
    cb.set_model(_identity_model())
    cb.on_train_begin()
    for epoch in range(3):
        cb.on_epoch_end(epoch, {})
    assert [r["epoch"] for r in read_threshold_table(path)] == [0, 1, 2]
    cb2 = ThresholdSweep(IMG, LAB, csv_path=path)
    cb2.set_model(_identity_model())
    cb2.set_initial_epoch(2)  # last.keras held 2 epochs; epoch index 2 is redone
    cb2.on_train_begin()
    cb2.on_epoch_end(2, {})
    assert [r["epoch"] for r in read_threshold_table(path)] == [0, 1, 2]


def test_deep_supervision_heads_and_logits():
    # two heads: out1 = image, out2 = inverted image (as logits of a linear
    # map); main output of a UNet++-style DS model is the deepest head.
    inp = keras.Input((None, None, 1))
    out1 = layers.Identity(name="out1")(inp)
    out2 = layers.Lambda(lambda x: 1.0 - x, name="out2")(inp)
    model = keras.Model(inp, [out1, out2])
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 16, 16), dtype=np.uint8)
    lab = np.where(rng.random((2, 16, 16)) > 0.3, 255, 0).astype(np.uint8)
    cb = ThresholdSweep(img, lab)
    cb.set_model(model)
    logs = {}
    cb.on_epoch_end(0, logs)
    s1 = threshold_sweep(img, lab)
    s2 = threshold_sweep(to_uint8(1.0 - img / 255.0), lab)
    smean = threshold_sweep(to_uint8(0.5 * np.ones_like(img, float)), lab)
    assert logs["val_out1_best_accuracy"] == pytest.approx(s1.max())
    assert logs["val_out1_best_threshold"] == int(np.argmax(s1))
    assert logs["val_out2_best_accuracy"] == pytest.approx(s2.max())
    assert logs["val_best_accuracy"] == logs["val_out2_best_accuracy"]
    # the mean of x and 1 - x is 0.5 everywhere
    assert logs["val_mean_best_accuracy"] == pytest.approx(smean.max())

    logit_model = keras.Model(inp, layers.Lambda(lambda x: 8.0 * (x - 0.5),
                                                 name="output")(inp))
    cb = ThresholdSweep(img, lab, from_logits=True)
    cb.set_model(logit_model)
    logs = {}
    cb.on_epoch_end(0, logs)
    prob = 1.0 / (1.0 + np.exp(-8.0 * (img / np.float32(255.0) - 0.5)))
    ref = threshold_sweep(to_uint8(prob), lab)
    assert logs["val_best_accuracy"] == pytest.approx(ref.max())


def _fit_data(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.where(rng.random((n, size, size)) > 0.3, 255, 0).astype(np.uint8)
    noise = rng.integers(0, 60, lab.shape)
    img = np.clip(lab * 0.6 + noise + 30, 0, 255).astype(np.uint8)
    return img, lab


def _tiny_trainable():
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 1))
    out = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="output")(inp)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    return model


def test_order_before_model_checkpoint(tmp_path):
    img, lab = _fit_data()
    x, y = img[..., None] / 255.0, lab[..., None] / 255.0
    model = _tiny_trainable()
    sweep = ThresholdSweep(img, lab)
    ckpt = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.keras"), monitor="val_best_accuracy", mode="max",
        save_best_only=True)
    stop = keras.callbacks.EarlyStopping(monitor="val_best_accuracy", mode="max",
                                         patience=5)
    hist = model.fit(x, y, epochs=2, batch_size=2, verbose=0,
                     callbacks=[sweep, ckpt, stop])
    assert (tmp_path / "best.keras").exists()
    assert len(hist.history["val_best_accuracy"]) == 2
    assert all(0.0 <= a <= 1.0 for a in hist.history["val_best_accuracy"])
    # the wrong order: the checkpoint reads logs before the sweep wrote them
    # (Keras 3.15 warns, then saves every epoch as if save_best_only=False)
    model = _tiny_trainable()
    late = tmp_path / "late.keras"
    ckpt2 = keras.callbacks.ModelCheckpoint(str(late), monitor="val_best_accuracy",
                                            mode="max", save_best_only=True)
    with pytest.warns(UserWarning, match="val_best_accuracy"):
        model.fit(x, y, epochs=1, batch_size=2, verbose=0,
                  callbacks=[ckpt2, ThresholdSweep(img, lab)])


def test_atomic_checkpoint_best_and_state(tmp_path):
    model = _tiny_trainable()
    cb = AtomicCheckpoint(tmp_path, monitor="val_best_accuracy", mode="max",
                          state={"model": "tiny"})
    cb.set_model(model)
    cb.on_epoch_end(0, {"val_best_accuracy": 0.5})
    best_mtime = (tmp_path / "best.keras").stat().st_mtime_ns
    cb.on_epoch_end(1, {"val_best_accuracy": 0.4})
    assert (tmp_path / "best.keras").stat().st_mtime_ns == best_mtime
    state = load_state(tmp_path)
    assert state["epochs_completed"] == 2 and state["best_epoch"] == 1
    assert state["best_value"] == 0.5 and state["model"] == "tiny"
    cb.on_epoch_end(2, {"val_best_accuracy": 0.6})
    state = load_state(tmp_path)
    assert state["best_epoch"] == 3 and state["epochs_completed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.keras", "last.keras", "state.json"], "no temporary files left"
    reloaded = keras.saving.load_model(tmp_path / "last.keras")
    np.testing.assert_array_equal(reloaded.get_weights()[0], model.get_weights()[0])


def test_time_limit_stops_cleanly(tmp_path):
    img, lab = _fit_data(n=8)
    x, y = img[..., None] / 255.0, lab[..., None] / 255.0
    model = _tiny_trainable()
    limit = TimeLimit(minutes=1e-9, reserve_seconds=0.0)
    ckpt = AtomicCheckpoint(tmp_path)
    hist = model.fit(x, y, epochs=5, batch_size=1, verbose=0,
                     callbacks=[ThresholdSweep(img, lab), limit, ckpt])
    assert limit.stopped_epoch == 0
    assert len(hist.history["loss"]) == 1  # stopped inside the first epoch
    assert load_state(tmp_path)["epochs_completed"] == 1  # still checkpointed


def test_bad_validation_data():
    with pytest.raises(ValueError, match="uint8"):
        ThresholdSweep(IMG.astype(float), LAB)
    with pytest.raises(ValueError, match="shape"):
        ThresholdSweep(IMG, LAB[:, :1])


def test_jax_backend_subprocess(tmp_path):
    code = textwrap.dedent("""
        import numpy as np, keras
        from keras import layers
        from keras_unets.training import ThresholdSweep
        assert keras.backend.backend() == "jax"
        inp = keras.Input((None, None, 1))
        m = keras.Model(inp, layers.Identity(name="output")(inp))
        img = np.array([[[0, 100], [200, 255]]], np.uint8)
        lab = np.array([[[0, 0], [255, 255]]], np.uint8)
        cb = ThresholdSweep(img, lab)
        cb.set_model(m)
        logs = {}
        cb.on_epoch_end(0, logs)
        print(logs["val_best_threshold"], logs["val_best_accuracy"])
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["100", "1.0"]


def test_cosine_time_lr_formula():
    # the same curve as Keras' step-count CosineDecay at f = step / decay_steps
    sched = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=100, alpha=0.05)
    for step in (0, 1, 37, 50, 99, 100):
        assert cosine_time_lr(1e-3, step / 100, 0.05) == pytest.approx(
            float(sched(step)), rel=1e-5)
    assert cosine_time_lr(1e-3, 0.0, 0.05) == pytest.approx(1e-3)
    assert cosine_time_lr(1e-3, 0.5, 0.0) == pytest.approx(0.5e-3)
    assert cosine_time_lr(1e-3, 7.0, 0.05) == pytest.approx(0.05e-3)  # clipped at 1
    assert cosine_time_lr(1e-3, -1.0, 0.05) == pytest.approx(1e-3)


class _FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_cosine_time_decay_follows_clock_or_steps(monkeypatch):
    import keras_unets.training.schedules as cb

    clock = _FakeClock()
    monkeypatch.setattr(cb.time, "monotonic", clock)
    model = _tiny_trainable()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    decay = CosineTimeDecay(1e-3, total_steps=1000, minutes=1.0, alpha=0.1)
    decay.set_model(model)
    decay.on_train_begin()
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    clock.now += 30.0  # half the time budget, 1 of 1000 steps
    decay.on_train_batch_end(0)
    decay.on_train_batch_begin(1)
    assert decay.fraction() == pytest.approx(0.5)
    assert float(model.optimizer.learning_rate) == pytest.approx(
        cosine_time_lr(1e-3, 0.5, 0.1), rel=1e-6)
    logs = {}
    decay.on_epoch_end(0, logs)
    assert logs["lr"] == pytest.approx(decay.current)
    clock.now += 300.0  # past the budget: the floor
    decay.on_train_batch_begin(2)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-6)
    # without a time budget the steps decide; a resumed run starts at its step
    steps = CosineTimeDecay(1e-3, total_steps=10, alpha=0.0, initial_step=5)
    steps.set_model(model)
    steps.on_train_begin()
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5e-3, rel=1e-6)


def test_cosine_time_decay_in_fit_and_bad_args():
    img, lab = _fit_data(n=4)
    x, y = img[..., None] / 255.0, lab[..., None] / 255.0
    model = _tiny_trainable()
    decay = CosineTimeDecay(1e-3, total_steps=4, alpha=0.0)
    hist = model.fit(x, y, epochs=2, batch_size=2, verbose=0, callbacks=[decay])
    assert decay.step == 4
    # last batch ran at step 3 of 4: lr = 1e-3 * (1 + cos(3 pi / 4)) / 2
    assert hist.history["lr"][-1] == pytest.approx(cosine_time_lr(1e-3, 0.75), rel=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(hist.history["lr"][-1],
                                                                 rel=1e-6)
    with pytest.raises(ValueError, match="total_steps"):
        CosineTimeDecay(1e-3, total_steps=0)
    with pytest.raises(ValueError, match="minutes"):
        CosineTimeDecay(1e-3, total_steps=10, minutes=0)
