"""``medtune chat`` and ``medtune generate`` end to end on the tiny Gemma model, and their user errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from cli_checks import assert_option_refused, assert_user_error, run_cli
from transformers import AutoTokenizer

from medtune.data.chat_template import GEMMA_CHAT_TEMPLATE

PROMPTS = [
    {"id": "a", "prompt": "What lowers a fever?"},
    {"id": "b", "messages": [{"role": "user", "content": "My knee hurts when I climb stairs."}]},
    {"id": "c", "prompt": "Hi"},
]


@pytest.fixture(scope="module")
def chat_model_dir(tiny_gemma_dir, tmp_path_factory) -> Path:
    """A copy of the tiny Gemma model whose saved tokenizer carries the Gemma chat template."""
    folder = tmp_path_factory.mktemp("tiny-gemma-chat") / "model"
    shutil.copytree(tiny_gemma_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def invoke(*args: str, input: str | None = None):
    return run_cli(list(args), input=input)


def test_chat_answers_resets_and_exits(chat_model_dir):
    args = ["chat", "--model", str(chat_model_dir), "--temperature", "0", "--max-new-tokens", "5"]
    result = invoke(*args, input="hello\n/reset\nhi\n/exit\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("model> ") == 2
    assert "History cleared" in result.output
    assert result.output.rstrip().endswith("Bye.")
    # greedy: the same conversation gives the same transcript
    again = invoke(*args, input="hello\n/reset\nhi\n/exit\n")
    transcript = result.output.split("Type /help")[1]  # before it: loading bars and the random seed
    assert again.output.split("Type /help")[1] == transcript


def test_chat_ends_cleanly_at_end_of_input(chat_model_dir):
    result = invoke("chat", "--model", str(chat_model_dir), "--max-new-tokens", "3", "--seed", "1", input="hello\n")
    assert result.exit_code == 0, result.output
    assert "model> " in result.output and result.output.rstrip().endswith("Bye.")


def test_generate_writes_rows_then_resumes_without_regenerating(chat_model_dir, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PROMPTS), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    args = ["generate", "--model", str(chat_model_dir), "--data", str(data), "--out", str(out)]
    args += ["--temperature", "0.8", "--top-p", "0.9", "--max-new-tokens", "5", "--num-return-sequences", "2"]
    result = invoke(*args, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "3 prompts: 3 answered now, 0 skipped" in result.output and "tokens/s" in result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert all(len(r["outputs"]) == 2 and r["output"] == r["outputs"][0] for r in rows)
    assert rows[1]["messages"] == PROMPTS[1]["messages"] and rows[0]["prompt"] == "What lowers a fever?"
    assert rows[0]["params"]["model"] == str(chat_model_dir) and rows[0]["params"]["temperature"] == 0.8
    first = out.read_bytes()
    again = invoke(*args, "--batch-size", "3")
    assert again.exit_code == 0, again.output
    assert "Skipping 3 of 3 prompts" in again.output and "0 answered now, 3 skipped" in again.output
    assert out.read_bytes() == first


@pytest.mark.parametrize(
    ("rows", "options", "fragments"),
    [
        ([{"id": 1, "question": "?"}], [], ["prompts.jsonl:1", "no prompt", "columns found: id, question"]),
        ([{"id": 1, "prompt": "x"}], ["--temperature", "-1"], ["--temperature must be 0 (greedy) or more"]),
        ([{"id": 1, "prompt": "x"}], ["--top-p", "1.5"], ["--top-p must be in (0, 1]"]),
        ([{"id": 1, "prompt": "x"}], ["--data", "missing.jsonl"], ["Data file not found", "missing.jsonl"]),
    ],
)
def test_generate_bad_inputs_exit_2_with_a_clear_message(chat_model_dir, tmp_path, rows, options, fragments):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["generate", "--model", str(chat_model_dir), "--data", str(data), "--out", str(tmp_path / "out.jsonl")]
    assert_user_error(invoke(*args, *options), *fragments)


@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [
        ("--num-return-sequences", "0", "greater than or equal to 1"),
        ("--batch-size", "0", "greater than or equal to 1"),
        ("--max-new-tokens", "0", "greater than or equal to 1"),
        ("--seed", "-1", "greater than or equal to 0"),
    ],
)
def test_generate_numeric_options_out_of_range_exit_2(chat_model_dir, tmp_path, option, value, bound):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "x"}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["generate", "--model", str(chat_model_dir), "--data", str(data), "--out", str(out)]
    assert_option_refused(invoke(*args, option, value), option, bound)
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [("--max-new-tokens", "0", "greater than or equal to 1"), ("--max-context", "0", "greater than or equal to 1")],
)
def test_chat_numeric_options_out_of_range_exit_2(chat_model_dir, option, value, bound):
    assert_option_refused(invoke("chat", "--model", str(chat_model_dir), option, value, input="hi\n"), option, bound)


def test_generate_refuses_an_out_file_it_did_not_write_before_loading_the_model(tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "x"}) + "\n", encoding="utf-8")
    out = tmp_path / "results.json"
    out.write_bytes(b'{"accuracy": 0.91, "runs": [1, 2, 3]')
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    # the model does not exist: the answers file is refused before any model is looked for
    result = invoke("generate", "--model", str(tmp_path / "no-model"), "--data", str(data), "--out", str(out))
    assert_user_error(result, "results.json:1: not an answer row written by 'medtune generate'", "choose another --out")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_ctrl_c_during_generate_says_what_was_saved_and_the_same_command_resumes(chat_model_dir, tmp_path, monkeypatch):
    from medtune.generate import prompt_file

    prompts = [{"id": f"p{i}", "prompt": f"Question number {i}: what lowers a fever?"} for i in range(12)]
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompts), encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    args = ["generate", "--model", str(chat_model_dir), "--data", str(data), "--out", str(out)]
    args += ["--max-new-tokens", "24", "--batch-size", "1", "--temperature", "0"]
    answer_batch, calls = prompt_file._answer_batch, []

    def press_ctrl_c_in_the_second_batch(*a, **k):
        # A real SIGINT, as the terminal sends on Ctrl-C, delivered while the second batch is being
        # answered (a watcher thread racing the generation was flaky on a loaded CI machine).
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return answer_batch(*a, **k)

    monkeypatch.setattr(prompt_file, "_answer_batch", press_ctrl_c_in_the_second_batch)
    # Python's own Ctrl-C handler, whatever this process inherited (a shell's background job starts with
    # SIGINT ignored, and the signal would then never arrive).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupted = invoke(*args)
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(prompt_file, "_answer_batch", answer_batch)
    assert interrupted.exit_code == 130, interrupted.output
    saved = out.read_bytes().count(b"\n")
    assert 1 <= saved < 12
    message = " ".join(interrupted.output.split())
    assert f"Interrupted: {saved} of 12 prompts have their answers saved in {out}" in message
    assert "run the same command again" in message
    resumed = invoke(*args)
    assert resumed.exit_code == 0, resumed.output
    assert f"{12 - saved} answered now, {saved} skipped" in " ".join(resumed.output.split())
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        r["id"] for r in prompts
    ]


def test_a_model_without_a_chat_template_is_explained(tiny_gemma_dir, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "x"}) + "\n", encoding="utf-8")
    args = ["generate", "--model", str(tiny_gemma_dir), "--data", str(data), "--out", str(tmp_path / "o.jsonl")]
    assert_user_error(invoke(*args), "no chat template", "--no-chat")
    assert_user_error(invoke("chat", "--model", str(tiny_gemma_dir), input="hi\n"), "no chat template")


def test_chat_bad_options_and_unknown_model_exit_2(chat_model_dir):
    assert_user_error(invoke("chat", "--model", "no-such-model"), "Unknown model 'no-such-model'")
    result = invoke("chat", "--model", str(chat_model_dir), "--max-context", "100", "--max-new-tokens", "100")
    assert_user_error(result, "--max-context (100) must be larger than --max-new-tokens (100)")
