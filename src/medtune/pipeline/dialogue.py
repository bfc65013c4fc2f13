"""The chat and qa tasks' stages: data -> eval_base [-> eval_base_zero_shot] -> train -> eval_tuned -> report.

* chat: doctor–patient conversations; judged by perplexity on the held-out conversations'
  assistant turns, with sample replies of both models side by side.
* qa: medical multiple-choice questions, trained as "question -> answer letter + explanation"
  conversations (or any question/answer or instruction data with an MCQ test file), judged by
  MCQ accuracy (option-letter log-likelihood and generated answers, 95% bootstrap intervals);
  the base model is scored with ``eval.few_shot`` solved training questions and without, the
  fine-tune without, on the same test questions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from medtune.data.chat import Conversation, conversations_from_records, load_conversations
from medtune.data.io import columns_of, read_jsonl, read_rows, write_jsonl
from medtune.data.mcq import MCQItem, load_mcq, mcq_from_records
from medtune.data.prompts import mcq_to_messages
from medtune.data.sampling import sample_items
from medtune.errors import MedtuneError
from medtune.pipeline.common import Memo, before_after_stages, data_stage, holdout_split
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

MCQ_COLUMNS = ("options", "opa")


@dataclass
class DialogueData:
    train: list[Conversation]
    dev: list[Conversation]
    test: list[Conversation] = field(default_factory=list)  # chat: held-out conversations
    mcq_pool: list[MCQItem] = field(default_factory=list)  # qa: training questions (the few-shot pool)
    mcq_test: list[MCQItem] = field(default_factory=list)  # qa: scored questions

    def counts(self) -> dict[str, int]:
        counts = {"train": len(self.train), "dev": len(self.dev)}
        counts["test"] = len(self.mcq_test) if self.mcq_test else len(self.test)
        return counts


def _has_mcq_layout(spec: str) -> bool:
    return any(c in columns_of(read_rows(spec)) for c in MCQ_COLUMNS)


def _with_system(conversations: list[Conversation], system: str | None) -> list[Conversation]:
    if not system:
        return conversations
    return [
        c
        if c.messages[0]["role"] == "system"
        else Conversation(({"role": "system", "content": system}, *c.messages), c.id, c.origin)
        for c in conversations
    ]


def _mcq_conversations(items: list[MCQItem], system: str | None) -> list[Conversation]:
    return [Conversation(tuple(mcq_to_messages(item, system)), item.id, item.origin) for item in items]


def _load_conversation_pool(recipe: Recipe, log) -> tuple[list[Conversation], list]:
    d = recipe.data
    pool, report = load_conversations(d.train, d.on_bad_rows, name="train", log=log)
    return _with_system(sample_items(pool, d.sample, recipe.seed), d.system_prompt), [report]


def _prepare_chat(recipe: Recipe, log) -> tuple[DialogueData, list]:
    d = recipe.data
    pool, reports = _load_conversation_pool(recipe, log)
    if d.test:
        test, report = load_conversations(d.test, d.on_bad_rows, name="test", log=log)
        reports.append(report)
        test = _with_system(test, d.system_prompt)
        held_out = {c.messages for c in test}
        pool = [c for c in pool if c.messages not in held_out]
    else:
        pool, test = holdout_split(pool, d.test_size, recipe.seed, "test_size", reports[0])
        if not test:
            raise MedtuneError("data.test_size gave no test conversations; raise it or set data.test.")
    train, dev = holdout_split(pool, d.dev_size, recipe.seed + 1, "dev_size", reports[0])
    return DialogueData(train, dev, test=test), reports


def _prepare_qa(recipe: Recipe, log) -> tuple[DialogueData, list]:
    d = recipe.data
    reports = []
    mcq_pool: list[MCQItem] = []
    if _has_mcq_layout(d.train):
        mcq_pool, report = load_mcq(d.train, d.on_bad_rows, name="train", log=log)
        reports.append(report)
        mcq_pool = sample_items(mcq_pool, d.sample, recipe.seed)
    elif not d.test:
        raise MedtuneError(
            f"Task qa is scored on multiple-choice questions, but data.train ({d.train}) has no 'options' column. "
            "Set data.test to a multiple-choice file (question, options, answer), or give MCQ training data."
        )
    if d.test:
        test, report = load_mcq(d.test, d.on_bad_rows, name="test", log=log)
        reports.append(report)
        asked = {item.question for item in test}
        mcq_pool = [item for item in mcq_pool if item.question not in asked]
    else:
        mcq_pool, test = holdout_split(mcq_pool, d.test_size, recipe.seed, "test_size", reports[0])
        if not test:
            raise MedtuneError("data.test_size gave no test questions; raise it or set data.test.")
    if mcq_pool:
        conversations = _mcq_conversations(mcq_pool, d.system_prompt)
    else:
        conversations, more = _load_conversation_pool(recipe, log)
        reports += more
    train, dev = holdout_split(conversations, d.dev_size, recipe.seed + 1, "dev_size")
    return DialogueData(train, dev, mcq_pool=mcq_pool, mcq_test=test), reports


def read_dialogue_data(run: RunFolder) -> DialogueData:
    """The splits the data stage wrote to ``<run>/data``."""
    names = ("train", "dev", "test")
    data = DialogueData(*(conversations_from_records(read_jsonl(run.sub("data", f"{n}.jsonl"))) for n in names))
    data.mcq_pool = mcq_from_records(read_jsonl(run.sub("data", "mcq_pool.jsonl")))
    data.mcq_test = mcq_from_records(read_jsonl(run.sub("data", "mcq_test.jsonl")))
    return data


def prepare_dialogue_data(recipe: Recipe, run: RunFolder, log=print) -> DialogueData:
    """Load, validate, sample and split the recipe's data; write the splits to ``<run>/data``."""
    data, reports = (_prepare_qa if recipe.task == "qa" else _prepare_chat)(recipe, log)
    if run.writes:
        for name in ("train", "dev", "test"):
            write_jsonl(run.sub("data", f"{name}.jsonl"), [c.to_record() for c in getattr(data, name)])
        write_jsonl(run.sub("data", "mcq_pool.jsonl"), [i.to_record() for i in data.mcq_pool])
        write_jsonl(run.sub("data", "mcq_test.jsonl"), [i.to_record() for i in data.mcq_test])
        write_jsonl(run.sub("data", "validation.jsonl"), [r.to_dict() for r in reports])
    return data


def _reply_samples(loaded, conversations: list[Conversation], n: int, max_new_tokens: int) -> list[dict]:
    """Greedy replies to the last user turn of held-out conversations (for the report)."""
    from medtune.data.chat_template import render_chat_prompt, stop_token_ids
    from medtune.generate.engine import SamplingSettings, sample_texts

    chosen = conversations[:n]
    if not chosen:
        return []
    prompts = [render_chat_prompt(loaded.tokenizer, c.messages[: last_user(c) + 1]) for c in chosen]
    settings = SamplingSettings(max_new_tokens=max_new_tokens, stop_token_ids=tuple(stop_token_ids(loaded.tokenizer)))
    replies = sample_texts(loaded.model, loaded.tokenizer, prompts, settings, batch_size=len(prompts))
    return [
        {
            "id": c.id,
            "prompt": c.messages[last_user(c)]["content"],
            "reference": c.messages[last_user(c) + 1]["content"],
            "output": reply.strip(),
        }
        for c, reply in zip(chosen, replies, strict=True)
    ]


def last_user(conversation: Conversation) -> int:
    """Index of the user turn answered by the conversation's last assistant turn."""
    last = max(i for i, m in enumerate(conversation.messages) if m["role"] == "assistant")
    return max(i for i, m in enumerate(conversation.messages[:last]) if m["role"] == "user")


def _score(stage: str, loaded, data: DialogueData, recipe: Recipe, run: RunFolder, log) -> dict:
    """Score one model: perplexity + samples (chat) or MCQ accuracy (qa)."""
    from medtune.eval.mcq import evaluate_mcq
    from medtune.eval.perplexity import evaluate_perplexity

    e = recipe.eval
    result: dict = {}
    if recipe.task == "chat":
        test = data.test[: e.limit] if e.limit else data.test
        out = run.sub("eval", stage, "perplexity")
        result["perplexity"] = evaluate_perplexity(loaded, test, out, e.max_length, e.batch_size, f"{stage}:perplexity")
        log(
            f"{stage}: perplexity {result['perplexity']['perplexity']:.3f} on {result['perplexity']['n_tokens']} tokens"
        )
        if run.writes:  # a few replies for the report: the main process alone makes and writes them
            samples = _reply_samples(loaded, data.test, e.report_samples, e.max_new_tokens)
            write_jsonl(run.sub("eval", stage, "samples.jsonl"), samples)
    else:
        test = data.mcq_test[: e.limit] if e.limit else data.mcq_test
        few = (
            random.Random(recipe.seed).sample(data.mcq_pool, min(e.few_shot, len(data.mcq_pool)))
            if stage == "eval_base"
            else []
        )
        for mode in e.mcq_modes:
            out = run.sub("eval", stage, f"mcq_{mode}")
            m = evaluate_mcq(
                loaded, test, out, mode, few, e.batch_size, e.max_length, seed=recipe.seed, label=f"{stage}:{mode}"
            )
            result[f"mcq_{mode}"] = m
            log(
                f"{stage} MCQ {mode}: accuracy {m['accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}] (n={m['n']})"
            )
    return result


def _train(recipe: Recipe, run: RunFolder, data: Memo[DialogueData], log):
    from medtune.train.sft import train_chat

    def train():
        d = data.get()
        return train_chat(recipe, [c.messages for c in d.train], [c.messages for c in d.dev], run.resume_training, log)

    return train


def _same_base_reason(recipe: Recipe, data: Memo[DialogueData]):
    """qa: why the base's few-shot evaluation would be zero-shot anyway (chat has no few-shot base: None)."""
    if recipe.task != "qa":
        return None

    def reason(_loaded) -> str | None:
        if recipe.eval.few_shot == 0:
            return "eval.few_shot is 0"
        if not data.get().mcq_pool:
            return "the training data has no multiple-choice questions to show as solved examples"
        return None

    return reason


def dialogue_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The chat and qa recipes' stages: score the base (qa: few-shot and zero-shot), fine-tune, score
    again, report."""
    from medtune.report.dialogue import write_dialogue_report

    data = Memo(lambda: read_dialogue_data(run))

    def prepare() -> dict:
        return data.set(prepare_dialogue_data(recipe, run, log)).counts()

    return before_after_stages(
        run,
        recipe,
        data_stage(prepare),
        lambda stage, loaded: _score(stage, loaded, data.get(), recipe, run, log),
        _train(recipe, run, data, log),
        lambda evaluations, model_dir: write_dialogue_report(recipe, run, data.get().counts(), evaluations, model_dir),
        _same_base_reason(recipe, data),
    )
