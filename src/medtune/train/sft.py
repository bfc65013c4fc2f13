"""Chat-template supervised fine-tuning: conversations in, a trained model folder out.

Each conversation is rendered with the tokenizer's own chat template (a base model without one
gets its family's template, saved with the model) and the loss covers the assistant turns only,
end-of-turn token included, so the model also learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from medtune.data.chat_template import encode_conversation, ensure_chat_template
from medtune.data.examples import Example
from medtune.errors import MedtuneError
from medtune.recipes.schema import Recipe
from medtune.train.setup import TrainedModel, fit, prepare_trainable_model, save_trained_model


@dataclass
class EncodingReport:
    """What happened while turning conversations into token sequences."""

    encoded: int = 0
    truncated: int = 0  # longer than train.max_length: cut at the end
    skipped: list[str] = field(default_factory=list)  # "origin: reason" for conversations not used
    unit: str = "conversations"  # what is counted: conversations, or preference pairs

    def summary(self, name: str) -> str:
        parts = [f"{name}: {self.encoded} {self.unit} encoded"]
        if self.truncated:
            parts.append(f"{self.truncated} cut to train.max_length")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped (first: {self.skipped[0]})")
        return ", ".join(parts)


def encode_conversations(
    tokenizer,
    conversations: Sequence[Sequence[dict]],
    max_length: int,
    on_bad_rows: str = "skip",
    origins=None,
    required: bool = True,
) -> tuple[list[Example], EncodingReport]:
    """Encode conversations with assistant-only labels.

    A conversation the template refuses (e.g. a system turn it cannot render), or one whose
    assistant tokens all fall beyond ``max_length``, is skipped and counted, or refused with
    ``on_bad_rows="fail"``.

    Raises:
        MedtuneError: with ``fail`` on the first bad conversation; when nothing is left and ``required``.
    """
    ensure_chat_template(tokenizer)
    report = EncodingReport()
    examples = []
    for i, messages in enumerate(conversations):
        where = origins[i] if origins else f"conversation {i + 1}"
        try:
            full = encode_conversation(tokenizer, messages, max_length=10**9)
        except MedtuneError as exc:
            reason = f"{where}: {exc}"
        else:
            example = Example(full.input_ids[:max_length], full.labels[:max_length])
            if example.n_target:
                report.truncated += len(full.input_ids) > max_length
                report.encoded += 1
                examples.append(example)
                continue
            reason = f"{where}: no assistant token within train.max_length={max_length}"
        if on_bad_rows == "fail":
            raise MedtuneError(f"{reason}. Fix the row, or set data.on_bad_rows=skip to drop it with a report.")
        report.skipped.append(reason)
    if required and conversations and not examples:
        raise MedtuneError(
            f"No conversation could be encoded ({report.summary('conversations')}). "
            "Raise train.max_length or check the data."
        )
    return examples, report


def train_chat(
    recipe: Recipe,
    train_conversations: Sequence[Sequence[dict]],
    dev_conversations: Sequence[Sequence[dict]],
    resume: bool = False,
    log=print,
) -> TrainedModel:
    """Fine-tune ``recipe.model`` on conversations (assistant-only loss) into ``recipe.output_dir``."""
    trainable = prepare_trainable_model(recipe, log)
    tokenizer = trainable.loaded.tokenizer
    cfg = recipe.train
    train_ex, train_report = encode_conversations(
        tokenizer, train_conversations, cfg.max_length, recipe.data.on_bad_rows
    )
    dev_ex, dev_report = encode_conversations(tokenizer, dev_conversations, cfg.max_length, "skip", required=False)
    log(train_report.summary("train"))
    if dev_report.skipped:
        log(dev_report.summary("dev"))
    result = fit(recipe, trainable, train_ex, dev_ex, resume, log)
    metrics = {
        "train_examples": len(train_ex),
        "dev_examples": len(dev_ex),
        "truncated": train_report.truncated,
        "skipped": len(train_report.skipped) + len(dev_report.skipped),
    }
    info = {"chat_template": True, "system_prompt": recipe.data.system_prompt}
    return save_trained_model(recipe, trainable, result, info, metrics)
