"""validate_pairs: every problem is located, counted, dropped or refused."""

from __future__ import annotations

import pytest

from medtune.data.parallel import Pair
from medtune.data.validate import CHECKS, validate_pairs
from medtune.errors import MedtuneError

GOOD = [
    Pair("Take the tablet with food.", "Tome el comprimido con comida.", "d1", "f.jsonl:1"),
    Pair("Rest for two days.", "Descanse durante dos días.", "d1", "f.jsonl:2"),
]


def _origins(report, check: str) -> list[str]:
    return [i.origin for i in report.issues if i.check == check]


@pytest.mark.parametrize(
    ("bad", "check"),
    [
        (Pair("", "Algo.", None, "f.jsonl:9"), "empty"),
        (Pair("Something.", "   ", None, "f.jsonl:9"), "empty"),
        (Pair(None, "Algo.", None, "f.jsonl:9"), "empty"),  # type: ignore[arg-type]
        (Pair("Something.", 42, None, "f.jsonl:9"), "empty"),  # type: ignore[arg-type]
        (Pair("Paracetamol 500 mg", "Paracetamol 500 mg", None, "f.jsonl:9"), "identical"),
        (
            Pair("Breathe.", "Respire profundamente y mantenga el aire durante diez segundos.", None, "f.jsonl:9"),
            "length_ratio",
        ),
        (Pair("Rest for two days.", "Descanse durante dos días.", None, "f.jsonl:9"), "duplicate"),
    ],
)
def test_each_check_is_detected_with_its_origin(bad, check):
    kept, report = validate_pairs([*GOOD, bad], "train")
    assert kept == GOOD
    assert [(i.origin, i.check) for i in report.issues] == [("f.jsonl:9", check)]
    assert report.counts == {check: 1}
    assert (report.total, report.kept) == (3, 2)
    assert str(report.issues[0]).startswith(f"f.jsonl:9: {CHECKS[check]} (")


def test_duplicate_after_whitespace_stripping():
    dup = Pair("  Rest for two days. ", "Descanse durante dos días.\n", None, "f.jsonl:3")
    _, report = validate_pairs([*GOOD, dup], "train")
    assert _origins(report, "duplicate") == ["f.jsonl:3"]


def test_exclude_sources_drops_test_overlap():
    overlap = Pair("Wash your hands.", "Lávese las manos.", None, "f.jsonl:3")
    kept, report = validate_pairs([*GOOD, overlap], "train", exclude_sources={"Wash your hands."})
    assert kept == GOOD
    assert _origins(report, "test_overlap") == ["f.jsonl:3"]
    assert report.counts == {"test_overlap": 1}


def test_short_pairs_are_not_ratio_checked():
    # 2 vs 10 characters is a 5x ratio, but under min_chars_for_ratio (12) it is allowed.
    short = Pair("OK", "De acuerdo", None, "f.jsonl:3")
    kept, report = validate_pairs([short], "train")
    assert kept == [short] and report.issues == []


def test_length_ratio_limit_is_configurable():
    pair = Pair("Sleep well.", "Duerma bien durante toda la noche.", None, "f.jsonl:1")  # 11 vs 34 chars
    assert validate_pairs([*GOOD, pair], "train")[1].counts == {"length_ratio": 1}
    kept, report = validate_pairs([*GOOD, pair], "train", max_length_ratio=4.0)
    assert report.issues == [] and len(kept) == 3
    assert "11 vs 34 characters, limit 3.0x" in validate_pairs([*GOOD, pair], "train")[1].issues[0].detail


def test_skip_drops_bad_rows_keeps_rest_stripped_and_counts_each_check():
    pairs = [
        Pair(" Take the tablet with food. ", "Tome el comprimido con comida.\t", "d1", "f.jsonl:1"),
        Pair("", "Vacío.", "d1", "f.jsonl:2"),
        Pair("Take the tablet with food.", "Tome el comprimido con comida.", "d2", "f.jsonl:3"),
        Pair("Ibuprofen", "Ibuprofen", "d2", "f.jsonl:4"),
        Pair("Yes.", "Sí, por supuesto, eso es exactamente lo que debe hacer.", "d3", "f.jsonl:5"),
        Pair("Wash your hands.", "Lávese las manos.", "d3", "f.jsonl:6"),
        Pair("Call your doctor.", "Llame a su médico.", "d4", "f.jsonl:7"),
        Pair("Do not drive.", None, "d4", "f.jsonl:8"),  # type: ignore[arg-type]
    ]
    kept, report = validate_pairs(pairs, "train", exclude_sources={"Wash your hands."})
    assert kept == [
        Pair("Take the tablet with food.", "Tome el comprimido con comida.", "d1", "f.jsonl:1"),
        Pair("Call your doctor.", "Llame a su médico.", "d4", "f.jsonl:7"),
    ]
    assert [(i.origin, i.check) for i in report.issues] == [
        ("f.jsonl:2", "empty"),
        ("f.jsonl:3", "duplicate"),
        ("f.jsonl:4", "identical"),
        ("f.jsonl:5", "length_ratio"),
        ("f.jsonl:6", "test_overlap"),
        ("f.jsonl:8", "empty"),
    ]
    assert report.counts == {"empty": 2, "duplicate": 1, "identical": 1, "length_ratio": 1, "test_overlap": 1}

    as_dict = report.to_dict()
    assert {k: as_dict[k] for k in ("name", "total", "kept", "dropped", "counts")} == {
        "name": "train",
        "total": 8,
        "kept": 2,
        "dropped": 6,
        "counts": report.counts,
    }
    assert as_dict["issues"][0] == {"origin": "f.jsonl:2", "check": "empty", "detail": "source is ''"}
    assert as_dict["issues"][-1] == {"origin": "f.jsonl:8", "check": "empty", "detail": "target is None"}

    assert report.summary() == (
        "train: 8 pairs, 6 dropped (2 empty or non-string source/target, 1 exact duplicate of an earlier pair, "
        "1 target identical to source, 1 extreme source/target length ratio, 1 source sentence also in the test set)"
    )


def test_summary_of_clean_data():
    kept, report = validate_pairs(GOOD, "test")
    assert kept == GOOD
    assert report.summary() == "test: 2 pairs, all valid"
    assert report.to_dict()["dropped"] == 0 and report.to_dict()["counts"] == {}


def test_fail_raises_naming_file_and_line():
    bad = Pair("Ibuprofen", "Ibuprofen", None, "data/train.csv:17")
    with pytest.raises(MedtuneError) as err:
        validate_pairs([*GOOD, bad], "train", on_bad_rows="fail")
    message = str(err.value)
    assert "Data set 'train' has 1 bad row(s)" in message
    assert "data/train.csv:17: target identical to source" in message
    assert "data.on_bad_rows=skip" in message


def test_fail_lists_first_five_and_counts_the_rest():
    bad = [Pair("", "x", None, f"f.csv:{n}") for n in range(2, 9)]
    with pytest.raises(MedtuneError) as err:
        validate_pairs([*GOOD, *bad], "train", on_bad_rows="fail")
    message = str(err.value)
    assert "has 7 bad row(s)" in message
    assert "f.csv:6:" in message and "f.csv:7:" not in message
    assert "and 2 more" in message


def test_all_bad_data_is_empty_after_validation():
    bad = [Pair("", "", None, "f.jsonl:1"), Pair("Same text", "Same text", None, "f.jsonl:2")]
    with pytest.raises(MedtuneError, match="empty after validation") as err:
        validate_pairs(bad, "train")
    assert "'train'" in str(err.value) and "2 dropped" in str(err.value)
