"""The full-training report: report.html, report.md and summary.json of a ``medtune run full-training`` run.

In order: base vs SFT vs RLHF on the test split (chrF++, BLEU, TER, term accuracy; each value with
its 95% bootstrap interval, SFT-minus-base and RLHF-minus-SFT paired deltas with verdicts); the
feedback used and the held-out post-edit comparison (:mod:`medtune.report.feedback`); the RLHF
training; the stages. Every number comes from the files and records the stages wrote.
"""

from __future__ import annotations

import html
import json
from dataclasses import fields
from pathlib import Path

from rich.table import Table

from medtune.data.io import read_jsonl
from medtune.eval.significance import PairedDelta
from medtune.recipes.schema import Recipe
from medtune.report.comparison import translation_deltas
from medtune.report.feedback import (
    comparison_lines,
    feedback_html,
    feedback_markdown,
    feedback_section,
    format_score,
    post_edit_comparison,
)
from medtune.report.formatting import (
    FEW_SHOT,
    ZERO_SHOT,
    MetricRow,
    format_delta_with_interval,
    format_value,
    format_value_with_interval,
    markdown_cell,
    page_start,
)
from medtune.report.model_card import TASK_CAUTION, model_card, task_title
from medtune.report.plots import BASE_COLOR, DELTA_COLOR, TUNED_COLOR, Bars, metric_bars, training_curve
from medtune.report.rlaif_figures import TRANSLATION_METRICS, joined_model_outputs, stage_fingerprints, verdict
from medtune.runs import RunFolder

MODEL_LABELS = {"base": "base", "sft": "SFT", "rlhf": "RLHF"}
SFT_COLOR = "#7fb3d5"
HEADERS = ("base", "SFT", "RLHF", "SFT - base [95% CI]", "RLHF - SFT [95% CI]", "RLHF vs SFT")
RUNNER_KEYS = ("fingerprint", "provenance", "finished")  # what the stage runner adds to every record
DELTAS = (("sft_vs_base", "base", "sft"), ("rlhf_vs_sft", "sft", "rlhf"), ("rlhf_vs_base", "base", "rlhf"))


def _own(record: dict | None) -> dict:
    """A stage's record without the runner's bookkeeping."""
    return {k: v for k, v in (record or {}).items() if k not in RUNNER_KEYS}


def _rounded_delta(delta) -> dict | None:
    if delta is None:
        return None
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in delta.to_dict().items()}
    return {**figures, "verdict": verdict(delta)}


def _intervals(run: RunFolder, name: str) -> dict[str, list[float]]:
    """One model's BLEU/chrF++/TER 95% bootstrap intervals on the test split."""
    from medtune.eval.significance import translation_score_intervals

    path = run.sub("eval", name, "test", "outputs.jsonl")
    rows = read_jsonl(path) if path.is_file() else []
    if not rows:
        return {}
    found = translation_score_intervals([r["output"] for r in rows], [r["reference"] for r in rows])
    return {k: [round(low, 4), round(high, 4)] for k, (low, high) in found.items()}


def compared_on_test(run: RunFolder) -> list[dict]:
    """The test-split comparison, one row per metric: each model's value and interval, the three paired deltas."""
    results = {name: run.done(f"eval_{name}")["test"] for name in MODEL_LABELS}
    intervals = {name: _intervals(run, name) for name in MODEL_LABELS}
    deltas = {key: translation_deltas(joined_model_outputs(run, a, b, "test", "outputs.jsonl")) for key, a, b in DELTAS}
    rows = []
    for key, label, higher, percent in TRANSLATION_METRICS:
        values = {name: results[name].get(key) for name in MODEL_LABELS}
        if all(v is None for v in values.values()):
            continue
        if percent:
            values = {name: None if v is None else round(100 * v, 2) for name, v in values.items()}
        rows.append(
            {
                "label": label.replace("held-out ", "test "),  # the report also shows held-out judged items
                "metric": key,
                "higher_is_better": higher,
                **values,
                **{f"{name}_ci": intervals[name].get(key) for name in MODEL_LABELS},
                **{d: _rounded_delta(deltas[d].get(key)) for d, _, _ in DELTAS},
                "base_few_shot": results["base"].get("few_shot", 0),
            }
        )
    return rows


def _post_edits(run: RunFolder, seed: int) -> dict:
    record = run.done("eval_post_edits") or {}
    if "skipped" in record:
        return {"skipped": record["skipped"]}
    folder = run.sub("eval", "post_edits", "translation")
    return post_edit_comparison(folder / "sft", folder / "rlhf", record.get("preference"), seed=seed)


def _training(record: dict) -> dict:
    keys = (
        "objective",
        "items",
        "steps",
        "train_loss",
        "dev_loss",
        "train_seconds",
        "trainable_params",
        "total_params",
    )
    return {
        **{k: record.get(k) for k in keys},
        "metric_history": record.get("metric_history") or [],
        "loss_history": record.get("loss_history") or [],
        "dev_history": record.get("dev_history") or [],
    }


def _notes(recipe: Recipe, summary: dict) -> list[str]:
    f, data = recipe.feedback, summary["data"]
    notes = []
    if summary["feedback"]["simulated_note"]:
        notes.append(summary["feedback"]["simulated_note"])
    notes.append(
        f"The feedback set ({data.get('feedback')} sentences, whole documents) was kept apart from the "
        f"{data.get('train')} training and {data.get('test')} test pairs; the SFT model translated it into project "
        f"{summary['queue'].get('project')} of {summary['queue'].get('db')}, each item for {f.reviewers_per_item} reviewer(s)."
    )
    notes.append(
        f"RLHF ({f.objective}) trained the SFT model on {summary['feedback_round'].get('train_items')} judged items; "
        f"{summary['feedback_round'].get('heldout_items')} were held out (feedback.heldout={f.heldout}) for the "
        "post-edit comparison."
    )
    if summary["feedback"]["simulated"] and f.reviewers_per_item > 1:
        notes.append(
            f"The {f.reviewers_per_item} simulated reviewers score alike (sentence chrF++ against the same reference), "
            "so their agreement is 1 by construction; agreement means something with human reviewers."
        )
    if summary["metrics"] and summary["metrics"][0]["base_few_shot"]:
        notes.append(
            f"The base model is scored with {summary['metrics'][0]['base_few_shot']} example pairs in its prompt; SFT and RLHF zero-shot."
        )
    return notes


def build_summary(recipe: Recipe, run: RunFolder) -> dict:
    """``summary.json``'s content, from the run folder's records and files."""
    from medtune.pipeline.full_training import read_judgments

    done = {name: run.done(name) or {} for name in ("data", "sft", "queue", "feedback", "rlhf")}
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "pipeline": "full_training",
        "model": recipe.model,
        "stages": stage_fingerprints(run),
        "sft_model": done["sft"].get("sft_model"),
        "rlhf_model": done["rlhf"].get("rlhf_model"),
        "output_dir": done["rlhf"].get("rlhf_model"),
        "data": _own(done["data"]),
        "queue": _own(done["queue"]),
        "feedback_round": _own(done["feedback"]),
        "rlhf_training": _training(done["rlhf"]),
        "metrics": compared_on_test(run),
        "feedback": feedback_section(read_judgments(run), _post_edits(run, recipe.seed), seed=recipe.seed),
        "report_html": str(run.sub("report.html")),
        "report_md": str(run.sub("report.md")),
    }
    summary["notes"] = _notes(recipe, summary)
    return summary


def write_full_training_report(recipe: Recipe, run: RunFolder) -> dict:
    """Write report.html, report.md and summary.json in the run folder, and the model card (README.md) in
    the RLHF model's folder; returns the summary."""
    summary = build_summary(recipe, run)
    page = _Page(recipe, summary)
    run.sub("report.html").write_text(page.html(), encoding="utf-8")
    run.sub("report.md").write_text(page.markdown(), encoding="utf-8")
    run.sub("summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    if summary["rlhf_model"] and Path(summary["rlhf_model"]).is_dir():
        card = model_card(recipe, _card_rows(summary), _card_counts(summary), evaluation=_card_text(summary))
        (Path(summary["rlhf_model"]) / "README.md").write_text(card, encoding="utf-8")
    return summary


def _card_rows(summary: dict) -> list[MetricRow]:
    """The test rows as the model card shows them: the base (as it was scored) against the RLHF model."""
    rows = []
    for row in summary["metrics"]:
        few = row["base_few_shot"] > 0
        d = row["rlhf_vs_base"]
        paired = None if d is None else PairedDelta(**{f.name: d[f.name] for f in fields(PairedDelta)})
        base, ci = row["base"], None if row["base_ci"] is None else tuple(row["base_ci"])
        rows.append(
            MetricRow(
                label=row["label"],
                key=row["metric"],
                base=base if few else None,
                tuned=row["rlhf"],
                higher_is_better=row["higher_is_better"],
                base_ci=ci if few else None,
                tuned_ci=None if row["rlhf_ci"] is None else tuple(row["rlhf_ci"]),
                base_zero_shot=None if few else base,
                base_zero_shot_ci=None if few else ci,
                headline_base=FEW_SHOT if few else ZERO_SHOT,
                paired=paired,
            )
        )
    return rows


def _card_counts(summary: dict) -> dict[str, int]:
    data, fb = summary["data"], summary["feedback_round"]
    return {
        "train": data.get("train", 0),
        "dev": data.get("dev", 0),
        "test": data.get("test", 0),
        "judged feedback items trained on (RLHF)": fb.get("train_items", 0),
        "judged feedback items held out": fb.get("heldout_items", 0),
    }


def _card_text(summary: dict) -> str:
    who = (
        "a SIMULATED reviewer (sentence chrF++ against the reference)"
        if summary["feedback"]["simulated"]
        else "reviewers"
    )
    return (
        "Trained in two steps: supervised fine-tuning on parallel text, then RLHF "
        f"({summary['rlhf_training'].get('objective')}) on the SFT model's own translations of a feedback set, "
        f"scored and post-edited by {who}. The table compares the base model with the final model on the test "
        "split, each delta with a paired-bootstrap 95% interval."
    )


def _cells(row: dict) -> list[str]:
    """base, SFT, RLHF (with intervals), SFT - base, RLHF - SFT (with intervals), the RLHF-vs-SFT verdict."""
    values = [
        format_value_with_interval(row[n], None if row[f"{n}_ci"] is None else tuple(row[f"{n}_ci"]))
        for n in MODEL_LABELS
    ]
    deltas = [
        "" if d is None else format_delta_with_interval(d["value"], (d["ci_low"], d["ci_high"]))
        for d in (row["sft_vs_base"], row["rlhf_vs_sft"])
    ]
    d = row["rlhf_vs_sft"]
    return [*values, *deltas, "" if d is None else f"{d['verdict']} (p = {d['p_value']:.3f})"]


def _metric_charts(summary: dict) -> list[tuple[str, str]]:
    """(alt text, data URI) of a bar chart per test metric: base, SFT, RLHF and RLHF minus SFT."""
    charts = []
    for row in summary["metrics"]:
        series = [
            Bars(label, [row[name]], [None if row[f"{name}_ci"] is None else tuple(row[f"{name}_ci"])], color)
            for (name, label), color in zip(MODEL_LABELS.items(), (BASE_COLOR, SFT_COLOR, TUNED_COLOR), strict=True)
        ]
        d = row["rlhf_vs_sft"]
        delta = Bars(
            "RLHF - SFT",
            [None if d is None else d["value"]],
            [None if d is None else (d["ci_low"], d["ci_high"])],
            DELTA_COLOR,
        )
        direction = "higher" if row["higher_is_better"] else "lower"
        uri = metric_bars(
            [""], series, f"{row['label']}: {direction} is better", delta, "RLHF minus SFT,\n95% interval"
        )
        charts.append((f"bar chart: {row['label']} of base, SFT and RLHF; RLHF minus SFT with its 95% interval", uri))
    return charts


def _training_charts(summary: dict) -> list[tuple[str, str]]:
    t = summary["rlhf_training"]
    uri = training_curve(t["loss_history"], t["dev_history"], f"RLHF ({t['objective']}) training loss")
    return [("RLHF training loss per step", uri)] if uri else []


def _html_charts(charts: list[tuple[str, str]]) -> str:
    e = html.escape
    return '<div class="charts">' + "".join(f'<img alt="{e(alt)}" src="{uri}">' for alt, uri in charts) + "</div>"


def _training_lines(summary: dict) -> list[tuple[str, str]]:
    t = summary["rlhf_training"]
    return [
        ("objective (feedback.objective)", str(t.get("objective"))),
        ("judged items trained on", str(t.get("items"))),
        ("optimizer steps", str(t.get("steps"))),
        ("final train loss", format_value(t.get("train_loss"))),
        ("final dev loss", format_value(t.get("dev_loss"))),
        ("training seconds", format_value(t.get("train_seconds"))),
    ]


def _html_table(lines: list[tuple[str, str]]) -> str:
    e = html.escape
    return "<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in lines) + "</table>"


class _Page:
    """The report's content, rendered once as HTML and once as Markdown."""

    def __init__(self, recipe: Recipe, summary: dict):
        self.recipe, self.summary = recipe, summary
        self.title = f"medtune full-training report: {recipe.name}"
        who = "a SIMULATED reviewer" if summary["feedback"]["simulated"] else "reviewers"
        self.intro = (
            f"Task {task_title(recipe)}, base model {recipe.model}. Supervised fine-tuning gave the SFT model "
            f"({summary['sft_model']}); it translated a feedback set kept apart from training and test; {who} scored "
            f"and post-edited the translations; RLHF ({recipe.feedback.objective}) trained the SFT model on those "
            f"judgments into {summary['rlhf_model']}. Base, SFT and RLHF are compared on the test split; every "
            "delta's 95% interval and p-value come from a paired bootstrap over the same sentences."
        )

    def html(self) -> str:
        e = html.escape
        s = self.summary
        parts = [
            page_start(self.title),
            f"<p>{e(self.intro)}</p>",
            "<h2>Test split: base, SFT, RLHF</h2>",
        ]
        head = "".join(f"<th>{e(h)}</th>" for h in ("metric", *HEADERS))
        body = "".join(
            f"<tr><td>{e(r['label'])}</td>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>"
            for r in s["metrics"]
        )
        parts += [
            f"<table><tr>{head}</tr>{body}</table>",
            _html_charts(_metric_charts(s)),
            feedback_html(s["feedback"]),
            "<h2>RLHF training</h2>",
            _html_table(_training_lines(s)),
            _html_charts(_training_charts(s)),
            "<h2>Stages</h2>",
            _html_table([(name, f"{r['fingerprint']} ({r['finished']})") for name, r in s["stages"].items()]),
            "<h2>Notes</h2>",
            "<ul>" + "".join(f"<li>{e(n)}</li>" for n in s["notes"]) + "</ul>",
            f"<p><strong>{e(TASK_CAUTION[self.recipe.task])}</strong></p>",
            "</body></html>",
        ]
        return "\n".join(parts) + "\n"

    def markdown(self) -> str:
        s = self.summary
        lines = [f"# {self.title}", "", self.intro, "", "## Test split: base, SFT, RLHF", ""]
        lines += ["| metric | " + " | ".join(HEADERS) + " |", "|---|" + "---:|" * 5 + "---|"]
        lines += [
            f"| {markdown_cell(r['label'])} | " + " | ".join(markdown_cell(c) for c in _cells(r)) + " |"
            for r in s["metrics"]
        ]
        lines += ["", *feedback_markdown(s["feedback"]), "## RLHF training", "", "| figure | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in _training_lines(s)]
        lines += ["", "## Notes", "", *[f"- {n}" for n in s["notes"]], "", f"**{TASK_CAUTION[self.recipe.task]}**", ""]
        return "\n".join(lines)


def full_training_table(summary: dict) -> Table:
    """The terminal table ``medtune run`` prints at the end of a full-training run."""
    table = Table(title=f"{summary['recipe']}: base vs SFT vs RLHF")
    table.add_column("figure")
    for header in HEADERS:
        table.add_column(header, justify="right")
    for row in summary["metrics"]:
        table.add_row(row["label"], *_cells(row))
    for figure, before, after, delta, p in comparison_lines(summary["feedback"].get("post_edits")):
        table.add_row(f"held-out feedback items: {figure}", "", before, after, "", delta, f"p = {p}")
    stats = summary["feedback"]["stats"]
    simulated = " (SIMULATED)" if summary["feedback"]["simulated"] else ""
    table.caption = (
        f"feedback{simulated}: {stats.get('judgments')} judgments of {stats.get('items')} items by "
        f"{stats.get('reviewers')} reviewer(s), mean score {format_score(stats.get('score_mean'))}; "
        f"RLHF {summary['rlhf_training'].get('objective')} on {summary['rlhf_training'].get('items')} items"
    )
    return table
