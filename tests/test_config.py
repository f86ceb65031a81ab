"""TrainConfig defaults and validation, config files, model presets and precedence."""

from __future__ import annotations

import json
import math
import os
from dataclasses import fields

import click
import pytest

import hmxfeel_mlx.models.registry as registry
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.training.config import TrainConfig, model_preset, read_config_file, resolve_config

PRESET = {"group_size": 4, "lora_rank": 2, "steps": 7, "learning_rate": 3e-4}


@pytest.fixture()
def aliases(monkeypatch):
    """A registry with one alias that carries a training preset (and one without)."""
    table = {
        "tiny-preset": {"description": "test alias", "repo": "org/tiny", "train": dict(PRESET)},
        "plain": {"description": "no preset", "repo": "org/plain"},
        "smollm2-135m": {"description": "default model, no preset here", "repo": "org/smol"},
    }
    monkeypatch.setattr(registry, "load_aliases", lambda: table)
    return table


def write_json(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def error_message(excinfo) -> str:
    return excinfo.value.message


# --------------------------------------------------------------------------- defaults


def test_defaults():
    cfg = TrainConfig()
    assert cfg.model == "smollm2-135m"
    assert cfg.direction == "forward"
    assert cfg.group_size == 8
    assert cfg.prompts_per_step == 2
    assert cfg.loss_type == "dapo"
    assert cfg.beta == 0.0
    assert cfg.epsilon == 0.2
    assert cfg.epsilon_high is None
    assert cfg.lora_layers == 16
    assert cfg.lora_keys is None
    assert cfg.select_threshold == 7.5
    assert cfg.rollouts_per_step == 16


def test_rollouts_per_step():
    assert TrainConfig(group_size=4, prompts_per_step=3).rollouts_per_step == 12
    assert TrainConfig(group_size=2, prompts_per_step=1).rollouts_per_step == 2


def test_hmx_error_is_click_exception():
    assert issubclass(HmxError, click.ClickException)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, key, expected",
    [
        ({"group_size": 1}, "group_size", ">= 2"),
        ({"group_size": 0}, "group_size", ">= 2"),
        ({"group_size": True}, "group_size", ">= 2"),  # a bool is not a number here
        ({"beta": -0.1}, "beta", ">= 0"),
        ({"beta": math.nan}, "beta", ">= 0"),
        ({"epsilon_high": 0.1}, "epsilon_high", ">= 0.2"),  # below epsilon (0.2)
        ({"epsilon": 0.3, "epsilon_high": 0.25}, "epsilon_high", ">= 0.3"),
        ({"select_threshold": 11}, "select_threshold", "between 0 and 10"),
        ({"select_threshold": -0.5}, "select_threshold", "between 0 and 10"),
        ({"select_threshold": math.nan}, "select_threshold", "between 0 and 10"),
        ({"lora_layers": 0}, "lora_layers", "-1 for all"),
        ({"lora_layers": -2}, "lora_layers", "-1 for all"),
        ({"temperature": 0}, "temperature", "> 0"),
        ({"learning_rate": -1e-5}, "learning_rate", "> 0"),
        ({"steps": 0}, "steps", ">= 1"),
        ({"steps": "ten"}, "steps", ">= 1"),
        ({"direction": "sideways"}, "direction", "forward, reverse"),
        ({"judge": "oracle"}, "judge", "base, policy"),
        ({"judge_mode": "vibes"}, "judge_mode", "text, logprob"),
    ],
)
def test_invalid_values_name_key_and_expectation(kwargs, key, expected):
    with pytest.raises(HmxError) as excinfo:
        TrainConfig(**kwargs)
    msg = error_message(excinfo)
    assert f"{key}=" in msg
    assert expected in msg


def test_bad_loss_type_lists_valid_ones():
    with pytest.raises(HmxError) as excinfo:
        TrainConfig(loss_type="ppo")
    msg = error_message(excinfo)
    assert "loss_type='ppo'" in msg
    for valid in ("grpo", "dr_grpo", "dapo", "bnpo"):
        assert valid in msg


def test_group_size_one_through_resolve_config(aliases):
    with pytest.raises(HmxError) as excinfo:
        resolve_config(overrides={"group_size": 1})
    msg = error_message(excinfo)
    assert "group_size" in msg and ">= 2" in msg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_size": 2},
        {"epsilon_high": 0.2},  # equal to epsilon is allowed
        {"epsilon_high": 0.28},
        {"select_threshold": 0},
        {"select_threshold": 10},
        {"lora_layers": -1},
        {"lora_layers": 1},
        {"beta": 0.0},
        {"eval_temperature": 0},
        {"loss_type": "dr_grpo"},
        {"direction": "reverse", "reverse_reward": "complement"},
    ],
)
def test_boundary_values_accepted(kwargs):
    cfg = TrainConfig(**kwargs)
    for key, value in kwargs.items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("key, value", [("select_threshold", "8"), ("lora_layers", "all")])
def test_wrong_type_names_the_key(aliases, key, value):
    with pytest.raises(HmxError) as excinfo:
        resolve_config(overrides={key: value})
    assert f"{key}=" in error_message(excinfo)


# --------------------------------------------------------------------------- config files


def test_read_json_file(tmp_path):
    path = write_json(tmp_path / "c.json", {"steps": 5, "loss_type": "grpo"})
    assert read_config_file(path) == {"steps": 5, "loss_type": "grpo"}
    assert read_config_file(str(path)) == {"steps": 5, "loss_type": "grpo"}


def test_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(HmxError) as excinfo:
        read_config_file(path)
    msg = error_message(excinfo)
    assert "not found" in msg and str(path) in msg


def test_malformed_json_names_the_file(tmp_path, aliases):
    path = tmp_path / "broken.json"
    path.write_text('{"steps": 5,', encoding="utf-8")
    with pytest.raises(HmxError) as excinfo:
        resolve_config(path)
    msg = error_message(excinfo)
    assert str(path) in msg
    assert "cannot be parsed" in msg


def test_non_mapping_json(tmp_path):
    path = write_json(tmp_path / "list.json", [{"steps": 5}])
    with pytest.raises(HmxError) as excinfo:
        read_config_file(path)
    msg = error_message(excinfo)
    assert str(path) in msg and "mapping" in msg


def test_yaml_file(tmp_path, aliases):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 12\nloss_type: bnpo\nlora_keys:\n  - self_attn.q_proj\n  - self_attn.v_proj\nbeta: 0.04\n")
    assert read_config_file(path) == {
        "steps": 12,
        "loss_type": "bnpo",
        "lora_keys": ["self_attn.q_proj", "self_attn.v_proj"],
        "beta": 0.04,
    }
    cfg = resolve_config(path)
    assert cfg.steps == 12
    assert cfg.loss_type == "bnpo"
    assert cfg.lora_keys == ["self_attn.q_proj", "self_attn.v_proj"]
    assert cfg.beta == 0.04


def test_yml_suffix_and_bad_yaml(tmp_path):
    good = tmp_path / "c.yml"
    good.write_text("seed: 3\n")
    assert read_config_file(good) == {"seed": 3}
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    with pytest.raises(HmxError) as excinfo:
        read_config_file(bad)
    assert str(bad) in error_message(excinfo)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(HmxError) as excinfo:
        read_config_file(empty)
    assert "mapping" in error_message(excinfo)


def test_unknown_key_in_file(tmp_path, aliases):
    path = write_json(tmp_path / "c.json", {"steps": 5, "group_szie": 4})
    with pytest.raises(HmxError) as excinfo:
        resolve_config(path)
    msg = error_message(excinfo)
    assert "unknown config file key(s): group_szie" in msg
    assert "Known keys:" in msg
    known = msg.split("Known keys:", 1)[1]
    for f in fields(TrainConfig):
        assert f.name in known


def test_unknown_key_in_overrides(aliases):
    with pytest.raises(HmxError) as excinfo:
        resolve_config(overrides={"steps": 3, "learning_rat": 1e-4, "bogus": 1})
    msg = error_message(excinfo)
    assert "unknown option key(s): bogus, learning_rat" in msg
    assert "learning_rate" in msg.split("Known keys:", 1)[1]


def test_unknown_key_in_base(aliases):
    base = TrainConfig().to_dict()
    base["old_option"] = 1
    with pytest.raises(HmxError) as excinfo:
        resolve_config(base=base)
    assert "unknown run config key(s): old_option" in error_message(excinfo)


# --------------------------------------------------------------------------- presets and precedence


def test_model_preset(aliases):
    assert model_preset("tiny-preset") == PRESET
    assert model_preset("TINY-Preset") == PRESET  # aliases are matched case-insensitively
    assert model_preset("plain") == {}
    assert model_preset("org/some-repo") == {}
    preset = model_preset("tiny-preset")
    preset["steps"] = 999  # a copy: the registry is not changed
    assert model_preset("tiny-preset")["steps"] == 7


def test_model_preset_reads_shipped_registry_shape():
    # Every shipped alias gives a dict (empty without a "train" entry), whose keys are config keys.
    known = {f.name for f in fields(TrainConfig)}
    for name in registry.load_aliases():
        preset = model_preset(name)
        assert isinstance(preset, dict)
        assert set(preset) <= known


def test_defaults_only(aliases):
    assert resolve_config() == TrainConfig()


def test_preset_beats_defaults(aliases):
    cfg = resolve_config(overrides={"model": "tiny-preset"})
    assert cfg.model == "tiny-preset"
    assert cfg.group_size == 4
    assert cfg.lora_rank == 2
    assert cfg.steps == 7
    assert cfg.learning_rate == 3e-4
    assert cfg.prompts_per_step == TrainConfig().prompts_per_step  # untouched default


def test_no_preset_for_plain_model(aliases):
    cfg = resolve_config(overrides={"model": "plain"})
    assert cfg == TrainConfig(model="plain")


def test_file_beats_preset(tmp_path, aliases):
    path = write_json(tmp_path / "c.json", {"model": "tiny-preset", "lora_rank": 3, "steps": 9})
    cfg = resolve_config(path)
    assert cfg.model == "tiny-preset"
    assert cfg.group_size == 4  # preset
    assert cfg.learning_rate == 3e-4  # preset
    assert cfg.lora_rank == 3  # file over preset
    assert cfg.steps == 9  # file over preset


def test_overrides_beat_file_and_preset(tmp_path, aliases):
    path = write_json(tmp_path / "c.json", {"model": "tiny-preset", "lora_rank": 3, "steps": 9, "seed": 4})
    cfg = resolve_config(path, {"steps": 11, "group_size": 6, "lora_rank": None, "seed": None})
    assert cfg.steps == 11  # override over file over preset
    assert cfg.group_size == 6  # override over preset
    assert cfg.lora_rank == 3  # None override ignored: file wins
    assert cfg.seed == 4  # None override ignored: file wins
    assert cfg.learning_rate == 3e-4  # preset
    assert cfg.max_new_tokens == 128  # default


def test_override_model_selects_preset(tmp_path, aliases):
    path = write_json(tmp_path / "c.json", {"model": "plain"})
    cfg = resolve_config(path, {"model": "tiny-preset"})
    assert cfg.model == "tiny-preset"
    assert cfg.group_size == 4
    # and a None model override keeps the file's model (and its lack of preset)
    cfg = resolve_config(path, {"model": None})
    assert cfg.model == "plain"
    assert cfg.group_size == 8


def test_invalid_preset_value_is_reported(monkeypatch):
    monkeypatch.setattr(registry, "load_aliases", lambda: {"bad": {"train": {"group_size": 1}}})
    with pytest.raises(HmxError) as excinfo:
        resolve_config(overrides={"model": "bad"})
    assert "group_size=1" in error_message(excinfo)


def test_base_replaces_defaults_and_preset(aliases):
    base = TrainConfig(model="tiny-preset", group_size=6, steps=50, seed=2).to_dict()
    cfg = resolve_config(base=base)
    assert cfg.group_size == 6  # not the preset's 4
    assert cfg.steps == 50
    assert cfg.lora_rank == 8  # base's value, not the preset's 2
    cfg = resolve_config(base=base, overrides={"steps": 80, "seed": None})
    assert cfg.steps == 80
    assert cfg.seed == 2
    assert cfg == TrainConfig(model="tiny-preset", group_size=6, steps=80, seed=2)


def test_save_round_trip(tmp_path, aliases):
    cfg = resolve_config(
        overrides={
            "model": "tiny-preset",
            "direction": "reverse",
            "epsilon_high": 0.28,
            "lora_keys": ["self_attn.q_proj", "mlp.down_proj"],
            "train_questions": "qs.jsonl",
            "scale_rewards": False,
            "select_threshold": 6.0,
        }
    )
    path = tmp_path / "run" / "config.json"
    cfg.save(path)
    assert os.listdir(path.parent) == ["config.json"]  # no temporary file left behind
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["epsilon_high"] == 0.28
    assert data["lora_keys"] == ["self_attn.q_proj", "mlp.down_proj"]
    assert data["group_size"] == 4
    assert set(data) == {f.name for f in fields(TrainConfig)}
    with open(path, encoding="utf-8") as f:
        again = resolve_config(base=json.load(f))
    assert again == cfg
    assert again is not cfg


# --------------------------------------------------------------------------- types and explicit nulls


@pytest.mark.parametrize("key, value, expected", [
    ("steps", 1.5, "an integer >= 1"),
    ("steps", 10.0, "an integer >= 1"),  # a float that happens to be whole is still not a step count
    ("seed", "abc", "an integer"),
    ("seed", 1.0, "an integer"),
    ("seed", True, "an integer"),
    ("lora_layers", True, "-1 for all"),  # True == 1 would have meant one block
    ("lora_rank", 8.5, "an integer >= 1"),
    ("min_reply_words", False, "an integer >= 0"),
    ("scale_rewards", 1, "true or false"),
    ("mask_truncated", "yes", "true or false"),
    ("model", 5, "a string"),
    ("judge_template", None, "a string"),
    ("train_questions", 3, "a string or null"),
    ("lora_keys", "mlp.down_proj", "a list of strings or null"),
    ("lora_keys", ["mlp.down_proj", 1], "a list of strings or null"),
    ("temperature", "hot", "a number > 0"),
    ("degenerate_floor", "low", "between 0 and 10, or null"),
])
def test_values_of_the_wrong_type_are_refused(key, value, expected):
    with pytest.raises(HmxError) as excinfo:
        TrainConfig(**{key: value})
    msg = error_message(excinfo)
    assert f"{key}={value!r}" in msg and expected in msg


def test_numbers_where_numbers_are_expected_are_accepted():
    cfg = TrainConfig(temperature=1, learning_rate=1, seed=-3, lora_keys=["mlp.down_proj"], degenerate_floor=0)
    assert cfg.temperature == 1 and cfg.seed == -3 and cfg.degenerate_floor == 0


def test_an_explicit_null_setting_beats_the_preset_and_the_file(tmp_path, aliases, monkeypatch):
    table = {**aliases, "floored": {"repo": "org/f", "train": {"degenerate_floor": 0.0, "epsilon_high": 0.3}}}
    monkeypatch.setattr(registry, "load_aliases", lambda: table)
    assert resolve_config(overrides={"model": "floored"}).degenerate_floor == 0.0
    cfg = resolve_config(overrides={"model": "floored"}, settings={"degenerate_floor": None})
    assert cfg.degenerate_floor is None and cfg.epsilon_high == 0.3
    path = write_json(tmp_path / "c.json", {"model": "floored", "epsilon_high": None})
    assert resolve_config(path).epsilon_high is None  # a null in the file is a value as well
    assert resolve_config(path, settings={"epsilon_high": 0.25}).epsilon_high == 0.25
    cfg = resolve_config(path, overrides={"degenerate_floor": None}, settings={"seed": 4})
    assert cfg.degenerate_floor == 0.0 and cfg.seed == 4  # a None flag means "not given"
    with pytest.raises(HmxError, match=r"unknown --set key\(s\): floor"):
        resolve_config(settings={"floor": None})


def test_settings_apply_on_top_of_a_base(aliases):
    base = TrainConfig(model="tiny-preset", degenerate_floor=1.0).to_dict()
    assert resolve_config(base=base, settings={"degenerate_floor": None}).degenerate_floor is None
