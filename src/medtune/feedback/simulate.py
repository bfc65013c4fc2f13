"""A simulated reviewer, for trying the feedback loop without people.

It asks the store for items exactly as a human reviewer does (``next_item`` / ``submit``), scores
each machine translation by its sentence chrF++ against the item's reference (divided by 100, so in
[0, 1]) and post-edits it into the reference. It is stored as a simulated reviewer, so every export,
statistic and report can tell its judgments from human ones.
"""

from __future__ import annotations

from functools import cache

from medtune.errors import MedtuneError
from medtune.feedback.projects import require_project
from medtune.feedback.store import FeedbackStore

SIMULATED_REVIEWER = "simulated-chrf"


def simulated_score(translation: str, reference: str) -> float:
    """Sentence chrF++ of ``translation`` against ``reference`` (sacreBLEU, medtune's chrF++ settings) / 100."""
    return _chrf().sentence_score(translation, [reference]).score / 100


@cache
def _chrf():
    from medtune.eval.metrics import translation_metrics

    return translation_metrics()["chrf"]


def simulate_reviews(
    store: FeedbackStore, project: str, *, reviewer: str = SIMULATED_REVIEWER, limit: int | None = None, log=print
) -> int:
    """Judge the project's open items as the simulated reviewer; returns the judgments made.

    Items without a reference cannot be scored: the simulated reviewer skips them (a skip does not
    count towards an item's reviewers), so they stay for human reviewers, and their number is logged.

    Args:
        limit: judge at most this many items (None: all it is given).
    Raises:
        MedtuneError: an unknown project, or ``reviewer`` names a human reviewer.
    """
    require_project(store, project)
    simulated = store.ensure_reviewer(reviewer, simulated=True)  # no token: no one signs in as it
    if not simulated.simulated:
        raise MedtuneError(
            f"Reviewer {reviewer!r} is a human reviewer in this store; the simulated reviewer needs a name of its own."
        )
    judged = without_reference = 0
    while limit is None or judged < limit:
        item = store.next_item(simulated, project)
        if item is None:
            break
        if not item.reference:
            store.skip(simulated, item.id)
            without_reference += 1
            continue
        score = simulated_score(item.translation, item.reference)
        store.submit(simulated, item.id, score, post_edit=item.reference)
        judged += 1
    log(
        f"{judged} SIMULATED judgment(s) by {reviewer!r} in project {project!r} (score = sentence chrF++ against "
        "the reference / 100, post-edit = the reference); they are marked simulated in the store, exports and reports."
    )
    if without_reference:
        log(f"{without_reference} item(s) have no reference and were left for human reviewers.")
    return judged
