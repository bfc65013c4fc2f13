"""The model card written as README.md next to a trained model."""

from __future__ import annotations

from medtune.models.loading import model_license, resolve_model
from medtune.recipes.schema import Recipe


def model_card(
    recipe: Recipe, rows: list[tuple[str, str, float | None, float | None]], data_counts: dict[str, int]
) -> str:
    """Markdown model card: base model and licence, data, recipe, metrics, intended use, caveats."""
    ref = resolve_model(recipe.model)
    lines = [
        f"# {recipe.name}: medical {recipe.data.src_lang}->{recipe.data.tgt_lang} translation",
        "",
        f"Fine-tuned with [medtune](https://github.com/) from **{ref.base_name}** ({recipe.train.method}).",
        "",
        "## Base model and licence",
        f"- Base model: `{ref.base_name}`",
        f"- Licence: {model_license(ref)}. Use of this fine-tune is bound by the base model's licence.",
        "",
        "## Training data",
        f"- Training pairs: `{recipe.data.train}` ({data_counts.get('train', 0)} pairs after validation)",
        f"- Dev / test pairs: {data_counts.get('dev', 0)} / {data_counts.get('test', 0)}",
        f"- General-domain check set: `{recipe.data.general}` ({data_counts.get('general', 0)} pairs)",
        "",
        "## Recipe",
        f"- LoRA r={recipe.train.lora.r}, alpha={recipe.train.lora.alpha}, targets {', '.join(recipe.train.lora.target_modules)}"
        if recipe.train.method == "lora"
        else "- Full fine-tuning",
        f"- lr {recipe.train.lr}, batch {recipe.train.batch_size} x {recipe.train.grad_accum}, "
        f"epochs {recipe.train.epochs}, max_steps {recipe.train.max_steps}, seed {recipe.seed}",
        "- The full resolved recipe is in `recipe.yaml`.",
        "",
        "## Evaluation (sacreBLEU; base scored few-shot, fine-tune zero-shot)",
        "",
        "| set / metric | base | fine-tuned | delta |",
        "|---|---:|---:|---:|",
    ]
    for label, _key, before, after in rows:
        delta = "" if before is None or after is None else f"{after - before:+.2f}"
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {label} | {fmt(before)} | {fmt(after)} | {delta} |")
    lines += [
        "",
        "## Intended use",
        "Drafting translations of medical text (patient instructions, medication information, triage "
        "and discharge documents, consent forms, lab results, public-health notices) for review.",
        "",
        "## Limitations and required review",
        "**Outputs must be reviewed by a qualified medical translator before any clinical use.** "
        "The model can drop negations, change doses, units or drug names, and mistranslate terms; "
        "it was trained on a small demo corpus and is not validated for patient care.",
        "",
    ]
    return "\n".join(lines)
