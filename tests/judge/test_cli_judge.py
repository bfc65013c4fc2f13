"""``medtune judge``: files written, metrics, resume, calibration and located errors (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli

MCQ = "Question: First-line drug for type 2 diabetes?\nA. Insulin\nB. Metformin\nC. Acarbose"
REFERENCE = "Metformin is the first-line drug for type 2 diabetes because it lowers glucose without weight gain."


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_single_answers(tmp_path):
    data = _write_jsonl(
        tmp_path / "answers.jsonl",
        [
            {"id": "q1", "prompt": MCQ, "answer": "The answer is B.", "gold": "B"},
            {"id": "q2", "prompt": MCQ, "answer": "I would say A.", "gold": "B"},
            {"id": "q3", "prompt": MCQ, "answer": "Ask a pharmacist.", "gold": "B"},
        ],
    )
    result = run_cli(["judge", "--data", data, "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    rows = _read_jsonl(tmp_path / "out" / "judgments.jsonl")
    assert [(r["id"], r["score"]) for r in rows] == [("q1", 1.0), ("q2", 0.0), ("q3", 0.0)]
    assert rows[0]["criteria"] == {"correct": 1.0} and rows[2]["flags"] == ["no_option"]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["mean_score"] == pytest.approx(1 / 3)
    assert metrics["parse_failures"] == 0 and metrics["no_option"] == 1 and "pairwise_accuracy" not in metrics


def test_pairs_with_a_reference(tmp_path):
    data = _write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {
                "id": "p1",
                "prompt": "What is the first-line drug for type 2 diabetes, and why?",
                "chosen": "Metformin, because it lowers blood glucose without causing weight gain.",
                "rejected": "Insulin injections are always the first drug.",
                "reference": REFERENCE,
            },
            {
                "id": "p2",
                "prompt": MCQ,
                "chosen": "B",
                "rejected": "Answer: C",
                "gold": "B",
            },
        ],
    )
    out = tmp_path / "out"
    result = run_cli(["judge", "--data", data, "--out", out])
    assert result.exit_code == 0, result.output
    rows = _read_jsonl(out / "judgments.jsonl")
    assert [r["id"] for r in rows] == ["p1", "p2"]
    assert rows[0]["chosen_score"] > rows[0]["rejected_score"]
    assert set(rows[0]["chosen_criteria"]) == {"similarity", "coverage"}
    assert (rows[1]["chosen_score"], rows[1]["rejected_score"]) == (1.0, 0.0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pairwise_accuracy"] == 1.0 and metrics["ties"] == 0 and metrics["pairs"] == 2
    assert metrics["n"] == 2 and metrics["answers"] == 4

    # a re-run reuses every judgment from the cache and writes the same files
    before = (out / "judgments.jsonl").read_text()
    assert run_cli(["judge", "--data", data, "--out", out]).exit_code == 0
    assert (out / "judgments.jsonl").read_text() == before
    assert len(_read_jsonl(out / "judge_cache.jsonl")) == 4


def test_translation_task(tmp_path):
    data = _write_jsonl(
        tmp_path / "mt.jsonl",
        [
            {
                "prompt": "The patient has a fever.",
                "answer": "El paciente tiene fiebre.",
                "reference": "El paciente tiene fiebre.",
            }
        ],
    )
    result = run_cli(["judge", "--data", data, "--out", tmp_path / "out", "--task", "translation"])
    assert result.exit_code == 0, result.output
    [row] = _read_jsonl(tmp_path / "out" / "judgments.jsonl")
    assert row["id"] == "row1" and row["score"] == 1.0 and row["criteria"] == {"chrf": 1.0}


def test_calibration(tmp_path):
    rows = []
    for prompt, answers in (
        ("Q1", [("The answer is B.", 5), ("A", 1), ("C", 1)]),
        ("Q2", [("B", 4), ("Answer: D", 2)]),
    ):
        rows += [
            {"prompt": MCQ + "\nD. Insulin glargine\n" + prompt, "answer": a, "gold": "B", "human_score": h}
            for a, h in answers
        ]
    data = _write_jsonl(tmp_path / "human.jsonl", rows)
    result = run_cli(["judge", "--calibrate", data, "--out", tmp_path / "cal"])
    assert result.exit_code == 0, result.output
    calibration = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    # judge scores 1,0,0,1,0 against human 5,1,1,4,2: same-prompt pairs (better, worse) are
    # Q1: (1st, 2nd), (1st, 3rd) [the 2nd and 3rd tie for humans] and Q2: (1st, 2nd): all ordered right
    assert calibration["pairwise_accuracy"] == 1.0 and calibration["pairs"] == 3
    from scipy import stats

    assert calibration["spearman"] == pytest.approx(stats.spearmanr([1, 0, 0, 1, 0], [5, 1, 1, 4, 2]).statistic)
    assert calibration["pearson"] == pytest.approx(stats.pearsonr([1, 0, 0, 1, 0], [5, 1, 1, 4, 2]).statistic)
    assert calibration["spearman_ci_low"] <= calibration["spearman"] <= calibration["spearman_ci_high"]


@pytest.mark.parametrize(
    ("rows", "fragments"),
    [
        ([{"prompt": "q"}], ["answers.jsonl:1", "no answer to judge"]),
        ([{"prompt": "q", "chosen": "same", "rejected": "same"}], ["answers.jsonl:1", "same text"]),
        ([{"prompt": "q", "chosen": "a"}], ["answers.jsonl:1", "'rejected' is missing"]),
        ([{"prompt": "", "answer": "a"}], ["answers.jsonl:1", "'prompt' is missing or empty"]),
        ([{"prompt": "q", "answer": "a", "gold": "BC"}], ["'gold' must be one option letter"]),
        ([{"prompt": "q", "answer": "a", "key_points": [1]}], ["'key_points' must be a list"]),
        (
            [{"id": "x", "prompt": "q", "answer": "a"}, {"id": "x", "prompt": "q", "answer": "b"}],
            ["answers.jsonl:2", "id 'x'", "answers.jsonl:1"],
        ),
    ],
)
def test_bad_rows_are_located(tmp_path, rows, fragments):
    data = _write_jsonl(tmp_path / "answers.jsonl", rows)
    assert_user_error(run_cli(["judge", "--data", data, "--out", tmp_path / "out"]), *fragments)


def test_bad_options(tmp_path):
    data = _write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "answer": "a", "gold": "A", "human_score": 1}])
    out = tmp_path / "out"
    assert_user_error(run_cli(["judge", "--out", out]), "exactly one of --data")
    assert_user_error(run_cli(["judge", "--data", data, "--calibrate", data, "--out", out]), "exactly one of --data")
    assert_user_error(run_cli(["judge", "--data", data, "--out", out, "--judge", "gpt"]), "unknown judge 'gpt'")
    assert_user_error(
        run_cli(["judge", "--data", data, "--out", out, "--weights", "fluency=1"]), "unknown weight(s) fluency"
    )
    assert_user_error(run_cli(["judge", "--data", data, "--out", out, "--judge", "llm"]), "--judge-model")
    assert_user_error(run_cli(["judge", "--data", data, "--out", out, "--pairwise"]), "--pairwise needs the llm judge")
    assert_user_error(run_cli(["judge", "--data", data, "--out", out, "--task", "summary"]), "--task must be one of")
    no_human = _write_jsonl(tmp_path / "b.jsonl", [{"prompt": "q", "answer": "a"}])
    assert_user_error(
        run_cli(["judge", "--calibrate", no_human, "--out", out]), "b.jsonl:1", "'human_score' is missing"
    )


def test_a_foreign_judgments_file_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "judgments.jsonl").write_text("mine\n")
    data = _write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "answer": "a", "gold": "A"}])
    assert_user_error(run_cli(["judge", "--data", data, "--out", out]), "did not write")
    assert (out / "judgments.jsonl").read_text() == "mine\n"


def test_under_two_processes_every_process_stops_and_the_main_one_says_why(tmp_path):
    from launching import launch_command, run_child

    data = _write_jsonl(tmp_path / "answers.jsonl", [{"id": "q1", "prompt": MCQ, "answer": "B", "gold": "B"}])
    done = run_child(
        [*launch_command(module=True), "medtune.cli", "judge", "--data", str(data), "--out", str(tmp_path / "two")]
    )
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())
    assert output.count("medtune judge runs in one process, but 2 were started") == 1
    # medtune's error reaches the user as a message (the launcher adds its own report of the exit codes)
    lines = (done.stdout + done.stderr).splitlines()
    assert not [line for line in lines if line.strip().startswith('File "') and "medtune" in line]
    assert not (tmp_path / "two").exists()
