"""Before/after reports of the chat and qa tasks, built on the shared before/after report."""

from __future__ import annotations

from pathlib import Path

from medtune.data.io import read_jsonl
from medtune.recipes.schema import Recipe
from medtune.report.before_after import write_before_after_report
from medtune.report.comparison import Evaluations, headline_base, joined_outputs, mcq_delta, perplexity_delta
from medtune.report.formatting import BASE_NAMES, FEW_SHOT, ZERO_SHOT, MetricRow
from medtune.runs import RunFolder

MODE_LABELS = {"loglik": "log-likelihood of the option letter", "generate": "generated answer"}


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def _ci(metrics: dict | None) -> tuple[float, float] | None:
    return (_pct(metrics["ci_low"]), _pct(metrics["ci_high"])) if metrics and "ci_low" in metrics else None


def _chat_rows(run: RunFolder, evaluations: Evaluations) -> tuple[list[MetricRow], list[str]]:
    """The perplexity row (no few-shot base: the base is scored zero-shot) and a note with the mean NLL."""
    b, t = evaluations.zero_shot["perplexity"], evaluations.tuned["perplexity"]
    pairs = joined_outputs(run, evaluations.stage(ZERO_SHOT), "perplexity", "outputs.jsonl")
    row = MetricRow(
        label="held-out perplexity (assistant tokens)",
        key="perplexity",
        base=None,
        tuned=t["perplexity"],
        higher_is_better=False,
        base_zero_shot=b["perplexity"],
        headline_base=ZERO_SHOT,
        paired=perplexity_delta(pairs),
    )
    note = f"Mean token NLL (nats, the log of perplexity): base {b['mean_nll']:.4f}, fine-tuned {t['mean_nll']:.4f}."
    return [row], [note]


def _chat_samples(run: RunFolder) -> list[dict]:
    return [
        {"prompt": b["prompt"], "reference": b["reference"], "base": b["output"], "tuned": t["output"]}
        for b, t in joined_outputs(run, "eval_base", "samples.jsonl")
    ]


def _qa_rows(run: RunFolder, modes: list[str], evaluations: Evaluations) -> list[MetricRow]:
    """One accuracy row per scoring mode; the headline base is the better base on the first mode's accuracy."""
    few, zero, tuned = evaluations.few_shot or {}, evaluations.zero_shot, evaluations.tuned
    main = f"mcq_{modes[0]}"
    headline = headline_base(few.get(main, {}).get("accuracy"), zero[main]["accuracy"], True)
    rows = []
    for mode in modes:
        key = f"mcq_{mode}"
        pairs = joined_outputs(run, evaluations.stage(headline), key, "outputs.jsonl")
        rows.append(
            MetricRow(
                label=f"MCQ accuracy, {MODE_LABELS[mode]} (%)",
                key=f"accuracy_{mode}",
                base=_pct(few.get(key, {}).get("accuracy")),
                tuned=_pct(tuned[key]["accuracy"]),
                higher_is_better=True,
                base_ci=_ci(few.get(key)),
                tuned_ci=_ci(tuned[key]),
                base_zero_shot=_pct(zero[key]["accuracy"]),
                base_zero_shot_ci=_ci(zero[key]),
                headline_base=headline,
                paired=mcq_delta(pairs),
            )
        )
    return rows


def _qa_samples(run: RunFolder, base_stage: str, n: int) -> list[dict]:
    pairs = joined_outputs(run, base_stage, "mcq_generate", "outputs.jsonl")
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
    recipe: Recipe, run: RunFolder, counts: dict[str, int], evaluations: Evaluations, model_dir: Path
) -> dict:
    """Write report.html/.md, summary.json and the model card for a chat or qa run."""
    e = recipe.eval
    if recipe.task == "chat":
        rows, notes = _chat_rows(run, evaluations)
        p = evaluations.zero_shot["perplexity"]
        intro = (
            f"Both models answer the held-out doctor–patient conversations through the same chat template. "
            f"Perplexity counts only the assistant tokens ({p['n_tokens']} tokens over {p['n']} conversations); "
            "lower is better; the delta's 95% interval comes from a paired bootstrap over conversations. Sample "
            "replies are greedy, to the last patient turn of held-out conversations."
        )
        samples = _chat_samples(run)
        columns = [("prompt", "patient"), ("reference", "reference reply"), ("base", "base"), ("tuned", "fine-tuned")]
        return write_before_after_report(
            recipe,
            run,
            model_dir,
            rows,
            intro=intro,
            counts=counts,
            evaluations=evaluations,
            samples=samples,
            sample_columns=columns,
            notes=notes,
        )
    rows = _qa_rows(run, list(e.mcq_modes), evaluations)
    headline = rows[0].headline_base
    base_stage = evaluations.stage(headline)
    chosen = evaluations.few_shot if headline == FEW_SHOT else evaluations.zero_shot
    notes = []
    for mode in e.mcq_modes:
        b, t = chosen[f"mcq_{mode}"], evaluations.tuned[f"mcq_{mode}"]
        notes.append(f"{mode}: {b['normalisation']}; prompt format: {b.get('prompt_format', '?')}.")
        if mode == "generate":
            notes.append(
                f"Answers with no recognisable letter: {BASE_NAMES[headline]} {b['unparsed']}, fine-tuned {t['unparsed']}."
            )
        if b.get("truncated") or t.get("truncated"):
            notes.append(
                f"{mode}: prompts cut to fit the window: {BASE_NAMES[headline]} {b['truncated']}, "
                f"fine-tuned {t['truncated']}."
            )
    first = evaluations.zero_shot[f"mcq_{e.mcq_modes[0]}"]
    few_shot = (evaluations.few_shot or {}).get(f"mcq_{e.mcq_modes[0]}", {}).get("few_shot", 0)
    intro = (
        f"Multiple-choice accuracy on {first['n']} held-out questions, with 95% bootstrap intervals. The base model "
        f"is scored with {few_shot} solved training questions shown first and zero-shot; the fine-tuned model "
        "answers zero-shot. Each delta's interval and p-value come from a paired bootstrap over the same questions."
    )
    breakdown = None
    main = f"mcq_{e.mcq_modes[0]}"
    if "per_subject" in chosen[main]:
        breakdown = {"base": chosen[main]["per_subject"], "tuned": evaluations.tuned[main]["per_subject"]}
    columns = [
        ("question", "question"),
        ("answer", "answer"),
        ("base", f"{BASE_NAMES[headline]} reply -> letter"),
        ("tuned", "fine-tuned"),
    ]
    return write_before_after_report(
        recipe,
        run,
        model_dir,
        rows,
        intro=intro,
        counts=counts,
        evaluations=evaluations,
        samples=_qa_samples(run, base_stage, e.report_samples),
        sample_columns=columns,
        breakdown=breakdown,
        notes=notes,
    )
