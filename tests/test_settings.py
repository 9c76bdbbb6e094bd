"""One schema per setting (textboost.settings): every shipped config loads through the one
YAML loader; the field file, the scenario file and the CLIs share the link and budget models'
names, limits and defaults; the same mistake gets the same one-line error in every file;
hostile YAML (duplicate keys, deep nesting, booleans for numbers, paths out of the image set)
is refused in one line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from link_sim.cli import main as link_sim_main
from link_sim.scenario import (
    ProtocolSpec,
    Scenario,
    ScenarioError,
    link_config,
    load_scenario,
    parse_scenario,
)
from tests.helpers import ROOT
from textboost.cli import add_link_arguments, config_from_args, policy_from_args
from textboost.codec.rate import ByteBudget
from textboost.field.config import FieldConfig, UplinkSection, load_field_config
from textboost.protocol import LinkConfig
from textboost.settings.budget import DEFAULT_BUDGET, Budget, add_budget_arguments
from textboost.settings.link import LinkSettings
from textboost.settings.load import MAX_DEPTH, ConfigError, parse_yaml, read_yaml, validate
from textboost.train.stage1 import TrainConfig
from textboost.train.stage2 import Stage2Config
from textboost.train.stage2_words import WordStage2Config

RESCUE = yaml.safe_load((ROOT / "scenarios/rescue.yaml").read_text())


def _loader_of(path: Path):
    """The loader each shipped config file is read by (its role, from its name)."""
    if path.name.startswith("field"):
        return load_field_config
    if path.name.startswith("stage2"):
        words = read_yaml(path, "stage-2 settings").get("block") == "words"
        return WordStage2Config.from_file if words else Stage2Config.from_file
    return TrainConfig.from_file


SHIPPED = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads(path):
    load = load_scenario if path.parent.name == "scenarios" else _loader_of(path)
    assert load(path) is not None


# --- one link model, one budget model -------------------------------------------------------


def test_link_model_defaults_are_the_protocols_and_the_clis():
    assert LinkSettings().link_config("x") == LinkConfig()
    p = argparse.ArgumentParser()
    add_link_arguments(p)
    assert config_from_args(p.parse_args([])) == LinkConfig()
    options = {a.dest for a in p._actions}
    assert set(LinkSettings.model_fields) - {"fec_k", "fec_m"} <= options  # --fec K M: both


def test_field_link_section_and_scenario_protocol_share_names_and_limits():
    assert FieldConfig.model_fields["link"].annotation is LinkSettings
    assert issubclass(ProtocolSpec, LinkSettings)
    assert set(ProtocolSpec.model_fields) == set(LinkSettings.model_fields)
    for name, f in LinkSettings.model_fields.items():
        assert ProtocolSpec.model_fields[name].metadata == f.metadata, name
        if name not in ("mtu_bytes", "arq", "policy"):  # stated; by the reverse link; by text
            assert ProtocolSpec.model_fields[name].default == f.default, name


@pytest.mark.parametrize(("text_path", "stated", "policy"), [
    (True, None, "words_first"), (False, None, "fifo"), (True, "fifo", "fifo"),
    (False, "priority_interleave", "priority_interleave"),
])  # fmt: skip
def test_scenario_policy_puts_words_first_wherever_the_text_path_is_on(text_path, stated, policy):
    assert LinkConfig().policy == "words_first"  # the field's and the CLIs' default: text is on
    raw = yaml.safe_load((ROOT / "scenarios" / "rescue.yaml").read_text())
    raw["text_path"] = text_path
    raw["protocol"].pop("policy", None)
    if stated is not None:
        raw["protocol"]["policy"] = stated
    scenario = parse_scenario(raw, "rescue.yaml")
    assert scenario.policy == policy and link_config(scenario).policy == policy


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("mtu_bytes", 8, "mtu_bytes: expected a number >= 16, got 8"),
        ("fec_k", 255, "fec_k: expected a number <= 254, got 255"),
        ("fec_k", 4, "fec_k 4 / fec_m 0: set both"),
        ("arq", "sometimes", "arq: expected 'immediate', 'deferred' or 'none', got 'sometimes'"),
        ("rto_s", True, "rto_s: expected a number, got True"),
    ],
)
def test_same_link_mistake_same_words_in_field_file_scenario_and_cli(tmp_path, field, value,
                                                                      needle):
    doc = {"link": {field: value}}
    with pytest.raises(ConfigError) as field_err:
        validate(FieldConfig, doc, "field.yaml")
    raw = {**RESCUE, "protocol": {**RESCUE["protocol"], field: value}}
    with pytest.raises(ScenarioError) as scenario_err:
        validate(Scenario, raw, "s.yaml", ScenarioError)
    for err in (field_err, scenario_err):
        text = str(err.value).replace("link: ", "").replace("protocol: ", "")
        text = text.replace("link.", "").replace("protocol.", "")
        assert needle in text and "\n" not in text, text


def test_budget_model_is_the_field_default_and_the_uplink_default():
    assert UplinkSection.model_fields["budget"].default == DEFAULT_BUDGET
    p = argparse.ArgumentParser()
    add_budget_arguments(p)
    assert policy_from_args(p.parse_args([])) == ByteBudget(DEFAULT_BUDGET.max_bytes)
    assert Budget(max_bytes=3000).policy == "bytes" == Budget(policy="bytes", max_bytes=3000).policy


@pytest.mark.parametrize(
    ("budget", "needle"),
    [
        ({"max_bytes": 31}, "max_bytes: expected a number >= 32, got 31"),
        ({"bpp": 25}, "bpp: expected a number <= 24, got 25"),
        ({"rate": 1.5}, "rate: expected a number <= 1, got 1.5"),
        ({"bpp": 0.1, "max_bytes": 900}, "expected exactly one of max_bytes, bpp, rate"),
        ({"max_bytes": "yes"}, "max_bytes: expected a valid integer"),
    ],
)
def test_same_budget_mistake_same_words_in_field_file_and_scenario(budget, needle):
    up = {"drop_dir": "d", "state_db": "u.db", "event_log": "u.jsonl", "peer": "127.0.0.1:9"}
    with pytest.raises(ConfigError) as field_err:
        validate(FieldConfig, {"uplink": {**up, "budget": budget}}, "field.yaml")
    with pytest.raises(ScenarioError) as scenario_err:
        validate(Scenario, {**RESCUE, "rate": budget}, "s.yaml", ScenarioError)
    assert needle in str(field_err.value) and needle in str(scenario_err.value)


def test_unknown_key_same_words_in_every_kind_of_file(tmp_path):
    messages = []
    for name, text, load in [
        ("field.yaml", "link: {mtu: 200}\n", load_field_config),
        ("scenario.yaml", yaml.safe_dump({**RESCUE, "sede": 1}), load_scenario),
        ("train.yaml", "out_dir: x\ndata_dirs: [y]\nstpes: 5\n", TrainConfig.from_file),
    ]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load(path)
        messages.append(str(err.value).split(": ", 2)[-1])
    assert messages == ["unknown key; remove it or check its spelling"] * 3


# --- hostile files (issue: scenario files) --------------------------------------------------


def _scenario_cli(tmp_path, text: str, capsys) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert link_sim_main([str(path), "--synthetic", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {path}: "), err
    return err


def test_deep_nesting_is_one_line_not_recursion_error(tmp_path, capsys):
    err = _scenario_cli(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", capsys)
    assert f"nested deeper than {MAX_DEPTH} levels" in err
    err = _scenario_cli(tmp_path, "".join(f"{' ' * i}k{i}:\n" for i in range(200)), capsys)
    assert "nested deeper" in err


def test_image_paths_stay_inside_the_image_set(tmp_path, capsys):
    for name in ["../../../../../etc/passwd", "/etc/passwd", "../kodak/kodim23.png"]:
        raw = {**RESCUE, "images": {**RESCUE["images"], "files": [name]}}
        err = _scenario_cli(tmp_path, yaml.safe_dump(raw), capsys)
        assert f"images.files.0: expected a PNG or JPEG file name inside the image set, got " \
               f"{name!r}" in err


def test_booleans_are_refused_for_numbers(tmp_path, capsys):
    text = (ROOT / "scenarios/rescue.yaml").read_text().replace("rate_bps: 1200", "rate_bps: yes")
    assert "rate_bps: yes" in text
    err = _scenario_cli(tmp_path, text, capsys)
    assert "link.forward.rate_bps: expected a number, got True" in err
    with pytest.raises(ConfigError, match=r"uplink.rate_bps: expected a number, got True"):
        validate(FieldConfig, {"uplink": {"drop_dir": "d", "state_db": "u", "event_log": "e",
                                          "peer": "h:1", "rate_bps": True}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"t.yaml: steps: expected a number, got False"):
        validate(TrainConfig, {"out_dir": "x", "data_dirs": ["y"], "steps": False}, "t.yaml")


def test_duplicate_keys_are_refused(tmp_path, capsys):
    text = (ROOT / "scenarios/rescue.yaml").read_text() + "seed: 7\n"
    err = _scenario_cli(tmp_path, text, capsys)
    assert "duplicate key 'seed' (first at line" in err
    path = tmp_path / "field.yaml"
    path.write_text("link: {mtu_bytes: 200, mtu_bytes: 300}\n")
    with pytest.raises(ConfigError, match=r"line 1 column 24: duplicate key 'mtu_bytes'"):
        load_field_config(path)


# --- properties of the loader ---------------------------------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True),
    st.text(max_size=8),
)  # fmt: skip
_docs = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_is_one_line_config_error(text):
    try:
        parse_yaml(text, "x.yaml", "")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("x.yaml")


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3 * MAX_DEPTH), st.sampled_from(["flow", "block"]))
def test_nesting_up_to_the_limit_loads_and_beyond_is_refused(depth, style):
    if style == "flow":
        text = "[" * depth + "]" * depth
    else:
        text = "".join(f"{'  ' * i}k:\n" for i in range(depth)) + "  " * depth + "1\n"
    try:
        parse_yaml(text, "x.yaml", "")
    except ConfigError as exc:
        assert depth > MAX_DEPTH - 2 and "nested deeper" in str(exc)
    else:
        assert depth <= MAX_DEPTH


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["link", "uplink", "downlink", "x"]), _docs, max_size=3))
def test_any_field_document_is_valid_or_one_line_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("f") / "field.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_field_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(RESCUE)), _docs)
def test_any_scenario_section_is_valid_or_one_line_error(key, value):
    try:
        validate(Scenario, {**RESCUE, key: value},
                 "s.yaml", ScenarioError)
    except ScenarioError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("s.yaml")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text("abc", min_size=1, max_size=2), min_size=2, max_size=6))
def test_a_key_given_twice_is_always_refused(keys):
    text = "".join(f"{k}: 1\n" for k in keys)
    if len(set(keys)) == len(keys):
        assert parse_yaml(text, "x.yaml", "keys") == dict.fromkeys(keys, 1)
    else:
        with pytest.raises(ConfigError, match="duplicate key"):
            parse_yaml(text, "x.yaml", "keys")


def test_read_yaml_errors_are_one_line(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(ConfigError, match=r"x.yaml: not UTF-8 text \(byte 3"):
        read_yaml(path, "keys")
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read"):
        read_yaml(tmp_path / "missing.yaml", "keys")
    path.write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"expected a mapping of keys at the top level, got \[1]"):
        read_yaml(path, "keys")
