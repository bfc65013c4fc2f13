"""Judge specs, weights and the ensemble's weighted combination."""

from __future__ import annotations

import pytest

from medtune.errors import MedtuneError
from medtune.judge.base import JudgeItem, Judgment
from medtune.judge.build import build_judge, parse_judge_spec, parse_weight_pairs
from medtune.judge.ensemble import EnsembleJudge
from medtune.judge.llm import LLMJudge
from medtune.judge.reference import ReferenceJudge


class Fixed:
    """A judge giving every item the same score (or failing every item)."""

    def __init__(self, name: str, score: float | None):
        self.name, self.value = name, score

    def fingerprint(self) -> str:
        return f"{self.name}:{self.value}"

    def score(self, items):
        if self.value is None:
            return [Judgment(i.id, None, failed="no parseable score after 3 replies") for i in items]
        return [Judgment(i.id, self.value, {"c": self.value}, f"{self.name} says {self.value}") for i in items]


ITEM = JudgeItem("x", "q", "a")


def test_ensemble_is_the_weighted_mean_with_prefixed_criteria():
    judge = EnsembleJudge({"reference": Fixed("reference", 0.2), "llm": Fixed("llm", 0.8)}, {"reference": 1, "llm": 3})
    [judgment] = judge.score([ITEM])
    assert judgment.score == pytest.approx(0.25 * 0.2 + 0.75 * 0.8)
    assert judgment.criteria == {"reference": 0.2, "reference.c": 0.2, "llm": 0.8, "llm.c": 0.8}
    assert "reference: reference says 0.2" in judgment.rationale


def test_a_member_failure_fails_the_ensemble_item():
    judge = EnsembleJudge({"reference": Fixed("reference", 0.5), "llm": Fixed("llm", None)}, {"reference": 1, "llm": 1})
    [judgment] = judge.score([ITEM])
    assert judgment.score is None and judgment.failed.startswith("llm: no parseable score")


def test_ensemble_fingerprint_follows_members_and_weights():
    a = EnsembleJudge({"reference": Fixed("r", 0.1), "llm": Fixed("l", 0.2)}, {"reference": 1, "llm": 1})
    b = EnsembleJudge({"reference": Fixed("r", 0.1), "llm": Fixed("l", 0.2)}, {"reference": 1, "llm": 2})
    c = EnsembleJudge({"reference": Fixed("r", 0.1), "llm": Fixed("l", 0.3)}, {"reference": 1, "llm": 1})
    assert len({a.fingerprint(), b.fingerprint(), c.fingerprint()}) == 3


def test_specs_and_weight_pairs():
    assert parse_judge_spec("reference") == ("reference", {})
    assert parse_judge_spec("ensemble:reference=0.5,llm=0.5") == ("ensemble", {"reference": 0.5, "llm": 0.5})
    assert parse_weight_pairs("similarity=0.6, coverage=0.4") == {"similarity": 0.6, "coverage": 0.4}
    with pytest.raises(MedtuneError, match="unknown judge 'gpt'"):
        parse_judge_spec("gpt")
    with pytest.raises(MedtuneError, match="'similarity' is not name=number"):
        parse_weight_pairs("similarity")
    with pytest.raises(MedtuneError, match="only an ensemble takes weights"):
        parse_judge_spec("reference:similarity=1")


def test_build_reference_with_weights():
    judge = build_judge("reference", weights={"similarity": 3, "coverage": 1})
    assert isinstance(judge, ReferenceJudge) and judge.weights == {"similarity": 0.75, "coverage": 0.25}


def test_build_ensemble_passes_member_weights(tmp_path):
    judge = build_judge(
        "ensemble:reference=1,llm=1",
        weights={"reference.similarity": 1, "reference.coverage": 0, "llm.completeness": 2},
        model=str(tmp_path),  # a local llm judge loads lazily: nothing is loaded here
    )
    assert isinstance(judge, EnsembleJudge)
    assert judge.members["reference"].weights == {"similarity": 1.0, "coverage": 0.0}
    assert isinstance(judge.members["llm"], LLMJudge) and judge.members["llm"].criteria == ("completeness",)
    with pytest.raises(MedtuneError, match="unknown ensemble member"):
        build_judge("ensemble:reference=1,bleu=1")
    with pytest.raises(MedtuneError, match="name no member"):
        build_judge("ensemble:reference=1", weights={"llm.completeness": 1})


def test_llm_judge_needs_a_model_and_warns_on_self_judging(tmp_path):
    with pytest.raises(MedtuneError, match="--judge-model"):
        build_judge("llm")
    messages = []
    build_judge("llm", model=str(tmp_path), policy_model=str(tmp_path), log=messages.append)
    assert messages and "also the policy" in messages[0]
    messages.clear()
    build_judge("llm", model=str(tmp_path), policy_model="another-model", log=messages.append)
    assert messages == []


def test_a_glossary_file_gives_the_reference_judge_its_terms(tmp_path):
    glossary = tmp_path / "glossary.tsv"
    glossary.write_text(
        "en\tes\nblood pressure\tpresión arterial\nheart attack|heart attacks\tinfarto\n", encoding="utf-8"
    )
    judge = build_judge("reference", glossary=str(glossary))
    assert judge.glossary_terms == ("blood pressure", "presión arterial", "heart attack", "heart attacks", "infarto")
    item = JudgeItem("g", "q", "Her blood pressure is high.", reference="High blood pressure.")
    [judgment] = judge.score([item])
    # key points: high, blood, pressure, "high blood", "blood pressure" (the glossary term is the same one, counted once)
    assert judgment.criteria["coverage"] == 0.8  # "high blood" is not in the answer
    with pytest.raises(MedtuneError, match="columns 'en' and 'es'"):
        bad = tmp_path / "bad.tsv"
        bad.write_text("source\ttarget\nx\ty\n", encoding="utf-8")
        build_judge("reference", glossary=str(bad))
