"""Preference pairs from judged candidates: per prompt, the best-scored answer against the worst-scored one.

A prompt gives a pair only when the judge separated its answers: the gap between the best and the
worst score must reach the margin, and the best must be above 0 (all-bad groups teach nothing about
what a good answer is). Exact duplicates, unscored candidates (judge failures) and empty answers take
no part; every prompt and candidate left out is counted in :class:`PairStats`. Near duplicates do take
part: "Answer: A. 30 mL/min" and "Answer: B. 60 mL/min" are near duplicates by character ratio yet
different answers, and when the judge scores two near-identical answers a margin apart, the pair is
the most informative kind (a minimal edit that decides quality); when it does not, they are a tie.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medtune.data.io import write_jsonl
from medtune.data.preference import PreferencePair
from medtune.errors import MedtuneError

HISTOGRAM_BINS = 10
# Scores are sums of weighted floats: a gap of 0.7 - 0.6 is 0.0999...; it still reaches a 0.1 margin
# (and 0.3 * 10 = 3.0000000000000004 still lands in bin 3).
FLOAT_TOLERANCE = 1e-9
ID_SEPARATOR = ":"


@dataclass
class PairStats:
    """What pair building kept and dropped.

    Prompts: ``pairs`` kept; ``too_few`` had fewer than two distinct, scored, non-empty candidates;
    ``all_bad`` had a best score of 0; ``ties`` had a score gap below ``margin``. Candidates:
    ``duplicates``, ``unscored`` and ``empty`` were left out. ``scores`` are the scores of the
    candidates that took part (histogram and summary in :meth:`to_dict`); ``gaps`` those of the pairs.
    """

    margin: float
    prompts: int = 0
    pairs: int = 0
    ties: int = 0
    all_bad: int = 0
    too_few: int = 0
    duplicates: int = 0
    unscored: int = 0
    empty: int = 0
    scores: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Counts, ``pair_yield`` (pairs / prompts), the score ``histogram`` (10 bins over [0, 1], the last
        closed) and ``score_summary`` / ``gap_summary`` (n, mean, min, quartiles, max)."""
        return {
            "margin": self.margin,
            "prompts": self.prompts,
            "pairs": self.pairs,
            "pair_yield": self.pairs / self.prompts if self.prompts else 0.0,
            "ties": self.ties,
            "all_bad": self.all_bad,
            "too_few": self.too_few,
            "duplicates": self.duplicates,
            "unscored": self.unscored,
            "empty": self.empty,
            "histogram": {
                "edges": [i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)],
                "counts": score_histogram(self.scores),
            },
            "score_summary": _summary(self.scores),
            "gap_summary": _summary(self.gaps),
        }


def score_histogram(scores: Sequence[float]) -> list[int]:
    """How many scores fall in each of 10 bins [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] (the last one closed).

    Why not numpy.histogram: its float edges (0.30000000000000004, 0.6000000000000001, ...) put scores
    of exactly 0.3, 0.6 or 0.7 in the bin below.
    """
    counts = [0] * HISTOGRAM_BINS
    for score in scores:
        counts[min(math.floor(score * HISTOGRAM_BINS + FLOAT_TOLERANCE), HISTOGRAM_BINS - 1)] += 1
    return counts


def build_pairs(
    candidates: Sequence[dict], scores: Mapping[str, float | None], margin: float = 0.1
) -> tuple[list[PreferencePair], PairStats]:
    """One pair per prompt whose candidates the judge separated by at least ``margin``.

    Args:
        candidates: rows of ``candidates.jsonl`` (``id``, ``prompt_id``, ``prompt``, ``sample``, ``text``,
            ``duplicate_of``), any order.
        scores: candidate id -> judge score in [0, 1]; a missing id or ``None`` is an unscored candidate.
        margin: the smallest score gap between chosen and rejected, in (0, 1].
    Returns:
        The pairs in the order prompts first appear (chosen = the best-scored candidate, rejected = the
        worst-scored other one; ties broken by sample index), and the :class:`PairStats`. A pair's id is
        ``<prompt id>:<chosen id>:<rejected id>`` (see :func:`pair_records`).
    Raises:
        MedtuneError: a margin outside (0, 1], or a score outside [0, 1] (naming the candidate).
    """
    if not 0 < margin <= 1:
        raise MedtuneError(f"pairs.margin must be in (0, 1], got {margin}: it is the smallest score gap of a pair.")
    groups: dict[str, list[dict]] = {}
    for row in candidates:
        groups.setdefault(str(row["prompt_id"]), []).append(row)
    stats = PairStats(margin=margin, prompts=len(groups))
    pairs = []
    for prompt_id, rows in groups.items():
        scored = _scored_candidates(sorted(rows, key=lambda r: r["sample"]), scores, stats)
        if len(scored) < 2:
            stats.too_few += 1
            continue
        chosen = max(scored, key=lambda pair: pair[1])  # max and min keep the first of equal scores
        rejected = min((s for s in scored if s is not chosen), key=lambda pair: pair[1])
        gap = chosen[1] - rejected[1]
        if chosen[1] == 0:
            stats.all_bad += 1
        elif gap < margin - FLOAT_TOLERANCE:
            stats.ties += 1
        else:
            stats.pairs += 1
            stats.gaps.append(gap)
            pairs.append(_pair(prompt_id, chosen, rejected))
    return pairs, stats


def pair_records(pairs: Sequence[PreferencePair]) -> list[dict]:
    """The standard ``prompt``/``chosen``/``rejected`` rows with scores, plus ``prompt_id``, ``chosen_id`` and
    ``rejected_id`` read back from the ids :func:`build_pairs` gives.

    Raises:
        ValueError: a pair whose id was not made by :func:`build_pairs`.
    """
    records = []
    for pair in pairs:
        parts = pair.id.rsplit(ID_SEPARATOR, 2)
        if len(parts) != 3:
            raise ValueError(f"Pair id {pair.id!r} does not name its candidates; it was not made by build_pairs.")
        prompt_id, chosen_id, rejected_id = parts
        records.append(pair.to_record() | {"prompt_id": prompt_id, "chosen_id": chosen_id, "rejected_id": rejected_id})
    return records


def write_pairs(path: Path, pairs: Sequence[PreferencePair], stats: PairStats) -> Path:
    """Write the pairs as JSONL (:func:`pair_records`) and the stats beside them (``<name>.stats.json``).

    Both are written atomically. Returns the stats file's path.
    """
    write_jsonl(path, pair_records(pairs))
    stats_path = path.with_name(f"{path.stem}.stats.json")
    tmp = stats_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stats.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(stats_path)
    return stats_path


def _scored_candidates(
    rows: list[dict], scores: Mapping[str, float | None], stats: PairStats
) -> list[tuple[dict, float]]:
    """The prompt's candidates that can take part in a pair, with their scores; the others counted in ``stats``."""
    kept = []
    for row in rows:
        if row.get("duplicate_of") is not None and row.get("duplicate_kind", "exact") == "exact":
            stats.duplicates += 1
            continue
        score = scores.get(row["id"])
        if score is None or (isinstance(score, float) and math.isnan(score)):
            stats.unscored += 1
            continue
        if not 0 <= score <= 1:
            raise MedtuneError(
                f"Candidate {row['id']!r} (prompt {row['prompt_id']!r}) has the score {score}; judge scores are in [0, 1]."
            )
        if not row["text"].strip():
            stats.empty += 1
            continue
        kept.append((row, float(score)))
        stats.scores.append(float(score))
    return kept


def _pair(prompt_id: str, chosen: tuple[dict, float], rejected: tuple[dict, float]) -> PreferencePair:
    (chosen_row, chosen_score), (rejected_row, rejected_score) = chosen, rejected
    return PreferencePair(
        id=ID_SEPARATOR.join((prompt_id, chosen_row["id"], rejected_row["id"])),
        prompt=chosen_row["prompt"],
        chosen=chosen_row["text"].strip(),
        rejected=rejected_row["text"].strip(),
        chosen_score=chosen_score,
        rejected_score=rejected_score,
    )


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean": None, "min": None, "q25": None, "median": None, "q75": None, "max": None}
    q25, median, q75 = (float(q) for q in np.quantile(values, [0.25, 0.5, 0.75]))
    return {
        "n": len(values),
        "mean": float(np.mean(values)),
        "min": float(min(values)),
        "q25": q25,
        "median": median,
        "q75": q75,
        "max": float(max(values)),
    }
