"""Many reviewers submitting at once through a real uvicorn (one process, or ``--workers 2``), on SQLite
and PostgreSQL: every acknowledged judgment is in the database exactly once, and nothing else is."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from reviewer_server import PROJECT, client, demo_items, kill_process, seed_store, serving, start_serve_process

from medtune.feedback.store import FeedbackStore

CLIENTS = 8
SLOTS = 200  # 100 items x K: 25 judgments per client on average
K = 2  # reviewers per item: each item must end with exactly two judgments by two different reviewers


def _review(root: str, token: str, index: int) -> list[tuple[int, str]]:
    """One reviewer's loop: next item, judge it, until nothing is left for them (at most every slot);
    returns the acknowledged (judgment id, item id)."""
    acknowledged = []
    with client(root, token) as reviewer:
        for step in range(SLOTS):
            item = reviewer.get("/api/next")
            if item.status_code == 204:
                break
            assert item.status_code == 200, item.text
            item_id = item.json()["item_id"]
            score = round(step / SLOTS, 4)
            answer = reviewer.post("/api/judgments", json={"item_id": item_id, "score": score, "post_edit": f"{index}"})
            assert answer.status_code == 201, answer.text
            acknowledged.append((answer.json()["judgment_id"], item_id))
    return acknowledged


def test_concurrent_reviewers_lose_and_duplicate_nothing(feedback_db_url) -> None:
    names = [f"reviewer{i}" for i in range(CLIENTS)]
    with FeedbackStore(feedback_db_url) as store:
        tokens = seed_store(store, demo_items(SLOTS // K), reviewers=names, k=K)
        with serving(store) as root, ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(_review, [root] * CLIENTS, [tokens[n] for n in names], range(CLIENTS)))
            for name in names:  # every slot is judged: nothing is left for anyone
                with client(root, tokens[name]) as reviewer:
                    assert reviewer.get("/api/next").status_code == 204
        stored = store.judgments(PROJECT)
        items = [view.id for view in store.items(PROJECT)]
    acknowledged = {(judgment, item, names[i]) for i, result in enumerate(results) for judgment, item in result}
    # Every slot filled, and no judgment id handed out twice (how many each client made depends on timing:
    # near the end a client may find only items it judged already).
    assert len(acknowledged) == SLOTS
    assert {(j.id, j.item_id, j.reviewer) for j in stored} == acknowledged
    assert len(stored) == SLOTS
    assert all(j.post_edit == j.reviewer.removeprefix("reviewer") for j in stored)  # each body went to its row
    per_item = {item: sorted(j.reviewer for j in stored if j.item_id == item) for item in items}
    assert all(len(set(reviewers)) == K == len(reviewers) for reviewers in per_item.values()), per_item


def test_worker_processes_share_the_store_and_stop_together(feedback_db_url, tmp_path) -> None:
    names = [f"reviewer{i}" for i in range(4)]
    with FeedbackStore(feedback_db_url) as store:
        tokens = seed_store(store, demo_items(40), reviewers=names, k=1)
    log = tmp_path / "serve.log"
    process, root = start_serve_process(feedback_db_url, log, "--workers", "2", "--project", PROJECT)
    try:
        with ThreadPoolExecutor(len(names)) as pool:
            results = list(pool.map(_review, [root] * 4, [tokens[n] for n in names], range(4)))
    finally:
        kill_process(process, signal.SIGTERM)  # the supervisor stops its workers and exits
    assert process.returncode == 0, log.read_text()
    assert "2 worker processes" in " ".join(log.read_text().split())
    with pytest.raises(httpx.TransportError):  # no worker is left serving the port
        httpx.get(f"{root}/api/health", timeout=2)
    with FeedbackStore(feedback_db_url) as store:
        stored = store.judgments(PROJECT)
    acknowledged = {(judgment, item, names[i]) for i, result in enumerate(results) for judgment, item in result}
    assert {(j.id, j.item_id, j.reviewer) for j in stored} == acknowledged
    assert len(acknowledged) == 40 == len({j.item_id for j in stored})  # every item judged once, by one reviewer
