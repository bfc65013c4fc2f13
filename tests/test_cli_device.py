"""``--device`` / ``--dtype`` on ``eval``, ``generate`` and ``chat``: what they do, and their user errors."""

from __future__ import annotations

import json

import pytest
import torch
from cli_checks import assert_user_error, run_cli

from medtune.models import device as dev

PAIRS = [
    {"en": "Take one tablet daily with water.", "es": "Tome un comprimido al día con agua."},
    {"en": "Keep the wound clean and dry.", "es": "Mantenga la herida limpia y seca."},
]


def invoke(*args: str, input: str | None = None):
    return run_cli(list(args), input=input)


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    return path


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


@pytest.mark.parametrize("command", ["eval", "generate", "chat"])
def test_help_explains_device_and_dtype(command):
    text = " ".join(invoke(command, "--help").output.replace("│", " ").split())
    assert "--device" in text and "auto (a CUDA GPU, then Apple MPS, then the CPU), cpu, cuda, cuda:N" in text
    assert "--dtype" in text and "AMX or AVX512-BF16" in text


def test_eval_on_a_missing_gpu_is_a_user_error(tiny_gemma_dir, pairs_file, tmp_path, no_gpu):
    out = tmp_path / "out"
    result = invoke(
        "eval", "--model", str(tiny_gemma_dir), "--data", str(pairs_file), "--out", str(out), "--device", "cuda"
    )
    assert_user_error(result, "--device='cuda' asks for a CUDA GPU", "Available: cpu.")
    assert not out.exists()


def test_generate_with_a_typo_device_is_a_user_error(tiny_gemma_dir, tmp_path, no_gpu):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "Hi"}) + "\n", encoding="utf-8")
    result = invoke(
        "generate",
        "--model",
        str(tiny_gemma_dir),
        "--data",
        str(prompts),
        "--out",
        str(tmp_path / "a.jsonl"),
        "--no-chat",
        "--device",
        "gpu",
    )
    assert_user_error(result, "--device='gpu' is not a device", "Available on this machine: cpu.")


def test_chat_with_float16_on_the_cpu_runs_and_says_where(tiny_chatml_dir, no_gpu):
    result = invoke(
        "chat", "--model", str(tiny_chatml_dir), "--dtype", "float16", "--temperature", "0", input="/exit\n"
    )
    assert result.exit_code == 0, result.output
    assert f"on cpu ({dev.cpu_model_name()}, float16)" in " ".join(result.output.split())


def test_chat_with_an_unknown_dtype_is_a_user_error(tiny_gemma_dir):
    result = invoke("chat", "--model", str(tiny_gemma_dir), "--dtype", "half")
    assert_user_error(result, "--dtype='half' is not a precision; choose one of: auto, float32, bfloat16, float16")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_eval_metrics_record_device_name_and_dtype(tiny_gemma_dir, pairs_file, tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(dev, "_cpu_info", lambda: "model name\t: Test CPU\nflags\t\t: amx_bf16\n")
    out = tmp_path / "out"
    result = invoke(
        "eval",
        "--model",
        str(tiny_gemma_dir),
        "--data",
        str(pairs_file),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--dtype",
        dtype,
        "--max-new-tokens",
        "4",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert {k: metrics[k] for k in ("device", "device_name", "dtype")} == {
        "device": "cpu",
        "device_name": "Test CPU",
        "dtype": dtype,
    }
