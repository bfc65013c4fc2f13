"""Before/after reports of the chat and qa tasks, built on the shared before/after report."""

from __future__ import annotations

from pathlib import Path

from medtune.data.io import read_jsonl
from medtune.recipes.schema import Recipe
from medtune.report.before_after import MetricRow, paired_outputs, write_before_after_report
from medtune.runs import RunFolder

MODE_LABELS = {"loglik": "log-likelihood of the option letter", "generate": "generated answer"}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _ci(metrics: dict) -> tuple[float, float] | None:
    return (_pct(metrics["ci_low"]), _pct(metrics["ci_high"])) if "ci_low" in metrics else None


def _chat_rows(base: dict, tuned: dict) -> list[MetricRow]:
    b, t = base["perplexity"], tuned["perplexity"]
    return [
        MetricRow("held-out perplexity (assistant tokens)", "perplexity", b["perplexity"], t["perplexity"], False),
        MetricRow("mean token NLL (nats)", "mean_nll", b["mean_nll"], t["mean_nll"], False),
    ]


def _chat_samples(run: RunFolder) -> list[dict]:
    return [
        {"prompt": b["prompt"], "reference": b["reference"], "base": b["output"], "tuned": t["output"]}
        for b, t in paired_outputs(run, "samples.jsonl")
    ]


def _qa_samples(run: RunFolder, n: int) -> list[dict]:
    pairs = paired_outputs(run, "mcq_generate", "outputs.jsonl")
    if not pairs:
        return []
    questions = {str(q["id"]): q["question"] for q in read_jsonl(run.sub("data", "mcq_test.jsonl"))}
    rows = []
    for b, t in pairs[:n]:
        rows.append(
            {
                "question": questions.get(str(b["id"]), str(b["id"])),
                "answer": b["answer"],
                "base": f"{b.get('generated', '')} -> {b['predicted'] or '?'}",
                "tuned": f"{t.get('generated', '')} -> {t['predicted'] or '?'}",
            }
        )
    return rows


def write_dialogue_report(
    recipe: Recipe, run: RunFolder, counts: dict[str, int], base: dict, tuned: dict, model_dir: Path
) -> dict:
    """Write report.html/.md, summary.json and the model card for a chat or qa run."""
    e = recipe.eval
    if recipe.task == "chat":
        rows = _chat_rows(base, tuned)
        p = base["perplexity"]
        intro = (
            f"Both models answer the held-out doctor–patient conversations through the same chat template. "
            f"Perplexity counts only the assistant tokens ({p['n_tokens']} tokens over {p['n']} conversations); "
            "lower is better. Sample replies are greedy, to the last patient turn of held-out conversations."
        )
        samples = _chat_samples(run)
        columns = [("prompt", "patient"), ("reference", "reference reply"), ("base", "base"), ("tuned", "fine-tuned")]
        return write_before_after_report(
            recipe, run, model_dir, rows, intro=intro, counts=counts, samples=samples, sample_columns=columns
        )
    rows, notes = [], []
    for mode in e.mcq_modes:
        b, t = base[f"mcq_{mode}"], tuned[f"mcq_{mode}"]
        label = f"MCQ accuracy, {MODE_LABELS[mode]} (%)"
        rows.append(
            MetricRow(label, f"accuracy_{mode}", _pct(b["accuracy"]), _pct(t["accuracy"]), True, _ci(b), _ci(t))
        )
        notes.append(f"{mode}: {b['normalisation']}; prompt format: {b.get('prompt_format', '?')}.")
        if mode == "generate":
            notes.append(f"Answers with no recognisable letter: base {b['unparsed']}, fine-tuned {t['unparsed']}.")
        if b.get("truncated") or t.get("truncated"):
            notes.append(f"{mode}: prompts cut to fit the window: base {b['truncated']}, fine-tuned {t['truncated']}.")
    first = base[f"mcq_{e.mcq_modes[0]}"]
    intro = (
        f"Multiple-choice accuracy on {first['n']} held-out questions, with 95% bootstrap intervals. The base model "
        f"is shown {first['few_shot']} solved questions first; the fine-tuned model answers zero-shot."
    )
    breakdown = None
    if "per_subject" in first:
        breakdown = {"base": first["per_subject"], "tuned": tuned[f"mcq_{e.mcq_modes[0]}"]["per_subject"]}
    samples = _qa_samples(run, e.report_samples)
    columns = [
        ("question", "question"),
        ("answer", "answer"),
        ("base", "base reply -> letter"),
        ("tuned", "fine-tuned"),
    ]
    return write_before_after_report(
        recipe,
        run,
        model_dir,
        rows,
        intro=intro,
        counts=counts,
        samples=samples,
        sample_columns=columns,
        breakdown=breakdown,
        notes=notes,
    )
