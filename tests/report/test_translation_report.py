"""The translation report: one headline base per test set, paired deltas, the forgetting verdict by interval."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from medtune.eval.metrics import corpus_scores, sentence_chrf_scores
from medtune.eval.significance import PairedDelta, paired_translation_deltas
from medtune.recipes.schema import Recipe
from medtune.report.comparison import Evaluations
from medtune.report.formatting import FEW_SHOT, ZERO_SHOT, MetricRow
from medtune.report.translation import forgetting_verdict, write_translation_report
from medtune.runs import RunFolder

REFS = {
    "test": [
        "Tome la tableta con comida.",
        "Beba mucha agua.",
        "Mantenga la herida limpia y seca.",
        "Llame a su médico si tiene fiebre.",
        "Mida su presión arterial cada mañana.",
        "Le quitarán los puntos en diez días.",
    ],
    "general": ["El tren sale a las ocho.", "Me gusta leer libros.", "Hace frío hoy.", "La tienda está cerrada."],
}
OUTPUTS = {
    # medical: few-shot beats zero-shot on chrF++ -> headline few-shot for every medical metric
    ("eval_base", "test"): [
        "Tome la tableta con comida.",
        "Beba agua.",
        "Mantenga la herida limpia.",
        "Llame a su doctor si tiene fiebre.",
        "Mida la presión cada mañana.",
        "Quitarán los puntos en diez días.",
    ],
    ("eval_base_zero_shot", "test"): [
        "Take la tableta.",
        "Beba mucha.",
        "Herida limpia.",
        "Llame doctor.",
        "Presión mañana.",
        "Puntos diez días.",
    ],
    ("eval_tuned", "test"): [
        "Tome la tableta con comida.",
        "Beba mucha agua.",
        "Mantenga la herida limpia y seca.",
        "Llame a su médico si tiene fiebre.",
        "Mida su presión arterial cada mañana.",
        "Le quitarán los puntos en diez días.",
    ],
    # general: zero-shot beats few-shot -> headline zero-shot; the fine-tune is a little worse
    ("eval_base", "general"): ["Tren ocho.", "Gusta libros.", "Frío.", "Tienda."],
    ("eval_base_zero_shot", "general"): [
        "El tren sale a las ocho.",
        "Me gusta leer libros.",
        "Hace frío hoy.",
        "La tienda está cerrada.",
    ],
    ("eval_tuned", "general"): [
        "El tren sale a ocho.",
        "Me gusta leer libros.",
        "Hace frío hoy.",
        "La tienda cerrada.",
    ],
}


def _evaluate(run: RunFolder, stage: str, split: str) -> dict:
    hyps, refs = OUTPUTS[(stage, split)], REFS[split]
    rows = [
        {
            "id": f"{split}-{i}",
            "source": f"src {i}",
            "reference": r,
            "output": h,
            "chrf": c,
            "terms": [],
        }
        for i, (h, r, c) in enumerate(zip(hyps, refs, sentence_chrf_scores(hyps, refs), strict=True))
    ]
    out = run.sub("eval", stage, split)
    out.mkdir(parents=True, exist_ok=True)
    (out / "outputs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    few_shot = 3 if stage == "eval_base" else 0
    return {**corpus_scores(hyps, refs), "n": len(hyps), "few_shot": few_shot}


@pytest.fixture
def report(tmp_path: Path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}", encoding="utf-8")
    recipe = Recipe(
        name="t", task="translation", model=str(tmp_path / "base"), data={"train": "a.tsv", "general": "g.tsv"}
    )
    run = RunFolder(tmp_path / "run", "t")
    run.path.mkdir(parents=True)  # a bare folder: the report needs only the stage records and outputs
    stages = {
        s: {split: _evaluate(run, s, split) for split in REFS}
        for s in ("eval_base", "eval_base_zero_shot", "eval_tuned")
    }
    evaluations = Evaluations(stages["eval_base"], stages["eval_base_zero_shot"], stages["eval_tuned"])
    data = SimpleNamespace(train=[1] * 20, dev=[1] * 2, test=[1] * 6, general=[1] * 4)
    summary = write_translation_report(recipe, run, data, evaluations, tmp_path / "model")
    return summary, stages, run, tmp_path / "model"


def test_each_test_set_has_one_headline_base_chosen_by_chrf(report):
    summary, stages, _, _ = report
    by_set: dict[str, list[dict]] = {}
    for m in summary["metrics"]:
        by_set.setdefault(m["test_set"], []).append(m)
    assert set(by_set) == {"medical", "general"}
    medical_chrf, general_chrf = by_set["medical"][0], by_set["general"][0]
    assert (
        medical_chrf["base"] > medical_chrf["base_zero_shot"] and general_chrf["base_zero_shot"] > general_chrf["base"]
    )
    assert {m["headline_base"] for m in by_set["medical"]} == {"few_shot"}
    assert {m["headline_base"] for m in by_set["general"]} == {"zero_shot"}  # the same base for every metric of a set
    for m in summary["metrics"]:
        headline = m["base"] if m["headline_base"] == "few_shot" else m["base_zero_shot"]
        assert m["delta"] == pytest.approx(m["tuned"] - headline, abs=1e-4)
        assert m["delta_ci_low"] <= m["delta"] <= m["delta_ci_high"]
        assert m["significant"] is (m["delta_ci_low"] > 0 or m["delta_ci_high"] < 0)
        assert m["verdict"] == ("significant at 95%" if m["significant"] else "not significant")
    # the intervals come from the paired bootstrap of the headline base's own sentences against the fine-tune's
    oracle = paired_translation_deltas(OUTPUTS[("eval_base", "test")], OUTPUTS[("eval_tuned", "test")], REFS["test"])
    assert medical_chrf["delta_ci_low"] == round(oracle["chrf"].ci_low, 4)
    assert medical_chrf["p_value"] == round(oracle["chrf"].p_value, 4)
    oracle = paired_translation_deltas(
        OUTPUTS[("eval_base_zero_shot", "general")], OUTPUTS[("eval_tuned", "general")], REFS["general"]
    )
    ter = next(m for m in by_set["general"] if m["metric"] == "ter")
    assert (ter["delta_ci_low"], ter["delta_ci_high"]) == (
        round(oracle["ter"].ci_low, 4),
        round(oracle["ter"].ci_high, 4),
    )


def test_report_pages_show_the_forgetting_verdict_and_signatures(report):
    summary, stages, run, model_dir = report
    verdict = summary["forgetting"]
    general = next(m for m in summary["metrics"] if m["test_set"] == "general" and m["metric"] == "chrf")
    assert verdict["checked"] is True and verdict["delta"] == general["delta"]
    assert verdict["forgetting"] is (general["delta"] <= -2.0 and general["delta_ci_high"] < 0)
    assert summary["signatures"] == stages["eval_base_zero_shot"]["test"]["signatures"]
    md = (run.path / "report.md").read_text(encoding="utf-8")
    assert "## Forgetting check" in md and f"**{verdict['message']}**" in md
    assert "sacreBLEU signatures: " in md and "nrefs:1" in md
    assert "| medical chrF++ |" in md and "| general TER |" in md
    html = (run.path / "report.html").read_text(encoding="utf-8")
    assert html.count("<img") == 3  # chrF++, BLEU, TER (no glossary: no term accuracy); no training record
    for title in ("chrF++: higher is better", "BLEU: higher is better", "TER: lower is better"):
        assert f'<img alt="bar chart: {title}, base vs fine-tuned, deltas with 95% intervals"' in html
    assert "<th>base few-shot</th><th>base zero-shot</th><th>fine-tuned</th>" in html
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert "| set / metric | base few-shot | base zero-shot | fine-tuned |" in card


def _general_chrf(delta: float, low: float | None, high: float | None) -> MetricRow:
    paired = None if low is None else PairedDelta(delta, low, high, 0.01, 40, 1000, 42)
    return MetricRow(
        "general chrF++", "chrf", 50.0, 50.0 + delta, True, base_zero_shot=45.0, headline_base=FEW_SHOT, paired=paired
    )


def test_forgetting_needs_a_big_drop_whose_interval_is_below_zero():
    verdict = forgetting_verdict(_general_chrf(-3.0, -4.5, -1.5), threshold=2.0)
    assert verdict["forgetting"] is True and (verdict["delta"], verdict["ci_high"]) == (-3.0, -1.5)
    assert verdict["message"] == (
        "FORGETTING: general-domain chrF++ changed by -3.00 points (95% interval [-4.50, -1.50]): a drop of at "
        "least the 2.0-point threshold, and the whole interval is below 0."
    )
    assert forgetting_verdict(_general_chrf(-2.0, -3.0, -1.0), threshold=2.0)["forgetting"] is True  # at most -2


def test_a_big_drop_whose_interval_crosses_zero_is_not_forgetting():
    verdict = forgetting_verdict(_general_chrf(-3.0, -6.0, 0.5), threshold=2.0)
    assert verdict["forgetting"] is False
    assert verdict["message"].startswith("No forgetting shown: general-domain chrF++ changed by -3.00 points")
    assert "the interval reaches 0, so the drop is not significant" in verdict["message"]
    unpaired = forgetting_verdict(_general_chrf(-3.0, None, None), threshold=2.0)
    assert unpaired["forgetting"] is False and "no interval" in unpaired["message"]


@pytest.mark.parametrize(("delta", "low", "high"), [(-1.5, -2.5, -0.5), (3.25, 1.0, 5.5), (-1.0, -3.0, 1.0)])
def test_a_small_or_positive_change_is_no_forgetting(delta, low, high):
    verdict = forgetting_verdict(_general_chrf(delta, low, high), threshold=2.0)
    assert verdict["forgetting"] is False and verdict["threshold"] == 2.0
    assert verdict["message"].startswith(f"No forgetting: general-domain chrF++ changed by {delta:+.2f} points")


def test_forgetting_not_checked_without_general_set():
    verdict = forgetting_verdict(None, threshold=2.0)
    assert verdict == {
        "checked": False,
        "forgetting": False,
        "message": "No general-domain set: forgetting was not checked.",
    }
    # the headline base of the general set is the delta's reference, whichever it is
    row = MetricRow("general chrF++", "chrf", 40.0, 41.0, True, base_zero_shot=44.0, headline_base=ZERO_SHOT)
    assert forgetting_verdict(row, 2.0)["delta"] == -3.0
