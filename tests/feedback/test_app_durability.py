"""``medtune feedback serve`` killed with SIGKILL mid-session and restarted: every acknowledged
judgment is still there, and the item assigned but not yet judged is served again to its reviewer."""

from __future__ import annotations

import signal

from reviewer_server import PROJECT, client, demo_items, kill_process, seed_store, start_serve_process

from medtune.feedback.store import FeedbackStore

SUBMITTED = 10


def test_sigkill_loses_no_acknowledged_judgment_and_gives_the_open_item_back(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    with FeedbackStore(url) as store:
        tokens = seed_store(store, demo_items(15), reviewers=("ana",))
        ids = [view.id for view in store.items(PROJECT)]
    log = tmp_path / "serve.log"
    process, root = start_serve_process(url, log, "--project", PROJECT)
    acknowledged = []
    try:
        with client(root, tokens["ana"]) as ana:
            for step in range(SUBMITTED):
                item = ana.get("/api/next").json()["item_id"]
                answer = ana.post("/api/judgments", json={"item_id": item, "score": step / 10, "comment": f"#{step}"})
                assert answer.status_code == 201
                acknowledged.append((answer.json()["judgment_id"], item, step / 10, f"#{step}"))
            open_item = ana.get("/api/next").json()["item_id"]  # assigned, never judged
    finally:
        kill_process(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert open_item == ids[SUBMITTED]

    with FeedbackStore(url) as store:
        assert [(j.id, j.item_id, j.score, j.comment) for j in store.judgments()] == acknowledged

    process, root = start_serve_process(url, log, "--project", PROJECT)
    try:
        with client(root, tokens["ana"]) as ana:
            again = ana.get("/api/next").json()
            assert (again["item_id"], again["progress"]) == (open_item, {"done": SUBMITTED, "total": 15})
            assert ana.post("/api/judgments", json={"item_id": open_item, "score": 1.0}).status_code == 201
    finally:
        kill_process(process, signal.SIGTERM)
    with FeedbackStore(url) as store:
        assert [j.item_id for j in store.judgments()] == ids[: SUBMITTED + 1]
