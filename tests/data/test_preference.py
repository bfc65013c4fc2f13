"""Preference files: both layouts, stable ids, and bad rows reported with their file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.data.ids import text_id
from medtune.data.preference import PreferencePair, load_preference_pairs, pairs_from_records
from medtune.errors import MedtuneError

QUESTION = "What is the first-line treatment of anaphylaxis?"
GOOD = "Intramuscular adrenaline."
BAD = "An oral antihistamine."


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_standard_layout_with_scores_and_ids(tmp_path):
    spec = _jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "id": "q1",
                "prompt": f" {QUESTION} ",
                "chosen": GOOD,
                "rejected": BAD,
                "chosen_score": 0.9,
                "rejected_score": 0.2,
            },
            {"prompt": "Translate: fever", "chosen": "fiebre", "rejected": "fiebra"},
        ],
    )
    pairs, report = load_preference_pairs(spec, log=lambda _: None)
    assert report.total == 2 and report.kept == 2 and not report.issues
    first, second = pairs
    assert first == PreferencePair("q1", QUESTION, GOOD, BAD, 0.9, 0.2, f"{spec}:1")
    # no id in the row: the hash of (prompt as JSON, chosen, rejected), the same on every machine
    assert second.id == text_id(json.dumps("Translate: fever"), "fiebre", "fiebra")
    assert second.chosen_score is None and second.origin == f"{spec}:2"


def test_messages_layout_shared_turns_become_the_prompt(tmp_path):
    system = {"role": "system", "content": "You are a careful physician."}
    user = {"role": "user", "content": QUESTION}
    spec = _jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "chosen": [system, user, {"role": "assistant", "content": GOOD}],
                "rejected": [system, user, {"role": "assistant", "content": BAD}],
            }
        ],
    )
    (pair,), _ = load_preference_pairs(spec, log=lambda _: None)
    assert pair.prompt == [system, user]
    assert (pair.chosen, pair.rejected) == (GOOD, BAD)


def test_conversational_prompt_with_one_message_answers(tmp_path):
    """TRL's conversational layout: prompt messages, answers as one-assistant-message lists."""
    user = {"role": "user", "content": QUESTION}
    spec = _jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "prompt": [user],
                "chosen": [{"role": "assistant", "content": GOOD}],
                "rejected": [{"role": "assistant", "content": BAD}],
            }
        ],
    )
    (pair,), _ = load_preference_pairs(spec, log=lambda _: None)
    assert (pair.prompt, pair.chosen, pair.rejected) == ([user], GOOD, BAD)


def test_csv_with_json_message_cells(tmp_path):
    import csv

    path = tmp_path / "pairs.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "chosen", "rejected", "chosen_score", "rejected_score"])
        writer.writerow([json.dumps([{"role": "user", "content": QUESTION}]), GOOD, BAD, "1", ""])
        writer.writerow(["plain prompt, with a comma", "yes", "no", "0.5", "0.25"])
    pairs, _ = load_preference_pairs(str(path), log=lambda _: None)
    assert pairs[0].prompt == [{"role": "user", "content": QUESTION}]
    assert (pairs[0].chosen_score, pairs[0].rejected_score) == (1.0, None)
    assert (pairs[1].prompt, pairs[1].chosen_score, pairs[1].rejected_score) == (
        "plain prompt, with a comma",
        0.5,
        0.25,
    )


def test_bad_rows_are_located_and_skipped(tmp_path):
    user = {"role": "user", "content": QUESTION}
    spec = _jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": QUESTION, "chosen": GOOD, "rejected": BAD},  # 1: good
            {"prompt": QUESTION, "chosen": "", "rejected": BAD},  # 2: empty chosen
            {"chosen": GOOD, "rejected": BAD},  # 3: no prompt, answers are texts
            {"prompt": QUESTION, "chosen": GOOD, "rejected": f" {GOOD} "},  # 4: identical once stripped
            {"prompt": QUESTION, "chosen": GOOD, "rejected": BAD},  # 5: duplicate of 1
            {"prompt": QUESTION, "chosen": GOOD, "rejected": "x", "chosen_score": "high"},  # 6: bad score
            {  # 7: conversations that differ before the answer
                "chosen": [user, {"role": "assistant", "content": GOOD}],
                "rejected": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": BAD}],
            },
            {"prompt": [user, {"role": "assistant", "content": GOOD}], "chosen": GOOD, "rejected": BAD},  # 8
            {"prompt": [{"role": "doctor", "content": QUESTION}], "chosen": GOOD, "rejected": BAD},  # 9
        ],
    )
    pairs, report = load_preference_pairs(spec, log=lambda _: None)
    assert [p.origin for p in pairs] == [f"{spec}:1"]
    found = {(issue.origin.rsplit(":", 1)[1], issue.check) for issue in report.issues}
    assert found == {
        ("2", "empty_field"),
        ("3", "empty_field"),
        ("4", "same_answers"),
        ("5", "duplicate_row"),
        ("6", "bad_score"),
        ("7", "malformed"),
        ("8", "malformed"),
        ("9", "unknown_role"),
    }
    details = {issue.origin.rsplit(":", 1)[1]: issue.detail for issue in report.issues}
    assert "'chosen'" in details["2"] and "'prompt' is missing" in details["3"]
    assert "message 1" in details["7"] and "'chosen_score'" in details["6"]
    assert report.summary().startswith("train: 9 pairs, 8 dropped")


def test_fail_policy_names_file_line_and_field(tmp_path):
    spec = _jsonl(
        tmp_path / "pairs.jsonl",
        [{"prompt": QUESTION, "chosen": GOOD, "rejected": BAD}, {"prompt": QUESTION, "chosen": GOOD, "rejected": None}],
    )
    with pytest.raises(MedtuneError) as error:
        load_preference_pairs(spec, on_bad_rows="fail", log=lambda _: None)
    message = str(error.value)
    assert f"{spec}:2" in message and "'rejected' is missing" in message and "data.on_bad_rows=skip" in message


def test_missing_columns_are_named(tmp_path):
    spec = _jsonl(tmp_path / "pairs.jsonl", [{"prompt": QUESTION, "good": GOOD, "bad": BAD}])
    with pytest.raises(MedtuneError, match="'chosen', 'rejected' not found.*'good', 'bad'"):
        load_preference_pairs(spec, log=lambda _: None)


def test_records_round_trip(tmp_path):
    spec = _jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": [{"role": "user", "content": QUESTION}], "chosen": GOOD, "rejected": BAD, "rejected_score": 0.0},
            {"id": 7, "prompt": "p", "chosen": "a", "rejected": "b"},
        ],
    )
    pairs, _ = load_preference_pairs(spec, log=lambda _: None)
    assert pairs[1].id == "7"
    assert pairs_from_records(json.loads(json.dumps([p.to_record() for p in pairs]))) == pairs
    # a file written from the records loads back to the same pairs (ids and scores kept)
    again, _ = load_preference_pairs(_jsonl(tmp_path / "again.jsonl", [p.to_record() for p in pairs]), log=print)
    assert [(p.id, p.prompt, p.chosen, p.rejected, p.rejected_score) for p in again] == [
        (p.id, p.prompt, p.chosen, p.rejected, p.rejected_score) for p in pairs
    ]
