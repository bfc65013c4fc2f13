"""``medtune feedback serve``: its options, the errors it refuses to start with, the warning off
loopback, and --lease-minutes taking effect."""

from __future__ import annotations

import signal
import socket
import time

from cli_checks import assert_user_error, run_cli
from reviewer_server import PROJECT, client, demo_items, kill_process, seed_store, start_serve_process

from medtune.feedback.store import FeedbackStore, database_url

OPTIONS = ("--db", "--host", "--port", "--project", "--glossary", "--rate-limit", "--burst", "--max-body-kb")


def test_help_explains_every_option() -> None:
    result = run_cli(["feedback", "serve", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    for option in (*OPTIONS, "--lease-minutes"):
        assert option in text, option
    for phrase in ("SQLAlchemy URL", "local connections only", "glossary_en_es.tsv", "HTTP 429", "HTTP 413", "lease"):
        assert phrase in text, phrase


def test_serve_refuses_to_start_on_bad_settings(tmp_path) -> None:
    db = tmp_path / "feedback.db"
    with FeedbackStore(database_url(str(db))) as store:
        seed_store(store, demo_items(1), reviewers=())
    unknown = run_cli(["feedback", "serve", "--db", db, "--project", "other"])
    assert_user_error(unknown, "No project 'other'", "--project", "'demo'")
    nowhere = tmp_path / "typo.db"
    assert_user_error(run_cli(["feedback", "serve", "--db", nowhere]), f"No feedback store at {nowhere}")
    assert not nowhere.exists()
    lease = run_cli(["feedback", "serve", "--db", db, "--lease-minutes", "5"])
    assert_user_error(lease, "--lease-minutes", "--project")
    missing = tmp_path / "missing.tsv"
    assert_user_error(run_cli(["feedback", "serve", "--db", db, "--glossary", missing]), str(missing))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_user_error(run_cli(["feedback", "serve", "--db", db, "--port", port]), f"Port {port}", "in use")


def test_serve_warns_off_loopback_and_applies_the_lease(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackStore(url) as store:
        tokens = seed_store(store, demo_items(1))
    log = tmp_path / "serve.log"
    # 0.01 minutes = 0.6 s: an item ana leaves alone is offered to ben soon after.
    process, root = start_serve_process(url, log, "--host", "0.0.0.0", "--project", PROJECT, "--lease-minutes", "0.01")
    try:
        with client(root, tokens["ana"]) as ana, client(root, tokens["ben"]) as ben:
            item = ana.get("/api/next").json()["item_id"]
            assert ben.get("/api/next").status_code == 204  # ana's lease holds the only item
            time.sleep(1.0)
            assert ben.get("/api/next").json()["item_id"] == item
    finally:
        kill_process(process, signal.SIGTERM)
    text = " ".join(log.read_text().split())
    assert "Warning: 0.0.0.0 accepts connections from other machines" in text
    assert f"Reviewer page for project {PROJECT}" in text
