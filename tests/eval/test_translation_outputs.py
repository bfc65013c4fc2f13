"""``medtune eval --task translation --outputs OUT [--compare-to OTHER]``: existing translations scored
with no model, exactly as a model's are; joined by id or by line; paired deltas; and the user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu
from cli_checks import assert_user_error, run_cli
from typer.testing import CliRunner

import medtune.models.loading
from medtune.cli import app
from medtune.data.ids import text_id
from medtune.eval.significance import paired_mean_delta, paired_translation_deltas
from medtune.eval.translation import evaluate_translation_file

PAIRS = [
    ("Keep the wound clean and dry.", "Mantenga la herida limpia y seca."),
    ("Your stitches will be removed in ten days.", "Le quitarán los puntos de sutura en diez días."),
    ("Take the tablet with food.", "Tome la tableta con comida."),
    ("Call your doctor if you have a fever.", "Llame a su médico si tiene fiebre."),
    ("Check your blood pressure every morning.", "Mida su presión arterial cada mañana."),
    ("Drink plenty of water and clean the wound.", "Beba mucha agua y limpie la herida."),
]
GOOD = [
    "Mantenga la herida limpia y seca.",
    "Le quitarán los puntos en diez días.",
    "Tome la tableta con comida.",
    "Llame a su doctor si tiene fiebre.",
    "Mida su presión arterial cada mañana.",
    "Beba mucha agua y limpie la herida.",
]
POOR = [
    "Mantenga la lesión limpia.",
    "Le quitarán las suturas en diez días.",
    "Tome la pastilla con alimentos.",
    "Llame a su doctor si tiene calentura.",
    "Mida su tensión cada mañana.",
    "Beba agua y limpie la lesión.",
]
GLOSSARY_ROWS = [("wound", "herida"), ("fever", "fiebre"), ("blood pressure", "presión arterial"), ("water", "agua")]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def data_file(tmp_path: Path, with_ids: bool = True) -> Path:
    rows = [{"en": s, "es": t, **({"id": f"d{i}"} if with_ids else {})} for i, (s, t) in enumerate(PAIRS, 1)]
    return write_jsonl(tmp_path / "data.jsonl", rows)


def outputs_file(path: Path, hyps: list[str], ids: list[str] | None = None) -> Path:
    rows = [{"output": h} if ids is None else {"id": i, "output": h} for i, h in zip(ids or hyps, hyps, strict=True)]
    return write_jsonl(path, rows)


def glossary_file(tmp_path: Path) -> Path:
    path = tmp_path / "glossary.tsv"
    path.write_text("en\tes\n" + "".join(f"{s}\t{t}\n" for s, t in GLOSSARY_ROWS), encoding="utf-8")
    return path


def invoke(*args) -> object:
    return run_cli(["eval", "--task", "translation", *args])


@pytest.fixture
def no_model(monkeypatch):
    """Scoring existing outputs must never load a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(medtune.models.loading, "load_model", refuse)


def test_a_models_outputs_score_the_same_without_the_model(tiny_gemma_dir, tmp_path, monkeypatch):
    data, glossary = data_file(tmp_path, with_ids=False), glossary_file(tmp_path)
    model_metrics = evaluate_translation_file(
        str(tiny_gemma_dir), str(data), tmp_path / "model", glossary=str(glossary), max_new_tokens=8, log=lambda m: None
    )
    monkeypatch.setattr(medtune.models.loading, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    result = invoke("--data", data, "--outputs", tmp_path / "model" / "outputs.jsonl", "--out", tmp_path / "scored",
                    "--glossary", glossary)  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads((tmp_path / "scored" / "metrics.json").read_text(encoding="utf-8"))
    for key in ("bleu", "chrf", "ter", "n", "signatures", "term_accuracy", "term_occurrences"):
        assert scored[key] == model_metrics[key], key
    # Same rows, joined by the hash ids the model evaluation wrote (the data has no id column).
    assert read_jsonl(tmp_path / "scored" / "outputs.jsonl") == read_jsonl(tmp_path / "model" / "outputs.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "scored" / "outputs.jsonl")] == [text_id(s) for s, _ in PAIRS]


def test_scores_equal_sacrebleu_and_rows_join_by_data_id_in_any_order(tmp_path, no_model):
    data = data_file(tmp_path)
    order = [3, 0, 5, 1, 4, 2]
    outputs = outputs_file(tmp_path / "out.jsonl", [GOOD[i] for i in order], [f"d{i + 1}" for i in order])
    result = invoke("--data", data, "--outputs", outputs, "--out", tmp_path / "scored")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "scored" / "metrics.json").read_text(encoding="utf-8"))
    refs = [[t for _, t in PAIRS]]
    assert metrics["bleu"] == round(sacrebleu.corpus_bleu(GOOD, refs).score, 4)
    assert metrics["chrf"] == round(sacrebleu.corpus_chrf(GOOD, refs, word_order=2).score, 4)
    assert metrics["ter"] == round(sacrebleu.corpus_ter(GOOD, refs).score, 4)
    assert metrics["n"] == 6 and metrics["outputs"] == str(outputs)
    rows = read_jsonl(tmp_path / "scored" / "outputs.jsonl")
    assert [(r["id"], r["output"]) for r in rows] == [(f"d{i}", h) for i, h in enumerate(GOOD, 1)]  # data order
    assert "bleu" in result.output and "chrf" in result.output


def test_join_by_line_keeps_rows_aligned_when_validation_drops_one(tmp_path, no_model):
    rows = [{"en": s, "es": t} for s, t in PAIRS]
    rows.insert(2, {"en": "An untranslated row.", "es": ""})  # dropped by validation: empty target
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    hyps = [*GOOD[:2], "translation of the dropped row", *GOOD[2:]]
    result = invoke("--data", data, "--outputs", outputs_file(tmp_path / "out.jsonl", hyps), "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    scored = read_jsonl(tmp_path / "s" / "outputs.jsonl")
    assert [(r["source"], r["output"]) for r in scored] == [(s, h) for (s, _), h in zip(PAIRS, GOOD, strict=True)]


def test_outputs_of_rows_that_validation_dropped_are_ignored_when_joined_by_id(tmp_path, no_model):
    rows = [{"id": f"d{i}", "en": s, "es": t} for i, (s, t) in enumerate(PAIRS, 1)]
    rows.append({"id": "d7", "en": "Dropped.", "es": ""})
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    outputs = outputs_file(tmp_path / "out.jsonl", [*GOOD, "x"], [f"d{i}" for i in range(1, 8)])
    result = invoke("--data", data, "--outputs", outputs, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "1 output(s) translate rows" in " ".join(result.output.split())
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["n"] == 6


def test_compare_to_adds_paired_deltas_out_minus_other(tmp_path, no_model):
    data, glossary = data_file(tmp_path), glossary_file(tmp_path)
    ids = [f"d{i}" for i in range(1, 7)]
    good, poor = outputs_file(tmp_path / "good.jsonl", GOOD, ids), outputs_file(tmp_path / "poor.jsonl", POOR)
    result = invoke("--data", data, "--outputs", good, "--compare-to", poor, "--out", tmp_path / "cmp",
                    "--glossary", glossary, "--seed", 7)  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "cmp" / "metrics.json").read_text(encoding="utf-8"))
    refs = [t for _, t in PAIRS]
    expected = paired_translation_deltas(POOR, GOOD, refs, n_resamples=1000, seed=7)
    assert set(metrics["delta"]) == {"bleu", "chrf", "ter", "term_accuracy"}
    for name in ("bleu", "chrf", "ter"):
        assert metrics["delta"][name] == expected[name].to_dict()
        assert {"value", "ci_low", "ci_high", "p_value", "significant"} <= metrics["delta"][name].keys()
    chrf = sacrebleu.CHRF(word_order=2)
    assert (
        metrics["delta"]["chrf"]["value"]
        == chrf.corpus_score(GOOD, [refs]).score - chrf.corpus_score(POOR, [refs]).score
    )
    assert metrics["delta"]["chrf"]["value"] > 0 and metrics["delta"]["ter"]["value"] < 0
    # Term occurrences in sentence order: wound; fever; blood pressure; wound, water. GOOD renders
    # all 5, POOR only "agua".
    found_good, found_poor = [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]
    assert metrics["term_occurrences"] == 5 and metrics["term_accuracy"] == 1.0
    assert metrics["compare_to"]["term_accuracy"] == 0.2
    assert metrics["delta"]["term_accuracy"] == paired_mean_delta(found_poor, found_good, 1000, 7).to_dict()
    assert metrics["delta"]["term_accuracy"]["value"] == pytest.approx(4 / 5)
    assert metrics["compare_to"]["chrf"] == round(chrf.corpus_score(POOR, [refs]).score, 4)
    text = " ".join(result.output.split())
    assert "chrf delta vs" in text and "significant" in text


def test_compare_to_without_a_glossary_has_no_term_delta(tmp_path, no_model):
    data = data_file(tmp_path, with_ids=False)
    good, poor = outputs_file(tmp_path / "good.jsonl", GOOD), outputs_file(tmp_path / "poor.jsonl", POOR)
    result = invoke("--data", data, "--outputs", good, "--compare-to", poor, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "cmp" / "metrics.json").read_text())["delta"]) == {"bleu", "chrf", "ter"}


@pytest.mark.parametrize(
    ("outputs_rows", "fragments"),
    [
        ([{"id": f"d{i}", "output": h} for i, h in enumerate(GOOD, 1) if i != 4], ["no output for 1 of the 6", "'d4'"]),
        (
            [*({"id": f"d{i}", "output": h} for i, h in enumerate(GOOD, 1)), {"id": "d9", "output": "x"}],
            ["out.jsonl:7", "id 'd9' is not a row of"],
        ),
        (
            [*({"id": f"d{i}", "output": h} for i, h in enumerate(GOOD, 1)), {"id": "d2", "output": "x"}],
            ["out.jsonl:7", "id 'd2' appears twice", "out.jsonl:2"],
        ),
        ([{"output": h} for h in GOOD[:5]], ["has 5 rows but", "has 6"]),
        ([{"translation": h} for h in GOOD], ["out.jsonl:1", "no 'output' column", "'translation'"]),
        ([{"id": "d1", "output": GOOD[0]}, *({"output": h} for h in GOOD[1:])], ["out.jsonl:2", "has no 'id'"]),
        ([{"output": h} for h in GOOD[:5]] + [{"output": None}], ["out.jsonl:6", "'output' must be text"]),
    ],
    ids=["missing-id", "extra-id", "duplicate-id", "line-count", "no-output-column", "mixed-ids", "null-output"],
)
def test_bad_outputs_files_are_user_errors(tmp_path, no_model, outputs_rows, fragments):
    data = data_file(tmp_path)
    outputs = write_jsonl(tmp_path / "out.jsonl", outputs_rows)
    result = invoke("--data", data, "--outputs", outputs, "--out", tmp_path / "s")
    assert_user_error(result, *fragments)
    assert not (tmp_path / "s").exists()


def test_a_bad_compare_to_file_is_named(tmp_path, no_model):
    data = data_file(tmp_path)
    good = outputs_file(tmp_path / "good.jsonl", GOOD)
    short = outputs_file(tmp_path / "short.jsonl", POOR[:4])
    result = invoke("--data", data, "--outputs", good, "--compare-to", short, "--out", tmp_path / "s")
    assert_user_error(result, "short.jsonl has 4 rows but", "has 6")


def test_option_combinations_are_user_errors(tmp_path, tiny_gemma_dir, no_model):
    data = data_file(tmp_path)
    good = outputs_file(tmp_path / "good.jsonl", GOOD)
    out = tmp_path / "s"
    assert_user_error(invoke("--data", data, "--out", out), "exactly one of --model", "neither")
    assert_user_error(
        invoke("--data", data, "--out", out, "--model", tiny_gemma_dir, "--outputs", good), "exactly one", "both"
    )
    result = CliRunner().invoke(app, ["eval", "--task", "mcq", "--data", str(data), "--outputs", str(good),
                                      "--out", str(out)])  # fmt: skip
    assert_user_error(result, "--outputs", "--task translation")
    assert_user_error(
        invoke("--data", data, "--out", out, "--model", tiny_gemma_dir, "--compare-to", good), "--compare-to needs"
    )
    assert_user_error(invoke("--data", data, "--out", out, "--outputs", good, "--few-shot", 2), "--few-shot")
