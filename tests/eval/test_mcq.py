"""MCQ evaluation on the tiny Gemma model: letter log-likelihoods against a plain full forward pass,
padding, multi-token letters, truncation, generate mode, per-subject figures (the bootstrap interval: test_significance.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medtune.data.mcq import MCQItem
from medtune.data.prompts import mcq_answer_text, mcq_to_messages, mcq_user_message
from medtune.errors import MedtuneError
from medtune.eval.loglik import continuation_log_probs
from medtune.eval.mcq import (
    encode_mcq_prompt,
    evaluate_mcq,
    letter_continuations,
    mcq_prompt_text,
    uses_chat_template,
)
from medtune.models.loading import LoadedModel, load_model

OPTIONS = {"A": "Protamine sulfate", "B": "Vitamin K", "C": "Flumazenil", "D": "Desmopressin"}
QUESTIONS = [
    "Which agent reverses heparin?",
    "A patient on warfarin has an INR of eleven and no bleeding. Which drug lowers the INR over a day?",
    "Which drug reverses benzodiazepines?",
    "Bleeding from an IV site on a heparin infusion with a very high aPTT, after a long and complicated "
    "operation on the heart and two days in the intensive care unit: which agent is given first?",
    "Which one helps in von Willebrand disease?",
]


def item(i: int, answer: str = "A", subject: str | None = None, context: str | None = None, **kw) -> MCQItem:
    return MCQItem(
        id=f"q{i}",
        question=QUESTIONS[i % len(QUESTIONS)],
        options=kw.pop("options", OPTIONS),
        answer=answer,
        context=context,
        subject=subject,
        explanation=kw.pop("explanation", None),
        origin=f"test.jsonl:{i + 1}",
    )


@pytest.fixture(scope="module")
def loaded(tiny_gemma_dir) -> LoadedModel:
    return load_model(str(tiny_gemma_dir), dtype="float32")


@pytest.fixture(scope="module")
def chat_loaded(tiny_chatml_dir) -> LoadedModel:
    """The tiny model with a ChatML template on its tokenizer (the markers are plain text to it)."""
    return load_model(str(tiny_chatml_dir), dtype="float32")


def reference_letter_log_probs(model, tokenizer, prompt: str, letters: str, chat: bool) -> dict[str, float]:
    """log P(" X" | prompt) per letter from a plain full forward pass of prompt + letter and log_softmax."""
    prompt_ids = tokenizer(prompt, add_special_tokens=not chat)["input_ids"]
    result = {}
    for letter in letters:
        full = tokenizer(prompt + " " + letter, add_special_tokens=not chat)["input_ids"]
        assert full[: len(prompt_ids)] == prompt_ids
        continuation = full[len(prompt_ids) :]
        with torch.no_grad():
            log_probs = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), dim=-1)
        result[letter] = sum(float(log_probs[len(prompt_ids) - 1 + j, token]) for j, token in enumerate(continuation))
    return result


# --- prompts ------------------------------------------------------------------------------


def test_mcq_prompt_texts_follow_the_documented_format():
    q = item(0, "A", context="Heparin was started.", explanation="Protamine binds heparin.")
    assert mcq_user_message(q) == (
        "Context: Heparin was started.\n\nQuestion: Which agent reverses heparin?\n"
        "A. Protamine sulfate\nB. Vitamin K\nC. Flumazenil\nD. Desmopressin\n"
        "Answer with the letter of the correct option."
    )
    assert mcq_answer_text(q) == "Answer: A. Protamine sulfate\nExplanation: Protamine binds heparin."
    assert mcq_answer_text(item(0, "C")) == "Answer: C. Flumazenil"
    messages = mcq_to_messages(q, system="You are a doctor.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]


def test_plain_prompt_separates_blocks_with_blank_lines(loaded):
    shot, q = item(2, "C"), item(0, "A")
    assert not uses_chat_template(loaded.tokenizer)  # no template and not a Gemma/ChatML/Llama vocabulary
    text = mcq_prompt_text(loaded.tokenizer, q, [shot], chat=False)
    assert text == "\n\n".join([mcq_user_message(shot), "Answer: C. Flumazenil", mcq_user_message(q), "Answer:"])


def test_chat_prompt_uses_the_template_and_opens_the_answer(chat_loaded):
    shot, q = item(2, "C"), item(0, "A")
    text = mcq_prompt_text(chat_loaded.tokenizer, q, [shot], chat=True)
    assert text == (
        f"<|im_start|>user\n{mcq_user_message(shot)}<|im_end|>\n"
        "<|im_start|>assistant\nAnswer: C. Flumazenil<|im_end|>\n"
        f"<|im_start|>user\n{mcq_user_message(q)}<|im_end|>\n"
        "<|im_start|>assistant\nAnswer:"
    )


# --- loglik scoring against a hand computation ---------------------------------------------


def test_loglik_matches_a_full_forward_pass_across_padded_batches(loaded, tmp_path):
    # Five questions of different lengths in batches of 3: rows of one batch are padded differently.
    # " B" is two tokens with the tiny tokenizer ("Ġ", "B"), so this also covers multi-token letters.
    items = [item(i, "ABCDA"[i]) for i in range(5)]
    assert [len(ids) for ids in letter_continuations(loaded.tokenizer, "ABCD").values()] == [1, 2, 1, 1]
    metrics = evaluate_mcq(loaded, items, tmp_path, mode="loglik", batch_size=3, n_bootstrap=200)
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    for q, row in zip(items, rows, strict=True):
        prompt = mcq_prompt_text(loaded.tokenizer, q, [], chat=False)
        expected = reference_letter_log_probs(loaded.model, loaded.tokenizer, prompt, "ABCD", chat=False)
        for letter in "ABCD":
            assert row["option_logprobs"][letter] == pytest.approx(expected[letter], abs=1e-5)
        assert row["predicted"] == max(expected, key=expected.get)
        assert row["correct"] == (row["predicted"] == q.answer)
        assert sum(row["option_probs"].values()) == pytest.approx(1.0)
    assert metrics["correct"] == sum(r["correct"] for r in rows)
    assert metrics["accuracy"] == pytest.approx(metrics["correct"] / 5, abs=1e-4)
    assert metrics["normalisation"].startswith("none (summed log-probability")
    assert metrics["mode"] == "loglik" and metrics["n"] == 5 and metrics["truncated"] == 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_single_token_letters_are_one_pass_and_say_so(chat_loaded, tmp_path):
    options = {"A": "Protamine sulfate", "C": "Flumazenil", "D": "Desmopressin"}  # " A", " C", " D" are one token
    items = [item(i, "C", options=options) for i in range(3)]
    metrics = evaluate_mcq(chat_loaded, items, tmp_path, few_shot=[item(4, "D", options=options)], batch_size=2)
    assert metrics["normalisation"] == "none (single-token letter continuations)"
    assert metrics["prompt_format"] == "chat template" and metrics["few_shot"] == 1
    row = json.loads((tmp_path / "outputs.jsonl").read_text().splitlines()[1])
    prompt = mcq_prompt_text(chat_loaded.tokenizer, items[1], [item(4, "D", options=options)], chat=True)
    expected = reference_letter_log_probs(chat_loaded.model, chat_loaded.tokenizer, prompt, "ACD", chat=True)
    assert row["option_logprobs"] == pytest.approx(expected, abs=1e-5)


def test_continuation_scores_do_not_depend_on_batching(loaded):
    tok = loaded.tokenizer
    prompts = [tok(q, add_special_tokens=True)["input_ids"] for q in QUESTIONS]
    continuations = [tok(t, add_special_tokens=False)["input_ids"] for t in (" yes", " no", " maybe not", " B")]
    requests = [(p, continuations) for p in prompts]
    one_by_one = continuation_log_probs(loaded.model, tok.pad_token_id, requests, batch_size=1)
    batched = continuation_log_probs(loaded.model, tok.pad_token_id, requests, batch_size=4)
    for a, b in zip(one_by_one, batched, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    # multi-token continuation: summed log-probability of its tokens, by the chain rule
    full = prompts[0] + continuations[2]
    with torch.no_grad():
        log_probs = torch.log_softmax(loaded.model(torch.tensor([full])).logits[0].float(), dim=-1)
    start = len(prompts[0]) - 1
    manual = sum(float(log_probs[start + j, t]) for j, t in enumerate(continuations[2]))
    assert len(continuations[2]) > 1 and batched[0][2] == pytest.approx(manual, abs=1e-5)


# --- context window --------------------------------------------------------------------------


def test_long_context_is_cut_from_the_left_and_the_question_kept(loaded, tmp_path):
    context = " ".join(f"word{i}" for i in range(400))
    q = item(0, "A", context=context)
    prompt = encode_mcq_prompt(loaded.tokenizer, q, [], chat=False, budget=120)
    assert len(prompt.ids) <= 120 and prompt.truncated and prompt.few_shot_dropped == 0
    text = loaded.tokenizer.decode(prompt.ids, skip_special_tokens=True)
    kept = " ".join(f"word{i}" for i in range(prompt.context_words_dropped, 400))
    assert text == mcq_user_message(q, kept) + "\n\nAnswer:"  # whole words, the end of the context, then the rest
    # one word more would not have fitted
    one_more = " ".join(f"word{i}" for i in range(prompt.context_words_dropped - 1, 400))
    assert len(loaded.tokenizer(mcq_prompt_text(loaded.tokenizer, q, [], False, one_more))["input_ids"]) > 120

    metrics = evaluate_mcq(loaded, [q, item(1, "B")], tmp_path, max_length=200, n_bootstrap=50)
    assert metrics["truncated"] == 1 and metrics["max_length"] == 200
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    assert [r["truncated"] for r in rows] == [True, False]


def test_few_shot_turns_go_oldest_first_when_the_context_is_not_enough(loaded):
    shots = [item(1, "B"), item(2, "C"), item(4, "D")]
    q = item(0, "A", context="Short context.")
    full = encode_mcq_prompt(loaded.tokenizer, q, shots, chat=False, budget=10_000)
    last_shot_only = mcq_prompt_text(loaded.tokenizer, q, shots[2:], chat=False)
    budget = len(loaded.tokenizer(last_shot_only)["input_ids"])
    prompt = encode_mcq_prompt(loaded.tokenizer, q, shots, chat=False, budget=budget)
    assert not full.truncated
    assert prompt.few_shot_dropped == 2 and prompt.context_words_dropped == 0  # context fits again once shots go
    assert prompt.text == last_shot_only
    with pytest.raises(MedtuneError, match="Raise --max-length"):
        encode_mcq_prompt(loaded.tokenizer, q, shots, chat=False, budget=10)


def test_window_is_capped_at_the_model_positions(loaded, tmp_path):
    metrics = evaluate_mcq(loaded, [item(0)], tmp_path, max_length=50_000, n_bootstrap=10)
    assert metrics["max_length"] == loaded.model.config.max_position_embeddings == 1024


# --- generate mode ----------------------------------------------------------------------------


def test_generate_mode_extracts_letters_and_counts_unparsed(loaded, tmp_path):
    items = [item(i, "A") for i in range(4)]
    metrics = evaluate_mcq(loaded, items, tmp_path, mode="generate", max_new_tokens=6, batch_size=3)
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    assert metrics["mode"] == "generate" and metrics["normalisation"].startswith("n/a")
    assert metrics["unparsed"] == sum(r["predicted"] is None for r in rows)
    assert metrics["correct"] == sum(r["predicted"] == "A" for r in rows)
    assert all(isinstance(r["generated"], str) for r in rows)
    # batched, left-padded generation gives the same replies as one prompt at a time
    again = evaluate_mcq(loaded, items, tmp_path / "single", mode="generate", max_new_tokens=6, batch_size=1)
    single = [json.loads(line) for line in (tmp_path / "single" / "outputs.jsonl").read_text().splitlines()]
    assert [r["generated"] for r in rows] == [r["generated"] for r in single]
    assert again["correct"] == metrics["correct"]


# --- metrics -----------------------------------------------------------------------------------


def test_per_subject_breakdown_matches_the_outputs(loaded, tmp_path):
    items = [item(i, "ABCDA"[i], subject="pharmacology" if i < 3 else "hematology") for i in range(5)]
    metrics = evaluate_mcq(loaded, items, tmp_path, n_bootstrap=100)
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    for subject, n in (("pharmacology", 3), ("hematology", 2)):
        hits = [r["correct"] for r in rows if r["subject"] == subject]
        assert metrics["per_subject"][subject] == {"accuracy": round(sum(hits) / n, 4), "n": n}
    no_subject = evaluate_mcq(loaded, [item(0)], tmp_path / "b", n_bootstrap=10)
    assert "per_subject" not in no_subject


def test_bad_mode_and_empty_items_are_user_errors(loaded, tmp_path):
    with pytest.raises(MedtuneError, match="loglik, generate"):
        evaluate_mcq(loaded, [item(0)], tmp_path, mode="guess")
    with pytest.raises(MedtuneError, match="No questions"):
        evaluate_mcq(loaded, [], tmp_path)


def test_outputs_are_written_where_asked(loaded, tmp_path):
    out = tmp_path / "deep" / "folder"
    evaluate_mcq(loaded, [item(0)], out, n_bootstrap=10)
    assert sorted(p.name for p in Path(out).iterdir()) == ["metrics.json", "outputs.jsonl"]
