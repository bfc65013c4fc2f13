"""Statistics for every before/after claim: bootstrap intervals and paired bootstrap tests.

One resampling scheme serves every task. A resample draws ``n`` items with replacement; the
indices come from ``numpy.random.default_rng(seed).choice(n, size=(n_resamples, n))``, exactly as
sacreBLEU's paired bootstrap draws them, so with sacreBLEU's seed (12345) both resample the same
sentences. In a paired test the same resamples score both systems, and each resample's delta is
system B minus system A.

Scores are recomputed from per-item sufficient statistics, never by re-scoring text: a resample's
column sums are a resample-count matrix times the item-statistics matrix, and the metric is
computed from those sums (for translation by sacreBLEU's own ``_compute_score_from_stats``).
Translation statistics come from :func:`medtune.eval.metrics.sentence_statistics`, cached per
process, so a system already scored in this process is not re-scored for its bootstrap.

The p-value is two-sided, under the bootstrap's shifted null hypothesis (Efron & Tibshirani 1993,
§16.4; Koehn 2004): the resampled deltas are centred on the observed delta, and
``p = (1 + #{|delta* - delta| >= |delta|}) / (n_resamples + 1)``. It differs on purpose from
sacreBLEU's ``paired_bs`` p-value, which centres the *absolute* resampled deltas on their mean:
that rule gives identical systems p = 1/(n_resamples + 1) and is too small near a zero delta (for
an observed delta of 0.6 standard errors it gives 0.19, where the two-sided normal value is 0.55);
ours gives identical systems p = 1 and agrees with the percentile interval (p < 0.05 about when
the 95% interval excludes 0). The tests check that sacreBLEU's rule, applied to our resampled
deltas, reproduces sacreBLEU's own p-value exactly: the resamples and scores are the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from medtune.errors import MedtuneError

LEVEL = 0.95
# Rows of resample counts built at a time: bounds memory to about 8 bytes x this many cells.
_CELLS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class PairedDelta:
    """A paired difference between two systems on the same items, with its bootstrap statistics."""

    value: float  # system B minus system A (e.g. tuned minus base; OUT minus OTHER)
    ci_low: float  # 95% percentile interval of the delta over the bootstrap resamples
    ci_high: float
    p_value: float  # two-sided paired bootstrap p-value (see the module docstring)
    n: int  # items resampled
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """True when the 95% interval excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict:
        """``value, ci_low, ci_high, p_value, significant, n, n_resamples, seed`` as plain JSON values."""
        return {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "significant": self.significant,
            "n": self.n,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


def _check_resampling(n: int, n_resamples: int) -> None:
    if n < 1:
        raise MedtuneError("Cannot bootstrap over zero items; score at least one item.")
    if n_resamples < 1:
        raise MedtuneError(f"Bootstrap needs at least one resample (got n_resamples={n_resamples}).")


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The resamples' item indices, in chunks of rows (each row: ``n`` indices drawn with replacement).

    Concatenated, the chunks equal ``default_rng(seed).choice(n, size=(n_resamples, n))``: the
    generator's stream does not depend on how the rows are chunked.
    """
    _check_resampling(n, n_resamples)
    rng = np.random.default_rng(seed)
    rows = max(1, _CELLS_PER_CHUNK // n)
    for start in range(0, n_resamples, rows):
        yield rng.choice(n, size=(min(rows, n_resamples - start), n), replace=True)


def resampled_sums(stats: np.ndarray, n_resamples: int = 1000, seed: int = 42) -> np.ndarray:
    """Column sums of ``stats`` (items x statistics) over each resample: an ``(n_resamples, k)`` array.

    Each resample's sums are its count of every item times that item's statistics, so one matrix
    product replaces summing ``n`` rows per resample.
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim == 1:
        stats = stats[:, None]
    n = len(stats)
    chunks = []
    for indices in resample_indices(n, n_resamples, seed):
        rows = len(indices)
        flat = (np.arange(rows)[:, None] * n + indices).ravel()
        counts = np.bincount(flat, minlength=rows * n).reshape(rows, n)
        chunks.append(counts @ stats)
    return np.concatenate(chunks)


def _percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(
    correct: Sequence[bool], n_resamples: int = 1000, seed: int = 42, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile-bootstrap interval for the mean of per-item 0/1 outcomes (one system's accuracy).

    Args:
        correct: one outcome per scored item (``True`` = answered correctly).
        n_resamples: how many resamples of ``len(correct)`` items, drawn with replacement.
        seed: fixes the resamples, so the same outcomes always give the same interval.
        level: the interval's coverage, e.g. ``0.95`` for the 2.5th to 97.5th percentiles.
    Returns:
        ``(low, high)`` accuracies.
    Raises:
        MedtuneError: no outcomes, fewer than one resample, or a level outside (0, 1).
    """
    if not correct:
        raise MedtuneError("Cannot compute a confidence interval over zero items; evaluate at least one question.")
    if n_resamples < 1 or not 0 < level < 1:
        raise MedtuneError(f"Bootstrap needs n_resamples >= 1 and 0 < level < 1 (got {n_resamples} and {level}).")
    outcomes = np.asarray(correct, dtype=np.float64)
    means = resampled_sums(outcomes, n_resamples, seed)[:, 0] / len(outcomes)
    return _percentile_interval(means, level)


def paired_delta(observed: float, resampled: np.ndarray, n: int, n_resamples: int, seed: int) -> PairedDelta:
    """A :class:`PairedDelta` from the observed delta and the deltas of the same resamples.

    The interval is the 2.5th to 97.5th percentile of ``resampled``; the p-value is the two-sided
    shifted-null rule of the module docstring.
    """
    resampled = np.asarray(resampled, dtype=np.float64)
    low, high = _percentile_interval(resampled)
    # A tiny slack keeps floating-point noise from deciding ties (identical systems give p = 1).
    slack = 1e-9 * max(1.0, abs(observed))
    extreme = int(np.sum(np.abs(resampled - observed) >= abs(observed) - slack))
    return PairedDelta(
        value=float(observed),
        ci_low=low,
        ci_high=high,
        p_value=(extreme + 1) / (len(resampled) + 1),
        n=n,
        n_resamples=n_resamples,
        seed=seed,
    )


def _check_paired(name: str, *columns: Sequence) -> int:
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise MedtuneError(
            f"{name}: the paired inputs have different lengths ({', '.join(str(len(c)) for c in columns)}); "
            "both systems must be scored on exactly the same items."
        )
    return lengths.pop()


def paired_mean_delta(a: Sequence[float], b: Sequence[float], n_resamples: int = 1000, seed: int = 42) -> PairedDelta:
    """Paired bootstrap of ``mean(b) - mean(a)`` over items scored for both systems.

    Args:
        a, b: one outcome per item, in the same item order (MCQ correctness 0/1, term found 0/1
            per occurrence, or any per-item score whose mean is the metric).
    Returns:
        The delta (B minus A) with its 95% interval and p-value.
    Raises:
        MedtuneError: different lengths, no items, or fewer than one resample.
    """
    n = _check_paired("paired_mean_delta", a, b)
    _check_resampling(n, n_resamples)
    differences = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    resampled = resampled_sums(differences, n_resamples, seed)[:, 0] / n
    return paired_delta(float(differences.mean()), resampled, n, n_resamples, seed)


def paired_perplexity_delta(
    nll_a: Sequence[float], nll_b: Sequence[float], tokens: Sequence[int], n_resamples: int = 1000, seed: int = 42
) -> PairedDelta:
    """Paired bootstrap of perplexity B minus perplexity A over documents or conversations.

    Perplexity = exp(sum of NLL / sum of tokens) over the (resampled) items, so long documents
    weigh in by their token counts, as in the corpus figure.

    Args:
        nll_a, nll_b: each item's summed negative log-likelihood (nats) under system A and B.
        tokens: each item's number of predicted tokens (the same for both systems).
    Raises:
        MedtuneError: different lengths, no items, no tokens, or fewer than one resample.
    """
    n = _check_paired("paired_perplexity_delta", nll_a, nll_b, tokens)
    _check_resampling(n, n_resamples)
    stats = np.column_stack([nll_a, nll_b, tokens]).astype(np.float64)
    if stats[:, 2].sum() <= 0:
        raise MedtuneError("paired_perplexity_delta: the items have no predicted tokens.")
    sums = resampled_sums(stats, n_resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of only token-less items has no perplexity
        resampled = np.exp(sums[:, 1] / sums[:, 2]) - np.exp(sums[:, 0] / sums[:, 2])
    resampled = resampled[np.isfinite(resampled)]
    total = stats.sum(0)
    observed = float(np.exp(total[1] / total[2]) - np.exp(total[0] / total[2]))
    return paired_delta(observed, resampled, n, n_resamples, seed)


@dataclass(frozen=True)
class ResampledScore:
    """One system's corpus score and its score on every bootstrap resample."""

    observed: float
    resamples: np.ndarray


def resampled_translation_scores(
    hypotheses: Sequence[str], references: Sequence[str], n_resamples: int = 1000, seed: int = 42
) -> dict[str, ResampledScore]:
    """BLEU, chrF++ and TER of one system on the corpus and on each resample of its sentences.

    Per-sentence sufficient statistics come from sacreBLEU (n-gram matches and totals with
    lengths; character and word n-gram counts; edits and reference lengths), and each score is
    sacreBLEU's own computation from summed statistics, so ``observed`` equals ``corpus_score``.
    """
    from medtune.eval.metrics import sentence_statistics, translation_metrics

    n = _check_paired("resampled_translation_scores", hypotheses, references)
    _check_resampling(n, n_resamples)
    statistics = sentence_statistics(hypotheses, references)
    scores = {}
    for name, metric in translation_metrics().items():
        # sacreBLEU's own score-from-statistics methods, as its significance module uses them.
        observed = metric._aggregate_and_compute(statistics[name]).score
        sums = resampled_sums(np.array(statistics[name], dtype=np.float64), n_resamples, seed).tolist()
        resamples = np.array([metric._compute_score_from_stats(row).score for row in sums])
        scores[name] = ResampledScore(float(observed), resamples)
    return scores


def translation_score_intervals(
    hypotheses: Sequence[str], references: Sequence[str], n_resamples: int = 1000, seed: int = 42
) -> dict[str, tuple[float, float]]:
    """95% percentile-bootstrap intervals of one system's BLEU, chrF++ and TER over its sentences.

    The resamples are those of :func:`resampled_translation_scores` (the same as a paired test's).
    """
    scores = resampled_translation_scores(hypotheses, references, n_resamples, seed)
    return {name: _percentile_interval(score.resamples) for name, score in scores.items()}


def paired_translation_deltas(
    hyps_a: Sequence[str], hyps_b: Sequence[str], refs: Sequence[str], n_resamples: int = 1000, seed: int = 42
) -> dict[str, PairedDelta]:
    """Paired bootstrap of BLEU, chrF++ and TER, system B minus system A, on the same resamples.

    Args:
        hyps_a, hyps_b: the two systems' translations of the same sentences, in the same order.
        refs: one reference per sentence.
    Returns:
        ``{"bleu": ..., "chrf": ..., "ter": ...}`` (sacreBLEU defaults; chrF++ = chrF with word
        bigrams). For TER lower is better, so a negative delta is an improvement.
    Raises:
        MedtuneError: different lengths, no sentences, or fewer than one resample.
    """
    n = _check_paired("paired_translation_deltas", hyps_a, hyps_b, refs)
    a = resampled_translation_scores(hyps_a, refs, n_resamples, seed)
    b = resampled_translation_scores(hyps_b, refs, n_resamples, seed)
    return {
        name: paired_delta(
            b[name].observed - a[name].observed, b[name].resamples - a[name].resamples, n, n_resamples, seed
        )
        for name in a
    }
