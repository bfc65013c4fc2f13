"""medtune feedback export (exact keys, JSONL/CSV round trip, --out never overwrites) and stats (JSON = feedback_stats)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from cli_checks import assert_user_error, run_cli

from medtune.feedback.export import EXPORT_KEYS
from medtune.feedback.simulate import simulate_reviews
from medtune.feedback.stats import feedback_stats
from medtune.feedback.store import FeedbackStore, NewItem, database_url

ITEMS = [
    NewItem("The patient needs urgent attention.", "El paciente necesita atención.", "m", reference="El paciente necesita atención urgente."),
    NewItem("Take one tablet.", "Toma una tableta.", "m", reference="Tome un comprimido."),
    NewItem("Rest, and drink water.", "Descanse y beba agua.", "m"),
]  # fmt: skip


@pytest.fixture
def filled_db(tmp_path):
    """Project 'p': ana (human) judges two items in full, then the simulated reviewer judges what has a reference."""
    db = tmp_path / "feedback.db"
    with FeedbackStore(database_url(str(db))) as store:
        store.create_project("p", reviewers_per_item=2)
        store.add_items("p", ITEMS)
        store.add_reviewer("ana")
        ana = store.reviewer("ana")
        first = store.next_item(ana, "p")
        store.submit(
            ana, first.id, 0.4, post_edit=first.translation + " urgente", flags=("omission",), comment='a "quoted", comma', seconds=20
        )  # fmt: skip
        second = store.next_item(ana, "p")
        store.submit(ana, second.id, 0.9, post_edit=second.translation, seconds=10)
        simulate_reviews(store, "p", log=lambda _: None)
    return db


def test_jsonl_export_has_exactly_the_keys_and_the_stored_values(filled_db):
    result = run_cli(["feedback", "export", "--project", "p", "--db", filled_db])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    with FeedbackStore(database_url(str(filled_db))) as store:
        judgments = store.judgments("p")
    assert len(records) == len(judgments) == 4
    assert all(tuple(r) == EXPORT_KEYS for r in records)
    for record, j in zip(records, judgments, strict=True):
        assert record["item_id"] == j.item_id and record["reviewer"] == j.reviewer
        assert (record["score"], record["post_edit"], record["flags"], record["comment"], record["seconds"]) == (
            j.score, j.post_edit, list(j.flags), j.comment, j.seconds
        )  # fmt: skip
        assert record["simulated"] is j.simulated and record["reference"] == j.reference
        created = datetime.fromisoformat(record["created_at"])
        assert created.utcoffset().total_seconds() == 0  # ISO 8601 in UTC
        stored = j.created_at if j.created_at.tzinfo else j.created_at.replace(tzinfo=UTC)  # SQLite: naive UTC
        assert created == stored
    assert [r["simulated"] for r in records] == [False, False, True, True]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_imports_back_as_it_was(filled_db, tmp_path, fmt):
    out = tmp_path / f"judgments.{fmt}"
    result = run_cli(["feedback", "export", "--project", "p", "--db", filled_db, "--format", fmt, "--out", out])
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        with out.open(encoding="utf-8", newline="") as fh:
            assert tuple(csv.DictReader(fh).fieldnames) == EXPORT_KEYS
    back = run_cli(["feedback", "import", out, "--project", "copy", "--db", filled_db])
    assert back.exit_code == 0, back.output
    with FeedbackStore(database_url(str(filled_db))) as store:
        original, copied = store.judgments("p"), store.judgments("copy")

    def kept(j):
        return (j.source, j.translation, j.reference, j.reviewer, j.score, j.post_edit, j.flags, j.comment, j.seconds)

    assert [kept(j) for j in copied] == [kept(j) for j in original]


def test_out_is_never_overwritten_without_overwrite(filled_db, tmp_path):
    out = tmp_path / "mine.jsonl"
    out.write_text("the user's own file\n", encoding="utf-8")
    refused = run_cli(["feedback", "export", "--project", "p", "--db", filled_db, "--out", out])
    assert_user_error(refused, f"--out {out} already exists and is kept", "--overwrite")
    assert out.read_text(encoding="utf-8") == "the user's own file\n"
    replaced = run_cli(["feedback", "export", "--project", "p", "--db", filled_db, "--out", out, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4


def test_export_refuses_bad_options(filled_db, tmp_path):
    assert_user_error(
        run_cli(["feedback", "export", "--project", "p", "--db", filled_db, "--format", "xml"]), "--format must be one of jsonl, csv"
    )  # fmt: skip
    assert_user_error(
        run_cli(["feedback", "export", "--project", "nope", "--db", filled_db]), "No project 'nope'", "'p'"
    )
    assert run_cli(["feedback", "export", "--db", filled_db]).exit_code == 2  # --project is required


def test_stats_json_is_feedback_stats_of_the_store(filled_db):
    result = run_cli(["feedback", "stats", "--project", "p", "--db", filled_db, "--json", "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    with FeedbackStore(database_url(str(filled_db))) as store:
        expected = feedback_stats(store.judgments("p"), bootstrap=100, seed=0)
    figures = json.loads(result.stdout)
    assert figures == {"project": "p", **json.loads(json.dumps(expected))}
    assert figures["judgments"] == 4 and figures["simulated_judgments"] == 2
    assert figures["agreement"]["items"] == 2  # the two items ana and the simulated reviewer both judged
    assert figures["effort"]["post_edits"] == 4
    assert figures["seconds_per_word"] == pytest.approx(30 / (5 + 3))


def test_stats_table_flags_simulated_judgments(filled_db):
    result = run_cli(["feedback", "stats", "--db", filled_db])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Feedback: all projects" in text and "4 (2 SIMULATED)" in text
    assert "simulated-chrf │ SIMULATED" in text and "ana │ human" in text
    assert "2 of 4 judgment(s) are SIMULATED" in text


def test_stats_refuses_an_unknown_project_and_bad_bootstrap(filled_db):
    assert_user_error(run_cli(["feedback", "stats", "--project", "nope", "--db", filled_db]), "No project 'nope'")
    refused = run_cli(["feedback", "stats", "--db", filled_db, "--bootstrap", "0"])
    assert refused.exit_code == 2 and "--bootstrap" in refused.output


def test_csv_cells(filled_db):
    result = run_cli(["feedback", "export", "--project", "p", "--db", filled_db, "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["flags"] == "omission" and rows[0]["comment"] == 'a "quoted", comma'
    assert [r["simulated"] for r in rows] == ["false", "false", "true", "true"]
    assert rows[1]["flags"] == "" and rows[1]["comment"] == ""


@pytest.mark.parametrize("command", [["stats"], ["export", "--project", "p"], ["simulate", "--project", "p"]])
def test_reading_commands_refuse_a_missing_store_and_create_none(tmp_path, command):
    missing = tmp_path / "typo.db"
    assert_user_error(run_cli(["feedback", *command, "--db", missing]), f"No feedback store at {missing}", "--db")
    assert not missing.exists()
