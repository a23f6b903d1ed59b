"""Config: every shipped file loads; bad keys, types and values are errors that name the key."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from plate_lib import config
from plate_lib.config import ConfigError
from plate_lib.report import report_config

REPO = Path(__file__).resolve().parents[1]


def test_cfg_yaml_loads_and_matches_the_built_in_defaults():
    assert config.load(REPO / "cfg.yaml") == config.load(None)


@pytest.mark.parametrize("profile", sorted((REPO / "profiles").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_profile_validates(profile):
    report_config(str(REPO / "cfg.yaml"), profile=str(profile))


def test_overrides_are_typed_by_yaml_and_validated():
    cfg = config.load(None, ["training.epochs=3", "preprocess.grayscale=false", "data.source=/x/dl1.zip"])
    assert cfg.training.epochs == 3 and cfg.preprocess.grayscale is False
    assert cfg.data.source == "/x/dl1.zip"
    assert cfg.preprocess.channels == 3


def test_mapping_overrides_serve_papermill_parameters():
    assert config.load(None, {"training.batch_size": 32}).training.batch_size == 32


def test_unknown_key_in_a_file_is_named(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text("training:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'training.epoch'"):
        config.load(p)


def test_unknown_override_key_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' in training; known: .*'epochs'"):
        config.load(None, ["training.epoch=3"])


@pytest.mark.parametrize("override, message", [
    ("training.lr=-0.1", r"training.lr .*greater than 0.*got -0.1"),
    ("training.batch_size=0", r"training.batch_size .*greater than or equal to 1"),
    ("training.epochs=three", r"training.epochs .*integer.*'three'"),
    ("run.device=gpu", r"run.device .*expected auto, cpu"),
    ("data.val_fraction=1.5", r"data.val_fraction"),
    ("provinces=[皖, 皖]", r"provinces must be distinct"),
    ("predict.min_confidence=1.5", r"predict.min_confidence .*less than or equal to 1"),
    ("predict.crop_aspect=[5, 2]", r"predict.crop_aspect .*0 < min < max, got \[5.0, 2.0\]"),
    ("run.seed=-1", r"run.seed .*greater than or equal to 0"),
    ("run.seed=4294967296", r"run.seed .*less than or equal to 4294967295"),
])
def test_impossible_values_name_the_key_and_the_value(override, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, [override])


def test_override_without_equals_sign_says_how_to_write_it():
    with pytest.raises(ConfigError, match="key=value"):
        config.load(None, ["training.epochs"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        config.load(tmp_path / "nope.yaml")


def test_config_is_frozen():
    cfg = config.load(None)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.training.epochs = 5


@pytest.mark.parametrize("name", ["../../somewhere", "a/b", "a\\b", "/abs", "..", ".", "", " spaced", "C:x", "a\0b"])
def test_run_name_is_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match=r"run\.name value error, expected a plain name for the run folder inside "
                                          r"training\.out_dir \(no / \\ or :, not \. or \.\.") as e:
        config.load(None, {"run.name": name})
    assert repr(name) in str(e.value)


@pytest.mark.parametrize("name", ["default", "model-finetune", "acc-small_crnn-s1", "试验.2"])
def test_plain_run_names_are_accepted(name):
    assert config.load(None, {"run.name": name}).run.name == name


def test_data_max_file_mb_is_a_positive_number_of_megabytes():
    assert config.load(None).data.max_file_mb == 16
    assert config.load(None, ["data.max_file_mb=0.5"]).data.max_file_mb == 0.5
    with pytest.raises(ConfigError, match=r"data\.max_file_mb .*greater than 0"):
        config.load(None, ["data.max_file_mb=0"])


def test_the_finetune_profile_starts_from_the_shipped_model_which_fits_the_model_it_configures():
    from plate_lib.checkpoints import model_spec
    from plate_lib.models import build_model
    from plate_lib.train import init_weights

    cfg = report_config(str(REPO / "cfg.yaml"), profile=str(REPO / "profiles" / "finetune.yaml"))
    assert cfg.training.init_from == "models/plate_default.pt" and cfg.augment.enabled
    assert [s.path for s in cfg.data.train_sources] == ["synthetic"]  # the generator's plates mixed in
    init_weights(build_model(cfg.model.name, model_spec(cfg)), cfg, str(REPO / cfg.training.init_from))


def test_a_profile_that_is_not_yaml_or_not_utf8_is_an_error_naming_it(tmp_path):
    (tmp_path / "bad.yaml").write_text("training:\n  epochs: [1\n", encoding="utf-8")
    (tmp_path / "gbk.yaml").write_bytes("run.name: 车牌\n".encode("gbk"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        config.collect_overrides(None, str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match=r"gbk\.yaml: not UTF-8 text .* save it as UTF-8"):
        config.collect_overrides(None, str(tmp_path / "gbk.yaml"))


def test_a_profile_given_as_the_config_says_to_pass_it_with_profile():
    with pytest.raises(ConfigError, match=r"its keys are dotted .*: a profile of overrides, not a config; pass it with --profile"):
        config.load(REPO / "profiles" / "smoke.yaml")


@pytest.mark.parametrize("override, says", [
    ("run.name=007", "YAML read the value as an int: quote it to keep it text"),
    ("run.name=yes", "YAML read the value as a bool"),
    ("predict.crop_aspect=5", "a list in YAML: e.g. --set predict.crop_aspect=[0.9,8]"),
])
def test_a_value_yaml_reads_as_another_type_says_how_to_write_it(override, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        config.load(None, [override])


def test_a_section_given_whole_in_a_profile_or_override_sets_only_the_keys_it_names(tmp_path):
    (tmp_path / "my.yaml").write_text("training: {lr: 0.01, epochs: 7}\n", encoding="utf-8")
    (tmp_path / "prof.yaml").write_text("training: {epochs: 3}\n", encoding="utf-8")
    cfg = config.load(tmp_path / "my.yaml", config.collect_overrides(None, [tmp_path / "prof.yaml"], None))
    assert (cfg.training.lr, cfg.training.epochs) == (0.01, 3)  # lr was reset to its default before
    cfg = config.load(tmp_path / "my.yaml", ["training={epochs: 4}"])
    assert (cfg.training.lr, cfg.training.epochs) == (0.01, 4)
    (tmp_path / "b.yaml").write_text("training: {batch_size: 32}\n", encoding="utf-8")
    stacked = config.collect_overrides(None, [tmp_path / "my.yaml", tmp_path / "b.yaml"], ["training={epochs: 5}"])
    cfg = config.load(None, stacked)  # two profiles and a --set, each giving the section: each sets its keys
    assert (cfg.training.lr, cfg.training.epochs, cfg.training.batch_size) == (0.01, 5, 32)
    fixes = config.load(None, ["data.label_fixes={a: b.csv}", "data.label_fixes={c: d.csv}"]).data.label_fixes
    assert fixes == {"c": "d.csv"}  # a value that is a mapping is replaced whole, not merged
    with pytest.raises(ConfigError, match="training.epoch"):
        config.load(None, ["training={epoch: 4}"])
