"""load_documents: .txt paragraphs, folders of .txt, text columns; empty and duplicate documents located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.data.io import read_rows
from medtune.data.text import Document, documents_from_records, load_documents
from medtune.errors import MedtuneError


def _load(spec: Path | str, **kwargs):
    return load_documents(str(spec), log=lambda _: None, **kwargs)


def test_txt_file_splits_at_blank_lines_and_joins_lines(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text(
        "Hypertension raises stroke risk.\nTreat to target.\n\n\n   \nAsthma is reversible\nairway narrowing.\n\nEnd.",
        encoding="utf-8",
    )
    documents, report = _load(path)
    assert documents == [
        Document("Hypertension raises stroke risk.\nTreat to target.", None, f"{path}:1"),
        Document("Asthma is reversible\nairway narrowing.", None, f"{path}:6"),
        Document("End.", None, f"{path}:9"),
    ]
    assert report.summary() == "text: 3 documents, all valid"


def test_txt_duplicates_are_reported_at_their_first_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Wash hands.\n\nRest.\n\n  Wash hands.  \n", encoding="utf-8")
    documents, report = _load(path)
    assert [d.text for d in documents] == ["Wash hands.", "Rest."]
    assert [(i.origin, i.check, i.detail) for i in report.issues] == [(f"{path}:5", "duplicate_row", "'Wash hands.'")]


def test_windows_line_endings_and_bad_utf8_line(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"One.\r\nTwo.\r\n\r\nThree.\r\n")
    assert [d.text for d in _load(path)[0]] == ["One.\nTwo.", "Three."]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"Fine line.\n\nCaf\xe9 au lait.\n")
    with pytest.raises(MedtuneError, match=r"latin1\.txt:3: the file is not valid UTF-8"):
        _load(bad)


def test_folder_reads_each_txt_file_sorted_as_one_document(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "b.txt").write_text("Second file.\n\nStill the second file.\n", encoding="utf-8")
    (folder / "a.txt").write_text("First file.\n", encoding="utf-8")
    (folder / "skip.md").write_text("Not text input.\n", encoding="utf-8")
    (folder / "c.txt").write_text("\n  \n", encoding="utf-8")
    documents, report = _load(folder)
    assert documents == [
        Document("First file.", "a.txt", f"{folder / 'a.txt'}:1"),
        Document("Second file.\n\nStill the second file.", "b.txt", f"{folder / 'b.txt'}:1"),
    ]
    assert [(i.origin, i.check) for i in report.issues] == [(f"{folder / 'c.txt'}:1", "empty_text")]


def test_folder_without_txt_files_is_an_error(tmp_path):
    with pytest.raises(MedtuneError, match="has no .txt files"):
        _load(tmp_path)


def test_jsonl_and_csv_use_the_text_column_and_id(tmp_path):
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"id": 7, "body": " Sepsis is an emergency. "}) + "\n", encoding="utf-8")
    assert _load(jsonl, text_col="body")[0] == [Document("Sepsis is an emergency.", "7", f"{jsonl}:1")]
    csv = tmp_path / "docs.csv"
    csv.write_text('text\n"Line one\nline two"\n""\n', encoding="utf-8")
    documents, report = _load(csv)
    assert documents == [Document("Line one\nline two", None, f"{csv}:2")]
    assert [(i.origin, i.check, i.detail) for i in report.issues] == [(f"{csv}:4", "empty_text", "text is ''")]


def test_missing_text_column_lists_the_columns(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": 1, "abstract": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(MedtuneError) as err:
        _load(path)
    assert "no text column 'text'. Columns found: 'id', 'abstract'" in str(err.value)


def test_non_string_text_and_fail_policy(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"text": "Fine."}, {"text": 3}]), encoding="utf-8")
    documents, report = _load(path)
    assert [d.text for d in documents] == ["Fine."]
    assert report.issues[0].detail == "text is 3"
    with pytest.raises(MedtuneError) as err:
        _load(path, on_bad_rows="fail", name="cpt")
    assert f"Data set 'cpt' has 1 bad row(s): {path}:2: empty or non-string text (text is 3)" in str(err.value)


def test_empty_txt_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(MedtuneError, match="the file has no text"):
        _load(path)


def test_records_round_trip(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("A.\n\nB.\n", encoding="utf-8")
    documents, _ = _load(path)
    assert documents_from_records(json.loads(json.dumps([d.to_record() for d in documents]))) == documents


def test_demo_paragraphs_load_cleanly():
    documents, report = load_documents("demo:medical_paragraphs.jsonl", log=lambda _: None)
    assert report.issues == [] and len(documents) == len(read_rows("demo:medical_paragraphs.jsonl")) == 112
    assert all(d.id and len(d.text) > 200 for d in documents)
