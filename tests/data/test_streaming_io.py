"""Reading a data file row by row gives the rows, lines and messages of reading it whole."""

from __future__ import annotations

import pytest

from medtune.data.io import iter_lines, iter_rows
from medtune.errors import MedtuneError

TRICKY = [
    b'{"en": "a"}\n{"en": "b"}\n',  # ends with a line break
    b'{"en": "a"}\r\n\r\n{"en": "b"}',  # CRLF, a blank line, no final break
    b'\xef\xbb\xbf{"en": "a\xe2\x80\xa8still a"}\r{"en": "b\x0cc"}\n',  # BOM, U+2028 and form feed in text, bare CR
    b"",
    b"\n\n",
]


@pytest.mark.parametrize("raw", TRICKY)
def test_lines_are_those_of_the_whole_decoded_file(tmp_path, raw):
    path = tmp_path / "f.jsonl"
    path.write_bytes(raw)
    whole = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    assert list(iter_lines(path)) == whole


def test_invalid_utf8_names_its_line_and_offset(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"en": "ok"}\n{"en": "ok"}\n{"en": "caf\xe9"}\n')
    with pytest.raises(MedtuneError, match=r"f\.jsonl:3: the file is not valid UTF-8 \(byte 0xe9 at offset 37\)"):
        list(iter_lines(path))


def test_csv_rows_keep_the_line_each_record_starts_on(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text('en,es\n\n"two\nlines",dos\nthree,tres\n\n\n"four ""q""",cuatro\n', encoding="utf-8")
    rows = list(iter_rows(str(path)))
    assert [(r.origin.rsplit(":", 1)[1], r.fields["en"]) for r in rows] == [
        ("3", "two\nlines"),
        ("5", "three"),
        ("8", 'four "q"'),
    ]


def test_csv_unclosed_quote_names_the_line_it_opens_on(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text('en,es\nfine,bien\n\n"broken"x,roto\nmore,más\n', encoding="utf-8")
    with pytest.raises(MedtuneError, match=r"f\.csv:4: a cell on this line opens a quote"):
        list(iter_rows(str(path)))
