"""Recipes: bundled names or files, --set overrides with YAML typing, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medtune.errors import MedtuneError
from medtune.recipes.loader import apply_override, bundled_recipes, load_recipe, recipe_to_yaml, validate_recipe
from medtune.recipes.schema import Recipe

MINIMAL = {"name": "tiny", "task": "translation", "data": {"train": "pairs.jsonl"}}


def _write_recipe(tmp_path: Path, data: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _get(recipe: Recipe, dotted: str):
    node = recipe
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def test_bundled_recipe_is_listed():
    assert "translate-en-es" in bundled_recipes()


@pytest.mark.parametrize(
    "key",
    [
        "model",
        "data.train",
        "data.test",
        "data.general",
        "data.src_col",
        "data.tgt_col",
        "train.max_steps",
        "train.epochs",
        "train.lr",
        "train.batch_size",
        "train.lora.r",
        "output_dir",
        "seed",
    ],
)
def test_bundled_recipe_has_interface_key(key):
    node = load_recipe("translate-en-es").model_dump()
    for part in key.split("."):
        assert part in node, f"recipe lacks '{key}'"
        node = node[part]


def test_bundled_recipe_values():
    recipe = load_recipe("translate-en-es")
    assert (recipe.name, recipe.task, recipe.model, recipe.seed) == (
        "translate-en-es",
        "translation",
        "gemma-3-270m",
        42,
    )
    assert (recipe.data.train, recipe.data.test, recipe.data.general) == (
        "demo:medical_en_es.jsonl",
        None,
        "demo:general_en_es.jsonl",
    )
    assert (recipe.data.src_col, recipe.data.tgt_col) == ("en", "es")
    assert (recipe.train.max_steps, recipe.train.epochs, recipe.train.lr, recipe.train.batch_size) == (
        None,
        2.0,
        5e-4,
        8,
    )
    assert recipe.train.lora.r == 16
    assert recipe.output_dir == "runs/translate-en-es/model"


@pytest.mark.parametrize(
    ("assignment", "key", "expected"),
    [
        ("train.max_steps=30", "train.max_steps", 30),
        ("train.lr=1e-4", "train.lr", 1e-4),
        ("train.lr=0.0005", "train.lr", 5e-4),
        ("train.epochs=3", "train.epochs", 3.0),
        ("train.lora.r=4", "train.lora.r", 4),
        ("train.lora.target_modules=[q_proj, v_proj]", "train.lora.target_modules", ["q_proj", "v_proj"]),
        ("data.general=null", "data.general", None),
        ("data.test=my test.csv", "data.test", "my test.csv"),
        ("eval.limit=", "eval.limit", None),
        ("data.src_col=English", "data.src_col", "English"),
    ],
)
def test_set_overrides_use_yaml_typing(assignment, key, expected):
    recipe = load_recipe("translate-en-es", [assignment])
    value = _get(recipe, key)
    assert value == expected and type(value) is type(expected)


def test_apply_override_in_place():
    data: dict = {"train": {"lr": 0.1}}
    apply_override(data, "train.lr=2e-5")
    apply_override(data, "train.lora.r=8")
    apply_override(data, " seed = 3")
    apply_override(data, "eval.limit=null")
    apply_override(data, "data.train=a=b.jsonl")
    assert data == {
        "train": {"lr": "2e-5", "lora": {"r": 8}},
        "seed": 3,
        "eval": {"limit": None},
        "data": {"train": "a=b.jsonl"},
    }
    # PyYAML reads "2e-5" as text; the schema turns it into a float.
    assert validate_recipe({**MINIMAL, "train": {"lr": "2e-5"}}).train.lr == 2e-5


def test_later_override_wins():
    recipe = load_recipe("translate-en-es", ["train.lr=1e-3", "train.lr=1e-5"])
    assert recipe.train.lr == 1e-5


@pytest.mark.parametrize("assignment", ["train.lr", "=3", ""])
def test_override_without_key_or_value(assignment):
    with pytest.raises(MedtuneError, match="expected KEY=VALUE"):
        apply_override({}, assignment)


def test_override_into_a_value_is_refused():
    with pytest.raises(MedtuneError, match="'model' is a value, not a section"):
        load_recipe("translate-en-es", ["model.name=x"])


@pytest.mark.parametrize(
    ("assignment", "key", "known"),
    [
        ("train.learning_rate=1e-4", "train.learning_rate", ["lr", "batch_size", "max_steps", "lora"]),
        ("train.lora.rank=4", "train.lora.rank", ["r", "alpha", "dropout", "target_modules"]),
        ("data.source=x", "data.source", ["train", "test", "general", "src_col", "tgt_col"]),
        ("modle=x", "modle", ["model", "seed", "output_dir", "data", "train", "eval"]),
    ],
)
def test_unknown_key_is_named_with_known_keys_of_its_section(assignment, key, known):
    with pytest.raises(MedtuneError) as err:
        load_recipe("translate-en-es", [assignment])
    message = str(err.value)
    assert f"unknown key '{key}'" in message
    listed = message.split("known keys here: ")[1].split(")")[0].split(", ")
    assert set(known) <= set(listed)
    if key.count(".") == 2:
        assert "lr" not in listed  # only the keys of train.lora


def test_wrong_type_names_key_and_expected_number():
    with pytest.raises(MedtuneError) as err:
        load_recipe("translate-en-es", ["train.lr=abc"])
    message = str(err.value)
    assert "key 'train.lr'" in message and "valid number" in message and "'abc'" in message


@pytest.mark.parametrize(
    ("assignment", "text"),
    [
        ("train.batch_size=2.5", "key 'train.batch_size': input should be a valid integer"),
        ("data.test_size=1.5", "key 'data.test_size': input should be less than 1"),
        ("data.split=sentence", "key 'data.split': input should be 'document' or 'random'"),
        ("train.lora.r=0", "key 'train.lora.r': input should be greater than 0"),
    ],
)
def test_out_of_range_values_name_the_key(assignment, text):
    with pytest.raises(MedtuneError, match="invalid recipe") as err:
        load_recipe("translate-en-es", [assignment])
    assert text in str(err.value)


def test_missing_required_key_is_named(tmp_path):
    path = _write_recipe(tmp_path, {"name": "x", "task": "translation", "data": {"test": "t.jsonl"}})
    with pytest.raises(MedtuneError) as err:
        load_recipe(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: invalid recipe")
    assert "missing required key 'data.train'" in message


def test_several_problems_reported_together(tmp_path):
    path = _write_recipe(tmp_path, {"task": "translation", "data": {"train": "p.jsonl", "bogus": 1}})
    message = str(pytest.raises(MedtuneError, load_recipe, str(path)).value)
    assert "missing required key 'name'" in message and "unknown key 'data.bogus'" in message


def test_unknown_recipe_name_lists_bundled_ones():
    with pytest.raises(MedtuneError) as err:
        load_recipe("translate-en-fr")
    message = str(err.value)
    assert "'translate-en-fr'" in message
    assert "translate-en-es" in message
    assert "medtune recipes" in message


def test_recipe_file_path(tmp_path):
    path = _write_recipe(tmp_path, {**MINIMAL, "train": {"max_steps": 5}}, name="mine.yml")
    recipe = load_recipe(str(path), ["train.lr=1e-3"])
    assert (recipe.name, recipe.data.train, recipe.train.max_steps, recipe.train.lr) == ("tiny", "pairs.jsonl", 5, 1e-3)
    # Defaults fill the rest.
    assert (recipe.model, recipe.seed, recipe.data.src_col, recipe.data.tgt_col) == ("gemma-3-270m", 42, "en", "es")


@pytest.mark.parametrize("text", ["- a\n- b\n", "name: [unclosed\n"])
def test_recipe_file_that_is_not_a_mapping(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MedtuneError, match=r"bad\.yaml: (invalid YAML|a recipe must be a YAML mapping)"):
        load_recipe(str(path))


def test_output_dir_defaults():
    assert validate_recipe(MINIMAL).run_dir == "runs/tiny"
    assert validate_recipe(MINIMAL).output_dir == "runs/tiny/model"
    assert load_recipe("translate-en-es", ["name=other"]).output_dir == "runs/other/model"
    assert load_recipe("translate-en-es", ["run_dir=/tmp/r1"]).output_dir == "/tmp/r1/model"
    assert load_recipe("translate-en-es", ["output_dir=models/mine"]).output_dir == "models/mine"


def test_recipe_to_yaml_round_trips(tmp_path):
    recipe = load_recipe("translate-en-es", ["train.lr=1e-4", "train.max_steps=12", "data.test=null"])
    text = recipe_to_yaml(recipe)
    path = tmp_path / "resolved.yaml"
    path.write_text(text, encoding="utf-8")
    again = load_recipe(str(path))
    assert again == recipe
    assert again.train.lr == 1e-4 and isinstance(again.train.lr, float)
    assert recipe_to_yaml(again) == text
    # The resolved file holds every key, defaults included.
    assert yaml.safe_load(text)["train"]["lora"]["alpha"] == 32
