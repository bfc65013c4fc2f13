"""Prompt items from multiple-choice questions, free-text QA rows and translation pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.data.ids import text_id
from medtune.data.io import read_rows
from medtune.data.mcq import MCQItem
from medtune.data.parallel import Pair
from medtune.data.prompts import mcq_to_messages
from medtune.errors import MedtuneError
from medtune.rlaif.prompt_items import PromptItem, prompt_items_from_mcq, prompt_items_from_pairs, prompt_items_from_qa

ITEM = MCQItem("q1", "First-line drug for type 2 diabetes?", {"A": "Metformin", "B": "Insulin"}, "A")


def test_mcq_prompts_are_the_training_messages_without_the_answer():
    [item] = prompt_items_from_mcq([ITEM], system="You are a careful physician.")
    assert item == PromptItem("q1", mcq_to_messages(ITEM, "You are a careful physician.")[:2], gold="A")
    assert [m["role"] for m in item.prompt] == ["system", "user"]
    assert item.prompt[1]["content"] == (
        "Question: First-line drug for type 2 diabetes?\nA. Metformin\nB. Insulin\n"
        "Answer with the letter of the correct option."
    )
    assert [m["role"] for m in prompt_items_from_mcq([ITEM])[0].prompt] == ["user"]


def test_pair_prompts_keep_own_ids_else_hash_the_source():
    pairs = [
        Pair("Take one tablet.", "Tome un comprimido.", id="p7"),
        Pair("Rest.", "Descanse."),
        Pair("Rest.", "Repose."),
    ]
    items = prompt_items_from_pairs(pairs)
    assert [i.id for i in items] == ["p7", text_id("Rest."), f"{text_id('Rest.')}~2"]
    assert items[1] == PromptItem(text_id("Rest."), "Rest.", reference="Descanse.")


def _rows(tmp_path: Path, records: list[dict]):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return read_rows(str(path))


PUBMED_LIKE = {
    "question": " Does aspirin lower fever? ",
    "context": "BACKGROUND: a trial.",
    "long_answer": "Yes, aspirin lowers fever. ",
    "pmid": "123",
}


def test_qa_prompts_ask_the_question_with_its_context_and_keep_the_reference(tmp_path):
    rows = _rows(tmp_path, [PUBMED_LIKE, PUBMED_LIKE | {"id": "own", "key_points": ["aspirin", " fever "]}])
    items = prompt_items_from_qa(rows, "question", "long_answer", context_col="context", system="Be brief.")
    assert items[0] == PromptItem(
        text_id("Does aspirin lower fever?", "BACKGROUND: a trial."),
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Context: BACKGROUND: a trial.\n\nQuestion: Does aspirin lower fever?"},
        ],
        reference="Yes, aspirin lowers fever.",
    )
    assert items[1].id == "own" and items[1].key_points == ("aspirin", "fever")
    no_context = prompt_items_from_qa(rows, "question", "long_answer", id_col="pmid")
    assert no_context[0].id == "123" and no_context[0].prompt == [
        {"role": "user", "content": "Question: Does aspirin lower fever?"}
    ]


def test_qa_rows_without_question_or_reference_are_located(tmp_path):
    rows = _rows(tmp_path, [PUBMED_LIKE, PUBMED_LIKE | {"long_answer": " "}, PUBMED_LIKE | {"question": None}])
    logged: list[str] = []
    items = prompt_items_from_qa(rows, "question", "long_answer", log=logged.append)
    assert len(items) == 1 and "2 dropped" in logged[0]
    with pytest.raises(MedtuneError, match=r"qa.jsonl:2: empty or non-string text \(reference column 'long_answer'\)"):
        prompt_items_from_qa(rows, "question", "long_answer", on_bad_rows="fail")


def test_qa_missing_column_lists_the_columns_found(tmp_path):
    rows = _rows(tmp_path, [PUBMED_LIKE])
    with pytest.raises(MedtuneError, match="'answer' not found. Columns found: 'question', 'context', 'long_answer'"):
        prompt_items_from_qa(rows, "question", "answer")
