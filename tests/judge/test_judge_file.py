"""judge_file: judgments appended as they are made, cache hits, resume after a kill, torn lines, stale rows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from counting_judge import SAMPLE_ITEMS as ITEMS
from counting_judge import CountingJudge

from medtune.errors import MedtuneError
from medtune.judge.base import JudgeItem
from medtune.judge.cache import judgment_key
from medtune.judge.run import judge_file

SRC = Path(__file__).resolve().parents[2] / "src"
HERE = Path(__file__).resolve().parent


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_item_once_in_order_with_its_key(tmp_path):
    out = tmp_path / "judgments.jsonl"
    judge = CountingJudge()
    judgments = judge_file(judge, ITEMS, out, progress=None, log=lambda m: None)
    assert [j.id for j in judgments] == [i.id for i in ITEMS]
    assert [j.score for j in judgments] == [n / 100 for n in range(1, 8)]
    rows = _rows(out)
    assert [r["id"] for r in rows] == [i.id for i in ITEMS]
    assert rows[0]["key"] == judgment_key(ITEMS[0], "counting-v1")


def test_a_rerun_judges_nothing_and_duplicates_are_cache_hits(tmp_path):
    out = tmp_path / "judgments.jsonl"
    judge_file(CountingJudge(), ITEMS, out, progress=None, log=lambda m: None)
    again = CountingJudge()
    same_answer_new_id = JudgeItem("copy", ITEMS[2].prompt, ITEMS[2].answer)
    judgments = judge_file(again, [*ITEMS, same_answer_new_id], out, progress=None, log=lambda m: None)
    assert again.scored == []  # nothing was asked again
    assert judgments[-1].id == "copy" and judgments[-1].score == ITEMS[2].answer.count("x") / 100
    assert [r["id"] for r in _rows(out)] == [*(i.id for i in ITEMS), "copy"]


def test_resume_after_a_kill_loses_no_finished_judgment(tmp_path):
    out, log = tmp_path / "judgments.jsonl", tmp_path / "scored.log"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(SRC)!r}, {str(HERE)!r}]
        from counting_judge import SAMPLE_ITEMS as ITEMS, CountingJudge
        from medtune.judge.run import judge_file
        judge_file(CountingJudge(batch_size=2, kill_after=4, log_path={str(log)!r}), ITEMS, {str(out)!r}, progress=None)
        """
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert first.returncode == -9, first.stderr  # killed by SIGKILL after two batches
    assert [r["id"] for r in _rows(out)] == ["i1", "i2", "i3", "i4"]  # both finished batches were on disk

    resumed = CountingJudge(batch_size=2)
    judgments = judge_file(resumed, ITEMS, out, progress=None, log=lambda m: None)
    assert resumed.scored == ["i5", "i6", "i7"]  # the finished ones were not judged again
    assert log.read_text().split() == ["i1", "i2", "i3", "i4"]
    rows = _rows(out)
    assert sorted(r["id"] for r in rows) == sorted(i.id for i in ITEMS) and len(rows) == len(ITEMS)
    assert [j.score for j in judgments] == [n / 100 for n in range(1, 8)]


def test_a_torn_last_line_is_dropped_and_rejudged(tmp_path):
    out = tmp_path / "judgments.jsonl"
    judge_file(CountingJudge(), ITEMS[:2], out, progress=None, log=lambda m: None)
    with out.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "i3", "score": 0.0')  # a kill in the middle of a write
    judge = CountingJudge()
    judge_file(judge, ITEMS[:3], out, progress=None, log=lambda m: None)
    assert judge.scored == ["i3"]
    assert [r["id"] for r in _rows(out)] == ["i1", "i2", "i3"]


def test_rows_of_another_judge_are_dropped(tmp_path):
    out = tmp_path / "judgments.jsonl"
    judge_file(CountingJudge(), ITEMS[:3], out, progress=None, log=lambda m: None)

    class Other(CountingJudge):
        def fingerprint(self) -> str:
            return "other"

    messages = []
    other = Other()
    judge_file(other, ITEMS[:3], out, progress=None, log=messages.append)
    assert other.scored == ["i1", "i2", "i3"] and "dropping 3 judgment(s)" in messages[0]
    assert len(_rows(out)) == 3


def test_a_corrupt_middle_line_is_named(tmp_path):
    out = tmp_path / "judgments.jsonl"
    out.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(MedtuneError, match=r"judgments.jsonl:2: not a JSON line"):
        judge_file(CountingJudge(), ITEMS, out, progress=None)


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(MedtuneError, match="share the id 'i1'"):
        judge_file(CountingJudge(), [ITEMS[0], ITEMS[0]], tmp_path / "j.jsonl", progress=None)
