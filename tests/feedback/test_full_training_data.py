"""The full-training data stage: the feedback set is kept apart from training and test, whole documents at a time."""

from __future__ import annotations

import pytest
from demo_rows import DEMO_MEDICAL

from medtune.data.io import read_jsonl
from medtune.data.parallel import Pair
from medtune.errors import MedtuneError
from medtune.pipeline.full_training_data import carve_feedback_set, prepare_full_training_data
from medtune.recipes.loader import load_recipe


def test_feedback_set_takes_whole_documents_and_counts_the_rest():
    # documents of 3 sentences: 10 documents, 30 pairs
    train = [Pair(f"s{d}-{k}", f"t{d}-{k}", f"doc{d}") for d in range(10) for k in range(3)]
    left, feedback, unused = carve_feedback_set(train, 7, seed=5, by="document")
    assert len(feedback) == 7 and unused == 2  # three documents taken (9 sentences), 7 kept
    taken_docs = {p.doc for p in feedback}
    assert len(taken_docs) == 3
    assert not taken_docs & {p.doc for p in left}  # no document straddles training and feedback
    assert len(left) + len(feedback) + unused == len(train) and len(left) == 21
    again = carve_feedback_set(train, 7, seed=5, by="document")
    assert again == (left, feedback, unused)  # seeded
    _, by_sentence, none_unused = carve_feedback_set(train, 7, seed=5, by="random")
    assert len(by_sentence) == 7 and none_unused == 0


def test_too_small_a_training_split_names_the_key():
    train = [Pair(f"s{k}", f"t{k}", f"doc{k}") for k in range(5)]
    with pytest.raises(MedtuneError, match="feedback.items=5"):
        carve_feedback_set(train, 5, seed=0, by="document")


def test_data_stage_on_the_bundled_pairs(tmp_path):
    recipe = load_recipe("full-training", [f"run_dir={tmp_path / 'run'}"])
    record = prepare_full_training_data(recipe, tmp_path, log=lambda _: None)
    splits = {name: read_jsonl(tmp_path / f"{name}.jsonl") for name in ("train", "dev", "test")}
    feedback = read_jsonl(tmp_path / "feedback.jsonl")
    assert record["feedback"] == len(feedback) == recipe.feedback.items == 96
    assert {k: record[k] for k in ("train", "dev", "test")} == {k: len(v) for k, v in splits.items()}
    sources = {name: {r["src"] for r in rows} for name, rows in splits.items()}
    asked = {r["en"] for r in feedback}
    assert len(asked) == 96 and not asked & (sources["train"] | sources["test"] | sources["dev"])
    docs = {name: {r["doc"] for r in rows} for name, rows in splits.items()}
    by_source = {r["en"]: r for r in read_jsonl(DEMO_MEDICAL)}
    feedback_docs = {by_source[s]["doc_id"] for s in asked}
    assert not feedback_docs & (docs["train"] | docs["test"])  # by document, as the splits are
    assert all(set(r) == {"id", "en", "es"} and by_source[r["en"]]["es"] == r["es"] for r in feedback)
