"""Reading JSONL/CSV/TSV with file:line origins, demo files and readable errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from medtune.data.io import read_jsonl, read_rows, resolve_data_path, write_jsonl
from medtune.data.parallel import load_pairs, pair_columns
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
    assert "Set them with --src-col/--tgt-col." in message  # eval's options, the default
    # each command names what it accepts: run/train take recipe keys (tests/test_cli_bad_input.py)
    with pytest.raises(MedtuneError, match=r"Set them with --set data\.src_col=\.\.\.") as err:
        load_pairs(str(path), column_options="--set data.src_col=... --set data.tgt_col=...")
    assert "--src-col" not in str(err.value)


def test_demo_files_are_read_by_their_language_code_columns():
    assert pair_columns("demo:general_en_es.jsonl", "English", "Spanish", "en", "es") == ("en", "es")
    assert pair_columns("demo:general_en_es.jsonl", "en", "es", "es", "en") == ("es", "en")  # the other direction
    assert pair_columns("my_pairs.csv", "English", "Spanish", "en", "es") == ("English", "Spanish")


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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("name", "sep"), [("pairs.csv", ","), ("pairs.tsv", "\t")])
def test_an_unterminated_quote_names_its_line_instead_of_swallowing_the_rest(tmp_path, name, sep):
    lines = ["en", "es"], *[[f"Sentence {i}.", f"Frase {i}."] for i in range(1, 50)]
    lines = [sep.join(cells) for cells in lines]
    lines[4] = sep.join(['"Stop taking it', "Deje de tomarlo"])  # line 5: the quote never closes
    path = _write(tmp_path / name, "\n".join(lines) + "\n")
    digest = sha256(path)
    with pytest.raises(MedtuneError, match=rf"{name}:5: a cell on this line opens a quote that is not closed"):
        read_rows(str(path))
    assert sha256(path) == digest


@pytest.mark.parametrize(("name", "sep"), [("pairs.csv", ","), ("pairs.tsv", "\t")])
def test_text_after_a_closing_quote_names_the_line(tmp_path, name, sep):
    path = _write(
        tmp_path / name, f"en{sep}es\nfever{sep}fiebre\n\n" + f'"Stop," he said.{sep}Para, dijo.\nrash{sep}sarpullido\n'
    )
    with pytest.raises(MedtuneError, match=rf"{name}:4: a cell on this line opens a quote"):
        read_rows(str(path))


def test_quoted_tsv_cells_as_pandas_and_spreadsheets_write_them(tmp_path):
    path = _write(tmp_path / "pairs.tsv", 'en\tes\n"He said ""stop""."\t"Dijo ""para""."\n5" tall\t5" de alto\n')
    assert [r.fields for r in read_rows(str(path))] == [
        {"en": 'He said "stop".', "es": 'Dijo "para".'},
        {"en": '5" tall', "es": '5" de alto'},  # a quote inside an unquoted cell is text
    ]


def test_a_folder_given_as_a_data_file_says_it_is_a_folder(tmp_path):
    with pytest.raises(MedtuneError, match=r"is a folder; expected one \.jsonl, \.csv or \.tsv data file"):
        read_rows(str(tmp_path))
