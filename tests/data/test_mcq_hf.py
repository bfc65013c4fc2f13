"""``hf:`` multiple-choice data: class-label answers are read through the dataset's own label names.

Each dataset is built here with ``datasets`` and written with ``save_to_disk``, then read through the
same ``hf:<dataset>[:split]`` spec (and the same row conversion) as a hub dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

from medtune.data.io import read_rows
from medtune.data.mcq import load_mcq
from medtune.errors import MedtuneError

RAW_FEATURES = {"id": Value("string"), "question": Value("string")} | {
    column: Value("string") for column in ("opa", "opb", "opc", "opd")
}


def _saved(tmp_path: Path, columns: dict, features: dict, split: str | None = None) -> str:
    """Save a dataset built from ``columns`` and return its ``hf:`` spec."""
    dataset = Dataset.from_dict(columns, features=Features(features))
    folder = tmp_path / "saved"
    (DatasetDict({split: dataset}) if split else dataset).save_to_disk(str(folder))
    return f"hf:{folder}"


def _medmcqa_columns(cops: list[int]) -> dict:
    """MedMCQA's hub layout: four option columns and a class-label ``cop``, one question per answer."""
    n = len(cops)
    return {
        "id": [f"q{i}" for i in range(n)],
        "question": [f"Question {i}?" for i in range(n)],
        "opa": [f"first {i}" for i in range(n)],
        "opb": [f"second {i}" for i in range(n)],
        "opc": [f"third {i}" for i in range(n)],
        "opd": [f"fourth {i}" for i in range(n)],
        "cop": cops,
    }


def test_medmcqa_class_label_cop_zero_is_option_a(tmp_path):
    # The hub MedMCQA stores cop as ClassLabel(names=["a", "b", "c", "d"]): class 0 is option A.
    cops = [0, 1, 2, 3, 0, 3]
    spec = _saved(tmp_path, _medmcqa_columns(cops), RAW_FEATURES | {"cop": ClassLabel(names=["a", "b", "c", "d"])})
    items, report = load_mcq(spec, log=lambda _: None)
    assert report.issues == []  # cop=0 rows are kept, not dropped as "not 1-4"
    assert [(i.id, i.answer) for i in items] == [
        ("q0", "A"),
        ("q1", "B"),
        ("q2", "C"),
        ("q3", "D"),
        ("q4", "A"),
        ("q5", "D"),
    ]
    assert items[0].options == {"A": "first 0", "B": "second 0", "C": "third 0", "D": "fourth 0"}
    assert items[3].origin == f"{spec}[3]"


@pytest.mark.parametrize(
    ("names", "letters"),
    [
        (["A", "B", "C", "D"], ["C", "A", "D"]),  # capital letters
        (["opa", "opb", "opc", "opd"], ["C", "A", "D"]),  # the option columns themselves
        (["1", "2", "3", "4"], ["C", "A", "D"]),  # numbers: class i is option i whatever their base
        (["0", "1", "2", "3"], ["C", "A", "D"]),
        (["d", "c", "b", "a"], ["B", "D", "A"]),  # names out of order: the name decides, not the index
    ],
)
def test_cop_label_names_decide_the_option(tmp_path, names, letters):
    spec = _saved(tmp_path, _medmcqa_columns([2, 0, 3]), RAW_FEATURES | {"cop": ClassLabel(names=names)})
    items, report = load_mcq(spec, log=lambda _: None)
    assert report.issues == []
    assert [i.answer for i in items] == letters


def test_answer_class_label_with_option_texts_as_names(tmp_path):
    # PubMedQA-like: options are a list, the answer a class label named by the options' own texts.
    columns = {
        "question": ["Does it work?", "Is it safe?", "Is it cheap?"],
        "options": [["yes", "no", "maybe"]] * 3,
        "answer": [1, 2, 0],
    }
    features = {
        "question": Value("string"),
        "options": Sequence(Value("string")),
        "answer": ClassLabel(names=["maybe", "yes", "no"]),
    }
    items, report = load_mcq(_saved(tmp_path, columns, features), log=lambda _: None)
    assert report.issues == []
    assert [(i.options[i.answer], i.answer) for i in items] == [("yes", "A"), ("no", "B"), ("maybe", "C")]


def test_missing_class_label_is_a_bad_answer(tmp_path):
    spec = _saved(tmp_path, _medmcqa_columns([1, -1]), RAW_FEATURES | {"cop": ClassLabel(names=["a", "b", "c", "d"])})
    items, report = load_mcq(spec, log=lambda _: None)
    assert [i.answer for i in items] == ["B"]
    assert [(issue.origin, issue.check) for issue in report.issues] == [(f"{spec}[1]", "bad_answer")]
    assert "missing" in report.issues[0].detail


def test_class_label_rows_hold_the_names_and_keep_the_order(tmp_path):
    columns = {"text": ["fever", "cough", "rash"], "label": [2, 0, 1]}
    features = {"text": Value("string"), "label": ClassLabel(names=["cardio", "neuro", "derm"])}
    spec = _saved(tmp_path, columns, features, split="validation")
    rows = read_rows(f"{spec}:validation")
    assert [r.fields["label"] for r in rows] == ["derm", "cardio", "neuro"]
    assert rows[0].class_labels == {"label": ["cardio", "neuro", "derm"]}
    assert [r.origin for r in rows] == [f"{spec}[0]", f"{spec}[1]", f"{spec}[2]"]


def test_saved_dataset_without_the_split_names_the_splits(tmp_path):
    spec = _saved(tmp_path, {"text": ["a"]}, {"text": Value("string")}, split="validation")
    with pytest.raises(MedtuneError, match="no split 'train'; the saved dataset has validation"):
        read_rows(spec)
