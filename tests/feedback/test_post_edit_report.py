"""Held-out post-edit evaluation (eval/post_edits.py) and its before/after comparison (report/feedback.py).

Two tiny models score the same judged items; the comparison's numbers are checked against
sacreBLEU (chrF++ against the post-edits), the per-item margin files of feedback/heldout.py and
the significance module run independently on the same outputs.
"""

from __future__ import annotations

import shutil

import pytest
from demo_rows import demo_records
from sacrebleu.metrics import CHRF

from medtune.data.io import read_jsonl, write_jsonl
from medtune.errors import MedtuneError
from medtune.eval.post_edits import evaluate_against_post_edits
from medtune.eval.significance import paired_translation_deltas
from medtune.feedback.heldout import evaluate_post_edit_margin
from medtune.feedback.training_data import ItemFeedback
from medtune.models.loading import load_model
from medtune.report.feedback import comparison_lines, post_edit_comparison


def judged_items() -> list[ItemFeedback]:
    """Ten items: eight post-edited (two left as the machine output), two without a post-edit."""
    rows = demo_records(10)
    items = []
    for k, r in enumerate(rows):
        machine = " ".join(r["es"].split()[:-1]) or r["es"]  # the machine output lost its last word
        post_edit = None if k >= 8 else (machine if k in (0, 1) else r["es"])
        items.append(ItemFeedback(f"item-{k}", r["en"], machine, r["es"], 0.5, post_edit, 1, (0.5,), False))
    return items


@pytest.fixture(scope="module")
def evaluated(tiny_gemma_dir, tiny_marian_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("post-edits")
    items = judged_items()
    folders = {"before": tiny_gemma_dir, "after": tiny_marian_dir}
    results = {}
    for name, folder in folders.items():
        loaded = load_model(str(folder), dtype="float32", device="cpu")
        results[name] = evaluate_against_post_edits(loaded, items, out / name, batch_size=4, max_new_tokens=8)
    loaders = {name: (lambda f=f: load_model(str(f), dtype="float32", device="cpu")) for name, f in folders.items()}
    margins = evaluate_post_edit_margin(loaders, items, out / "margins", seed=3, batch_size=4, log=lambda _: None)
    return out, items, results, margins


def test_each_model_is_scored_against_the_post_edits(evaluated):
    out, items, results, _ = evaluated
    edited = [i for i in items if i.post_edit]
    for name, result in results.items():
        assert result["n"] == len(edited) == 8
        rows = read_jsonl(out / name / "outputs.jsonl")
        assert [r["id"] for r in rows] == [i.item_id for i in edited]
        assert [r["reference"] for r in rows] == [i.post_edit for i in edited]
        oracle = CHRF(word_order=2).corpus_score([r["output"] for r in rows], [[i.post_edit for i in edited]]).score
        assert result["chrf"] == pytest.approx(oracle, abs=1e-4)  # rounded to 4 places


def test_comparison_equals_the_significance_module_on_the_written_outputs(evaluated):
    out, items, _, margins = evaluated
    found = post_edit_comparison(out / "before", out / "after", margins, keys=("before", "after"), seed=3)
    before = read_jsonl(out / "before" / "outputs.jsonl")
    after = read_jsonl(out / "after" / "outputs.jsonl")
    refs = [r["reference"] for r in before]
    deltas = paired_translation_deltas([r["output"] for r in before], [r["output"] for r in after], refs, seed=3)
    t = found["translation"]
    assert t["n"] == 8
    for key in ("chrf", "bleu", "ter"):
        assert t[key]["delta"]["value"] == pytest.approx(deltas[key].value, abs=1e-4)
        assert t[key]["delta"]["p_value"] == pytest.approx(deltas[key].p_value, abs=1e-4)
        assert t[key]["after"] - t[key]["before"] == pytest.approx(deltas[key].value, abs=1e-4)
        assert t[key]["before_ci"][0] - 1e-3 <= t[key]["before"] <= t[key]["before_ci"][1] + 1e-3
    # the margins: only the post-edits that differ from their machine output, read from the per-item files
    changed = [i.item_id for i in items if i.post_edit and i.post_edit != i.translation]
    m_before = {r["id"]: r["margin"] for r in read_jsonl(out / "margins" / "before" / "outputs.jsonl")}
    m_after = {r["id"]: r["margin"] for r in read_jsonl(out / "margins" / "after" / "outputs.jsonl")}
    assert sorted(m_before) == sorted(m_after) == sorted(changed)
    p = found["preference"]
    assert p["n"] == 6
    assert p["before"]["mean_margin"] == pytest.approx(sum(m_before.values()) / 6, abs=1e-4)
    assert p["after"]["prefers_post_edit"] == pytest.approx(sum(m > 0 for m in m_after.values()) / 6, abs=1e-4)
    assert p["before"]["ci"][0] <= p["before"]["mean_margin"] <= p["before"]["ci"][1]
    diff = sum(m_after.values()) / 6 - sum(m_before.values()) / 6
    assert p["delta"]["value"] == pytest.approx(diff, abs=1e-4)
    lines = comparison_lines(found)
    assert [line[0].split(" (")[0] for line in lines] == [
        "log-prob margin, post-edit over machine output",
        "chrF++ against post-edits",
        "BLEU against post-edits",
        "TER against post-edits",
    ]


def test_comparing_other_items_is_refused(evaluated, tmp_path):
    out, _, _, _ = evaluated
    shutil.copytree(out / "after", tmp_path / "after")
    outputs = tmp_path / "after" / "outputs.jsonl"
    write_jsonl(outputs, read_jsonl(outputs)[:-1])
    with pytest.raises(MedtuneError, match="do not hold the same items"):
        post_edit_comparison(out / "before", tmp_path / "after", None)


def test_no_post_edit_is_a_clear_error(tiny_gemma_dir, tmp_path):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    items = [
        ItemFeedback("a", "The patient is stable.", "El paciente está estable.", None, 0.9, None, 1, (0.9,), False)
    ]
    with pytest.raises(MedtuneError, match="feedback.heldout"):
        evaluate_against_post_edits(loaded, items, tmp_path)
