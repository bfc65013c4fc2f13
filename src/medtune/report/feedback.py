"""The report section on human feedback: what reviewers said, and whether training moved the model towards it.

Two parts, each usable alone (``medtune run full-training`` shows both; a report of
``medtune train feedback-rlhf`` may reuse them):

* :func:`feedback_section`: the judgments used (counts, the score histogram, agreement between
  reviewers on items judged more than once, post-editing effort as HTER, seconds per word), all
  from :func:`medtune.feedback.stats.feedback_stats`, with SIMULATED marked when a simulated
  reviewer gave any of them;
* :func:`post_edit_comparison`: on held-out judged items, the model before and after training:
  the mean log-probability margin of the post-edit over the machine output
  (:func:`medtune.feedback.heldout.evaluate_post_edit_margin`) and chrF++/BLEU/TER against the
  post-edits (:func:`medtune.eval.post_edits.evaluate_against_post_edits`), each with a 95%
  bootstrap interval, and the paired after-minus-before deltas.

``feedback_html`` and ``feedback_markdown`` render a section (a dict, as ``summary.json`` holds it).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from medtune.data.io import read_jsonl
from medtune.errors import MedtuneError
from medtune.report.formatting import format_delta_with_interval, format_value, format_value_with_interval
from medtune.report.plots import histogram

SIMULATED_NOTE = (
    "SIMULATED feedback: {simulated} of {judgments} judgments come from a simulated reviewer (score = sentence "
    "chrF++ against the reference, post-edit = the reference), not from people."
)
TRANSLATION_KEYS = (("chrf", "chrF++", True), ("bleu", "BLEU", True), ("ter", "TER", False))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _delta(delta) -> dict | None:
    if delta is None:
        return None
    return {k: _rounded(v) if isinstance(v, float) else v for k, v in delta.to_dict().items()}


def _joined(before: Path, after: Path) -> list[tuple[dict, dict]]:
    """Rows of two models' ``outputs.jsonl`` joined by item id (empty when either file is missing)."""
    if not before.is_file() or not after.is_file():
        return []
    rows_b, rows_a = read_jsonl(before), {str(r["id"]): r for r in read_jsonl(after)}
    if len(rows_a) != len(rows_b) or any(str(r["id"]) not in rows_a for r in rows_b):
        raise MedtuneError(
            f"{before} and {after} do not hold the same items, so they cannot be compared item by item; run the "
            "stage that wrote them again (medtune run RECIPE --resume --from eval_post_edits)."
        )
    return [(r, rows_a[str(r["id"])]) for r in rows_b]


def _preference(margins: dict | None, before: str, after: str) -> dict | None:
    """The post-edit preference figures of :func:`medtune.feedback.heldout.evaluate_post_edit_margin`, renamed
    before/after (None when there was no item to score)."""
    if not margins or not margins.get("n"):
        return None

    def model(key: str) -> dict:
        m = margins[key]
        return {
            "mean_margin": _rounded(m["mean_margin"]),
            "ci": [_rounded(m["ci_low"]), _rounded(m["ci_high"])],
            "prefers_post_edit": _rounded(m["post_edit_preferred"]),
        }

    delta = margins["delta"]
    return {
        "n": margins["n"],
        "before": model(before),
        "after": model(after),
        "delta": {k: _rounded(v) if isinstance(v, float) else v for k, v in delta.items()},
    }


def _translation(before: Path, after: Path, seed: int) -> dict | None:
    """chrF++, BLEU and TER against the post-edits before and after (from each metrics.json), intervals, deltas."""
    from medtune.eval.significance import paired_translation_deltas, translation_score_intervals

    joined = _joined(before / "outputs.jsonl", after / "outputs.jsonl")
    if not joined:
        return None
    refs = [b["reference"] for b, _ in joined]
    hyps = {"before": [b["output"] for b, _ in joined], "after": [a["output"] for _, a in joined]}
    metrics = {
        name: json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        for name, folder in (("before", before), ("after", after))
    }
    intervals = {name: translation_score_intervals(h, refs, seed=seed) for name, h in hyps.items()}
    deltas = paired_translation_deltas(hyps["before"], hyps["after"], refs, seed=seed)
    return {
        "n": len(joined),
        **{
            key: {
                "before": metrics["before"][key],
                "before_ci": [_rounded(x) for x in intervals["before"][key]],
                "after": metrics["after"][key],
                "after_ci": [_rounded(x) for x in intervals["after"][key]],
                "delta": _delta(deltas[key]),
            }
            for key, _, _ in TRANSLATION_KEYS
        },
    }


def post_edit_comparison(
    before: Path,
    after: Path,
    margins: dict | None,
    *,
    keys: tuple[str, str] = ("sft", "rlhf"),
    names: tuple[str, str] = ("SFT", "RLHF"),
    seed: int = 42,
) -> dict:
    """Two models against the post-edits of the same held-out items, item by item.

    Args:
        before, after: folders written by :func:`medtune.eval.post_edits.evaluate_against_post_edits`.
        margins: :func:`medtune.feedback.heldout.evaluate_post_edit_margin`'s result for the two models, or None.
        keys: the two models' names in ``margins``; names: how the report calls them.
        seed: the bootstrap seed of the translation intervals and paired deltas.
    Returns:
        ``{"before_name", "after_name", "preference": {n, before, after, delta} or None,
        "translation": {n, chrf/bleu/ter: {before, before_ci, after, after_ci, delta}} or None}``.
    Raises:
        MedtuneError: the two folders hold different items.
    """
    return {
        "before_name": names[0],
        "after_name": names[1],
        "preference": _preference(margins, *keys),
        "translation": _translation(before, after, seed),
    }


def feedback_section(judgments: Sequence, post_edits: dict | None = None, *, seed: int = 0) -> dict:
    """The feedback section of a report: ``feedback_stats`` of ``judgments`` and, if given, the post-edit comparison.

    Args:
        judgments: the store's ``JudgmentView`` records the training used.
        post_edits: :func:`post_edit_comparison`'s result, or None.
        seed: the seed of the agreement and effort bootstraps.
    Returns:
        ``{"stats": feedback_stats(...), "simulated": bool, "simulated_note": str or None, "post_edits": ...}``.
    """
    from medtune.feedback.stats import feedback_stats

    stats = feedback_stats(judgments, seed=seed)
    simulated = sum(1 for j in judgments if j.simulated)
    note = SIMULATED_NOTE.format(simulated=simulated, judgments=len(judgments)) if simulated else None
    return {"stats": stats, "simulated": bool(simulated), "simulated_note": note, "post_edits": post_edits}


def _histogram(stats: dict) -> tuple[list[int], list[float]]:
    """The score histogram as (counts, edges): ``feedback_stats`` counts 10 equal bins over [0, 1]."""
    counts = list(stats.get("score_histogram") or [])
    return counts, [k / len(counts) for k in range(len(counts) + 1)]


def format_score(value: float | None) -> str:
    """A score in [0, 1], to three places (two would show 0.004 as 0.00)."""
    return "-" if value is None else f"{value:.3f}"


def _interval(low: float | None, high: float | None) -> tuple[float, float] | None:
    return None if low is None or high is None else (low, high)


def figure_lines(section: dict) -> list[tuple[str, str]]:
    """(figure, value) lines of the judgments used, as the report and the terminal show them."""
    s = section["stats"]
    lines = [
        ("judged items", str(s.get("items"))),
        ("judgments (simulated)", f"{s.get('judgments')} ({s.get('simulated_judgments')})"),
        ("reviewers", str(s.get("reviewers"))),
        ("mean score", format_score(s.get("score_mean"))),
    ]
    a = s.get("agreement")
    lines.append(
        (
            "agreement: Krippendorff's alpha (interval) [95% CI]",
            "- (no item judged more than once)"
            if not a
            else f"{format_value_with_interval(a['alpha'], _interval(a.get('ci_low'), a.get('ci_high')))} on {a['items']} items",
        )
    )
    e = s.get("effort") or {}
    if e.get("post_edits"):
        shown = format_value_with_interval(e.get("hter_mean"), _interval(e.get("ci_low"), e.get("ci_high")))
        lines.append(("post-editing effort: mean HTER [95% CI]", f"{shown} over {e['post_edits']} post-edits"))
    else:
        lines.append(("post-editing effort: mean HTER", "- (no post-edit)"))
    spw = s.get("seconds_per_word")
    lines.append(("seconds per source word", "- (no time recorded)" if spw is None else format_value(spw)))
    for r in s.get("per_reviewer") or []:
        rate = r.get("judgments_per_hour")
        lines.append(
            (
                f"reviewer {r['reviewer']}",
                f"{r['judgments']} judgments" + ("" if rate is None else f", {format_value(rate)} per hour"),
            )
        )
    return lines


def comparison_lines(post_edits: dict | None) -> list[tuple[str, str, str, str, str]]:
    """(figure, before, after, after - before [95% CI], p) lines of the post-edit comparison."""
    if not post_edits:
        return []
    lines = []
    p = post_edits.get("preference")
    if p:
        d = p["delta"]
        lines.append(
            (
                f"log-prob margin, post-edit over machine output (n = {p['n']})",
                format_value_with_interval(p["before"]["mean_margin"], tuple(p["before"]["ci"])),
                format_value_with_interval(p["after"]["mean_margin"], tuple(p["after"]["ci"])),
                format_delta_with_interval(d["value"], (d["ci_low"], d["ci_high"])),
                f"{d['p_value']:.3f}",
            )
        )
    t = post_edits.get("translation")
    for key, label, _ in TRANSLATION_KEYS if t else ():
        m, d = t[key], t[key]["delta"]
        lines.append(
            (
                f"{label} against post-edits (n = {t['n']})",
                format_value_with_interval(m["before"], tuple(m["before_ci"])),
                format_value_with_interval(m["after"], tuple(m["after_ci"])),
                format_delta_with_interval(d["value"], (d["ci_low"], d["ci_high"])),
                f"{d['p_value']:.3f}",
            )
        )
    return lines


def _comparison_headers(post_edits: dict) -> tuple[str, ...]:
    b, a = post_edits["before_name"], post_edits["after_name"]
    return ("figure", b, a, f"{a} - {b} [95% CI]", "p")


def score_histogram_chart(section: dict) -> str | None:
    """The reviewers' score histogram as a PNG data URI (None without judgments)."""
    counts, edges = _histogram(section["stats"])
    label = "SIMULATED reviewer scores" if section["simulated"] else "reviewer scores"
    return histogram(counts, edges, f"{label} of the {sum(counts)} judgments", "score") if counts else None


def feedback_html(section: dict, heading: str = "h2") -> str:
    """The section as an HTML fragment (every text escaped)."""
    e = html.escape
    parts = [f"<{heading}>Feedback used</{heading}>"]
    if section["simulated_note"]:
        parts.append(f'<p class="verdict"><strong>{e(section["simulated_note"])}</strong></p>')
    parts.append(
        "<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in figure_lines(section)) + "</table>"
    )
    if uri := score_histogram_chart(section):
        parts.append(f'<div class="charts"><img alt="histogram of the reviewers\' scores" src="{uri}"></div>')
    post = section.get("post_edits")
    lines = comparison_lines(post)
    parts.append(f"<{heading}>Held-out judged items: towards the post-edits?</{heading}>")
    if lines:
        head = "".join(f"<th>{e(h)}</th>" for h in _comparison_headers(post))
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in line) + "</tr>" for line in lines)
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
        parts.append(f"<p>{e(COMPARISON_NOTE)}</p>")
    else:
        parts.append(f"<p>{e(post_edits_absent(post))}</p>")
    return "\n".join(parts)


COMPARISON_NOTE = (
    "Margin: mean per-token log-probability of the reviewer's post-edit minus that of the machine output it "
    "corrected, given the source (positive = the model prefers the post-edit), on held-out items whose post-edit "
    "differs. chrF++/BLEU/TER: each model translates the held-out sources again, scored against the post-edits. "
    "Intervals are 95% bootstrap intervals; deltas and p-values come from a paired bootstrap over the same items."
)


def post_edits_absent(post_edits: dict | None) -> str:
    """Why the section has no post-edit comparison."""
    if post_edits and post_edits.get("skipped"):
        return f"Not measured: {post_edits['skipped']}."
    return "Not measured: no held-out judged item with a post-edit."


def feedback_markdown(section: dict, heading: str = "##") -> list[str]:
    """The section as Markdown lines."""
    from medtune.report.formatting import markdown_cell

    lines = [f"{heading} Feedback used", ""]
    if section["simulated_note"]:
        lines += [f"**{section['simulated_note']}**", ""]
    lines += ["| figure | value |", "|---|---:|"]
    lines += [f"| {markdown_cell(k)} | {markdown_cell(v)} |" for k, v in figure_lines(section)]
    lines += ["", f"{heading} Held-out judged items: towards the post-edits?", ""]
    post = section.get("post_edits")
    rows = comparison_lines(post)
    if rows:
        lines += ["| " + " | ".join(_comparison_headers(post)) + " |", "|---|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
        lines += ["", COMPARISON_NOTE]
    else:
        lines.append(post_edits_absent(post))
    return lines + [""]
