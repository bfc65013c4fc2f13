"""``eval --task preference``: accuracy, margins and implicit rewards against a plain-forward oracle,
on a model fit to the chosen answers (accuracy known: 1), and the CLI's exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_checks import assert_user_error, run_cli
from demo_rows import demo_records

from medtune.data.prompts import translation_prompt, translation_target
from medtune.eval.significance import bootstrap_interval

BETA = 0.5
FLOAT32 = ["--dtype", "float32", "--device", "cpu"]


def _pairs() -> list[dict]:
    """Six translation pairs: the chosen answer is the reference, the rejected one another sentence's."""
    records = demo_records(12)
    return [
        {"id": f"p{i}", "prompt": records[i]["en"], "chosen": records[i]["es"], "rejected": records[i + 6]["es"]}
        for i in range(6)
    ]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _answer_logp(model, tokenizer, source: str, answer: str) -> tuple[float, int]:
    """Oracle: summed log-prob of the answer tokens after the translation prompt, from one full forward."""
    prompt = tokenizer(translation_prompt(source), add_special_tokens=True)["input_ids"]
    target = tokenizer(translation_target(answer), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + target])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    return sum(float(log_probs[len(prompt) + j - 1, t]) for j, t in enumerate(target)), len(target)


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory, tiny_gemma_dir) -> Path:
    """The tiny Gemma fit to the chosen translations (so it prefers every chosen answer), saved as a
    preference-trained full model whose reference is the untouched tiny Gemma."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.train.batching import collate, encode_causal
    from medtune.train.loss import target_loss

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir)).train()
    examples = [
        encode_causal(tokenizer, translation_prompt(p["prompt"]), translation_target(p["chosen"]), 256)
        for p in _pairs()
    ]
    batch = collate(examples, tokenizer.pad_token_id, seq2seq=False)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        loss, n = target_loss(model, batch, seq2seq=False)
        (loss / n).backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("fitted")
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    info = {"base_model": str(tiny_gemma_dir), "task": "translation", "adapter": False, "objective": "dpo"}
    info |= {"beta": BETA, "reference_model": str(tiny_gemma_dir)}
    (folder / "medtune_model.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def test_accuracy_margins_and_rewards_match_the_oracle(tmp_path, fitted_dir, tiny_gemma_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = _pairs()
    data = _write(tmp_path / "pairs.jsonl", pairs)
    result = run_cli(
        ["eval", "--task", "preference", "--model", fitted_dir, "--data", data, "--out", tmp_path / "out", *FLOAT32]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "out" / "outputs.jsonl").read_text().splitlines()]

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    policy = AutoModelForCausalLM.from_pretrained(str(fitted_dir)).eval()
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir)).eval()
    margins, rewards = [], []
    for pair, row in zip(pairs, rows, strict=True):
        (pc, nc), (pr, nr) = (_answer_logp(policy, tokenizer, pair["prompt"], pair[k]) for k in ("chosen", "rejected"))
        (rc, _), (rr, _) = (_answer_logp(reference, tokenizer, pair["prompt"], pair[k]) for k in ("chosen", "rejected"))
        assert row["id"] == pair["id"]
        assert (row["chosen_tokens"], row["rejected_tokens"]) == (nc, nr)
        assert row["chosen_logp"] == pytest.approx(pc, abs=1e-3)
        assert row["rejected_ref_logp"] == pytest.approx(rr, abs=1e-3)
        assert row["margin"] == pytest.approx(pc / nc - pr / nr, abs=1e-4)
        margins.append(pc / nc - pr / nr)
        rewards.append(BETA * ((pc - rc) - (pr - rr)))
        assert row["chosen_reward"] - row["rejected_reward"] == pytest.approx(rewards[-1], abs=1e-3)
    # fit to the chosen answers, the model prefers every one of them
    assert metrics["accuracy"] == 1.0 and all(m > 0 for m in margins)
    assert (metrics["n"], metrics["ci_low"], metrics["ci_high"]) == (6, 1.0, 1.0)
    assert metrics["mean_margin"] == pytest.approx(sum(margins) / 6, abs=1e-4)
    won = [r > 0 for r in rewards]
    assert metrics["reward_accuracy"] == sum(won) / 6
    assert (metrics["reward_ci_low"], metrics["reward_ci_high"]) == bootstrap_interval(won, seed=42)
    assert metrics["mean_reward_margin"] == pytest.approx(sum(rewards) / 6, abs=1e-3)
    assert metrics["beta"] == BETA and metrics["reference_model"] == str(tiny_gemma_dir)


def test_swapped_pairs_give_the_complementary_accuracy(tmp_path, fitted_dir):
    swapped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in _pairs()]
    data = _write(tmp_path / "swapped.jsonl", swapped)
    result = run_cli(
        ["eval", "--task", "preference", "--model", fitted_dir, "--data", data, "--out", tmp_path / "o", *FLOAT32]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["accuracy"] == 0.0 and metrics["mean_margin"] < 0
    assert "accuracy" in result.output and "reward_accuracy" in result.output


def test_base_model_without_reference_has_no_reward_figures(tmp_path, tiny_gemma_dir):
    from medtune.data.preference import load_preference_pairs
    from medtune.eval.preference import evaluate_preference
    from medtune.models.loading import load_model

    pairs, _ = load_preference_pairs(_write(tmp_path / "p.jsonl", _pairs()), log=lambda _: None)
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    metrics = evaluate_preference(loaded, pairs, tmp_path / "out", "translation", batch_size=4)
    assert "reward_accuracy" not in metrics and metrics["n"] == 6
    outcomes = [json.loads(line)["preferred"] for line in (tmp_path / "out" / "outputs.jsonl").read_text().splitlines()]
    assert metrics["accuracy"] == sum(outcomes) / 6
    assert not math.isnan(metrics["mean_margin"])


def test_cli_user_errors(tmp_path, fitted_dir):
    data = _write(tmp_path / "pairs.jsonl", _pairs())
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "x", "good": "a", "bad": "b"}])
    out = tmp_path / "out"
    assert_user_error(
        run_cli(["eval", "--task", "preference", "--model", fitted_dir, "--data", bad, "--out", out]),
        "'chosen', 'rejected' not found",
    )
    assert_user_error(
        run_cli(
            [
                "eval",
                "--task",
                "preference",
                "--model",
                fitted_dir,
                "--data",
                data,
                "--out",
                out,
                "--prompt-format",
                "x",
            ]
        ),
        "Unknown --prompt-format 'x'",
    )
    assert not out.exists()  # a failed evaluation claims no folder
    gone = tmp_path / "gone"
    gone.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (gone / name).write_bytes((fitted_dir / name).read_bytes())
    info = json.loads((fitted_dir / "medtune_model.json").read_text()) | {"reference_model": str(tmp_path / "nowhere")}
    (gone / "medtune_model.json").write_text(json.dumps(info))
    assert_user_error(
        run_cli(["eval", "--task", "preference", "--model", gone, "--data", data, "--out", out]),
        "records its reference model",
        "nowhere",
    )
