"""``medtune feedback add-reviewer``: prints a working one-time token; only its hash is stored."""

from __future__ import annotations

import hashlib

from cli_checks import assert_user_error, run_cli
from sqlalchemy import create_engine, text

from medtune.feedback.store import FeedbackStore, database_url


def _token(output: str) -> str:
    lines = output.splitlines()
    return lines[lines.index(next(line for line in lines if "can sign in with this token" in line)) + 1].strip()


def test_add_reviewer_prints_a_token_that_signs_in(feedback_db_url):
    result = run_cli(["feedback", "add-reviewer", "Dr. Ruiz", "--db", feedback_db_url])
    assert result.exit_code == 0, result.output
    assert "not stored" in result.output and "cannot be shown again" in result.output
    token = _token(result.output)
    with FeedbackStore(feedback_db_url) as store:
        reviewer = store.reviewer_by_token(token)
        assert (reviewer.name, reviewer.simulated) == ("Dr. Ruiz", False)
        engine = store._engine
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT token_sha256 FROM reviewers")).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]  # the hash, never the token

    again = run_cli(["feedback", "add-reviewer", "Dr. Ruiz", "--db", feedback_db_url])
    assert_user_error(again, "reviewer 'Dr. Ruiz' already exists", "--new-token")
    renewed = run_cli(["feedback", "add-reviewer", "Dr. Ruiz", "--db", feedback_db_url, "--new-token", "--simulated"])
    assert renewed.exit_code == 0, renewed.output
    with FeedbackStore(feedback_db_url) as store:
        assert store.reviewer_by_token(token) is None
        assert store.reviewer_by_token(_token(renewed.output)).name == "Dr. Ruiz"


def test_add_reviewer_defaults_to_feedback_db_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(["feedback", "add-reviewer", "bot", "--simulated"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "feedback.db").is_file()
    engine = create_engine(database_url(None))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name, simulated FROM reviewers")).all() == [("bot", True)]
    engine.dispose()


def test_add_reviewer_bad_input(tmp_path):
    assert_user_error(run_cli(["feedback", "add-reviewer", "  ", "--db", str(tmp_path / "f.db")]), "reviewer name")
    assert_user_error(
        run_cli(["feedback", "add-reviewer", "ann", "--db", str(tmp_path / "no" / "f.db")]), "does not exist"
    )
    help_text = " ".join(run_cli(["feedback", "add-reviewer", "--help"]).output.split())
    for fragment in ("--db", "SQLAlchemy URL", "--simulated", "--new-token", "old token stops working"):
        assert fragment in help_text
