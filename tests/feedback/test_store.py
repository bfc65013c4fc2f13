"""The feedback store on SQLite and on a real PostgreSQL server: assignment, leases, skips, undo, judgments, imports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from store_checks import assert_kept_counts_match

from medtune.feedback.store import (
    AlreadyJudged,
    FeedbackError,
    ImportedJudgment,
    ImportRowError,
    NewItem,
    NotAssigned,
    Progress,
    UnknownItem,
    UnknownProject,
    item_id,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _queue(store, n: int, project: str = "p", k: int = 1) -> list[str]:
    store.create_project(project, reviewers_per_item=k)
    items = [NewItem(f"source {i}", f"traducción {i}", model_id="m", reference=f"ref {i}") for i in range(n)]
    added, present = store.add_items(project, items)
    assert (added, present) == (n, 0)
    return [item.id for item in store.items(project)]


def _reviewers(store, *names):
    return [store.reviewer_by_token(store.add_reviewer(name)) for name in names]


def test_items_keep_their_fields_order_and_stable_ids(feedback_store):
    feedback_store.create_project("p")
    items = [
        NewItem(
            "The patient.", "El paciente.", model_id="m1", model_version="v2", reference="El paciente.", external_id="7"
        ),
        NewItem("Fever.", "Fiebre."),
        NewItem("The patient.", "El paciente.", model_id="m1"),  # same project, source, translation, model: present
    ]
    assert feedback_store.add_items("p", items) == (2, 1)
    assert feedback_store.add_items("p", items[:2]) == (0, 2)
    views = feedback_store.items("p")
    assert [v.source for v in views] == ["The patient.", "Fever."]
    first = views[0]
    assert (
        first.project,
        first.translation,
        first.reference,
        first.model_id,
        first.model_version,
        first.external_id,
    ) == (
        "p",
        "El paciente.",
        "El paciente.",
        "m1",
        "v2",
        "7",
    )
    assert first.id == item_id("p", "The patient.", "El paciente.", "m1")
    assert views[1].id == item_id("p", "Fever.", "Fiebre.") != item_id("q", "Fever.", "Fiebre.")
    assert feedback_store.project_names() == ["p"]
    with pytest.raises(UnknownProject, match="'nope'.*projects: p"):
        feedback_store.items("nope")


def test_tokens_are_hashed_and_checked(feedback_store):
    token = feedback_store.add_reviewer("ann", simulated=True)
    assert len(token) >= 43  # token_urlsafe(32): 256 bits
    ann = feedback_store.reviewer_by_token(token)
    assert (ann.name, ann.simulated) == ("ann", True)
    assert feedback_store.reviewer("ann") == ann
    assert feedback_store.reviewer_by_token(token + "x") is None
    assert feedback_store.reviewer_by_token("") is None
    with pytest.raises(FeedbackError, match="'ann' already exists"):
        feedback_store.add_reviewer("ann")
    new = feedback_store.add_reviewer("ann", replace_token=True)
    assert feedback_store.reviewer_by_token(token) is None
    assert feedback_store.reviewer_by_token(new) == ann
    # A reviewer created without a token (simulated, imported) gets one when added later.
    bot = feedback_store.ensure_reviewer("bot", simulated=True)
    assert feedback_store.ensure_reviewer("bot") == bot
    assert feedback_store.reviewer_by_token(feedback_store.add_reviewer("bot")) == bot


def test_k_reviewers_per_item_and_live_leases_count(feedback_store):
    ids = _queue(feedback_store, 2, k=2)
    ann, bob, cat = _reviewers(feedback_store, "ann", "bob", "cat")
    assert feedback_store.next_item(ann, now=T0).id == ids[0]
    assert feedback_store.next_item(bob, now=T0).id == ids[0]  # K=2: the first item has a second slot
    # Both slots of item 0 are leased (unjudged): cat gets item 1, never a third copy of item 0.
    assert feedback_store.next_item(cat, now=T0).id == ids[1]
    feedback_store.submit(ann, ids[0], 0.8, now=T0)
    feedback_store.submit(bob, ids[0], 0.6, now=T0)
    assert feedback_store.next_item(ann, now=T0).id == ids[1]
    feedback_store.submit(ann, ids[1], 0.5, now=T0)
    feedback_store.submit(cat, ids[1], 0.7, now=T0)
    # Every item has its K judgments: nothing left for anyone.
    assert feedback_store.next_item(bob, now=T0) is None
    assert feedback_store.next_item(ann, now=T0) is None
    assert_kept_counts_match(feedback_store)
    scores = [(j.item_id, j.reviewer, j.score) for j in feedback_store.judgments("p")]
    assert scores == [(ids[0], "ann", 0.8), (ids[0], "bob", 0.6), (ids[1], "ann", 0.5), (ids[1], "cat", 0.7)]


def test_own_open_assignment_comes_back_first(feedback_store):
    ids = _queue(feedback_store, 3)
    (ann,) = _reviewers(feedback_store, "ann")
    first = feedback_store.next_item(ann, now=T0)
    # A reload (or a server restart) asks again: the same item, not a new one.
    assert feedback_store.next_item(ann, now=T0 + timedelta(minutes=5)) == first
    assert first.id == ids[0]
    assert feedback_store.progress(ann, now=T0) == Progress(done=0, total=3)


def test_expired_lease_frees_the_slot_and_returns_to_its_reviewer_if_still_free(feedback_store):
    ids = _queue(feedback_store, 2)  # K=1, 30-minute leases
    ann, bob = _reviewers(feedback_store, "ann", "bob")
    assert feedback_store.next_item(ann, now=T0).id == ids[0]
    # Within the lease bob cannot get item 0.
    assert feedback_store.next_item(bob, now=T0 + timedelta(minutes=29)).id == ids[1]
    feedback_store.skip(bob, ids[1], now=T0 + timedelta(minutes=29))
    # After it the slot is free again, but ann asks first: her expired assignment is handed back, renewed.
    late = T0 + timedelta(minutes=31)
    assert feedback_store.next_item(ann, now=late).id == ids[0]
    assert feedback_store.next_item(bob, now=late + timedelta(minutes=1)) is None  # ann's renewed lease holds it
    # Once ann's renewed lease expires too, bob takes the item; ann can no longer submit it.
    later = late + timedelta(minutes=31)
    assert feedback_store.next_item(bob, now=later).id == ids[0]
    with pytest.raises(NotAssigned, match="lease .* expired"):
        feedback_store.submit(ann, ids[0], 0.9, now=later)
    feedback_store.submit(bob, ids[0], 0.4, now=later)
    assert [(j.reviewer, j.score) for j in feedback_store.judgments()] == [("bob", 0.4)]


def test_a_late_submission_is_accepted_while_the_slot_is_free(feedback_store):
    ids = _queue(feedback_store, 1)
    (ann,) = _reviewers(feedback_store, "ann")
    feedback_store.next_item(ann, now=T0)
    judgment = feedback_store.submit(ann, ids[0], 1.0, now=T0 + timedelta(hours=3))
    assert [j.id for j in feedback_store.judgments()] == [judgment]


def test_skip_frees_the_slot_and_never_serves_the_item_again(feedback_store):
    ids = _queue(feedback_store, 2)
    ann, bob = _reviewers(feedback_store, "ann", "bob")
    assert feedback_store.next_item(ann, now=T0).id == ids[0]
    feedback_store.skip(ann, ids[0], now=T0)
    # The skip does not count towards K: bob gets item 0 at once.
    assert feedback_store.next_item(bob, now=T0).id == ids[0]
    assert feedback_store.next_item(ann, now=T0).id == ids[1]
    feedback_store.submit(ann, ids[1], 0.3, now=T0)
    feedback_store.skip(bob, ids[0], now=T0)
    # Item 0 is free again but ann skipped it: nothing for her, ever.
    assert feedback_store.next_item(ann, now=T0 + timedelta(days=2)) is None
    with pytest.raises(NotAssigned, match="skipped"):
        feedback_store.submit(ann, ids[0], 0.5, now=T0)
    with pytest.raises(NotAssigned):
        feedback_store.skip(ann, ids[0], now=T0)


def test_a_judgment_needs_the_reviewers_own_open_assignment(feedback_store):
    ids = _queue(feedback_store, 2)
    ann, bob = _reviewers(feedback_store, "ann", "bob")
    feedback_store.next_item(ann, now=T0)
    with pytest.raises(NotAssigned, match="'bob' was not assigned"):
        feedback_store.submit(bob, ids[0], 0.5, now=T0)  # ann's item
    with pytest.raises(NotAssigned):
        feedback_store.submit(ann, ids[1], 0.5, now=T0)  # nobody's yet
    with pytest.raises(UnknownItem) as unknown:
        feedback_store.submit(ann, "no-such-item", 0.5, now=T0)
    assert unknown.value.status == 404
    feedback_store.submit(ann, ids[0], 0.5, now=T0)
    with pytest.raises(AlreadyJudged) as again:
        feedback_store.submit(ann, ids[0], 0.6, now=T0)
    assert again.value.status == 409
    assert [j.score for j in feedback_store.judgments()] == [0.5]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"score": 1.5}, "score must be a number from 0 to 1, got 1.5"),
        ({"score": -0.1}, "score must be"),
        ({"score": float("nan")}, "score must be"),
        ({"score": "0.5"}, "score must be"),
        ({"flags": ["omission", "typo"]}, "flags: unknown error flag(s) ['typo']; allowed: terminology, omission"),
        ({"flags": "omission"}, "flags must be a list"),
        ({"seconds": -3}, "seconds must be a non-negative"),
    ],
)
def test_bad_judgments_are_refused_naming_the_field(feedback_store, changes, fragment):
    ids = _queue(feedback_store, 1)
    (ann,) = _reviewers(feedback_store, "ann")
    feedback_store.next_item(ann, now=T0)
    fields = {"score": 0.5} | changes
    score = fields.pop("score")
    with pytest.raises(FeedbackError) as refused:
        feedback_store.submit(ann, ids[0], score, now=T0, **fields)
    assert fragment in str(refused.value)
    assert refused.value.status == 400
    assert feedback_store.judgments() == []
    # The assignment is still open: a good submission goes through.
    feedback_store.submit(ann, ids[0], 0.0, now=T0)


def test_judgments_keep_every_field(feedback_store):
    ids = _queue(feedback_store, 1)
    (ann,) = _reviewers(feedback_store, "ann")
    feedback_store.next_item(ann, now=T0)
    feedback_store.submit(
        ann,
        ids[0],
        0.25,
        post_edit="Traducción 0.",
        flags=["terminology", "fluency"],
        comment="<b>ok</b>",
        seconds=12.5,
        now=T0,
    )
    (j,) = feedback_store.judgments("p")
    assert (j.item_id, j.project, j.reviewer, j.simulated, j.imported) == (ids[0], "p", "ann", False, False)
    assert (j.score, j.post_edit, j.flags, j.comment, j.seconds) == (
        0.25,
        "Traducción 0.",
        ("terminology", "fluency"),
        "<b>ok</b>",
        12.5,
    )
    assert (j.source, j.translation, j.reference, j.model_id) == ("source 0", "traducción 0", "ref 0", "m")
    assert j.created_at == T0 and j.created_at.tzinfo is not None


def test_undo_reopens_the_callers_own_last_judgment_only(feedback_store):
    ids = _queue(feedback_store, 3)
    ann, bob = _reviewers(feedback_store, "ann", "bob")
    assert feedback_store.undo_last(ann) is None
    feedback_store.next_item(ann, now=T0)
    first = feedback_store.submit(ann, ids[0], 0.1, now=T0)
    feedback_store.next_item(bob, now=T0)
    bobs = feedback_store.submit(bob, ids[1], 0.9, now=T0)
    assert feedback_store.next_item(ann, now=T0).id == ids[2]
    # ann's undo removes her judgment, not bob's (which is newer), and gives her item 0 back before item 2.
    t1 = T0 + timedelta(minutes=1)
    assert feedback_store.undo_last(ann, now=t1) == first
    assert [j.id for j in feedback_store.judgments()] == [bobs]
    assert feedback_store.next_item(ann, now=t1).id == ids[0]
    second = feedback_store.submit(ann, ids[0], 0.2, now=t1)
    assert [(j.reviewer, j.score) for j in feedback_store.judgments()] == [("bob", 0.9), ("ann", 0.2)]
    assert feedback_store.undo_last(ann, now=t1) == second
    assert_kept_counts_match(feedback_store)
    assert feedback_store.undo_last(ann, now=t1) is None
    assert feedback_store.progress(ann, now=t1) == Progress(done=0, total=2)  # items 0 and 2 open for her


def test_progress_counts_done_and_what_is_left(feedback_store):
    ids = _queue(feedback_store, 4, k=2)
    ann, bob = _reviewers(feedback_store, "ann", "bob")
    for key in ids[:3]:
        assert feedback_store.next_item(ann, now=T0).id == key
        feedback_store.submit(ann, key, 0.5, now=T0)
    assert feedback_store.progress(ann, now=T0) == Progress(done=3, total=4)
    assert feedback_store.progress(bob, "p", now=T0) == Progress(done=0, total=4)


def test_projects_are_kept_apart(feedback_store):
    p_ids = _queue(feedback_store, 1, project="p")
    q_ids = _queue(feedback_store, 1, project="q")
    (ann,) = _reviewers(feedback_store, "ann")
    assert feedback_store.next_item(ann, "q", now=T0).id == q_ids[0]
    assert feedback_store.next_item(ann, "q", now=T0).id == q_ids[0]
    # With no project named, her open assignment in q still comes first, then p.
    assert feedback_store.next_item(ann, now=T0).id == q_ids[0]
    feedback_store.submit(ann, q_ids[0], 0.5, now=T0)
    assert feedback_store.next_item(ann, "q", now=T0) is None
    assert feedback_store.next_item(ann, now=T0).id == p_ids[0]
    assert [j.project for j in feedback_store.judgments("q")] == ["q"]
    assert feedback_store.judgments("p") == []
    with pytest.raises(UnknownProject):
        feedback_store.next_item(ann, "r")


def test_project_settings_are_validated_and_kept(feedback_store):
    feedback_store.create_project("p", reviewers_per_item=3, lease_minutes=5)
    feedback_store.create_project("p")  # idempotent: settings left out keep theirs
    feedback_store.add_items("p", [NewItem("a", "b")])
    ann, bob, cat, dan = _reviewers(feedback_store, "ann", "bob", "cat", "dan")
    assert all(feedback_store.next_item(r, now=T0) is not None for r in (ann, bob, cat))
    assert feedback_store.next_item(dan, now=T0) is None
    assert feedback_store.next_item(dan, now=T0 + timedelta(minutes=6)) is not None  # 5-minute leases
    with pytest.raises(FeedbackError, match="reviewers per item must be a whole number >= 1, got 0"):
        feedback_store.create_project("p", reviewers_per_item=0)
    with pytest.raises(FeedbackError, match="lease minutes must be > 0"):
        feedback_store.create_project("p", lease_minutes=0)
    with pytest.raises(FeedbackError, match="project name"):
        feedback_store.create_project("  ")


def test_import_creates_what_it_needs_and_is_all_or_nothing(feedback_store):
    rows = [
        ImportedJudgment("The patient.", "El paciente.", 0.9, post_edit="El paciente.", reference="El paciente."),
        ImportedJudgment(
            "Fever.", "Calor.", 0.2, post_edit="Fiebre.", reviewer="dr-ruiz", flags=("meaning",), seconds=4
        ),
        ImportedJudgment("Fever.", "Calor.", 0.4),
    ]
    assert feedback_store.import_judgments("imp", rows) == 3
    got = [(j.reviewer, j.source, j.score, j.post_edit, j.flags, j.imported) for j in feedback_store.judgments("imp")]
    assert got == [
        ("import", "The patient.", 0.9, "El paciente.", (), True),
        ("dr-ruiz", "Fever.", 0.2, "Fiebre.", ("meaning",), True),
        ("import", "Fever.", 0.4, None, (), True),
    ]
    assert [i.source for i in feedback_store.items("imp")] == ["The patient.", "Fever."]
    assert feedback_store.items("imp")[0].reference == "El paciente."
    # Imported reviewers have no token and no assignments: nothing to undo through the web app.
    assert feedback_store.undo_last(feedback_store.reviewer("dr-ruiz")) is None
    before = feedback_store.judgments()
    bad = [
        ImportedJudgment("New.", "Nuevo.", 0.5),
        ImportedJudgment("Other.", "Otro.", 1.2),
    ]
    with pytest.raises(ImportRowError, match="row 1: score must be") as refused:
        feedback_store.import_judgments("imp", bad)
    assert refused.value.row == 1
    duplicate = [ImportedJudgment("New.", "Nuevo.", 0.5), ImportedJudgment("Fever.", "Calor.", 0.3, reviewer="dr-ruiz")]
    with pytest.raises(ImportRowError, match="row 1: reviewer 'dr-ruiz' already has a judgment"):
        feedback_store.import_judgments("imp", duplicate)
    twice = [ImportedJudgment("New.", "Nuevo.", 0.5), ImportedJudgment("New.", "Nuevo.", 0.6)]
    with pytest.raises(ImportRowError, match="row 1: reviewer 'import' already judged this translation in row 0"):
        feedback_store.import_judgments("imp", twice)
    # Nothing of the refused imports was written: no judgment, no item.
    assert feedback_store.judgments() == before
    assert_kept_counts_match(feedback_store)
    assert [i.source for i in feedback_store.items("imp")] == ["The patient.", "Fever."]


def test_imported_judgments_count_towards_k_and_are_not_served_to_their_reviewer(feedback_store):
    ids = _queue(feedback_store, 2)
    feedback_store.import_judgments("p", [ImportedJudgment("x", "y", 0.5)])  # a new item, judged once: K reached
    (ann,) = _reviewers(feedback_store, "ann")
    assert feedback_store.next_item(ann, now=T0).id == ids[0]
    feedback_store.submit(ann, ids[0], 0.5, now=T0)
    assert feedback_store.next_item(ann, now=T0).id == ids[1]
    feedback_store.submit(ann, ids[1], 0.5, now=T0)
    assert feedback_store.next_item(ann, now=T0) is None


def test_raising_k_reopens_judged_items_and_lowering_it_closes_them(feedback_store):
    ids = _queue(feedback_store, 2)  # K=1
    ann, bob = _reviewers(feedback_store, "ann", "bob")
    for key in ids:
        assert feedback_store.next_item(ann, now=T0).id == key
        feedback_store.submit(ann, key, 0.5, now=T0)
    assert feedback_store.next_item(bob, now=T0) is None
    feedback_store.create_project("p", reviewers_per_item=2)
    assert_kept_counts_match(feedback_store)
    assert feedback_store.next_item(bob, now=T0).id == ids[0]  # a second opinion is wanted now
    feedback_store.skip(bob, ids[0], now=T0)
    feedback_store.create_project("p", reviewers_per_item=1)
    assert_kept_counts_match(feedback_store)
    assert feedback_store.next_item(bob, now=T0) is None
