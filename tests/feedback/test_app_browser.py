"""The reviewer page in headless Chromium (Debian's, driven by Playwright): the whole review cycle by
keyboard, and markup in sources, translations and post-edits shown as inert text."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from reviewer_server import PROJECT, seed_store, serving

from medtune.feedback.store import FeedbackStore, NewItem

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
SCREENSHOT = "reviewer-page.png"


def _chromium() -> str:
    """Chromium's path; skip without it, except under CI=true, where the test must run (.ci/run installs it)."""
    found = next((p for p in CHROMIUM_PATHS if Path(p).is_file()), None)
    found = found or shutil.which("chromium") or shutil.which("chromium-browser")  # where .ci/run looks
    if found is None:
        message = "Chromium is not installed (Debian package 'chromium')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it (.ci/run) and must run the browser tests.")
        pytest.skip(message)
    return found


@pytest.fixture
def browser_page() -> Iterator:
    """A fresh page in headless Chromium that records console errors and uncaught exceptions."""
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 1300})
        page.problems = []  # CSP violations and script errors land here
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def store(tmp_path) -> Iterator[FeedbackStore]:
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield store
    store.close()


def _sign_in(page, root: str, token: str) -> None:
    page.goto(root + "/")
    page.fill("#token", token)
    page.press("#token", "Enter")
    # Signed in once the first item (or the "nothing left" note) is on the page.
    page.wait_for_function(
        "() => document.getElementById('item').dataset.itemId || !document.getElementById('done').hidden"
    )


def _wait_for_item(page, previous: str) -> str:
    """Wait until the page shows an item other than ``previous`` (or none); returns its id ('' for none)."""
    page.wait_for_function("(id) => document.getElementById('item').dataset.itemId !== id", arg=previous)
    return page.get_attribute("#item", "data-item-id")


def test_a_reviewer_scores_post_edits_submits_undoes_and_skips_by_keyboard(store, browser_page, tmp_path) -> None:
    page = browser_page
    items = [
        NewItem("Keep the wound clean and dry.", "Mantenga la herida limpia y seca."),
        NewItem("Check the blood pressure daily.", "Controle la presión arterial a diario."),
        NewItem("Rest for two days.", "Descanse dos días."),
    ]
    tokens = seed_store(store, items, reviewers=("ana", "ben"))
    ids = [view.id for view in store.items(PROJECT)]
    with serving(store) as root:
        page.goto(root + "/")
        page.fill("#token", "not-a-token")
        page.press("#token", "Enter")
        page.wait_for_selector("#status.error")
        assert page.text_content("#status") == "Your token was not accepted; sign in again."
        assert page.is_visible("#sign-in") and not page.is_visible("#review")
        page.problems.clear()  # the browser logs the refused request (401) as a console error
        _sign_in(page, root, tokens["ana"])
        assert page.evaluate("() => sessionStorage.getItem('medtune-reviewer-token')") == tokens["ana"]
        assert page.get_attribute("#item", "data-item-id") == ids[0]
        assert page.text_content("#who") == "ana"
        assert page.text_content("#progress") == "0 / 3 judged"
        assert page.text_content("#source") == items[0].source
        assert page.text_content("#source mark") == "wound"
        assert page.get_attribute("#source mark", "title") == "wound → herida"
        assert page.text_content("#terms") == "wound → herida"

        page.click("#source")  # focus outside the text boxes: digits score
        page.keyboard.press("7")
        assert page.text_content("#score-value") == "0.70"
        page.fill("#post-edit", "Mantenga la herida bien limpia y seca.")
        assert page.text_content("#diff ins") == "bien "
        page.keyboard.press("Alt+1")  # the first flag: terminology
        page.keyboard.press("Alt+5")  # the fifth: fluency
        page.fill("#comment", "first try")
        page.screenshot(path=str(tmp_path / SCREENSHOT), full_page=True)
        page.keyboard.press("Control+Enter")
        assert _wait_for_item(page, ids[0]) == ids[1]
        assert "Submitted" in page.text_content("#status")
        [first] = store.judgments()
        assert (first.item_id, first.score, first.post_edit, first.flags, first.comment) == (
            ids[0],
            0.7,
            "Mantenga la herida bien limpia y seca.",
            ("terminology", "fluency"),
            "first try",
        )

        page.keyboard.press("Alt+z")  # undo: the first item comes back, as it was assigned
        assert _wait_for_item(page, ids[1]) == ids[0]
        assert "Undone" in page.text_content("#status")
        assert page.input_value("#post-edit") == items[0].translation  # a fresh form for the item
        page.click("#source")
        page.keyboard.press("=")  # score 1.0; the post-edit stays the machine translation
        assert page.text_content("#score-value") == "1.00"
        page.keyboard.press("Control+Enter")
        assert _wait_for_item(page, ids[0]) == ids[1]

        page.keyboard.press("Alt+s")  # skip the second item
        assert _wait_for_item(page, ids[1]) == ids[2]
        page.click("#source")
        page.keyboard.press("3")
        page.fill("#post-edit", "Descanse durante dos días.")
        page.keyboard.press("Control+Enter")  # from inside the post-edit box
        assert _wait_for_item(page, ids[2]) == ""
        page.wait_for_selector("#done:not([hidden])")
        assert page.text_content("#progress") == "2 / 2 judged"
        assert page.problems == []

    judged = [(j.item_id, j.reviewer, j.score, j.post_edit, j.flags, j.comment) for j in store.judgments()]
    assert judged == [
        (ids[0], "ana", 1.0, items[0].translation, (), None),  # the undone 0.7 judgment is gone
        (ids[2], "ana", 0.3, "Descanse durante dos días.", (), None),
    ]
    assert all(j.seconds is not None and j.seconds >= 0 for j in store.judgments())
    assert store.next_item(store.reviewer("ana"), PROJECT) is None  # the skipped item is not hers again
    assert store.next_item(store.reviewer("ben"), PROJECT).id == ids[1]  # but is free for others
    shot = (tmp_path / SCREENSHOT).read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    if os.environ.get("MEDTUNE_SCREENSHOT_DIR"):
        folder = Path(os.environ["MEDTUNE_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SCREENSHOT).write_bytes(shot)


def test_markup_in_sources_translations_and_post_edits_is_shown_as_inert_text(store, browser_page) -> None:
    page = browser_page
    source = 'Clean the wound <script>window.pwned = "script"</script> <img src=x onerror="window.pwned = \'img\'">'
    translation = "Limpie la herida <b>ya</b> <img src=x onerror=\"window.pwned = 'translation'\">"
    post_edit = 'Limpie la herida <script>window.pwned = "post-edit"</script><img src=y onerror="window.pwned = 1">'
    tokens = seed_store(store, [NewItem(source, translation)], reviewers=("ana",))
    with serving(store) as root:
        _sign_in(page, root, tokens["ana"])
        assert page.text_content("#source") == source  # shown literally, character for character
        assert page.text_content("#translation") == translation
        assert page.text_content("#source mark") == "wound"
        page.fill("#post-edit", post_edit)
        assert "<script>" in page.text_content("#diff ins")
        page.wait_for_timeout(300)  # give an injected image's onerror time to fire, were there one
        assert page.evaluate("window.pwned") is None
        # No element came from the texts: the page's only script is app.js, and it has no images or bold.
        assert page.evaluate("document.scripts.length") == 1
        assert page.evaluate("document.querySelectorAll('img, b').length") == 0
        page.click("#source")
        page.keyboard.press("4")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#done:not([hidden])")
        assert page.evaluate("window.pwned") is None
        assert page.problems == []
    [judgment] = store.judgments()
    assert (judgment.source, judgment.translation, judgment.post_edit, judgment.score) == (
        source,
        translation,
        post_edit,
        0.4,
    )
