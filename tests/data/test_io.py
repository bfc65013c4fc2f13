"""Reading JSONL/CSV/TSV with file:line origins, demo files and readable errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.data.io import read_jsonl, read_rows, resolve_data_path, write_jsonl
from medtune.data.parallel import load_pairs
from medtune.errors import MedtuneError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_rows_keep_file_and_line(tmp_path):
    path = _write(
        tmp_path / "pairs.jsonl",
        '{"en": "Take one tablet.", "es": "Tome un comprimido."}\n'
        "\n"
        '{"en": "Rest in bed.", "es": "Guarde reposo en cama."}\n',
    )
    rows = read_rows(str(path))
    assert [r.fields["en"] for r in rows] == ["Take one tablet.", "Rest in bed."]
    # The blank line is skipped but still counted.
    assert [r.origin for r in rows] == [f"{path}:1", f"{path}:3"]


def test_csv_rows_keep_line_numbers_with_multiline_cell(tmp_path):
    path = _write(
        tmp_path / "pairs.csv",
        "en,es\n"
        "Drink water.,Beba agua.\n"
        '"Call us if the pain\nsteadily gets worse.","Llámenos si el dolor\nempeora de forma continua."\n'
        '"Wash, then dry.","Lave, luego seque."\n',
    )
    rows = read_rows(str(path))
    # The quoted record spans lines 3-5; its origin is where it starts, and the next row is on line 6.
    assert [r.origin for r in rows] == [f"{path}:2", f"{path}:3", f"{path}:6"]
    assert rows[1].fields["en"] == "Call us if the pain\nsteadily gets worse."
    assert rows[2].fields == {"en": "Wash, then dry.", "es": "Lave, luego seque."}


def test_tsv_rows(tmp_path):
    path = _write(tmp_path / "pairs.tsv", "en\tes\nfever\tfiebre\ncough, dry\ttos seca\n")
    rows = read_rows(str(path))
    assert [r.fields for r in rows] == [{"en": "fever", "es": "fiebre"}, {"en": "cough, dry", "es": "tos seca"}]
    assert [r.origin for r in rows] == [f"{path}:2", f"{path}:3"]


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"en,es\r\nnausea,nauseas\r\nrash,sarpullido\r\n")
    rows = read_rows(str(path))
    assert [r.origin for r in rows] == [f"{path}:2", f"{path}:3"]
    assert rows[1].fields == {"en": "rash", "es": "sarpullido"}


def test_jsonl_round_trip_keeps_unicode_line_separators(tmp_path):
    # json.dumps(ensure_ascii=False) writes U+2028 and form feeds raw; they are not line breaks.
    records = [{"en": "line\u2028separator", "es": "separador\x0cde línea"}, {"en": "b", "es": "c"}]
    path = tmp_path / "out" / "records.jsonl"
    write_jsonl(path, records)
    assert read_jsonl(path) == records


def test_demo_prefix_resolves_bundled_file():
    path = resolve_data_path("demo:glossary_en_es.tsv")
    assert path.is_file() and path.name == "glossary_en_es.tsv"
    rows = read_rows("demo:glossary_en_es.tsv")
    assert rows[0].origin == f"{path}:2"
    assert set(rows[0].fields) == {"en", "es"}


def test_unknown_demo_file_lists_bundled_ones():
    with pytest.raises(MedtuneError) as err:
        read_rows("demo:nope.jsonl")
    message = str(err.value)
    assert "nope.jsonl" in message
    for name in ("general_en_es.jsonl", "glossary_en_es.tsv", "medical_en_es.jsonl"):
        assert name in message
    assert "__init__" not in message


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(MedtuneError, match="not found") as err:
        read_rows(str(missing))
    assert str(missing) in str(err.value)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"en,es\nfever,fiebre\nheart,coraz\xf3n\n")
    with pytest.raises(MedtuneError, match="UTF-8") as err:
        read_rows(str(path))
    assert f"{path}:3" in str(err.value)


def test_malformed_json_names_the_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"en": "a", "es": "b"}\n{"en": "c", "es": }\n')
    with pytest.raises(MedtuneError, match="invalid JSON") as err:
        read_rows(str(path))
    assert f"{path}:2" in str(err.value)


def test_json_line_that_is_not_an_object(tmp_path):
    path = _write(tmp_path / "list.jsonl", '{"en": "a", "es": "b"}\n["a", "b"]\n')
    with pytest.raises(MedtuneError, match="expected a JSON object, got list") as err:
        read_rows(str(path))
    assert f"{path}:2" in str(err.value)


def test_unknown_extension_is_refused(tmp_path):
    path = _write(tmp_path / "pairs.txt", "en es\n")
    with pytest.raises(MedtuneError, match=r"'\.txt'.*\.jsonl, \.csv or \.tsv"):
        read_rows(str(path))


def test_csv_row_with_too_many_cells_names_the_line(tmp_path):
    path = _write(tmp_path / "wide.csv", "en,es\na,b\nc,d,e\n")
    with pytest.raises(MedtuneError, match="more cells than header columns") as err:
        read_rows(str(path))
    assert f"{path}:3" in str(err.value)


def test_empty_csv_is_refused(tmp_path):
    path = _write(tmp_path / "empty.csv", "")
    with pytest.raises(MedtuneError, match="empty"):
        read_rows(str(path))


def test_load_pairs_with_named_columns(tmp_path):
    path = _write(tmp_path / "named.csv", "English,Spanish\nfever,fiebre\nswelling,hinchazón\n")
    pairs = load_pairs(str(path), src_col="English", tgt_col="Spanish")
    assert [(p.src, p.tgt) for p in pairs] == [("fever", "fiebre"), ("swelling", "hinchazón")]
    assert [p.origin for p in pairs] == [f"{path}:2", f"{path}:3"]
    assert all(p.doc is None for p in pairs)


def test_load_pairs_with_default_columns_lists_columns_found(tmp_path):
    path = _write(tmp_path / "named.csv", "English,Spanish\nfever,fiebre\n")
    with pytest.raises(MedtuneError) as err:
        load_pairs(str(path))
    message = str(err.value)
    assert "'en', 'es' not found" in message
    assert "Columns found: 'English', 'Spanish'" in message
    assert "--src-col" in message


def test_load_pairs_reads_doc_column_as_text(tmp_path):
    lines = [
        {"en": "Sit up.", "es": "Siéntese.", "doc": 7},
        {"en": "Lie down.", "es": "Acuéstese."},
    ]
    path = _write(tmp_path / "docs.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    pairs = load_pairs(str(path), doc_col="doc")
    assert [p.doc for p in pairs] == ["7", None]
    # A doc column that does not exist is ignored rather than an error.
    assert all(p.doc is None for p in load_pairs(str(path), doc_col="document"))


def test_load_pairs_on_empty_file(tmp_path):
    path = _write(tmp_path / "nothing.jsonl", "\n")
    with pytest.raises(MedtuneError, match="no rows found"):
        load_pairs(str(path))
