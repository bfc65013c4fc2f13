"""The report's feedback section (report/feedback.py): figures from feedback_stats, SIMULATED marked, text escaped."""

from __future__ import annotations

from datetime import UTC, datetime

from medtune.feedback.stats import feedback_stats
from medtune.feedback.store import JudgmentView
from medtune.pipeline.full_training import judgment_from_record, judgment_record
from medtune.report.feedback import feedback_html, feedback_markdown, feedback_section, figure_lines

SCRIPT = "<script>alert(1)</script>"


def judgment(k: int, reviewer: str, score: float, *, simulated: bool = False) -> JudgmentView:
    return JudgmentView(
        id=k,
        item_id=f"item-{k % 3}",
        project="p",
        reviewer=reviewer,
        simulated=simulated,
        imported=False,
        score=score,
        post_edit="El paciente está estable." if k % 2 else None,
        flags=("terminology",) if k == 1 else (),
        comment=None,
        seconds=6.0,
        created_at=datetime(2026, 11, 29, 20, k, tzinfo=UTC),
        source="The patient is stable.",
        translation="El paciente es estable.",
        reference="El paciente está estable.",
        model_id="m",
    )


def people() -> list[JudgmentView]:
    """Three items, each judged by two people (one with a name that is HTML)."""
    return [judgment(k, "ana" if k < 3 else SCRIPT, [0.9, 0.4, 0.7, 0.8, 0.5, 0.6][k]) for k in range(6)]


def test_human_feedback_section_is_feedback_stats_and_escapes_names():
    judgments = people()
    section = feedback_section(judgments, None, seed=7)
    assert section["stats"] == feedback_stats(judgments, seed=7)  # the one statistics module, unchanged
    assert not section["simulated"] and section["simulated_note"] is None
    lines = dict(figure_lines(section))
    assert lines["judged items"] == "3" and lines["judgments (simulated)"] == "6 (0)"
    assert lines["mean score"] == "0.650"  # (0.9 + 0.4 + 0.7 + 0.8 + 0.5 + 0.6) / 6
    assert lines["agreement: Krippendorff's alpha (interval) [95% CI]"].endswith("on 3 items")
    page = feedback_html(section)
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "SIMULATED" not in page and "<img" in page  # the score histogram
    assert "Not measured: no held-out judged item with a post-edit." in feedback_markdown(section)


def test_simulated_judgments_are_marked_everywhere():
    judgments = [*people()[:4], judgment(6, "simulated-chrf", 0.3, simulated=True)]
    section = feedback_section(judgments, {"skipped": "no held-out judged item with a post-edit"}, seed=0)
    assert section["simulated"]
    assert section["simulated_note"].startswith("SIMULATED feedback: 1 of 5 judgments")
    assert section["simulated_note"] in feedback_html(section)
    assert f"**{section['simulated_note']}**" in feedback_markdown(section)
    assert "Not measured: no held-out judged item with a post-edit." in feedback_markdown(section)


def test_judgments_survive_the_run_folder_round_trip():
    for j in people():
        assert judgment_from_record(judgment_record(j)) == j
