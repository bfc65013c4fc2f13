"""Many threads on one store, on SQLite and PostgreSQL: nothing acknowledged is lost or duplicated, no item over K."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from store_checks import assert_kept_counts_match

from medtune.feedback.models import OPEN, Assignment, Judgment
from medtune.feedback.store import AlreadyJudged, FeedbackStore, NewItem

THREADS = 8
ITEMS = 60
K = 2


def _drain(store: FeedbackStore, reviewer, start: threading.Barrier) -> tuple[list[tuple[int, str]], list[str]]:
    """Ask, judge (or skip every fifth item), until nothing is left; returns (acknowledged judgments, skips)."""
    start.wait()
    acknowledged, skipped = [], []
    for turn in range(ITEMS + 1):  # bounded: a reviewer can never be served more than every item once
        item = store.next_item(reviewer)
        if item is None:
            return acknowledged, skipped
        if reviewer.name == "r0" and turn % 5 == 0:
            store.skip(reviewer, item.id)
            skipped.append(item.id)
            continue
        acknowledged.append((store.submit(reviewer, item.id, (turn % 11) / 10), item.id))
    raise AssertionError(f"{reviewer.name} was served more than {ITEMS} items")


def test_concurrent_reviewers_lose_nothing_and_never_exceed_k(feedback_db_url):
    with FeedbackStore(feedback_db_url) as store:
        store.create_project("p", reviewers_per_item=K)
        store.add_items("p", [NewItem(f"s{i}", f"t{i}") for i in range(ITEMS)])
        reviewers = [store.reviewer_by_token(store.add_reviewer(f"r{i}")) for i in range(THREADS)]
        start = threading.Barrier(THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda r: _drain(store, r, start), reviewers))

        acknowledged = {jid: (reviewers[i].name, key) for i, (done, _) in enumerate(results) for jid, key in done}
        stored = {j.id: (j.reviewer, j.item_id) for j in store.judgments("p")}
        assert stored == acknowledged  # every acknowledged judgment is there, and nothing else
        per_item = Counter(key for _, key in stored.values())
        # Every item got exactly K judgments: none over K, and skips freed their slots for others.
        assert set(per_item) == {i.id for i in store.items("p")} and set(per_item.values()) == {K}
        assert len(set(stored.values())) == len(stored)  # no reviewer judged an item twice
        skipped_by_r0 = set(results[0][1])
        assert skipped_by_r0 and not skipped_by_r0 & {key for name, key in stored.values() if name == "r0"}
        assert_kept_counts_match(store)
        with store._read() as connection:
            assert connection.scalar(select(func.count()).select_from(Assignment).where(Assignment.state == OPEN)) == 0
            assert connection.scalar(select(func.count()).select_from(Judgment)) == ITEMS * K


def test_one_reviewer_submitting_one_item_from_many_threads_is_stored_once(feedback_db_url):
    with FeedbackStore(feedback_db_url) as store:
        store.create_project("p")
        store.add_items("p", [NewItem("s", "t")])
        ann = store.reviewer_by_token(store.add_reviewer("ann"))
        key = store.next_item(ann).id
        start = threading.Barrier(THREADS)

        def submit(score: float) -> int | str:
            start.wait()
            try:
                return store.submit(ann, key, score)
            except AlreadyJudged:
                return "already judged"

        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(submit, [i / 10 for i in range(THREADS)]))
        accepted = [o for o in outcomes if o != "already judged"]
        assert len(accepted) == 1 and outcomes.count("already judged") == THREADS - 1
        assert [j.id for j in store.judgments()] == accepted


def test_concurrent_first_items_never_go_to_more_than_k(feedback_db_url):
    """Eight reviewers ask at once for a project with fewer slots than askers: each slot goes out once."""
    with FeedbackStore(feedback_db_url) as store:
        store.create_project("p", reviewers_per_item=3)
        store.add_items("p", [NewItem("s0", "t0"), NewItem("s1", "t1")])  # 2 items x K=3 = 6 slots for 8 askers
        reviewers = [store.reviewer_by_token(store.add_reviewer(f"r{i}")) for i in range(THREADS)]
        start = threading.Barrier(THREADS)

        def ask(reviewer):
            start.wait()
            item = store.next_item(reviewer)
            return None if item is None else item.id

        with ThreadPoolExecutor(THREADS) as pool:
            served = list(pool.map(ask, reviewers))
        assert sorted(Counter(s for s in served if s is not None).values()) == [3, 3]
        assert served.count(None) == 2
