"""Generation over a prompts file on the tiny Gemma model: rows, reproducibility, resuming, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from medtune.data.chat_template import GEMMA_CHAT_TEMPLATE, render_chat_prompt
from medtune.errors import MedtuneError
from medtune.generate.engine import SamplingSettings
from medtune.generate.prompt_file import (
    check_answers_path,
    generate_prompt_file,
    read_prompt_rows,
    repair_and_read_answers,
)
from medtune.models.loading import load_model

SAMPLED = SamplingSettings(max_new_tokens=6, temperature=0.9, top_p=0.95)
ROWS = [
    {"id": "q1", "prompt": "What lowers a fever?"},
    {"id": "q2", "prompt": "Is ibuprofen safe with food?"},
    {
        "id": "q3",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "My ankle is swollen."},
            {"role": "assistant", "content": "Rest and ice it."},  # the reference, not part of the prompt
        ],
    },
    {"id": "q4", "prompt": "Hi"},
    {"id": "q5", "messages": [{"role": "user", "content": "How much water should I drink each day?"}]},
]


@pytest.fixture(scope="module")
def chat_model(tiny_gemma_dir):
    """The tiny Gemma model with a fresh tokenizer carrying the Gemma chat template, in float32: in
    bfloat16 another batch's padding changes the logits' rounding (by ~0.002 here), which can move a
    sampled token to its neighbour, so batch independence is exact only in float32."""
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    loaded.tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return loaded


def write_rows(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run(chat_model, data: str, out: Path, settings=SAMPLED, logs: list[str] | None = None, **kwargs):
    kwargs.setdefault("num_return_sequences", 2)
    kwargs.setdefault("batch_size", 2)
    return generate_prompt_file(
        chat_model.model,
        chat_model.tokenizer,
        read_prompt_rows(data),
        out,
        settings,
        model_name="tiny",
        log=(logs if logs is not None else []).append,
        progress=False,
        **kwargs,
    )


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def reference(chat_model, tmp_path_factory) -> tuple[str, bytes]:
    """The prompts file and the answers of one uninterrupted run."""
    folder = tmp_path_factory.mktemp("prompt-file")
    data = write_rows(folder / "prompts.jsonl", ROWS)
    out = folder / "answers.jsonl"
    summary = run(chat_model, data, out)
    assert (summary.prompts, summary.skipped, summary.generated) == (5, 0, 5)
    assert 0 < summary.new_tokens <= 5 * 2 * SAMPLED.max_new_tokens
    return data, out.read_bytes()


def test_one_row_per_prompt_in_input_order_with_all_samples(reference):
    _, written = reference
    rows = [json.loads(line) for line in written.decode().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4", "q5"]
    for row in rows:
        assert len(row["outputs"]) == 2 and row["output"] == row["outputs"][0]
        assert row["params"] == {
            "model": "tiny",
            "chat": True,
            "system": None,
            "temperature": 0.9,
            "top_p": 0.95,
            "max_new_tokens": 6,
            "num_return_sequences": 2,
            "seed": 42,
        }
    assert rows[0]["prompt"] == "What lowers a fever?" and "messages" not in rows[0]
    assert rows[2]["messages"] == ROWS[2]["messages"][:2] and rows[2]["reference"] == "Rest and ice it."
    assert "reference" not in rows[4]
    assert rows[0]["outputs"][0] != rows[0]["outputs"][1]  # two samples, two seeds


def test_same_seed_same_outputs_whatever_the_batch_size(chat_model, reference, tmp_path):
    data, written = reference
    run(chat_model, data, tmp_path / "one_by_one.jsonl", batch_size=1)
    run(chat_model, data, tmp_path / "all_at_once.jsonl", batch_size=8)
    assert (tmp_path / "one_by_one.jsonl").read_bytes() == written
    assert (tmp_path / "all_at_once.jsonl").read_bytes() == written
    run(chat_model, data, tmp_path / "other_seed.jsonl", seed=43)
    other = read_out(tmp_path / "other_seed.jsonl")
    assert [r["outputs"] for r in other] != [json.loads(line)["outputs"] for line in written.decode().splitlines()]


def test_resume_after_a_partial_run_skips_answered_ids_and_ends_with_the_same_file(chat_model, reference, tmp_path):
    data, written = reference
    out = tmp_path / "answers.jsonl"
    run(chat_model, write_rows(tmp_path / "first_two.jsonl", [ROWS[3], ROWS[1]]), out)
    logs: list[str] = []
    summary = run(chat_model, data, out, logs=logs)
    assert (summary.skipped, summary.generated) == (2, 3)
    assert "Skipping 2 of 5 prompts" in logs[0]
    assert out.read_bytes() == written


def test_resume_after_a_crash_mid_line_rewrites_the_half_line(chat_model, reference, tmp_path):
    data, written = reference
    lines = written.split(b"\n")
    out = tmp_path / "answers.jsonl"
    out.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][: len(lines[2]) // 2])
    logs: list[str] = []
    summary = run(chat_model, data, out, logs=logs)
    assert summary.repaired_partial_line and (summary.skipped, summary.generated) == (2, 3)
    assert "half-written last line" in logs[0]
    assert out.read_bytes() == written


def test_a_complete_last_row_without_its_line_break_is_kept(chat_model, reference, tmp_path):
    data, written = reference
    out = tmp_path / "answers.jsonl"
    out.write_bytes(b"\n".join(written.split(b"\n")[:3]))
    summary = run(chat_model, data, out)
    assert not summary.repaired_partial_line and (summary.skipped, summary.generated) == (3, 2)
    assert out.read_bytes() == written


def test_greedy_equals_temperature_zero_and_near_zero_temperature_sampling(chat_model, tmp_path):
    data = write_rows(tmp_path / "p.jsonl", ROWS[:2])
    greedy = SamplingSettings(max_new_tokens=6, temperature=0.0)
    run(chat_model, data, tmp_path / "t0.jsonl", settings=greedy, num_return_sequences=1)
    cold = SamplingSettings(max_new_tokens=6, temperature=1e-6)
    run(chat_model, data, tmp_path / "cold.jsonl", settings=cold, num_return_sequences=1)
    tok = chat_model.tokenizer
    expected = []
    for row in ROWS[:2]:  # transformers' own greedy decoding, one prompt at a time
        text = render_chat_prompt(tok, [{"role": "user", "content": row["prompt"]}])
        enc = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            ids = chat_model.model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        new = [t for t in ids[0, enc["input_ids"].shape[1] :].tolist() if t != tok.eos_token_id]
        expected.append(tok.decode(new, skip_special_tokens=True).strip())
    assert [r["output"] for r in read_out(tmp_path / "t0.jsonl")] == expected
    assert [r["output"] for r in read_out(tmp_path / "cold.jsonl")] == expected


def test_raw_prompts_without_chat_and_row_numbers_as_ids(chat_model, tmp_path):
    data = tmp_path / "raw.csv"
    data.write_text('prompt\n"English: Drink water.\nSpanish:"\nHello\n', encoding="utf-8")
    out = tmp_path / "raw.jsonl"
    run(chat_model, str(data), out, chat=False, settings=SamplingSettings(max_new_tokens=4))
    rows = read_out(out)
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["prompt"] == "English: Drink water.\nSpanish:" and rows[0]["params"]["chat"] is False


def test_resuming_with_other_settings_is_refused(chat_model, reference, tmp_path):
    data, written = reference
    out = tmp_path / "answers.jsonl"
    out.write_bytes(written)
    with pytest.raises(MedtuneError, match=r"temperature=0\.9.*temperature=0\.5"):
        run(chat_model, data, out, settings=SamplingSettings(max_new_tokens=6, temperature=0.5, top_p=0.95))


def test_a_broken_line_in_the_middle_of_the_answers_names_the_line(reference, tmp_path):
    _, written = reference
    lines = written.split(b"\n")
    out = tmp_path / "answers.jsonl"
    out.write_bytes(lines[0] + b"\nnot json\n" + lines[1] + b"\n")
    before = out.read_bytes()
    with pytest.raises(MedtuneError, match=r"answers\.jsonl:2: not an answer row written by 'medtune generate'"):
        repair_and_read_answers(out)
    assert out.read_bytes() == before


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("results.json", b'{"accuracy": 0.91, "runs": [1, 2, 3]', 1),  # JSON, no final line break
        ("results.json", b'{\n  "accuracy": 0.91\n}\n', 1),  # pretty-printed JSON
        ("notes.txt", b"Call the lab on Monday.\nAsk about the CBC.", 1),
        ("notes.txt", b"one line, no line break", 1),
        ("other.jsonl", b'{"id": 7, "text": "a row of another tool"}\n{"id": 8, "text": "b"}\n', 1),
        ("other.jsonl", b'{"id": 7, "text": "one row of another tool, no line break"}', 1),
    ],
)
def test_a_file_medtune_did_not_write_is_refused_and_left_byte_identical(
    chat_model, reference, tmp_path, name, content, line
):
    data, _ = reference
    out = tmp_path / name
    out.write_bytes(content)
    digest = sha256(out)
    expected = rf"{name}:{line}: not an answer row written by 'medtune generate'.*choose another --out"
    with pytest.raises(MedtuneError, match=expected):
        check_answers_path(data, out)  # what the CLI calls before loading the model
    with pytest.raises(MedtuneError, match=expected):
        run(chat_model, data, out)
    assert sha256(out) == digest


def test_answers_after_a_medtune_row_are_still_checked(chat_model, reference, tmp_path):
    data, written = reference
    out = tmp_path / "answers.jsonl"
    out.write_bytes(written.split(b"\n")[0] + b"\nmy own note at the end")
    digest = sha256(out)
    with pytest.raises(MedtuneError, match=r"answers\.jsonl:2: not an answer row"):
        run(chat_model, data, out)
    assert sha256(out) == digest


def test_an_empty_file_and_a_row_cut_right_after_its_start_are_resumed(chat_model, reference, tmp_path):
    data, written = reference
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert run(chat_model, data, empty).generated == 5 and empty.read_bytes() == written
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b'{"i')  # a crash a few bytes into the first row
    summary = run(chat_model, data, cut)
    assert summary.repaired_partial_line and summary.generated == 5 and cut.read_bytes() == written


def test_a_folder_as_out_is_refused(reference, tmp_path):
    data, _ = reference
    with pytest.raises(MedtuneError, match=r"is a folder; give a file for the answers"):
        check_answers_path(data, tmp_path)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"id": 1, "prompt": "ok"}, {"id": 2, "question": "?"}],
            r"p\.jsonl:2: no prompt.*columns found: id, question",
        ),
        ([{"id": 1, "prompt": "a"}, {"id": 1, "prompt": "b"}], r"p\.jsonl:2: id 1 was already used at .*p\.jsonl:1"),
        ([{"id": 1, "prompt": "a"}, {"prompt": "b"}], r"p\.jsonl:2: missing or unusable id in column 'id'"),
        ([{"id": 1, "messages": [{"role": "doctor", "content": "x"}]}], r"p\.jsonl:1: messages\[0\]"),
        ([{"id": 1, "messages": [{"role": "system", "content": "x"}]}], r"p\.jsonl:1: .*must end with a user turn"),
    ],
)
def test_bad_prompt_rows_name_the_line(tmp_path, rows, message):
    with pytest.raises(MedtuneError, match=message):
        read_prompt_rows(write_rows(tmp_path / "p.jsonl", rows))


def test_messages_rows_need_the_chat_template(chat_model, tmp_path):
    data = write_rows(tmp_path / "p.jsonl", [ROWS[4]])
    with pytest.raises(MedtuneError, match=r"p\.jsonl:1: a 'messages' row needs the chat template"):
        run(chat_model, data, tmp_path / "out.jsonl", chat=False)


def test_bad_options_are_refused(chat_model, tmp_path):
    data = write_rows(tmp_path / "p.jsonl", ROWS[:1])
    with pytest.raises(MedtuneError, match="--num-return-sequences"):
        run(chat_model, data, tmp_path / "out.jsonl", num_return_sequences=0)
    with pytest.raises(MedtuneError, match="is the prompts file itself"):
        check_answers_path(data, Path(data))
    with pytest.raises(MedtuneError, match="--top-p"):
        SamplingSettings(top_p=0.0)
