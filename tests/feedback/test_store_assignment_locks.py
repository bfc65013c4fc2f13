"""PostgreSQL: next_item's quick pass keeps the locks of fresh items it finds full, and starts again with a
savepoint per item before it would wait for another lock while holding them (two such waits could deadlock)."""

from __future__ import annotations

import threading

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url

from medtune.feedback.store import FeedbackStore, NewItem


def test_a_quick_pass_that_must_wait_starts_again_and_still_assigns(postgres_db_url):
    with FeedbackStore(postgres_db_url) as store, FeedbackStore(postgres_db_url) as other:
        store.create_project("p", reviewers_per_item=1)
        store.add_items("p", [NewItem("a", "A"), NewItem("b", "B")])
        first, second = (item.id for item in store.items("p"))
        ann = store.reviewer_by_token(store.add_reviewer("ann"))
        bob = other.reviewer_by_token(other.add_reviewer("bob"))

        # Item 2 is locked by another transaction, which lets go half a second later.
        dsn = make_url(postgres_db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        blocker = psycopg.connect(dsn)
        blocker.execute("SELECT seq FROM items WHERE id = %s FOR UPDATE", (second,))
        release = threading.Timer(0.5, blocker.commit)

        # Between ann's candidate query and her lock on item 1, bob takes item 1: her quick pass finds it full.
        def bob_takes_item_1_first(_conn, _cursor, statement, parameters, _context, _many) -> None:
            if "SKIP LOCKED" in statement and parameters.get("item") == first and not taken:
                taken.append(other.next_item(bob, "p"))
                release.start()

        taken: list = []
        passes: list[bool] = []
        quick_or_careful = store._next_item

        def record_pass(*args, quick):
            passes.append(quick)
            return quick_or_careful(*args, quick=quick)

        store._next_item = record_pass
        event.listen(store._engine, "before_cursor_execute", bob_takes_item_1_first)
        try:
            item = store.next_item(ann, "p")
        finally:
            release.join()
            blocker.close()
        assert taken[0].id == first and item.id == second
        assert passes == [True, False]  # the quick pass gave up (rolled back), the careful one assigned
        assert store.next_item(bob, "p").id == first and store.next_item(ann, "p").id == second  # theirs, once each
