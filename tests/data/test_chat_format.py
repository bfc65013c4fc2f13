"""load_conversations: every layout becomes the same Conversation; every rule is located, counted, dropped or refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medtune.data.chat import Conversation, conversation_problem, conversations_from_records, load_conversations
from medtune.data.io import read_rows
from medtune.errors import MedtuneError

SYSTEM = {"role": "system", "content": "You are a careful physician."}
ASK = {"role": "user", "content": "I have a fever of 38.5 C. Should I worry?"}
REPLY = {"role": "assistant", "content": "Drink fluids and rest; see a doctor if it lasts over three days."}
GOOD = {"id": "c1", "messages": [SYSTEM, ASK, REPLY]}
GENMEDGPT = Path("/work/shared/data/chat/genmedgpt5k_synthetic.jsonl")


def _jsonl(tmp_path: Path, records: list[dict], name: str = "chat.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _csv(tmp_path: Path, header: list[str], rows: list[list[str]], name: str = "chat.csv") -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t" if name.endswith(".tsv") else ",")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _load(path: Path, **kwargs):
    return load_conversations(str(path), log=lambda _: None, **kwargs)


def test_messages_layout_keeps_roles_ids_origins_and_strips_contents(tmp_path):
    padded = {"role": "user", "content": "  Is a rash after amoxicillin an allergy?\n"}
    path = _jsonl(tmp_path, [GOOD, {"messages": [padded, REPLY]}])
    conversations, report = _load(path)
    assert conversations == [
        Conversation((SYSTEM, ASK, REPLY), "c1", f"{path}:1"),
        Conversation(
            ({"role": "user", "content": "Is a rash after amoxicillin an allergy?"}, REPLY), None, f"{path}:2"
        ),
    ]
    assert (report.total, report.kept, report.issues) == (2, 2, [])
    assert report.summary() == "conversations: 2 conversations, all valid"


def test_messages_as_json_text_in_csv_and_tsv(tmp_path):
    for name in ("chat.csv", "chat.tsv"):
        path = _csv(tmp_path, ["id", "messages"], [["7", json.dumps([ASK, REPLY])]], name)
        conversations, _ = _load(path)
        assert conversations == [Conversation((ASK, REPLY), "7", f"{path}:2")]


def test_sharegpt_layout_maps_from_value_roles(tmp_path):
    turns = [
        {"from": "system", "value": SYSTEM["content"]},
        {"from": "human", "value": ASK["content"]},
        {"from": "gpt", "value": REPLY["content"]},
        {"from": "User", "value": "And if it goes above 40 C?"},
        {"from": "model", "value": "Then seek care the same day."},
    ]
    path = _jsonl(tmp_path, [{"conversations": turns}])
    [conversation], _ = _load(path)
    assert [m["role"] for m in conversation.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert conversation.messages[3]["content"] == "And if it goes above 40 C?"


def test_instruction_layout_joins_input_to_the_instruction(tmp_path):
    records = [
        {"instruction": "Answer as a doctor.", "input": " I cough at night. ", "output": "Possibly reflux or asthma."},
        {"instruction": "What lowers LDL?", "input": "", "output": "Statins, diet and exercise."},
        {"instruction": "Name a loop diuretic.", "output": "Furosemide."},
    ]
    conversations, _ = _load(_jsonl(tmp_path, records))
    assert [c.messages for c in conversations] == [
        (
            {"role": "user", "content": "Answer as a doctor.\n\nI cough at night."},
            {"role": "assistant", "content": "Possibly reflux or asthma."},
        ),
        (
            {"role": "user", "content": "What lowers LDL?"},
            {"role": "assistant", "content": "Statins, diet and exercise."},
        ),
        ({"role": "user", "content": "Name a loop diuretic."}, {"role": "assistant", "content": "Furosemide."}),
    ]


def test_question_answer_layout_from_csv(tmp_path):
    path = _csv(tmp_path, ["question", "answer"], [["What is HbA1c?", "Average glucose over ~3 months."]])
    [conversation], _ = _load(path)
    assert conversation.messages == (
        {"role": "user", "content": "What is HbA1c?"},
        {"role": "assistant", "content": "Average glucose over ~3 months."},
    )
    assert conversation.origin == f"{path}:2"


def test_unknown_layout_lists_the_columns_found_and_the_accepted_layouts(tmp_path):
    path = _jsonl(tmp_path, [{"prompt": "Hi", "completion": "Hello"}])
    with pytest.raises(MedtuneError) as err:
        _load(path)
    message = str(err.value)
    assert "columns 'prompt', 'completion'" in message
    for layout in ("'messages'", "'conversations'", "'instruction' + 'output'", "'question' + 'answer'"):
        assert layout in message


@pytest.mark.parametrize(
    ("messages", "check", "detail"),
    [
        ([ASK, {"role": "doctor", "content": "Rest."}], "unknown_role", "message 2 has role 'doctor'"),
        ([ASK, {"role": "assistant", "content": "   "}], "empty_message", "message 2 (assistant) content is '   '"),
        ([ASK, {"role": "assistant", "content": None}], "empty_message", "message 2 (assistant) content is None"),
        ([ASK, {"role": "assistant", "content": 5}], "empty_message", "message 2 (assistant) content is 5"),
        ([ASK, REPLY, SYSTEM], "system_position", "message 3 is a system message"),
        ([SYSTEM, REPLY, ASK], "turn_order", "message 2 is 'assistant'; expected 'user'"),
        ([ASK, ASK, REPLY], "turn_order", "message 2 is 'user'; expected 'assistant'"),
        ([SYSTEM, ASK], "no_assistant", "2 message(s), roles system, user"),
        ([], "no_assistant", "0 message(s), roles none"),
        ([ASK, {"role": "assistant"}], "malformed", "messages item 2 is {'role': 'assistant'}"),
        ("not a list", "malformed", "'messages' is not valid JSON"),
        ({"role": "user"}, "malformed", "'messages' is {'role': 'user'}; expected a list"),
        ([SYSTEM, ASK, REPLY], "duplicate_row", repr(ASK["content"][:40])),
    ],
)
def test_each_rule_is_reported_at_its_line(tmp_path, messages, check, detail):
    path = _jsonl(tmp_path, [GOOD, {"messages": [ASK, REPLY]}, {"messages": messages}])
    conversations, report = _load(path)
    assert [c.origin for c in conversations] == [f"{path}:1", f"{path}:2"]
    assert [(i.origin, i.check) for i in report.issues] == [(f"{path}:3", check)]
    assert detail in report.issues[0].detail
    assert report.counts == {check: 1} and (report.total, report.kept) == (3, 2)


def test_checks_apply_in_order_and_name_the_first_broken_rule():
    # Unknown roles are reported before the turn order they also break.
    assert conversation_problem([("user", "Hi"), ("nurse", "Hello")]) == (
        "unknown_role",
        "message 2 has role 'nurse'; expected one of system, user, assistant",
    )
    assert conversation_problem([("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")]) is None


def test_sharegpt_unknown_speaker_is_an_unknown_role(tmp_path):
    good = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    bad = [{"from": "human", "value": "Hi again"}, {"from": "bot", "value": "Yo"}]
    path = _jsonl(tmp_path, [{"conversations": good}, {"conversations": bad}])
    conversations, report = _load(path)
    assert len(conversations) == 1
    assert [(i.origin, i.check, i.detail) for i in report.issues] == [
        (f"{path}:2", "unknown_role", "message 2 has role 'bot'; expected one of system, user, assistant")
    ]


def test_malformed_json_cell_in_csv_names_the_record_line(tmp_path):
    path = _csv(tmp_path, ["messages"], [[json.dumps([ASK, REPLY])], ["[{'role': 'user'}]"]])
    _, report = _load(path)
    assert [(i.origin, i.check) for i in report.issues] == [(f"{path}:3", "malformed")]
    assert report.issues[0].detail.startswith("'messages' is not valid JSON (")


def test_duplicate_ignores_surrounding_whitespace(tmp_path):
    padded = [SYSTEM, {"role": "user", "content": f" {ASK['content']} "}, REPLY]
    path = _jsonl(tmp_path, [GOOD, {"messages": padded}])
    _, report = _load(path)
    assert [(i.origin, i.check) for i in report.issues] == [(f"{path}:2", "duplicate_row")]


def test_trailing_user_turn_is_dropped_for_training_and_kept_for_prompting(tmp_path):
    follow_up = {"role": "user", "content": "Thanks. Can I take ibuprofen?"}
    path = _jsonl(tmp_path, [{"messages": [SYSTEM, ASK, REPLY, follow_up]}])
    logged: list[str] = []
    [trained], report = load_conversations(str(path), log=logged.append)
    assert trained.messages == (SYSTEM, ASK, REPLY)
    assert report.issues == [] and report.kept == 1
    assert (
        logged[-1] == "conversations: dropped the unanswered final user turn of 1 conversation(s) (nothing to learn)."
    )
    [prompt], _ = _load(path, for_training=False)
    assert prompt.messages == (SYSTEM, ASK, REPLY, follow_up)


def test_skip_reports_every_bad_row_and_fail_refuses_naming_file_and_line(tmp_path):
    records = [GOOD, {"messages": [ASK]}, {"messages": [ASK, {"role": "assistant", "content": ""}]}, GOOD]
    path = _jsonl(tmp_path, records)
    conversations, report = _load(path, name="train")
    assert len(conversations) == 1
    assert [(i.origin, i.check) for i in report.issues] == [
        (f"{path}:2", "no_assistant"),
        (f"{path}:3", "empty_message"),
        (f"{path}:4", "duplicate_row"),
    ]
    assert report.summary() == (
        "train: 4 conversations, 3 dropped (1 no assistant turn, 1 empty or non-string message content, "
        "1 exact duplicate of an earlier row)"
    )
    with pytest.raises(MedtuneError) as err:
        _load(path, on_bad_rows="fail", name="train")
    message = str(err.value)
    assert "Data set 'train' has 3 bad row(s)" in message
    assert f"{path}:2: no assistant turn (1 message(s), roles user)" in message
    assert "data.on_bad_rows=skip" in message


def test_nothing_valid_left_is_an_error(tmp_path):
    path = _jsonl(tmp_path, [{"messages": [ASK]}])
    with pytest.raises(MedtuneError, match="empty after validation"):
        _load(path)


def test_records_round_trip(tmp_path):
    conversations, _ = _load(_jsonl(tmp_path, [GOOD, {"messages": [ASK, REPLY]}]))
    records = json.loads(json.dumps([c.to_record() for c in conversations]))
    assert records[0] == {"id": "c1", "messages": [SYSTEM, ASK, REPLY], "origin": f"{tmp_path / 'chat.jsonl'}:1"}
    assert conversations_from_records(records) == conversations


def test_demo_dialogues_load_cleanly():
    conversations, report = load_conversations("demo:doctor_patient_dialogues.jsonl", log=lambda _: None)
    assert report.issues == []
    assert len(conversations) == len(read_rows("demo:doctor_patient_dialogues.jsonl")) == 164
    assert all(c.id and c.messages[-1]["role"] == "assistant" for c in conversations)


@pytest.mark.skipif(not GENMEDGPT.is_file(), reason="shared chat data not on this machine")
def test_genmedgpt_loads_with_no_row_dropped():
    conversations, report = load_conversations(str(GENMEDGPT), log=lambda _: None)
    assert (report.total, report.kept, report.issues) == (5452, 5452, [])
    assert {tuple(m["role"] for m in c.messages) for c in conversations} == {("system", "user", "assistant")}
