"""The reviewer JSON API against a real uvicorn on loopback and a real SQLite store: auth, the
review cycle, ownership, limits and the security headers."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from reviewer_server import PROJECT, client, demo_items, seed_store, serving

from medtune.feedback.http_guards import CONTENT_SECURITY_POLICY
from medtune.feedback.store import FeedbackStore

CALLS = (
    ("GET", "/api/me"),
    ("GET", "/api/next"),
    ("POST", "/api/judgments"),
    ("POST", "/api/skip"),
    ("POST", "/api/undo"),
)


@pytest.fixture
def store(tmp_path) -> Iterator[FeedbackStore]:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield store
    store.close()


def test_health_is_open_and_every_other_call_needs_a_valid_token(store) -> None:
    tokens = seed_store(store, demo_items(2))
    with serving(store) as root:
        with client(root, None) as anonymous:
            health = anonymous.get("/api/health")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            for method, path in CALLS:
                answer = anonymous.request(method, path, json={"item_id": "x", "score": 0.5})
                assert answer.status_code == 401, (method, path)
                assert answer.headers["www-authenticate"] == "Bearer"
                assert "Authorization: Bearer" in answer.json()["error"]
        for header in ("Bearer not-a-token", f"Basic {tokens['ana']}", f"Bearer {'x' * 600}", tokens["ana"]):
            with client(root, None) as wrong:
                for method, path in CALLS:
                    answer = wrong.request(method, path, headers={"Authorization": header})
                    assert answer.status_code == 401, (header[:20], method, path)
                    assert set(answer.json()) == {"error"}
    assert store.judgments() == []
    # The refused calls assigned nothing: ana's progress still counts both items as fresh.
    ana = store.reviewer("ana")
    assert (store.progress(ana, PROJECT).done, store.progress(ana, PROJECT).total) == (0, 2)


def test_a_review_cycle_serves_items_with_terms_and_stores_the_judgment(store) -> None:
    items = store_items = demo_items(3)
    tokens = seed_store(store, store_items)
    ids = [view.id for view in store.items(PROJECT)]
    with serving(store) as root, client(root, tokens["ana"]) as ana:
        me = ana.get("/api/me").json()
        assert me == {
            "reviewer": "ana",
            "project": None,
            "flags": ["terminology", "omission", "addition", "meaning", "fluency", "other"],
            "progress": {"done": 0, "total": 3},
        }
        first = ana.get("/api/next")
        assert first.status_code == 200
        # "Sentence 0: keep the wound clean." - the glossary's "wound" stands at characters 21-26.
        assert first.json() == {
            "item_id": ids[0],
            "source": items[0].source,
            "translation": items[0].translation,
            "terms": [{"en": "wound", "es": "herida", "start": 21, "end": 26}],
            "progress": {"done": 0, "total": 3},
        }
        assert ana.get("/api/next").json()["item_id"] == ids[0]  # a reload gives the same item back
        body = {
            "item_id": ids[0],
            "score": 0.75,
            "post_edit": "Frase 0: mantenga la herida limpia.",
            "flags": ["fluency", "terminology"],
            "comment": "word order",
            "seconds": 12.5,
        }
        created = ana.post("/api/judgments", json=body)
        assert created.status_code == 201
        judgment_id = created.json()["judgment_id"]
        assert created.json() == {"judgment_id": judgment_id}
        second = ana.get("/api/next").json()
        assert (second["item_id"], second["progress"]) == (ids[1], {"done": 1, "total": 3})
    [stored] = store.judgments()
    assert (stored.id, stored.item_id, stored.reviewer, stored.project) == (judgment_id, ids[0], "ana", PROJECT)
    assert (stored.score, stored.post_edit, stored.comment, stored.seconds) == (
        0.75,
        body["post_edit"],
        "word order",
        12.5,
    )
    assert stored.flags == ("fluency", "terminology")
    assert not stored.simulated and not stored.imported


def test_reviewers_see_only_their_own_items_and_undo_only_their_own_judgments(store) -> None:
    tokens = seed_store(store, demo_items(2))
    ids = [view.id for view in store.items(PROJECT)]
    with serving(store) as root, client(root, tokens["ana"]) as ana, client(root, tokens["ben"]) as ben:
        assert ana.get("/api/next").json()["item_id"] == ids[0]
        assert ben.get("/api/next").json()["item_id"] == ids[1]  # ana holds the lease on the first
        stolen = ben.post("/api/judgments", json={"item_id": ids[0], "score": 0.1})
        assert stolen.status_code == 409 and "was not assigned it" in stolen.json()["error"]
        unknown = ben.post("/api/judgments", json={"item_id": "no-such-item", "score": 0.1})
        assert unknown.status_code == 404 and "no such item" in unknown.json()["error"]
        ana_judgment = ana.post("/api/judgments", json={"item_id": ids[0], "score": 0.9}).json()["judgment_id"]
        again = ana.post("/api/judgments", json={"item_id": ids[0], "score": 0.2})
        assert again.status_code == 409 and "already judged" in again.json()["error"]
        nothing = ben.post("/api/undo")  # ben has judged nothing: ana's judgment is not his to undo
        assert nothing.status_code == 404 and nothing.json() == {"error": "ben has no judgment to undo."}
        ben_judgment = ben.post("/api/judgments", json={"item_id": ids[1], "score": 0.4}).json()["judgment_id"]
        undone = ana.post("/api/undo")
        assert (undone.status_code, undone.json()) == (200, {"judgment_id": ana_judgment})
        assert ana.get("/api/next").json()["item_id"] == ids[0]  # the undone item is back in ana's queue
        assert ben.get("/api/next").status_code == 204
    assert [(j.id, j.reviewer, j.item_id, j.score) for j in store.judgments()] == [(ben_judgment, "ben", ids[1], 0.4)]


def test_a_skipped_item_is_never_served_again_to_its_reviewer(store) -> None:
    tokens = seed_store(store, demo_items(2))
    ids = [view.id for view in store.items(PROJECT)]
    with serving(store) as root, client(root, tokens["ana"]) as ana, client(root, tokens["ben"]) as ben:
        assert ana.get("/api/next").json()["item_id"] == ids[0]
        skipped = ana.post("/api/skip", json={"item_id": ids[0]})
        assert (skipped.status_code, skipped.json()) == (200, {"skipped": ids[0]})
        assert ana.get("/api/next").json()["item_id"] == ids[1]
        assert ana.post("/api/judgments", json={"item_id": ids[1], "score": 0.5}).status_code == 201
        empty = ana.get("/api/next")
        assert (empty.status_code, empty.content) == (204, b"")
        assert ana.post("/api/skip", json={"item_id": ids[0]}).status_code == 409  # skipped already
        assert ben.get("/api/next").json()["item_id"] == ids[0]  # the skip freed the slot for others
    assert [j.item_id for j in store.judgments()] == [ids[1]]


def test_bodies_over_the_limit_are_refused_with_413_before_the_store_sees_them(store) -> None:
    tokens = seed_store(store, demo_items(1))
    item = store.items(PROJECT)[0].id
    with serving(store, max_body_bytes=1024) as root, client(root, tokens["ana"]) as ana:
        assert ana.get("/api/next").json()["item_id"] == item
        large = {"item_id": item, "score": 0.5, "post_edit": "x" * 2000}
        declared = ana.post("/api/judgments", json=large)  # refused by its Content-Length
        assert declared.status_code == 413 and "over the limit of 1024 bytes" in declared.json()["error"]

        def chunks():  # no Content-Length: httpx sends it chunked, so the limit applies while reading
            yield b'{"item_id": "' + item.encode() + b'", "score": 0.5, "post_edit": "'
            for _ in range(10):
                yield b"y" * 200
            yield b'"}'

        streamed = ana.post("/api/judgments", content=chunks(), headers={"Content-Type": "application/json"})
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413 and "over the limit" in streamed.json()["error"]
        small = ana.post("/api/judgments", json={"item_id": item, "score": 0.5, "post_edit": "z" * 900})
        assert small.status_code == 201
    assert [len(j.post_edit) for j in store.judgments()] == [900]


def test_a_reviewer_over_the_rate_limit_gets_429_and_others_do_not(store) -> None:
    tokens = seed_store(store, demo_items(1))
    with serving(store, rate_limit=0.01, burst=3) as root, client(root, tokens["ana"]) as ana:
        assert [ana.get("/api/me").status_code for _ in range(3)] == [200, 200, 200]
        refused = ana.get("/api/next")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "100"  # one token at 0.01 per second
        assert "at most 0.01 per second (bursts of 3)" in refused.json()["error"]
        with client(root, tokens["ben"]) as ben:
            assert ben.get("/api/next").status_code == 200
    # The refused call assigned nothing: the only item went to ben.
    assert store.next_item(store.reviewer("ana"), PROJECT) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"score": 1.5}, "score: Input should be less than or equal to 1"),
        ({"score": -0.1}, "score: Input should be greater than or equal to 0"),
        ({"score": "high"}, "score: Input should be a valid number"),
        ({"score": None}, "score: Input should be a valid number"),
        ({"flags": ["typo"]}, "flags: Value error, unknown error flag(s) ['typo']"),
        ({"flags": ["omission", "omission"]}, "flags: Value error, a flag is listed twice"),
        ({"reviewer": "ben"}, "reviewer: Extra inputs are not permitted"),
        ({"comment": "c" * 2001}, "comment: String should have at most 2000 characters"),
        ({"seconds": -1}, "seconds: Input should be greater than or equal to 0"),
        ({"item_id": ""}, "item_id: String should have at least 1 character"),
    ],
)
def test_invalid_judgments_are_refused_with_400_naming_the_field(store, change, named) -> None:
    tokens = seed_store(store, demo_items(1))
    item = store.items(PROJECT)[0].id
    with serving(store) as root, client(root, tokens["ana"]) as ana:
        ana.get("/api/next")
        answer = ana.post("/api/judgments", json={"item_id": item, "score": 0.5} | change)
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("Invalid request: ") and named in answer.json()["error"]
        not_json = ana.post("/api/judgments", content=b"{score: 1", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 400 and "JSON decode error" in not_json.json()["error"]
    assert store.judgments() == []


class _Scripts(HTMLParser):
    """Collects the page's script tags and any inline event-handler attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.handlers: list[str] = []
        self._in_script = False
        self.inline_code = ""

    def handle_starttag(self, tag, attrs) -> None:
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data) -> None:
        if self._in_script:
            self.inline_code += data.strip()


def test_the_page_and_api_carry_security_headers_and_no_cookies(store) -> None:
    tokens = seed_store(store, demo_items(1))
    with serving(store) as root, client(root, tokens["ana"]) as ana:
        page = ana.get("/")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        parsed = _Scripts()
        parsed.feed(page.text)
        # The policy forbids inline scripts, so the page has none: one script, loaded from the app.
        assert parsed.scripts == [{"src": "/static/app.js", "defer": None}]
        assert (parsed.inline_code, parsed.handlers) == ("", [])
        script = ana.get("/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
        answers = [page, script, ana.get("/static/style.css"), ana.get("/api/next"), ana.get("/api/health")]
        answers += [ana.get("/no-such-page"), ana.post("/api/undo")]
        for answer in answers:
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"
            assert "set-cookie" not in answer.headers
        # API answers hold reviewers' items: never cached; the page and its files may be.
        assert [a.headers.get("cache-control") for a in answers] == [
            None,
            None,
            None,
            "no-store",
            "no-store",
            None,
            "no-store",
        ]
        missing = answers[5]
        assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})


def test_a_database_failure_answers_json_500_and_the_server_keeps_serving(store, tmp_path) -> None:
    import sqlite3

    tokens = seed_store(store, demo_items(2))
    with serving(store) as root, client(root, tokens["ana"]) as ana:
        item = ana.get("/api/next").json()["item_id"]
        with sqlite3.connect(tmp_path / "feedback.db") as db:  # break the store under the running server
            db.execute("ALTER TABLE judgments RENAME TO judgments_away")
        failed = ana.post("/api/judgments", json={"item_id": item, "score": 0.5})
        assert failed.status_code == 500
        assert failed.json() == {
            "error": "The server failed: OperationalError. Try again; the server log has the details."
        }
        with sqlite3.connect(tmp_path / "feedback.db") as db:
            db.execute("ALTER TABLE judgments_away RENAME TO judgments")
        assert ana.post("/api/judgments", json={"item_id": item, "score": 0.5}).status_code == 201
    assert [j.item_id for j in store.judgments()] == [item]
