"""The translation model card keeps its own wording after the card was generalised to every task."""

from __future__ import annotations

from medtune import __version__
from medtune.recipes.schema import Recipe
from medtune.report.formatting import MetricRow
from medtune.report.model_card import model_card


def test_translation_card(tmp_path):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    recipe = Recipe(name="t", task="translation", model=str(tmp_path), data={"train": "a.tsv", "general": "g.tsv"})
    rows = [
        MetricRow("medical chrF++", "chrf", 40.0, 45.0, True, base_zero_shot=38.0, headline_base="few_shot"),
        MetricRow("medical TER", "ter", 70.0, None, False, base_zero_shot=72.0, headline_base="few_shot"),
    ]
    card = model_card(recipe, rows, {"train": 10, "dev": 2, "test": 3, "general": 4}, evaluation="How.")
    assert card.startswith("---\nlanguage:\n- en\n- es\n")  # hub metadata first (tests/models/test_publish.py)
    lines = card.split("---\n", 2)[2].splitlines()
    assert lines[0] == "# t: medical en->es translation"
    assert lines[2] == f"Fine-tuned with medtune {__version__} from **{tmp_path}** (lora)."
    assert "- Training pairs: `a.tsv` (10 pairs after validation)" in lines
    assert "- Dev / test pairs: 2 / 3" in lines
    assert "- General-domain check set: `g.tsv` (4 pairs)" in lines
    heading = lines.index("## Evaluation")
    assert lines[heading + 2 : heading + 9] == [
        "How.",
        "",
        "| set / metric | base few-shot | base zero-shot | fine-tuned | delta vs headline base [95% CI] | verdict |",
        "|---|---:|---:|---:|---:|---|",
        "| medical chrF++ | 40.00 * | 38.00 | 45.00 | +5.00 |  |",
        "| medical TER | 70.00 * | 72.00 | - |  |  |",
        "",
    ]
    assert lines[heading + 9].startswith("A value marked * is the headline base")
    assert lines[-1].startswith(
        "**Outputs must be reviewed by a qualified medical translator before any clinical use.** The model can drop"
    )
