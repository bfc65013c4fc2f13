"""``medtune run full-training`` end to end through the CLI on tiny models.

The tiny Gemma run uses simulated reviewers (two per item, so agreement is computed); the tiny
Marian run uses human reviewers: it stops after queueing, a reviewer judges every item through
the store, and ``--resume`` finishes it. Checked: each stage's record, the store's contents (the
feedback set's items, their judgments), that the feedback set is disjoint from train and test, that
the report's numbers equal the per-stage metrics files and statistics recomputed from the store,
and that ``--resume`` skips every finished stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli
from sacrebleu.metrics import CHRF
from sqlalchemy.engine import make_url

from medtune.data.io import read_jsonl
from medtune.feedback.stats import feedback_stats
from medtune.feedback.store import FeedbackStore, database_url

STAGES = [
    "data",
    "eval_base",
    "sft",
    "eval_sft",
    "queue",
    "feedback",
    "rlhf",
    "eval_rlhf",
    "eval_post_edits",
    "report",
]
TINY = [
    "data.sample=120",
    "feedback.items=16",
    "feedback.heldout=0.25",
    "sft.max_steps=2",
    "sft.lr=0.05",  # large steps, so that two of them change the tiny models' translations
    "train.max_steps=2",
    "train.lr=0.05",
    "train.batch_size=4",
    "train.max_length=96",
    "eval.limit=4",
    "eval.few_shot=1",
    "eval.batch_size=8",
    "eval.max_new_tokens=12",
]


def run_full(model: Path, run_dir: Path, home: Path, *sets: str, extra: tuple[str, ...] = ()):
    args = [
        "run",
        "full-training",
        *[a for s in (f"model={model}", f"run_dir={run_dir}", *TINY, *sets) for a in ("--set", s)],
    ]
    return run_cli([*args, *extra], home=home)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]


def metrics(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def check_run(run_dir: Path, reviewers_per_item: int, db: str | None = None) -> dict:
    """What every finished run must show (``db``: the store, default the run folder's); returns summary.json."""
    stages = manifest(run_dir)
    assert sorted(stages) == sorted(STAGES)
    data = run_dir / "data"
    feedback = read_jsonl(data / "feedback.jsonl")
    asked = {r["en"] for r in feedback}
    assert len(asked) == 16 == stages["data"]["feedback"]
    for split in ("train", "dev", "test"):
        assert not asked & {r["src"] for r in read_jsonl(data / f"{split}.jsonl")}, split
    # the store holds the feedback set's items, translated by the SFT model, each judged K times
    with FeedbackStore(db or database_url(str(run_dir / "feedback.db"))) as store:
        items = store.items("full-training")
        judgments = store.judgments("full-training")
    assert sorted(i.source for i in items) == sorted(asked)
    assert {i.model_id for i in items} == {stages["sft"]["sft_model"]} == {str(run_dir / "sft_model")}
    assert {i.reference for i in items} == {r["es"] for r in feedback}
    assert len(judgments) == 16 * reviewers_per_item
    assert [r["id"] for r in read_jsonl(run_dir / "feedback" / "judgments.jsonl")] == [j.id for j in judgments]
    record = stages["feedback"]
    assert record["train_items"] + record["heldout_items"] == 16 and record["heldout_items"] == 4
    # the report's numbers are the stages' own
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["pipeline"] == "full_training"
    assert summary["sft_model"] == str(run_dir / "sft_model") and summary["rlhf_model"] == stages["rlhf"]["rlhf_model"]
    assert [m["metric"] for m in summary["metrics"]] == ["chrf", "bleu", "ter", "term_accuracy"]
    for row in summary["metrics"][:3]:
        for name in ("base", "sft", "rlhf"):
            assert row[name] == metrics(run_dir / "eval" / name / "test" / "metrics.json")[row["metric"]]
            assert row[name] == stages[f"eval_{name}"]["test"][row["metric"]]
        for key, a, b in (("sft_vs_base", "base", "sft"), ("rlhf_vs_sft", "sft", "rlhf")):
            d = row[key]
            assert d["value"] == pytest.approx(row[b] - row[a], abs=1e-3) and d["ci_low"] <= d["value"] <= d["ci_high"]
    assert summary["feedback"]["stats"] == json.loads(json.dumps(feedback_stats(judgments, seed=42)))
    post = summary["feedback"]["post_edits"]
    for name, side in (("sft", "before"), ("rlhf", "after")):
        written = metrics(run_dir / "eval" / "post_edits" / "translation" / name / "metrics.json")
        assert post["translation"]["chrf"][side] == written["chrf"] and post["translation"]["n"] == written["n"] == 4
    assert {s: r["fingerprint"] for s, r in summary["stages"].items()} == {
        s: stages[s]["fingerprint"] for s in STAGES[:-1]
    }
    assert summary["rlhf_training"]["steps"] == 2 and summary["rlhf_training"]["items"] == record["train_items"]
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Feedback used" in html and "towards the post-edits" in html and html.count("<img") >= 5
    card = (Path(summary["rlhf_model"]) / "README.md").read_text(encoding="utf-8")  # the model card
    assert "RLHF" in card and f"{summary['metrics'][0]['rlhf']:.2f}" in card
    return summary


@pytest.fixture(scope="module")
def gemma_run(tiny_gemma_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full-training")
    run_dir, home = tmp / "run", tmp / "home"
    result = run_full(tiny_gemma_dir, run_dir, home, "feedback.reviewers_per_item=2")
    assert result.exit_code == 0, result.output
    return run_dir, home, result


def test_simulated_round_on_gemma(gemma_run):
    run_dir, _, result = gemma_run
    summary = check_run(run_dir, reviewers_per_item=2)
    assert list(manifest(run_dir)) == STAGES  # in this order
    with FeedbackStore(database_url(str(run_dir / "feedback.db"))) as store:
        judgments = store.judgments("full-training")
    # the simulated reviewers: score = sentence chrF++ / 100 against the reference, post-edit = the reference
    chrf = CHRF(word_order=2)
    assert {j.reviewer for j in judgments} == {"simulated-chrf", "simulated-chrf-2"}
    for j in judgments:
        assert j.simulated and j.post_edit == j.reference
        assert j.score == pytest.approx(chrf.sentence_score(j.translation, [j.reference]).score / 100, abs=1e-6)
    stats = summary["feedback"]["stats"]
    assert stats["judgments"] == 32 and stats["simulated_judgments"] == 32 and stats["items"] == 16
    assert stats["agreement"]["items"] == 16  # every item judged twice
    assert summary["feedback"]["simulated"] and "SIMULATED" in summary["feedback"]["simulated_note"]
    assert "SIMULATED" in (run_dir / "report.html").read_text(encoding="utf-8")
    assert "base vs SFT vs RLHF" in result.output and "SIMULATED" in result.output and "Report:" in result.output


def test_resume_skips_every_finished_stage(gemma_run, tiny_gemma_dir):
    run_dir, home, _ = gemma_run
    before = manifest(run_dir)
    result = run_full(tiny_gemma_dir, run_dir, home, "feedback.reviewers_per_item=2", extra=("--resume",))
    assert result.exit_code == 0, result.output
    assert all(f"Stage {name}: inputs unchanged" in result.output for name in STAGES)
    assert manifest(run_dir) == before  # nothing ran again: same fingerprints, same finishing times


def test_human_round_on_marian_and_postgresql_waits_for_reviewers_then_resumes(
    tiny_marian_dir, tmp_path, postgres_db_url
):
    run_dir, home, db = tmp_path / "run", tmp_path / "home", postgres_db_url
    sets = ("feedback.reviewers=human", f"feedback.db={db}")
    result = run_full(tiny_marian_dir, run_dir, home, *sets)
    shown = make_url(db).render_as_string(hide_password=True)  # a password never reaches run.json or messages
    assert_user_error(
        result,
        "0 of the 16 translations",
        f"medtune feedback serve --db {shown}",
        "--project full-training",
        "--resume",
    )
    assert manifest(run_dir)["queue"]["db"] == shown and not (run_dir / "feedback.db").exists()
    assert list(manifest(run_dir)) == STAGES[:5]  # everything up to the queue is kept
    with FeedbackStore(db) as store:
        store.add_reviewer("ana")
        ana = store.reviewer("ana")
        judged = 0
        while (item := store.next_item(ana, "full-training")) is not None:
            store.submit(ana, item.id, 0.25 * (judged % 5), post_edit=item.reference, seconds=4.0)
            judged += 1
    assert judged == 16
    result = run_full(tiny_marian_dir, run_dir, home, *sets, extra=("--resume",))
    assert result.exit_code == 0, result.output
    summary = check_run(run_dir, reviewers_per_item=1, db=db)
    stats = summary["feedback"]["stats"]
    assert stats["simulated_judgments"] == 0 and stats["agreement"] is None and not summary["feedback"]["simulated"]
    assert "SIMULATED" not in (run_dir / "report.html").read_text(encoding="utf-8")


def test_a_feedback_set_larger_than_the_training_split_is_refused(tiny_gemma_dir, tmp_path):
    result = run_full(tiny_gemma_dir, tmp_path / "run", tmp_path / "home", "feedback.items=500")
    assert_user_error(result, "feedback.items=500", "lower feedback.items")
    assert not (tmp_path / "run" / "feedback.db").exists()  # nothing queued


def test_train_stops_after_rlhf_and_run_resume_adds_the_evaluations(tiny_marian_dir, tmp_path):
    run_dir, home = tmp_path / "run", tmp_path / "home"
    sets = [a for s in (f"model={tiny_marian_dir}", f"run_dir={run_dir}", *TINY) for a in ("--set", s)]
    result = run_cli(["train", "full-training", *sets], home=home)
    assert result.exit_code == 0, result.output
    assert list(manifest(run_dir)) == ["data", "sft", "queue", "feedback", "rlhf"]
    assert f"Model saved to {run_dir / 'model'}" in " ".join(result.output.split())
    trained = manifest(run_dir)
    result = run_full(tiny_marian_dir, run_dir, home, extra=("--resume",))
    assert result.exit_code == 0, result.output
    assert all(f"Stage {name}: inputs unchanged" in result.output for name in trained)
    assert sorted(manifest(run_dir)) == sorted(STAGES)
    assert {name: manifest(run_dir)[name] for name in trained} == trained  # kept as they were
    check_run(run_dir, reviewers_per_item=1)
