"""``medtune data validate``: only the data stage runs, its report names what was dropped, and a bad option exits 2."""

from __future__ import annotations

import csv
import json

from cli_checks import assert_user_error, run_cli


def _corpus(path, rows: int = 40) -> None:
    pairs = [
        {"en": f"Patient {i} takes {i} mg daily.", "es": f"El paciente {i} toma {i} mg al día."} for i in range(rows)
    ]
    pairs[5]["es"] = ""  # an empty target
    pairs.append(dict(pairs[3]))  # an exact duplicate
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["en", "es"])
        writer.writeheader()
        writer.writerows(pairs)


def test_only_the_data_stage_runs_and_the_report_counts_what_was_dropped(tmp_path):
    data, run_dir = tmp_path / "mine.csv", tmp_path / "run"
    _corpus(data)
    args = ["data", "validate", "translate-en-es", "--set", f"run_dir={run_dir}", "--set", f"data.train={data}"]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert list(record["stages"]) == ["data"]  # no model was loaded, nothing trained or scored
    assert not (run_dir / "eval").exists() and not (run_dir / "model").exists()
    reports = json.loads((run_dir / "data" / "validation.json").read_text(encoding="utf-8"))["reports"]
    train = next(r for r in reports if r["name"] == "train")
    assert (train["total"], train["kept"], train["dropped"]) == (41, 39, 2)
    assert train["counts"] == {"duplicate": 1, "empty": 1}
    split = {name: sum(1 for _ in (run_dir / "data" / f"{name}.jsonl").open()) for name in ("train", "dev", "test")}
    assert sum(split.values()) == 39
    assert {k: record["stages"]["data"][k] for k in split} == split
    output = " ".join(result.output.split())
    assert "duplicate: 1, empty: 1" in output
    # The same command again keeps the finished stage (--resume): the split does not change.
    before = (run_dir / "data" / "test.jsonl").read_bytes()
    again = run_cli([*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert "skipped" in again.output and (run_dir / "data" / "test.jsonl").read_bytes() == before


def test_a_bad_recipe_key_or_missing_file_exits_2(tmp_path):
    result = run_cli(
        ["data", "validate", "translate-en-es", "--set", f"run_dir={tmp_path / 'r'}", "--set", "data.nope=1"]
    )
    assert_user_error(result, "data.nope")
    missing = tmp_path / "missing.csv"
    result = run_cli(
        ["data", "validate", "translate-en-es", "--set", f"run_dir={tmp_path / 'r2'}", "--set", f"data.train={missing}"]
    )
    assert_user_error(result, str(missing))
