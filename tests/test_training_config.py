"""Profiles: plain data, resolution order, and the report's numbers (Liu, Shi, Chen)."""
import json

import pytest

from keras_unets.training.config import (
    CONFIG_KEYS,
    PROFILE_NAMES,
    PROFILES,
    RETIRED_KEYS,
    format_profiles,
    get_profile,
    model_family,
    resolve_config,
    without_retired_keys,
)

NETWORKS = ("unet", "unet_report", "unetpp", "unetpp_ds", "unet3p", "unet3p_ds")


def test_profiles_are_plain_json_data():
    assert PROFILE_NAMES == ("paper", "quick", "smoke")
    again = json.loads(json.dumps(PROFILES))
    assert again == json.loads(format_profiles())
    for name in PROFILE_NAMES:
        for model in NETWORKS:
            cfg = get_profile(name, model)
            assert set(cfg) == set(CONFIG_KEYS)


def test_paper_profile_matches_report():
    unet = get_profile("paper", "unet")
    assert (unet["optimizer"], unet["learning_rate"]) == ("adam", 1e-4)
    assert (unet["epochs"], unet["steps_per_epoch"]) == (10, 2000)
    assert unet["loss"] == "bce" and unet["crop"] is None
    aug = unet["augment"]
    assert aug["horizontal_flip"] and aug["rotation_range"] > 0
    assert aug["width_shift_range"] > 0 and aug["height_shift_range"] > 0
    assert not unet["elastic"] and not unet["weight_map"]
    for model in ("unetpp", "unetpp_ds"):
        pp = get_profile("paper", model)
        assert (pp["optimizer"], pp["learning_rate"], pp["momentum"],
                pp["weight_decay"]) == ("sgd", 1e-3, 0.9, 1e-4)
        assert (pp["batch_size"], pp["epochs"]) == (1, 100)
        assert pp["steps_per_epoch"] is None  # one pass over the training slices
        assert pp["loss"] == "bce_dice"
    p3 = get_profile("paper", "unet3p")
    assert (p3["optimizer"], p3["learning_rate"], p3["batch_size"], p3["epochs"]) == (
        "adam", 1e-3, 1, 40)
    assert p3["loss"] == "bce_logits" and p3["from_logits"]
    assert p3["model_kwargs"]["output_activation"] is None
    assert p3["model_kwargs"]["factorize_skips"] is True


@pytest.mark.parametrize("model", ["unet3p", "unet3p_ds_cgm"])
def test_paper_unet3p_is_the_paper_network_factorized(model):
    # factorize_skips changes memory and time, not the network: the paper's
    # order, the same parameters (Huang et al. 2020: 26,983,681 with BN
    # statistics for the plain model), each deeper skip a factorized
    # up-sample-then-conv
    from keras_unets.models.layers import UpsampleConv2D
    from keras_unets.models import get_model

    kwargs = get_profile("paper", model)["model_kwargs"]
    assert kwargs["factorize_skips"] is True
    built = get_model(model, input_size=64, **kwargs)
    plain = get_model(model, input_size=64, **{**kwargs, "factorize_skips": False})
    assert built.count_params() == plain.count_params()
    if model == "unet3p":
        assert built.count_params() == 26_983_681
    ups = [lay for lay in built.layers if isinstance(lay, UpsampleConv2D)]
    assert len(ups) == 10  # 4 + 3 + 2 + 1 deeper skips
    assert all(lay.factorized for lay in ups)


def test_quick_and_smoke_limits():
    for model in NETWORKS:
        q = get_profile("quick", model)
        assert q["crop"] == 128 and q["batch_size"] == 4
        assert q["model_kwargs"]["filters"] == (8 if model.startswith("unetpp") else 16)
        assert q["model_kwargs"]["batch_norm"] is True
        assert q["model_kwargs"]["bn_momentum"] == 0.9
        # the cosine ends when the network's minutes (or its planned steps) end
        assert q["lr_schedule"] == "cosine_time" and q["time_limit_minutes"] > 0
        assert q["learning_rate"] == 3e-3
        if model.startswith("unet3p"):
            assert q["model_kwargs"]["factorize_skips"] is True
        # BCE + Dice on probabilities for all three
        assert (q["loss"], q["from_logits"]) == ("bce_dice", False)
        s = get_profile("smoke", model)
        assert s["model_kwargs"]["filters"] == 4 and s["crop"] == 64
        assert (s["epochs"], s["steps_per_epoch"]) == (2, 2)


def test_quick_trainings_leave_minutes_for_evaluation_within_30():
    # make reproduce PROFILE=quick trains U-Net, Table I's half-resolution
    # U-Net (a third of U-Net's limit), UNet++ with and without deep
    # supervision, and UNet 3+: at most 27 of its 30 minutes
    limit = {m: get_profile("quick", m)["time_limit_minutes"]
             for m in ("unet", "unetpp", "unetpp_ds", "unet3p")}
    total = limit["unet"] * (1 + 1 / 3) + limit["unetpp"] + limit["unetpp_ds"] + limit["unet3p"]
    assert total <= 27.0, limit


def test_resolution_order():
    # defaults -> network -> model -> explicit; dicts merge key by key
    cfg = get_profile("paper", "unet")
    assert cfg["model_kwargs"]["head_filters"] == 2  # model override
    cfg = resolve_config("paper", "unet", epochs=3, batch_size=None,
                         model_kwargs={"filters": 8})
    assert cfg["epochs"] == 3
    assert cfg["batch_size"] == 2  # None keeps the profile value
    assert cfg["model_kwargs"]["filters"] == 8
    assert cfg["model_kwargs"]["head_filters"] == 2  # merged, not replaced
    # resolving never mutates the profile data
    assert "filters" not in PROFILES["paper"]["models"]["unet"]["model_kwargs"]
    with pytest.raises(ValueError, match="Unknown config keys"):
        resolve_config("quick", "unet", epochz=3)
    with pytest.raises(ValueError, match="Unknown profile"):
        get_profile("fast", "unet")


def test_model_family():
    assert model_family("unet3p_ds") == "unet3p"
    assert model_family("unetpp") == "unetpp"
    assert model_family("unet_valid") == "unet"
    assert model_family("segnet") is None


def test_paper_unet_is_the_reports_keras_unet():
    from keras_unets.models import get_model

    kwargs = get_profile("paper", "unet")["model_kwargs"]
    # the report's Keras U-Net (zhixuhao/unet layers) has 31,031,685 parameters
    assert get_model("unet", input_size=64, **kwargs).count_params() == 31_031_685


@pytest.mark.parametrize("model", ["unet", "unetpp_ds", "unet3p"])
def test_smoke_and_quick_kwargs_build(model):
    from keras_unets.models import get_model

    for profile in ("smoke", "quick"):
        kwargs = get_profile(profile, model)["model_kwargs"]
        built = get_model(model, **kwargs)
        assert built.count_params() > 0
    # quick U-Net: 16 filters with batch norm (~1.9 M)
    if model == "unet":
        n = get_model("unet", **get_profile("quick", "unet")["model_kwargs"]).count_params()
        assert 1.8e6 < n < 2.0e6


def test_retired_keys_are_read_when_off_and_refused_otherwise():
    assert not set(RETIRED_KEYS) & set(CONFIG_KEYS)
    with pytest.raises(ValueError, match="Unknown config keys"):
        resolve_config("quick", "unet", ema_momentum=0.99)
    saved = {"seed": 1, "ema_momentum": None, "lr_warmup_fraction": 0.0}
    assert without_retired_keys(saved) == {"seed": 1}
    assert "ema_momentum" in saved  # a copy
    with pytest.raises(ValueError, match=r"runs/a/config\.json sets lr_warmup_fraction=0\.05, "
                                         r"an option .* only lr_warmup_fraction=0\.0 \(off\)"):
        without_retired_keys({"lr_warmup_fraction": 0.05}, "runs/a/config.json")


def test_profiles_list_only_differences_from_the_defaults():
    from dataclasses import fields

    from keras_unets.training.config import TrainConfig

    assert CONFIG_KEYS == tuple(f.name for f in fields(TrainConfig))
    defaults = TrainConfig().to_dict()
    assert list(defaults) == list(CONFIG_KEYS)
    defaults["model_kwargs"]["filters"] = 1  # a new dict each time
    assert TrainConfig().to_dict()["model_kwargs"] == {}
    defaults = TrainConfig().to_dict()
    for name in PROFILE_NAMES:
        changes = PROFILES[name]["changes"]
        assert set(changes) <= set(CONFIG_KEYS)
        base = get_profile(name, "no_family")  # defaults + the profile's changes only
        for key, value in changes.items():
            assert value != defaults[key] or key in ("model_kwargs", "augment"), (name, key)
        for family, update in PROFILES[name]["networks"].items():
            for key, value in update.items():
                if key not in ("model_kwargs", "augment"):
                    assert value != base[key], (name, family, key)
