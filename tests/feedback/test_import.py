"""medtune feedback import: triples as they are, --score-scale, bad rows refused (nothing written) or skipped by line."""

from __future__ import annotations

import csv
import json

import pytest
from cli_checks import assert_user_error, run_cli

from medtune.data.io import resolve_data_path
from medtune.feedback.store import FeedbackStore, database_url

GOOD_HEADER = "source,translation,score,post_edit\n"


def stored(db) -> list:
    with FeedbackStore(database_url(str(db))) as store:
        return store.judgments()


def test_bundled_english_spanish_feedback_triples_import_as_they_are(tmp_path):
    db = tmp_path / "feedback.db"
    result = run_cli(["feedback", "import", "demo:feedback_triples.csv", "--project", "demo", "--db", db])
    assert result.exit_code == 0, result.output
    with resolve_data_path("demo:feedback_triples.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    judgments = stored(db)
    assert [(j.source, j.translation, j.score) for j in judgments] == [
        (r["English"], r["Spanish"], float(r["feedback"])) for r in rows
    ]
    assert {j.reviewer for j in judgments} == {"import"} and all(j.imported and not j.simulated for j in judgments)
    assert f"Imported {len(rows)} judgment(s)" in result.output


def test_lower_case_triples_in_jsonl_with_post_edits_reviewers_and_flags(tmp_path):
    data = tmp_path / "triples.jsonl"
    records = [
        {"english": "Take one tablet.", "spanish": "Toma una tableta.", "feedback": 0.6, "post_edit": "Tome un comprimido.",
         "reviewer": "ana", "flags": ["terminology", "fluency"], "seconds": 12.5},
        {"english": "Rest.", "spanish": "Descanse.", "feedback": 1, "reviewer": "bob", "comment": "fine"},
    ]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    db = tmp_path / "f.db"
    result = run_cli(["feedback", "import", data, "--project", "p", "--db", db])
    assert result.exit_code == 0, result.output
    first, second = stored(db)
    assert (first.reviewer, first.score, first.post_edit, first.flags, first.seconds) == (
        "ana", 0.6, "Tome un comprimido.", ("terminology", "fluency"), 12.5
    )  # fmt: skip
    assert (second.reviewer, second.score, second.post_edit, second.comment) == ("bob", 1.0, None, "fine")


def test_named_columns_and_score_scale(tmp_path):
    data = tmp_path / "rated.tsv"
    data.write_text("en\tmt\tstars\nHello.\tHola.\t4\nBye.\tAdiós.\t5\nNo.\tSí.\t0\n", encoding="utf-8")
    db = tmp_path / "f.db"
    args = ["feedback", "import", data, "--project", "p", "--db", db, "--src-col", "en", "--mt-col", "mt"]
    refused = run_cli([*args, "--score-col", "stars"])
    assert_user_error(
        refused, f"{data}:2: score 4 is outside [0, 1]", f"{data}:3:", "--score-scale N", "nothing imported"
    )
    assert not db.exists() or stored(db) == []
    result = run_cli([*args, "--score-col", "stars", "--score-scale", "5"])
    assert result.exit_code == 0, result.output
    assert [j.score for j in stored(db)] == [0.8, 1.0, 0.0]


def test_score_outside_the_scale_is_still_refused(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text(GOOD_HEADER + "a,b,3,\nc,d,11,\n", encoding="utf-8")
    result = run_cli(["feedback", "import", data, "--project", "p", "--db", tmp_path / "f.db", "--score-scale", "10"])
    assert_user_error(result, f"{data}:3: score 11 is outside 0..10")


BAD_FILE = (
    GOOD_HEADER
    + "The dose.,La dosis.,0.9,\n"  # line 2: good
    + ",Vacío.,0.5,\n"  # line 3: no source
    + "Pain.,Dolor.,high,\n"  # line 4: not a number
    + "Fever.,Fiebre.,1.5,\n"  # line 5: outside [0, 1]
    + "Cough.,Tos.,0.7,Tos seca.\n"  # line 6: good
    + "Cough.,Tos.,0.2,\n"  # line 7: the same reviewer judging the same translation again
)


def test_bad_rows_refuse_the_whole_file_naming_each_line(tmp_path):
    data, db = tmp_path / "bad.csv", tmp_path / "f.db"
    data.write_text(BAD_FILE, encoding="utf-8")
    result = run_cli(["feedback", "import", data, "--project", "p", "--db", db])
    assert_user_error(
        result,
        f"{data}:3: column 'source' is empty",
        f"{data}:4: column 'score' holds 'high'",
        f"{data}:5: score 1.5 is outside [0, 1]",
        f"{data}:7: reviewer 'import' already judged this translation",
        "4 bad row(s), nothing imported",
        "--on-bad-rows skip",
    )
    assert not db.exists() or stored(db) == []


def test_skip_reports_each_bad_line_and_imports_the_rest_at_once(tmp_path):
    data, db = tmp_path / "bad.csv", tmp_path / "f.db"
    data.write_text(BAD_FILE, encoding="utf-8")
    result = run_cli(["feedback", "import", data, "--project", "p", "--db", db, "--on-bad-rows", "skip"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for line in (3, 4, 5, 7):
        assert f"skipped {data}:{line}:" in text
    assert [(j.source, j.score, j.post_edit) for j in stored(db)] == [
        ("The dose.", 0.9, None),
        ("Cough.", 0.7, "Tos seca."),
    ]
    # Importing the file again: every row is now either bad or already judged, so nothing is added.
    again = run_cli(["feedback", "import", data, "--project", "p", "--db", db, "--on-bad-rows", "skip"])
    assert_user_error(again, "no row could be imported")
    assert len(stored(db)) == 2


def test_a_broken_jsonl_line_is_a_bad_row(tmp_path):
    data, db = tmp_path / "j.jsonl", tmp_path / "f.db"
    data.write_text('{"source": "a", "translation": "b", "score": 0.5}\n{"source": "c",\n[1, 2]\n', encoding="utf-8")
    refused = run_cli(["feedback", "import", data, "--project", "p", "--db", db])
    assert_user_error(refused, f"{data}:2: invalid JSON", f"{data}:3: expected a JSON object, got list")
    skipped = run_cli(["feedback", "import", data, "--project", "p", "--db", db, "--on-bad-rows", "skip"])
    assert skipped.exit_code == 0, skipped.output
    assert [j.source for j in stored(db)] == ["a"]


@pytest.mark.parametrize(
    ("content", "options", "fragments"),
    [
        (
            "a,b\nx,y\n",
            [],
            ["no source column: expected 'source' or 'english'", "Columns found: 'a', 'b'", "--src-col"],
        ),
        (GOOD_HEADER + "a,b,0.5,\n", ["--mt-col", "spanish"], ["column 'spanish' (given with --mt-col) not found"]),
        (GOOD_HEADER + "a,b,0.5,\n", ["--on-bad-rows", "maybe"], ["--on-bad-rows must be one of error, skip"]),
        (GOOD_HEADER + "a,b,0.5,\n", ["--score-scale", "0"], ["--score-scale must be a positive number"]),
        ("source,translation,score,flags\na,b,0.5,typo\n", [], [":2: unknown error flag(s) 'typo'"]),
    ],
)
def test_bad_files_and_options_exit_2(tmp_path, content, options, fragments):
    data = tmp_path / "in.csv"
    data.write_text(content, encoding="utf-8")
    result = run_cli(["feedback", "import", data, "--project", "p", "--db", tmp_path / "f.db", *options])
    assert_user_error(result, *fragments)


def test_missing_file_exits_2(tmp_path):
    result = run_cli(["feedback", "import", tmp_path / "nope.csv", "--project", "p", "--db", tmp_path / "f.db"])
    assert_user_error(result, "Data file not found")
