"""Matched comparisons: the headline base, verdicts, joined outputs and the paired deltas of each task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sacrebleu.metrics import CHRF

from medtune.errors import MedtuneError
from medtune.eval.significance import (
    PairedDelta,
    paired_mean_delta,
    paired_perplexity_delta,
    paired_translation_deltas,
)
from medtune.report.comparison import (
    Evaluations,
    headline_base,
    joined_outputs,
    mcq_delta,
    perplexity_delta,
    translation_deltas,
)
from medtune.report.formatting import FEW_SHOT, ZERO_SHOT, MetricRow, format_row_delta, format_verdict
from medtune.runs import RunFolder


def delta(value: float, low: float, high: float, p: float = 0.01) -> PairedDelta:
    return PairedDelta(value, low, high, p, n=50, n_resamples=1000, seed=42)


@pytest.mark.parametrize(
    ("few", "zero", "higher_is_better", "expected"),
    [
        (45.0, 40.0, True, FEW_SHOT),
        (38.0, 40.0, True, ZERO_SHOT),
        (40.0, 40.0, True, ZERO_SHOT),  # a tie: the base prompted as the fine-tune is
        (20.0, 25.0, False, FEW_SHOT),  # lower is better (TER, perplexity)
        (None, 25.0, False, ZERO_SHOT),  # no few-shot base (perplexity tasks)
        (30.0, None, True, FEW_SHOT),
    ],
)
def test_headline_base_is_the_better_base(few, zero, higher_is_better, expected):
    assert headline_base(few, zero, higher_is_better) == expected


def test_delta_is_against_the_headline_base_with_its_interval_and_verdict():
    gain = MetricRow(
        "medical chrF++",
        "chrf",
        44.0,
        50.5,
        True,
        base_zero_shot=41.0,
        headline_base=FEW_SHOT,
        paired=delta(6.5, 4.0, 9.0, 0.001),
    )
    assert gain.headline_value == 44.0 and gain.delta == pytest.approx(6.5)
    assert gain.significant is True and gain.verdict == "significant at 95%" and gain.delta_class == "good"
    assert format_row_delta(gain) == "+6.50 [4.00, 9.00]"
    assert format_verdict(gain) == "significant at 95% (p = 0.001)"

    unsure = MetricRow(
        "medical BLEU",
        "bleu",
        20.0,
        21.0,
        True,
        base_zero_shot=18.0,
        headline_base=FEW_SHOT,
        paired=delta(1.0, -0.5, 2.5, 0.2),
    )
    assert unsure.delta == pytest.approx(1.0)  # 21 - 20 (few-shot), never 21 - 18 (zero-shot)
    assert unsure.significant is False and unsure.verdict == "not significant" and unsure.delta_class == ""

    ter = MetricRow("medical TER", "ter", 60.0, 52.0, False, base_zero_shot=58.0, paired=delta(-6.0, -9.0, -3.0))
    assert ter.headline_base == ZERO_SHOT and ter.delta == pytest.approx(-6.0)
    assert ter.delta_class == "good"  # a significant fall of a lower-is-better metric

    no_test = MetricRow("x", "x", None, 3.0, True, base_zero_shot=2.0)
    assert no_test.verdict == "" and no_test.significant is None and format_verdict(no_test) == ""


def test_summary_entry_has_the_interface_fields():
    row = MetricRow(
        "MCQ accuracy (%)",
        "accuracy",
        40.0,
        55.0,
        True,
        (30.0, 50.0),
        (45.0, 65.0),
        42.0,
        (32.0, 52.0),
        headline_base=ZERO_SHOT,
        paired=delta(13.0, 5.0, 21.0, 0.004),
    )
    entry = row.to_summary()
    assert entry["base"] == 40.0 and entry["base_zero_shot"] == 42.0 and entry["tuned"] == 55.0
    assert entry["headline_base"] == "zero_shot" and entry["delta"] == 13.0  # 55 - 42
    assert (entry["delta_ci_low"], entry["delta_ci_high"], entry["p_value"]) == (5.0, 21.0, 0.004)
    assert entry["significant"] is True and entry["verdict"] == "significant at 95%"
    assert entry["base_zero_shot_ci"] == [32.0, 52.0] and entry["higher_is_better"] is True


def _write(run: RunFolder, stage: str, *parts_and_rows) -> None:
    *parts, rows = parts_and_rows
    path = run.sub("eval", stage, *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    folder = RunFolder(tmp_path / "run", "demo")
    folder.path.mkdir(parents=True)  # a bare folder: only the outputs are read
    return folder


def test_joined_outputs_match_rows_by_id_and_refuse_different_items(run):
    _write(run, "eval_base_zero_shot", "test", "outputs.jsonl", [{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    _write(run, "eval_tuned", "test", "outputs.jsonl", [{"id": "b", "v": 20}, {"id": "a", "v": 10}])
    pairs = joined_outputs(run, "eval_base_zero_shot", "test", "outputs.jsonl")
    assert [(b["v"], t["v"]) for b, t in pairs] == [(1, 10), (2, 20)]
    assert joined_outputs(run, "eval_base", "test", "outputs.jsonl") == []  # not written: nothing to pair
    _write(run, "eval_tuned", "test", "outputs.jsonl", [{"id": "a", "v": 10}, {"id": "c", "v": 30}])
    with pytest.raises(MedtuneError, match="do not hold the same items"):
        joined_outputs(run, "eval_base_zero_shot", "test", "outputs.jsonl")


SENTENCES = [
    (
        "Take the tablet with food.",
        "Tome la tableta con comida.",
        "Tome la pastilla con la comida.",
        "Tome la tableta con comida.",
    ),
    ("Drink plenty of water.", "Beba mucha agua.", "Tome agua.", "Beba mucha agua."),
    ("Keep the wound clean.", "Mantenga la herida limpia.", "Guarde la herida.", "Mantenga limpia la herida."),
    ("Call your doctor.", "Llame a su médico.", "Llame a su doctor.", "Llame a su médico."),
]


def test_translation_deltas_are_the_library_paired_test_on_the_joined_outputs(run):
    base = [
        {"id": i, "source": s, "reference": r, "output": b, "terms": [{"src": "x", "tgt": "y", "found": k % 2 == 0}]}
        for k, (i, (s, r, b, _)) in enumerate(zip("abcd", SENTENCES, strict=True))
    ]
    tuned = [
        {**row, "output": SENTENCES[k][3], "terms": [{"src": "x", "tgt": "y", "found": True}]}
        for k, row in enumerate(base)
    ]
    _write(run, "eval_base", "test", "outputs.jsonl", base)
    _write(run, "eval_tuned", "test", "outputs.jsonl", tuned[::-1])  # joined by id, not by position
    deltas = translation_deltas(joined_outputs(run, "eval_base", "test", "outputs.jsonl"))
    refs = [r for _, r, _, _ in SENTENCES]
    oracle = paired_translation_deltas([b for _, _, b, _ in SENTENCES], [t for _, _, _, t in SENTENCES], refs)
    assert deltas["chrf"] == oracle["chrf"] and deltas["bleu"] == oracle["bleu"] and deltas["ter"] == oracle["ter"]
    chrf = CHRF(word_order=2)
    corpus_gain = (
        chrf.corpus_score([t for *_, t in SENTENCES], [refs]).score
        - chrf.corpus_score([b for _, _, b, _ in SENTENCES], [refs]).score
    )
    assert deltas["chrf"].value == pytest.approx(corpus_gain)
    # terminology: over term occurrences, in percentage points (2 of 4 found -> 4 of 4: +50 points)
    terms = paired_mean_delta([1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0])
    assert deltas["term_accuracy"].value == pytest.approx(50.0)
    assert deltas["term_accuracy"].ci_low == pytest.approx(100 * terms.ci_low)
    assert deltas["term_accuracy"].p_value == terms.p_value


def test_mcq_and_perplexity_deltas(run):
    correct_base, correct_tuned = [1, 0, 0, 1, 0, 1], [1, 1, 0, 1, 1, 1]
    _write(
        run,
        "eval_base",
        "mcq_loglik",
        "outputs.jsonl",
        [{"id": i, "correct": bool(c)} for i, c in enumerate(correct_base)],
    )
    _write(
        run,
        "eval_tuned",
        "mcq_loglik",
        "outputs.jsonl",
        [{"id": i, "correct": bool(c)} for i, c in enumerate(correct_tuned)],
    )
    got = mcq_delta(joined_outputs(run, "eval_base", "mcq_loglik", "outputs.jsonl"))
    oracle = paired_mean_delta([float(c) for c in correct_base], [float(c) for c in correct_tuned])
    assert got.value == pytest.approx(100 * 2 / 6) and got.ci_high == pytest.approx(100 * oracle.ci_high)

    nll_base, nll_tuned, tokens = [30.0, 12.0, 50.0], [25.0, 11.0, 40.0], [10, 4, 20]
    _write(
        run,
        "eval_base",
        "test",
        "outputs.jsonl",
        [{"id": i, "nll": n, "tokens": t} for i, (n, t) in enumerate(zip(nll_base, tokens, strict=True))],
    )
    _write(
        run,
        "eval_tuned",
        "test",
        "outputs.jsonl",
        [{"id": i, "nll": n, "tokens": t} for i, (n, t) in enumerate(zip(nll_tuned, tokens, strict=True))],
    )
    got = perplexity_delta(joined_outputs(run, "eval_base", "test", "outputs.jsonl"))
    assert got == paired_perplexity_delta(nll_base, nll_tuned, tokens)
    # a different tokenizer after training scores other tokens: no paired test
    _write(
        run,
        "eval_tuned",
        "test",
        "outputs.jsonl",
        [{"id": i, "nll": n, "tokens": t + 1} for i, (n, t) in enumerate(zip(nll_tuned, tokens, strict=True))],
    )
    assert perplexity_delta(joined_outputs(run, "eval_base", "test", "outputs.jsonl")) is None


def test_evaluations_name_their_stages_notes_and_devices():
    device = {"device": "cuda:0", "device_name": "NVIDIA H200", "dtype": "bfloat16"}
    matched = Evaluations({"test": {"chrf": 1.0, **device}}, {"test": {"chrf": 2.0, **device}}, {"test": device})
    assert [matched.stage(w) for w in (FEW_SHOT, ZERO_SHOT, "tuned")] == [
        "eval_base",
        "eval_base_zero_shot",
        "eval_tuned",
    ]
    assert matched.notes() == [] and matched.devices()["tuned"] == device
    same = Evaluations({"test": {}}, {"test": {}}, {"test": {}}, "eval_base", "eval.few_shot is 0")
    assert same.stage(ZERO_SHOT) == "eval_base" and same.notes() == [
        "Base few-shot and zero-shot are one evaluation: eval.few_shot is 0."
    ]
    assert same.devices() == {}
    perplexity_only = Evaluations(None, {"test": {}}, {"test": {}}, "eval_base")
    assert "zero-shot only" in perplexity_only.notes()[0]
