"""The RLAIF report: report.html, report.md and summary.json of a qa-rlaif or translate-rlaif run.

It shows, in order: which judge scored the answers; the candidates and preference pairs (counts,
pair yield, the score histogram); the preference training (reward margin and accuracy per step);
the held-out comparison of base, SFT and DPO (values with intervals, SFT-vs-base and DPO-vs-SFT
paired deltas with verdicts); the DPO-vs-SFT win-rate; preference accuracy on held-out pairs.
The look is the before/after report's (one stylesheet, the same plots and number formats).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from rich.table import Table

from medtune.recipes.schema import Recipe
from medtune.report.formatting import (
    format_delta_with_interval,
    format_value,
    format_value_with_interval,
    markdown_cell,
    page_start,
)
from medtune.report.model_card import TASK_CAUTION, model_card, task_title
from medtune.report.plots import (
    BASE_COLOR,
    DELTA_COLOR,
    TUNED_COLOR,
    Bars,
    histogram,
    metric_bars,
    metric_curves,
    training_curve,
)
from medtune.report.rlaif_figures import (
    MODEL_NAMES,
    ModelRow,
    dpo_training,
    mcq_rows,
    preference_figures,
    sample_answers,
    sample_pairs,
    stage_fingerprints,
    translation_rows,
    verdict,
)
from medtune.runs import RunFolder

SFT_COLOR = "#7fb3d5"
REWARD_KEYS = [("reward_margin", "reward margin (chosen - rejected)"), ("reward_accuracy", "reward accuracy")]


def _judge_line(judge: dict) -> str:
    kind = judge.get("judge_kind")
    how = {
        "reference": "the offline reference judge (MCQ: the answer's option letter against the gold one; free text: "
        "semantic similarity and key-point coverage against the reference answer; translation: sentence chrF++ "
        "against the reference translation)",
        "llm": "an LLM judge with a rubric (factual accuracy, completeness, key-point coverage)",
        "ensemble": "an ensemble of the reference and LLM judges",
    }.get(kind, str(kind))
    return f"Judge: {how} [{judge.get('judge')}, fingerprint {judge.get('judge_fingerprint')}]."


def _rows(recipe: Recipe, run: RunFolder, evaluation: dict) -> list[ModelRow]:
    if recipe.task == "translation":
        return translation_rows(run, evaluation)
    if "mcq_absent" in evaluation:
        return []
    return mcq_rows(run, evaluation, list(recipe.eval.mcq_modes))


def _notes(recipe: Recipe, evaluation: dict, pairs: dict, judge: dict) -> list[str]:
    notes = [_judge_line(judge)]
    if "mcq_absent" in evaluation:
        notes.append(
            f"No multiple-choice test: {evaluation['mcq_absent']}. The report shows the win-rate and preference "
            "accuracy only."
        )
    if "preference_skipped" in evaluation:
        notes.append(f"Preference accuracy not measured: {evaluation['preference_skipped']}.")
    if judge.get("failed"):
        notes.append(f"{judge['failed']} candidate(s) got no parseable judge score and were left out of the pairs.")
    if recipe.task == "qa" and "mcq_absent" not in evaluation and recipe.eval.few_shot:
        notes.append(
            f"The base model is scored with {recipe.eval.few_shot} solved training questions shown first; SFT and DPO zero-shot."
        )
    notes.append(
        f"Pairs: best vs worst judged candidate of each prompt, kept when the score gap is at least {recipe.pairs.margin}; "
        f"{pairs.get('heldout', 0)} of {pairs.get('pairs', 0)} pairs were held out of preference training."
    )
    return notes


RUNNER_KEYS = ("fingerprint", "provenance", "finished")  # what the stage runner adds to every record


def _own(record: dict) -> dict:
    """A stage's record without the runner's bookkeeping."""
    return {k: v for k, v in record.items() if k not in RUNNER_KEYS}


def build_summary(recipe: Recipe, run: RunFolder) -> tuple[dict, list[ModelRow]]:
    """``summary.json``'s content and the comparison rows, from the run folder's records and files."""
    done = {name: run.done(name) or {} for name in ("data", "sft", "generate", "judge", "pairs", "dpo", "eval")}
    evaluation, pairs, judge = done["eval"], done["pairs"], done["judge"]
    rows = _rows(recipe, run, evaluation)
    candidates = done["generate"]
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "pipeline": "rlaif",
        "model": recipe.model,
        "objective": getattr(recipe.train, "objective", "dpo"),
        "stages": stage_fingerprints(run),
        "sft_model": done["sft"].get("sft_model"),
        "dpo_model": done["dpo"].get("dpo_model"),
        "output_dir": done["dpo"].get("dpo_model"),
        "data": _own(done["data"]),
        "judge": {
            k: judge.get(k)
            for k in ("judge", "judge_kind", "judge_fingerprint", "judged", "scored", "failed", "mean_score", "seconds")
        },
        "candidates": _own(candidates),
        "pairs": _own(pairs),
        "dpo_training": dpo_training(done["dpo"]),
        "metrics": [row.to_summary() for row in rows],
        "win_rate": evaluation.get("win_rate"),
        "preference_accuracy": preference_figures(evaluation),
        "notes": _notes(recipe, evaluation, pairs, judge),
        "report_html": str(run.sub("report.html")),
        "report_md": str(run.sub("report.md")),
    }
    return summary, rows


def write_rlaif_report(recipe: Recipe, run: RunFolder) -> dict:
    """Write report.html, report.md and summary.json in the run folder, and the model card
    (README.md) in the preference-tuned model's folder; returns the summary."""
    summary, rows = build_summary(recipe, run)
    n = recipe.eval.report_samples
    samples = {"pairs": sample_pairs(run, n), "answers": sample_answers(run, n)}
    page = _Page(recipe, summary, rows, samples)
    run.sub("report.html").write_text(page.html(), encoding="utf-8")
    run.sub("report.md").write_text(page.markdown(), encoding="utf-8")
    run.sub("summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    if summary["dpo_model"] and Path(summary["dpo_model"]).is_dir():
        card = model_card(
            recipe, [row.card_row() for row in rows], _card_counts(summary), evaluation=_card_text(summary)
        )
        (Path(summary["dpo_model"]) / "README.md").write_text(card, encoding="utf-8")
    return summary


def _card_counts(summary: dict) -> dict[str, int]:
    data, pairs = summary["data"], summary["pairs"]
    counts = {"train": data.get("train", 0), "dev": data.get("dev", 0)}
    counts["test"] = data.get("mcq_test") or data.get("test") or data.get("heldout_prompts", 0)
    return {**counts, "preference pairs (judged candidates)": pairs.get("pairs", 0)}


def _card_text(summary: dict) -> str:
    w = summary.get("win_rate") or {}
    text = (
        "Trained in two steps: supervised fine-tuning, then preference optimisation on pairs of the SFT model's "
        "own answers ranked by a judge (RLAIF; " + summary["notes"][0] + ") The table compares the base model "
        "with the final model on held-out items, each delta with a paired-bootstrap 95% interval."
    )
    if w:
        text += (
            f" Against the SFT model, the final model's answers won on {w['wins']} of {w['n']} held-out prompts "
            f"({w['ties']} ties)."
        )
    return text


def _charts(summary: dict, rows: list[ModelRow]) -> list[tuple[str, str]]:
    """(alt text, data URI) of every chart the report shows, in order."""
    charts = []
    hist = summary["pairs"].get("histogram") or {"counts": [], "edges": []}
    n = sum(hist["counts"])
    if uri := histogram(hist["counts"], hist["edges"], f"judge scores of the {n} distinct scored candidates", "score"):
        charts.append(("histogram of the candidates' judge scores", uri))
    training = summary["dpo_training"]
    if uri := metric_curves(training["metric_history"], REWARD_KEYS, "preference training: reward margin and accuracy"):
        charts.append(("reward margin and reward accuracy per logged step of preference training", uri))
    if uri := training_curve(training["loss_history"], training["dev_history"], "preference training loss"):
        charts.append(("preference training loss per step", uri))
    for row in rows:
        series = [
            Bars("base", [row.values["base"]], [row.intervals["base"]], BASE_COLOR),
            Bars("SFT", [row.values["sft"]], [row.intervals["sft"]], SFT_COLOR),
            Bars("DPO", [row.values["dpo"]], [row.intervals["dpo"]], TUNED_COLOR),
        ]
        d = row.dpo_vs_sft
        delta = Bars(
            "DPO - SFT", [None if d is None else d.value], [None if d is None else (d.ci_low, d.ci_high)], DELTA_COLOR
        )
        direction = "higher" if row.higher_is_better else "lower"
        uri = metric_bars([""], series, f"{row.label}: {direction} is better", delta, "DPO minus SFT,\n95% interval")
        charts.append((f"bar chart: {row.label} of base, SFT and DPO; DPO minus SFT with its 95% interval", uri))
    return charts


def _win_rate_line(w: dict | None) -> str:
    if not w:
        return "No win-rate: the eval stage did not run."
    shown = (
        f"DPO beats SFT on {w['wins']} of {w['n']} held-out prompts: win-rate {format_value(100 * w['win_rate'])}% "
        f"[{format_value(100 * w['ci_low'])}, {format_value(100 * w['ci_high'])}], {w['ties']} ties, {w['losses']} "
        f"losses ({w['mode']}, judge {w['judge']})."
    )
    if "score_delta" in w:
        d = w["score_delta"]
        shown += (
            f" Mean judge score SFT {w['mean_score_a']:.3f}, DPO {w['mean_score_b']:.3f}; difference "
            f"{d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], p = {d['p_value']:.3f}."
        )
    if "position_consistency" in w:
        shown += f" Position consistency of the judge: {format_value(100 * w['position_consistency'])}%."
    return shown


def _preference_lines(p: dict) -> list[str]:
    if "skipped" in p:
        return [f"Not measured: {p['skipped']}."]
    lines = [
        f"On {p['base'].get('n')} held-out pairs ({p['source']}); the share whose chosen answer the model prefers (mean per-token log-probability):"
    ]
    for name, label in MODEL_NAMES.items():
        m = p[name]
        line = f"{label}: {format_value(100 * m['accuracy'])}% [{format_value(100 * m['ci_low'])}, {format_value(100 * m['ci_high'])}], mean margin {m.get('mean_margin', 0):+.3f}"
        if m.get("reward_accuracy") is not None:
            line += f"; implicit-reward accuracy against the SFT reference {format_value(100 * m['reward_accuracy'])}%"
        lines.append(line + ".")
    return lines


def _pair_lines(summary: dict) -> list[tuple[str, str]]:
    c, p, j = summary["candidates"], summary["pairs"], summary["judge"]
    return [
        ("prompts with candidates", str(c.get("prompts", "-"))),
        (
            "candidates (exact / near duplicates)",
            f"{c.get('candidates', '-')} ({c.get('exact_duplicates', '-')} / {c.get('near_duplicates', '-')})",
        ),
        (
            "candidates judged (scored / failed)",
            f"{j.get('judged', '-')} ({j.get('scored', '-')} / {j.get('failed', '-')})",
        ),
        ("mean judge score", format_value(j.get("mean_score"))),
        ("preference pairs built", str(p.get("pairs", "-"))),
        (
            "pair yield (prompts that gave a pair)",
            "-" if p.get("pair_yield") is None else f"{100 * p['pair_yield']:.1f}%",
        ),
        (
            "dropped: ties (gap < margin) / all bad / fewer than 2 distinct",
            f"{p.get('ties', '-')} / {p.get('all_bad', '-')} / {p.get('too_few', '-')}",
        ),
        ("pairs trained on / held out", f"{p.get('train', '-')} / {p.get('heldout', '-')}"),
    ]


def _training_lines(t: dict) -> list[tuple[str, str]]:
    return [
        ("optimizer steps", str(t.get("steps"))),
        ("final train loss", format_value(t.get("train_loss"))),
        ("final dev loss", format_value(t.get("dev_loss"))),
        ("last logged reward margin", format_value(t.get("final_reward_margin"))),
        ("last logged reward accuracy", format_value(t.get("final_reward_accuracy"))),
        ("training seconds", format_value(t.get("train_seconds"))),
    ]


def _cells(row: ModelRow) -> list[str]:
    """Plain-text cells: base, SFT, DPO (with intervals), SFT - base, DPO - SFT (with intervals), DPO-vs-SFT verdict."""
    values = [format_value_with_interval(row.values[n], row.intervals[n]) for n in MODEL_NAMES]
    deltas = [
        "" if d is None else format_delta_with_interval(d.value, (d.ci_low, d.ci_high))
        for d in (row.sft_vs_base, row.dpo_vs_sft)
    ]
    d = row.dpo_vs_sft
    return [*values, *deltas, "" if d is None else f"{verdict(d)} (p = {d.p_value:.3f})"]


def _html_table(lines: list[tuple[str, str]]) -> str:
    e = html.escape
    return "<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in lines) + "</table>"


SAMPLE_PAIR_COLUMNS = [("prompt", "prompt"), ("chosen", "chosen"), ("rejected", "rejected")]
SAMPLE_ANSWER_COLUMNS = [("prompt", "held-out prompt"), ("sft", "SFT"), ("dpo", "DPO")]
HEADERS = ("base", "SFT", "DPO", "SFT - base [95% CI]", "DPO - SFT [95% CI]", "DPO vs SFT")


class _Page:
    """The report's content, rendered once as HTML and once as Markdown."""

    def __init__(self, recipe: Recipe, summary: dict, rows: list[ModelRow], samples: dict[str, list[dict]]):
        self.recipe, self.summary, self.rows, self.samples = recipe, summary, rows, samples
        self.title = f"medtune RLAIF report: {recipe.name}"
        objective = str(summary["objective"]).upper()
        self.intro = (
            f"Task {task_title(recipe)}, base model {recipe.model}. The SFT model ({summary['sft_model']}) sampled "
            f"{recipe.generate.n} answers per training prompt; a judge scored them; the best and worst answer of each "
            f"prompt became a preference pair; {objective} trained the SFT model on those pairs into "
            f"{summary['dpo_model']} (called DPO below). Base, SFT and DPO are then compared on held-out items; every "
            "delta's 95% interval and p-value come from a paired bootstrap over the same items."
        )

    def html(self) -> str:
        e = html.escape
        s = self.summary
        parts = [
            page_start(self.title),
            f"<p>{e(self.intro)}</p>",
            f'<p class="verdict">{e(s["notes"][0])}</p>',
            "<h2>Candidates and preference pairs</h2>",
            _html_table(_pair_lines(s)),
            "<h2>Held-out comparison: base, SFT, DPO</h2>",
        ]
        if self.rows:
            head = "".join(f"<th>{e(h)}</th>" for h in ("metric", *HEADERS))
            body = "".join(
                f"<tr><td>{e(r.label)}</td>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>"
                for r in self.rows
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        else:
            parts.append("<p>No multiple-choice test in this run: see the win-rate and preference accuracy below.</p>")
        parts += [
            "<h2>Win-rate: DPO vs SFT on held-out prompts</h2>",
            f'<p class="verdict">{e(_win_rate_line(s["win_rate"]))}</p>',
            "<h2>Preference accuracy on held-out pairs</h2>",
            "<ul>" + "".join(f"<li>{e(line)}</li>" for line in _preference_lines(s["preference_accuracy"])) + "</ul>",
            "<h2>Preference training</h2>",
            _html_table(_training_lines(s["dpo_training"])),
            '<div class="charts">'
            + "".join(f'<img alt="{e(alt)}" src="{uri}">' for alt, uri in _charts(s, self.rows))
            + "</div>",
            *self._html_samples(),
            "<h2>Stages</h2>",
            _html_table([(name, f"{r['fingerprint']} ({r['finished']})") for name, r in s["stages"].items()]),
            "<h2>Notes</h2>",
            "<ul>" + "".join(f"<li>{e(n)}</li>" for n in s["notes"]) + "</ul>",
            f"<p><strong>{e(TASK_CAUTION[self.recipe.task])}</strong></p>",
            "</body></html>",
        ]
        return "\n".join(parts) + "\n"

    def _sample_tables(self) -> list[tuple[str, list[tuple[str, str]], list[dict]]]:
        """(title, (key, header) columns, rows) of the sample tables that have rows."""
        tables = [
            ("Sample preference pairs (judge score)", SAMPLE_PAIR_COLUMNS, self.samples["pairs"]),
            ("Held-out answers: SFT vs DPO (judge score)", SAMPLE_ANSWER_COLUMNS, self.samples["answers"]),
        ]
        return [t for t in tables if t[2]]

    def _html_samples(self) -> list[str]:
        e = html.escape
        parts = []
        for title, columns, rows in self._sample_tables():
            head = "".join(f"<th>{e(h)}</th>" for _, h in columns)
            body = "".join("<tr>" + "".join(f"<td>{e(r[k])}</td>" for k, _ in columns) + "</tr>" for r in rows)
            parts += [f"<h2>{e(title)}</h2>", f'<table class="sample"><tr>{head}</tr>{body}</table>']
        return parts

    def markdown(self) -> str:
        s = self.summary
        lines = [
            f"# {self.title}",
            "",
            self.intro,
            "",
            "## Candidates and preference pairs",
            "",
            "| figure | value |",
            "|---|---:|",
        ]
        lines += [f"| {markdown_cell(k)} | {markdown_cell(v)} |" for k, v in _pair_lines(s)]
        lines += ["", "## Held-out comparison: base, SFT, DPO", ""]
        if self.rows:
            lines += ["| metric | " + " | ".join(HEADERS) + " |", "|---|" + "---:|" * 5 + "---|"]
            lines += [
                f"| {markdown_cell(r.label)} | " + " | ".join(markdown_cell(c) for c in _cells(r)) + " |"
                for r in self.rows
            ]
        else:
            lines.append("No multiple-choice test in this run: see the win-rate and preference accuracy below.")
        lines += ["", "## Win-rate: DPO vs SFT on held-out prompts", "", _win_rate_line(s["win_rate"]), ""]
        lines += [
            "## Preference accuracy on held-out pairs",
            "",
            *[f"- {x}" for x in _preference_lines(s["preference_accuracy"])],
            "",
        ]
        lines += ["## Preference training", "", "| figure | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in _training_lines(s["dpo_training"])]
        for title, columns, rows in self._sample_tables():
            lines += [
                "",
                f"## {title}",
                "",
                "| " + " | ".join(h for _, h in columns) + " |",
                "|" + "---|" * len(columns),
            ]
            lines += ["| " + " | ".join(markdown_cell(r[k]) for k, _ in columns) + " |" for r in rows]
        lines += ["", "## Notes", "", *[f"- {n}" for n in s["notes"]], "", f"**{TASK_CAUTION[self.recipe.task]}**", ""]
        return "\n".join(lines)


def rlaif_table(summary: dict) -> Table:
    """The terminal table ``medtune run`` prints at the end of an rlaif run."""
    table = Table(title=f"{summary['recipe']}: base vs SFT vs DPO")
    table.add_column("figure")
    for header in HEADERS:
        table.add_column(header, justify="right")
    for row in summary["metrics"]:
        values = [
            format_value_with_interval(row[n], None if row[f"{n}_ci"] is None else tuple(row[f"{n}_ci"]))
            for n in MODEL_NAMES
        ]
        deltas = [
            "" if d is None else format_delta_with_interval(d["value"], (d["ci_low"], d["ci_high"]))
            for d in (row["sft_vs_base"], row["dpo_vs_sft"])
        ]
        d = row["dpo_vs_sft"]
        table.add_row(row["label"], *values, *deltas, "" if d is None else f"{d['verdict']} (p = {d['p_value']:.3f})")
    w = summary.get("win_rate")
    if w:
        shown = f"{format_value(100 * w['win_rate'])}% [{format_value(100 * w['ci_low'])}, {format_value(100 * w['ci_high'])}]"
        table.add_row("win-rate DPO vs SFT (%)", "", "", shown, "", f"{w['ties']} ties of {w['n']}", "")
    p = summary["preference_accuracy"]
    if "skipped" not in p:
        table.add_row(
            "preference accuracy (%)",
            *(format_value(100 * p[n]["accuracy"]) for n in MODEL_NAMES),
            "",
            "",
            f"n = {p['base']['n']}",
        )
    pairs = summary["pairs"]
    judge = summary["judge"]
    table.caption = (
        f"{pairs.get('pairs')} preference pairs from {summary['candidates'].get('prompts')} prompts "
        f"(yield {100 * (pairs.get('pair_yield') or 0):.0f}%); judge: {judge.get('judge_kind')} "
        f"(fingerprint {judge.get('judge_fingerprint')})"
    )
    return table


def report_paths(summary: dict) -> str:
    """The closing line of ``medtune run``: where the report and the final model are."""
    return f"Report: {summary['report_html']}  SFT model: {summary['sft_model']}  Model: {Path(summary['output_dir'])}"
