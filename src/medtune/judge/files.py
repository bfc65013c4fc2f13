"""``medtune judge`` end to end: rows in, ``judgments.jsonl`` and ``metrics.json`` (or ``calibration.json``) out.

Judgments are first kept per answer in ``<out>/judge_cache.jsonl`` (pairwise verdicts in
``<out>/pairwise_cache.jsonl``), written as they are made, so a killed or failed run continues where
it stopped; ``judgments.jsonl`` (one row per input row) and the metrics are written at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.judge.agreement import correlation, pairwise_accuracy, same_prompt_pairs
from medtune.judge.base import Judge, Judgment
from medtune.judge.cache import JsonlLog, pair_key
from medtune.judge.rows import JudgeRow
from medtune.judge.run import judge_file

CACHE_FILE, PAIRWISE_CACHE_FILE = "judge_cache.jsonl", "pairwise_cache.jsonl"
JUDGMENTS_FILE, METRICS_FILE, CALIBRATION_FILE = "judgments.jsonl", "metrics.json", "calibration.json"
PARSE_FAILURE = "no parseable score"


def prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder; refuse one holding a ``judgments.jsonl`` medtune judge did not write.

    Raises:
        MedtuneError: ``out_dir`` is a file, or holds a ``judgments.jsonl`` without medtune's cache next to it.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise MedtuneError(f"--out {out_dir} is a file; give a folder for judgments.jsonl and metrics.json.")
    if (
        (out_dir / JUDGMENTS_FILE).exists()
        and not (out_dir / CACHE_FILE).exists()
        and not (out_dir / PAIRWISE_CACHE_FILE).exists()
    ):
        raise MedtuneError(
            f"--out {out_dir} already holds a {JUDGMENTS_FILE} that medtune judge did not write; choose another folder."
        )
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, data) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _write_jsonl(path: Path, records: Sequence[dict]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(partial, path)


def _failure_list(judgments: Sequence[Judgment]) -> list[dict]:
    return [{"id": j.id, "reason": j.failed} for j in judgments if j.failed is not None]


def _pointwise_rows(rows: Sequence[JudgeRow], by_id: dict[str, Judgment]) -> list[dict]:
    records = []
    for row in rows:
        if not row.is_pair:
            records.append(by_id[row.id].to_record())
            continue
        record: dict = {"id": row.id}
        for side in ("chosen", "rejected"):
            judgment = by_id[f"{row.id}#{side}"]
            record |= {
                f"{side}_score": judgment.score,
                f"{side}_criteria": judgment.criteria,
                f"{side}_rationale": judgment.rationale,
            }
            if judgment.failed:
                record[f"{side}_failed"] = judgment.failed
        records.append(record)
    return records


def judge_rows(judge: Judge, rows: Sequence[JudgeRow], out_dir: Path, log=print) -> dict:
    """Judge every answer of ``rows`` pointwise; write ``judgments.jsonl`` and ``metrics.json`` in ``out_dir``.

    Returns:
        The metrics: ``n`` (rows), ``answers``, ``mean_score``, ``parse_failures``, ``failed`` (id and
        reason of every unscored answer), ``no_option``, ``judgments_per_s`` and, when the file has
        pairs, ``pairwise_accuracy`` with ``ci_low``/``ci_high``, ``ties`` and ``pairs``.
    """
    prepare_out_dir(out_dir)
    items = [item for row in rows for item in row.items()]
    started = time.perf_counter()
    judgments = judge_file(judge, items, out_dir / CACHE_FILE, progress=f"judge ({judge.name})", log=log)
    seconds = time.perf_counter() - started
    by_id = {j.id: j for j in judgments}
    _write_jsonl(out_dir / JUDGMENTS_FILE, _pointwise_rows(rows, by_id))
    scored = [j.score for j in judgments if j.score is not None]
    metrics: dict = {
        "judge": judge.name,
        "fingerprint": judge.fingerprint(),
        "n": len(rows),
        "answers": len(items),
        "mean_score": sum(scored) / len(scored) if scored else None,
        "parse_failures": sum(1 for j in judgments if j.failed and PARSE_FAILURE in j.failed),
        "failed": _failure_list(judgments),
        "no_option": sum(1 for j in judgments if "no_option" in j.flags),
        "judgments_per_s": len(items) / seconds if seconds > 0 else None,
    }
    pairs = [(by_id[f"{r.id}#chosen"], by_id[f"{r.id}#rejected"]) for r in rows if r.is_pair]
    pairs = [(c.score, rj.score) for c, rj in pairs if c.score is not None and rj.score is not None]
    if any(r.is_pair for r in rows):
        metrics |= pairwise_accuracy([c for c, _ in pairs], [rj for _, rj in pairs])
    _write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def judge_pairs_pairwise(judge, rows: Sequence[JudgeRow], out_dir: Path, log=print) -> dict:
    """Pairwise mode of the ``llm`` judge: each pair asked in both orders; verdicts cached as they come.

    ``judgments.jsonl`` rows: ``id``, ``winner`` (chosen, rejected or tie), ``consistent``,
    ``chosen_score``/``rejected_score`` (1/0, or 0.5 each for a tie) and the rationale. Metrics add
    ``position_consistency``: the share of verdicts that agreed across the two orders.
    """
    if not all(r.is_pair for r in rows):
        first = next(r for r in rows if not r.is_pair)
        raise MedtuneError(f"{first.origin}: --pairwise compares pairs; every row needs 'chosen' and 'rejected'.")
    prepare_out_dir(out_dir)
    fingerprint = judge.fingerprint()
    store = JsonlLog(out_dir / PAIRWISE_CACHE_FILE)
    done = {r["key"]: r for r in store.records}
    keys = [pair_key(r.prompt, r.chosen, r.rejected, r.reference, fingerprint) for r in rows]
    todo = [(row, key) for row, key in zip(rows, keys, strict=True) if key not in done]
    started = time.perf_counter()
    for start in range(0, len(todo), judge.batch_size):
        batch = todo[start : start + judge.batch_size]
        verdicts = judge.compare_many(
            [(r.prompt, r.chosen, r.rejected, r.reference) for r, _ in batch], [r.id for r, _ in batch]
        )
        records = []
        for (_row, key), verdict in zip(batch, verdicts, strict=True):
            winner = {"first": "chosen", "second": "rejected", "tie": "tie", None: None}[verdict.winner]
            records.append(
                {
                    "key": key,
                    "winner": winner,
                    "consistent": verdict.consistent,
                    "rationale": verdict.rationale,
                    "failed": verdict.failed,
                }
            )
        store.append(records)
        done |= {r["key"]: r for r in records}
    seconds = time.perf_counter() - started
    results = []
    for row, key in zip(rows, keys, strict=True):
        verdict = done[key]
        scores = {"chosen": (1.0, 0.0), "rejected": (0.0, 1.0), "tie": (0.5, 0.5), None: (None, None)}[
            verdict["winner"]
        ]
        record = {"id": row.id, "winner": verdict["winner"], "consistent": verdict["consistent"]}
        record |= {"chosen_score": scores[0], "rejected_score": scores[1], "rationale": verdict["rationale"]}
        if verdict["failed"]:
            record["failed"] = verdict["failed"]
        results.append(record)
    _write_jsonl(out_dir / JUDGMENTS_FILE, results)
    judged = [r for r in results if r["winner"] is not None]
    metrics = {
        "judge": f"{judge.name} (pairwise, both orders)",
        "fingerprint": fingerprint,
        "n": len(rows),
        "mean_score": sum(r["chosen_score"] for r in judged) / len(judged) if judged else None,
        "parse_failures": sum(1 for r in results if r["winner"] is None),
        "failed": [{"id": r["id"], "reason": r["failed"]} for r in results if r["winner"] is None],
        "position_consistency": sum(bool(r["consistent"]) for r in judged) / len(judged) if judged else None,
        "judgments_per_s": 2 * len(todo) / seconds if todo and seconds > 0 else None,
    }
    metrics |= pairwise_accuracy([r["chosen_score"] for r in judged], [r["rejected_score"] for r in judged])
    _write_json(out_dir / METRICS_FILE, metrics)
    return metrics


def calibrate_rows(judge: Judge, rows: Sequence[JudgeRow], out_dir: Path, log=print) -> dict:
    """Agreement of the judge with the rows' ``human_score``: Spearman, Pearson and pairwise accuracy.

    Pairwise accuracy is over answers to the same prompt with different human scores: the share where
    the judge scores the human-preferred one strictly higher. Writes ``calibration.json``.
    """
    if any(r.is_pair for r in rows):
        first = next(r for r in rows if r.is_pair)
        raise MedtuneError(
            f"{first.origin}: --calibrate reads single answers ('answer' plus 'human_score'), not pairs."
        )
    prepare_out_dir(out_dir)
    items = [row.items()[0] for row in rows]
    judgments = judge_file(judge, items, out_dir / CACHE_FILE, progress=f"calibrate ({judge.name})", log=log)
    scored = [(row, j) for row, j in zip(rows, judgments, strict=True) if j.score is not None]
    judge_scores = [j.score for _, j in scored]
    human = [row.human_score for row, _ in scored]
    result: dict = {"judge": judge.name, "fingerprint": judge.fingerprint(), "rows": len(rows)}
    result |= correlation(judge_scores, human)
    pairs = same_prompt_pairs([row.prompt for row, _ in scored], human)
    result |= pairwise_accuracy([judge_scores[i] for i, _ in pairs], [judge_scores[j] for _, j in pairs])
    result |= {
        "parse_failures": sum(1 for j in judgments if j.failed and PARSE_FAILURE in j.failed),
        "failed": _failure_list(judgments),
    }
    _write_json(out_dir / CALIBRATION_FILE, result)
    return result
