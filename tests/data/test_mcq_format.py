"""load_mcq: option layouts, answer forms, every rule located; the real QA files and the demo set load."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medtune.data.ids import text_id
from medtune.data.io import read_rows
from medtune.data.mcq import MCQItem, load_mcq, mcq_from_records
from medtune.errors import MedtuneError

OPTIONS = {"A": "Metformin", "B": "Insulin glargine", "C": "Gliclazide", "D": "Sitagliptin"}
GOOD = {"id": "q1", "question": "First-line drug for type 2 diabetes?", "options": OPTIONS, "answer": "A"}
MEDMCQA = Path("/work/shared/data/qa/medmcqa_dev.jsonl")
PUBMEDQA = Path("/work/shared/data/qa/pubmedqa_traincv500.jsonl")


def _jsonl(tmp_path: Path, records: list[dict], name: str = "mcq.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _csv(tmp_path: Path, header: list[str], rows: list[list], name: str = "mcq.csv") -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _load(path: Path, **kwargs):
    return load_mcq(str(path), log=lambda _: None, **kwargs)


def _question(n: int) -> dict:
    return {**GOOD, "id": f"q{n}", "question": f"Question number {n}?"}


def test_options_dict_keeps_every_field_and_strips_texts(tmp_path):
    record = {
        **GOOD,
        "question": " First-line drug for type 2 diabetes? ",
        "options": {"a": " Metformin", "b": "Insulin glargine "},
        "answer": "a",
        "context": "ADA guideline.",
        "subject_name": "Pharmacology",
        "explanation": "Metformin is first line.",
    }
    path = _jsonl(tmp_path, [record])
    [item], report = _load(path)
    assert item == MCQItem(
        id="q1",
        question="First-line drug for type 2 diabetes?",
        options={"A": "Metformin", "B": "Insulin glargine"},
        answer="A",
        context="ADA guideline.",
        subject="Pharmacology",
        explanation="Metformin is first line.",
        origin=f"{path}:1",
    )
    assert report.summary() == "mcq: 1 questions, all valid"


def test_options_list_become_letters_in_order_and_missing_id_is_a_hash_of_the_question(tmp_path):
    record = {
        "question": "Which is a beta blocker?",
        "options": ["Amlodipine", "Bisoprolol", "Ramipril"],
        "answer": "B",
    }
    path = _jsonl(tmp_path, [record])
    [item], _ = _load(path)
    assert item.options == {"A": "Amlodipine", "B": "Bisoprolol", "C": "Ramipril"}
    expected_id = text_id("Which is a beta blocker?", "A. Amlodipine", "B. Bisoprolol", "C. Ramipril")
    assert (item.answer, item.id, item.subject) == ("B", expected_id, None)


def test_options_as_json_text_in_csv(tmp_path):
    path = _csv(
        tmp_path,
        ["question", "options", "answer", "topic"],
        [
            ["Normal adult heart rate?", json.dumps({"A": "60-100", "B": "20-40"}), "(a)", "cardiology"],
            ["Normal respiratory rate?", json.dumps(["12-20", "40-60"]), "A.", "pulmonology"],
        ],
    )
    items, report = _load(path)
    assert [(i.options, i.answer, i.subject, i.origin) for i in items] == [
        ({"A": "60-100", "B": "20-40"}, "A", "cardiology", f"{path}:2"),
        ({"A": "12-20", "B": "40-60"}, "A", "pulmonology", f"{path}:3"),
    ]
    assert report.issues == []


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("C", "C"),
        ("c", "C"),
        (" c ", "C"),
        ("(c)", "C"),
        ("C.", "C"),
        ("C)", "C"),
        ("Gliclazide", "C"),
        (" Sitagliptin ", "D"),
    ],
)
def test_answer_forms(tmp_path, answer, letter):
    [item], _ = _load(_jsonl(tmp_path, [{**GOOD, "answer": answer}]))
    assert item.answer == letter


def test_medmcqa_raw_layout_with_one_based_cop(tmp_path):
    raw = {
        "question": "Vitamin deficient in scurvy?",
        "opa": "A",
        "opb": "B12",
        "opc": "C",
        "opd": "D",
        "exp": "Ascorbate.",
    }
    records = [{**raw, "cop": 3}, {**raw, "question": "Same options, letter answer?", "cop": "d"}]
    items, _ = _load(_jsonl(tmp_path, records))
    assert items[0].options == {"A": "A", "B": "B12", "C": "C", "D": "D"}
    assert [i.answer for i in items] == ["C", "D"]
    assert items[0].explanation == "Ascorbate."


def test_medmcqa_raw_layout_in_csv_with_a_blank_fifth_option(tmp_path):
    path = _csv(tmp_path, ["question", "opa", "opb", "opc", "opd", "ope", "cop"], [["Q?", "w", "x", "y", "z", "", "4"]])
    [item], _ = _load(path)
    assert (list(item.options), item.answer) == (["A", "B", "C", "D"], "D")


@pytest.mark.parametrize(
    ("change", "check", "detail"),
    [
        ({"question": "  "}, "empty_question", "question is '  '"),
        ({"question": None}, "empty_question", "question is None"),
        ({"options": {"A": "Metformin"}}, "too_few_options", "1 option(s): A"),
        ({"options": []}, "too_few_options", "0 option(s): none"),
        ({"options": {"A": "Metformin", "B": ""}}, "empty_option", "option B is ''"),
        ({"options": ["Metformin", None]}, "empty_option", "option B is None"),
        ({"answer": "E"}, "bad_answer", "answer 'E' is not one of the options A, B, C, D"),
        ({"answer": "(e)"}, "bad_answer", "answer 'E' is not one of the options A, B, C, D"),
        ({"answer": "Aspirin"}, "bad_answer", "answer 'Aspirin' is neither an option letter nor an option's text"),
        ({"answer": ""}, "bad_answer", "answer is ''; expected one of the options A, B, C, D"),
        ({"options": "{A: x}"}, "malformed", "'options' is not valid JSON"),
        ({"options": {"1": "x", "2": "y"}}, "malformed", "option keys '1', '2' are not letters A-Z"),
        ({"options": 3}, "malformed", "'options' is int; expected {letter: text} or a list"),
        ({"id": "other"}, "duplicate_row", "'Question number 2?'"),
    ],
)
def test_each_rule_is_reported_at_its_line(tmp_path, change, check, detail):
    path = _jsonl(tmp_path, [_question(1), _question(2), {**_question(2), **change}])
    items, report = _load(path)
    assert [i.id for i in items] == ["q1", "q2"]
    assert [(i.origin, i.check) for i in report.issues] == [(f"{path}:3", check)]
    assert report.issues[0].detail.startswith(detail)
    assert report.counts == {check: 1} and (report.total, report.kept) == (3, 2)


def test_cop_out_of_range_names_the_number(tmp_path):
    raw = {"question": "Q?", "opa": "w", "opb": "x", "opc": "y", "opd": "z"}
    path = _jsonl(tmp_path, [{**raw, "cop": 1}, {**raw, "question": "R?", "cop": 0}])
    _, report = _load(path)
    assert [(i.origin, i.check, i.detail) for i in report.issues] == [
        (f"{path}:2", "bad_answer", "cop 0 is not an option number 1-4 (1-based)")
    ]


def test_duplicate_needs_same_question_and_options(tmp_path):
    other_options = {**_question(1), "options": {**OPTIONS, "D": "Empagliflozin"}}
    items, report = _load(_jsonl(tmp_path, [_question(1), other_options]))
    assert len(items) == 2 and report.issues == []


def test_skip_counts_and_fail_refuses_naming_file_and_line(tmp_path):
    path = _jsonl(tmp_path, [_question(1), {**_question(2), "answer": "F"}, _question(1)])
    items, report = _load(path, name="eval")
    assert len(items) == 1
    assert report.summary() == (
        "eval: 3 questions, 2 dropped (1 answer is not one of the options, 1 exact duplicate of an earlier row)"
    )
    with pytest.raises(MedtuneError) as err:
        _load(path, on_bad_rows="fail", name="eval")
    assert f"{path}:2: answer is not one of the options (answer 'F' is not one of the options A, B, C, D)" in str(
        err.value
    )


def test_missing_columns_list_found_columns_and_layouts(tmp_path):
    with pytest.raises(MedtuneError) as err:
        _load(_jsonl(tmp_path, [{"question": "Q?", "choices": ["a", "b"], "label": 0}]))
    message = str(err.value)
    assert "columns 'question', 'choices', 'label'" in message
    assert "'question' + 'options'" in message and "'opa'/'opb'/'opc'/'opd' + 'cop'" in message


def test_records_round_trip(tmp_path):
    items, _ = _load(_jsonl(tmp_path, [_question(1), {**_question(2), "context": "Abstract."}]))
    records = json.loads(json.dumps([i.to_record() for i in items]))
    assert records[1]["context"] == "Abstract." and records[1]["options"] == OPTIONS
    assert mcq_from_records(records) == items


def test_demo_mcq_loads_cleanly():
    items, report = load_mcq("demo:medical_mcq.jsonl", log=lambda _: None)
    assert report.issues == [] and len(items) == len(read_rows("demo:medical_mcq.jsonl")) == 176
    assert all(i.subject and i.explanation and list(i.options) == ["A", "B", "C", "D"] for i in items)


@pytest.mark.skipif(not MEDMCQA.is_file() or not PUBMEDQA.is_file(), reason="shared QA data not on this machine")
def test_shared_benchmark_files_load():
    medmcqa, report = load_mcq(str(MEDMCQA), log=lambda _: None)
    assert (len(medmcqa), report.issues) == (2816, [])
    pubmedqa, report = load_mcq(str(PUBMEDQA), log=lambda _: None)
    assert (len(pubmedqa), report.issues) == (500, [])
    assert all(len(i.options) == 3 and i.context for i in pubmedqa)
    assert len({i.id for i in pubmedqa}) == 500  # no id column: hashes of question + options, all distinct
