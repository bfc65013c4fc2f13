"""The model card written as README.md next to a trained model, for every recipe task.

It opens with the Hugging Face Hub's YAML metadata (base model, library, licence, languages, tags), so a
pushed model shows its base, licence and widgets on the hub.
"""

from __future__ import annotations

from huggingface_hub import ModelCardData

from medtune import __version__
from medtune.models.gguf import EMBEDDED_NAME
from medtune.models.loading import ModelRef, model_license, resolve_model
from medtune.models.publish import hub_model_id
from medtune.recipes.schema import Recipe
from medtune.report.formatting import HEADLINE_NOTE, MetricRow, markdown_metric_table

# The line every report and card of a task ends its limitations with.
TASK_CAUTION = {
    "translation": "Outputs must be reviewed by a qualified medical translator before any clinical use.",
    "chat": "Answers are not medical advice; a clinician must review outputs before any patient use.",
    "qa": "Answers are not medical advice; a clinician must review outputs before any patient use.",
    "pretrain": "A domain-adapted base model, not an assistant: fine-tune it before use.",
}

# What one training row of each task is called.
TASK_UNIT = {"translation": "pairs", "chat": "conversations", "qa": "questions", "pretrain": "documents"}

TASK_INTENDED_USE = {
    "translation": "Drafting translations of medical text (patient instructions, medication information, triage "
    "and discharge documents, consent forms, lab results, public-health notices) for review.",
    "chat": "Research and prototyping of doctor-patient conversational assistants: drafting replies to "
    "health questions for a clinician to review, edit or discard.",
    "qa": "Research on medical question answering: answering exam-style and multiple-choice medical questions "
    "and drafting short explanations, for a clinician to review.",
    "pretrain": "A starting point for further fine-tuning on medical tasks (chat, question answering, "
    "translation). It continues text; it does not follow instructions or hold a conversation.",
}

TASK_LIMITATIONS = {
    "translation": "The model can drop negations, change doses, units or drug names, and mistranslate terms; "
    "it was trained on a small demo corpus and is not validated for patient care.",
    "chat": "The model can state wrong facts with confidence, invent doses, drug names or references, miss "
    "symptoms that need urgent care, and repeat biases of its training conversations; it was trained on a "
    "small corpus and is not validated for patient care.",
    "qa": "Multiple-choice accuracy does not measure the safety or completeness of free-text answers. The model "
    "can pick or explain a wrong answer with confidence and invent doses, drug names or references; it was "
    "trained on a small corpus and is not validated for patient care.",
    "pretrain": "It has no instruction or safety tuning and can produce fluent but false medical statements in "
    "the style of its training text; lower perplexity on medical text does not mean correct medical knowledge.",
}


# Hub tags naming what each task trained, next to "medtune" and "medical".
TASK_TAGS = {
    "translation": ["translation"],
    "chat": ["conversational"],
    "qa": ["question-answering"],
    "pretrain": ["continued-pretraining"],
}


def card_metadata(recipe: Recipe, ref: ModelRef) -> ModelCardData:
    """The hub metadata of the card: ``base_model`` when the base is a hub id, library, licence, tags.

    ``library_name`` is ``peft`` for a LoRA adapter (``transformers`` once merged, see
    :func:`medtune.models.adapters.export_merged`); ``language`` is set only where the recipe names the
    languages (translation). The embedded Gemma base carries the ``gemma`` licence; any other base
    is ``other``, with a link to the base's hub page when it has one.
    """
    base = hub_model_id(ref.base_name)
    lora = recipe.train.method == "lora"
    license_fields: dict[str, str] = {"license": "gemma"} if ref.base_name == EMBEDDED_NAME else {"license": "other"}
    if base and ref.base_name != EMBEDDED_NAME:
        license_fields |= {"license_name": "same-as-base-model", "license_link": f"https://huggingface.co/{base}"}
    return ModelCardData(
        base_model=base,
        library_name="peft" if lora else "transformers",
        language=[recipe.data.src_lang, recipe.data.tgt_lang] if recipe.task == "translation" else None,
        tags=["medtune", "medical", *TASK_TAGS[recipe.task], *(["lora"] if lora else [])],
        **license_fields,
    )


def task_title(recipe: Recipe) -> str:
    """A short human name of what the recipe trains, e.g. ``medical en->es translation``."""
    return {
        "translation": f"medical {recipe.data.src_lang}->{recipe.data.tgt_lang} translation",
        "chat": "doctor-patient chat",
        "qa": "medical question answering",
        "pretrain": "continued pre-training on medical text",
    }[recipe.task]


def _data_lines(recipe: Recipe, counts: dict[str, int]) -> list[str]:
    unit = TASK_UNIT[recipe.task]
    lines = [
        f"- Training {unit}: `{recipe.data.train}` ({counts.get('train', 0)} {unit} after validation)",
        f"- Dev / test {unit}: {counts.get('dev', 0)} / {counts.get('test', 0)}",
    ]
    if recipe.task == "translation":
        lines.append(f"- General-domain check set: `{recipe.data.general}` ({counts.get('general', 0)} pairs)")
    else:
        lines[-1] += f" (test set `{recipe.data.test}`)" if recipe.data.test else " (cut from the training data)"
        lines += [f"- {name.capitalize()}: {n}" for name, n in counts.items() if name not in ("train", "dev", "test")]
    return lines


def model_card(
    recipe: Recipe, rows: list[MetricRow], data_counts: dict[str, int], evaluation: str | None = None
) -> str:
    """Markdown model card: base model and licence, data, recipe, metrics, intended use, caveats.

    Args:
        recipe: the run's recipe (its ``task`` picks the title, data wording, intended use and limitations).
        rows: the metrics measured on the base and the fine-tuned model.
        data_counts: data set sizes by split name (``train``, ``dev``, ``test``, ...).
        evaluation: one paragraph on how the models were compared (shown above the metrics).
    Returns:
        The card's Markdown text, opening with the hub's YAML metadata (:func:`card_metadata`).
    Raises:
        MedtuneError: the recipe's base model cannot be resolved.
    """
    ref = resolve_model(recipe.model)
    translation = recipe.task == "translation"
    how = "Fine-tuned" if recipe.task != "pretrain" else "Further pre-trained"
    lines = [
        "---",
        card_metadata(recipe, ref).to_yaml(),
        "---",
        f"# {recipe.name}: {task_title(recipe)}",
        "",
        f"{how} with medtune {__version__} from **{ref.base_name}** ({recipe.train.method}).",
        "",
        "## Base model and licence",
        f"- Base model: `{ref.base_name}`",
        f"- Licence: {model_license(ref)}. Use of this fine-tune is bound by the base model's licence.",
        "",
        "## Training data",
        *_data_lines(recipe, data_counts),
        "",
        "## Recipe",
        f"- LoRA r={recipe.train.lora.r}, alpha={recipe.train.lora.alpha}, targets {', '.join(recipe.train.lora.target_modules)}"
        if recipe.train.method == "lora"
        else "- Full fine-tuning",
        f"- lr {recipe.train.lr}, batch {recipe.train.batch_size} x {recipe.train.grad_accum}, "
        f"epochs {recipe.train.epochs}, max_steps {recipe.train.max_steps}, seed {recipe.seed}",
        "- The full resolved recipe is in `recipe.yaml`.",
        "",
    ]
    lines += ["## Evaluation", "", *([evaluation, ""] if evaluation else [])]
    lines += markdown_metric_table(rows, "set / metric" if translation else "metric")
    lines += [
        "",
        HEADLINE_NOTE,
        "",
        "## Intended use",
        TASK_INTENDED_USE[recipe.task],
        "",
        "## Limitations and required review",
        f"**{TASK_CAUTION[recipe.task]}** {TASK_LIMITATIONS[recipe.task]}",
        "",
    ]
    return "\n".join(lines)
