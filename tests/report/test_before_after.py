"""The before/after report of chat, qa and pretrain runs: HTML, Markdown, summary.json and model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.eval.significance import PairedDelta
from medtune.recipes.schema import Recipe
from medtune.report.before_after import Check, MetricRow, write_before_after_report
from medtune.report.comparison import Evaluations
from medtune.report.formatting import FEW_SHOT
from medtune.runs import RunFolder

TRAIN_RECORD = {
    "steps": 3,
    "train_loss": 1.5,
    "dev_loss": 1.9,
    "loss_history": [[1, 2.5], [2, 2.0], [3, 1.5]],
    "dev_history": [[2, 2.2], [3, 1.9]],
    "target_tokens": 1200,
    "train_seconds": 4.0,
    "target_tokens_per_s": 300.0,
    "padding_waste": 0.125,
    "trainable_params": 1000,
    "total_params": 50000,
}


def _delta(value: float, low: float, high: float, p: float) -> PairedDelta:
    return PairedDelta(value, low, high, p, n=36, n_resamples=1000, seed=42)


ROWS = [
    # perplexity: no few-shot base; a significant fall (lower is better: good)
    MetricRow(
        "test perplexity (assistant tokens)",
        "perplexity",
        None,
        15.5,
        False,
        base_zero_shot=20.0,
        paired=_delta(-4.5, -6.0, -3.0, 0.001),
    ),
    # a rise whose interval crosses 0: not significant, no colour
    MetricRow(
        "mean token NLL (nats)", "mean_nll", None, 3.25, False, base_zero_shot=3.0, paired=_delta(0.25, -0.1, 0.6, 0.3)
    ),
    # MCQ: the few-shot base is the headline (40 > 38), so the delta is 55 - 40, not 55 - 38
    MetricRow(
        "MCQ accuracy, log-likelihood (%)",
        "accuracy_loglik",
        40.0,
        55.0,
        True,
        (30.0, 50.0),
        (45.0, 65.0),
        38.0,
        (28.0, 48.0),
        headline_base=FEW_SHOT,
        paired=_delta(15.0, 5.0, 25.0, 0.004),
        test_set="mcq",
    ),
    MetricRow(
        "MCQ accuracy, generated answer (%)",
        "accuracy_generate",
        None,
        30.0,
        True,
        headline_base=FEW_SHOT,
        test_set="mcq",
    ),
]
EVALUATIONS = Evaluations(
    {"mcq_loglik": {"accuracy": 0.4}},
    {"mcq_loglik": {"accuracy": 0.38, "device": "cpu", "device_name": "Intel Xeon", "dtype": "bfloat16"}},
    {"mcq_loglik": {"accuracy": 0.55, "device": "cpu", "device_name": "Intel Xeon", "dtype": "bfloat16"}},
)
CHECK = Check("Forgetting check", "No forgetting: general-domain text got easier.", True)
SAMPLES = [{"prompt": "Is <b>this</b> rash bad?", "reference": "a | b\nc", "base": "No idea.", "tuned": "See a GP."}]
COLUMNS = [("prompt", "patient"), ("reference", "reference reply"), ("base", "base"), ("tuned", "fine-tuned")]
BREAKDOWN = {
    "base": {"anatomy": {"accuracy": 0.5, "n": 4}, "pharmacology": {"accuracy": 0.75, "n": 4}},
    "tuned": {"anatomy": {"accuracy": 0.25, "n": 4}, "pharmacology": {"accuracy": 1.0, "n": 4}},
}
INTRO = "Base scored 3-shot, fine-tune zero-shot, on 36 held-out conversations."
COUNTS = {"train": 120, "dev": 8, "test": 36}
CHAT_CAUTION = "Answers are not medical advice; a clinician must review outputs before any patient use."
PRETRAIN_CAUTION = "A domain-adapted base model, not an assistant: fine-tune it before use."


def _recipe(tmp_path: Path, task: str) -> Recipe:
    base = tmp_path / "base-model"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text("{}", encoding="utf-8")  # enough for resolve_model to accept the folder
    return Recipe(name=f"demo-{task}", task=task, model=str(base), data={"train": "demo:dialogues.jsonl"})


def _run(tmp_path: Path, record: dict | None = TRAIN_RECORD) -> RunFolder:
    run = RunFolder(tmp_path / "run", "demo")
    run.path.mkdir(parents=True)  # a bare folder: these tests need only the stage records
    if record is not None:
        run.mark_done("train", record)
    return run


@pytest.fixture
def chat_report(tmp_path):
    recipe, run, model_dir = _recipe(tmp_path, "chat"), _run(tmp_path), tmp_path / "run" / "model"
    summary = write_before_after_report(
        recipe,
        run,
        model_dir,
        ROWS,
        intro=INTRO,
        counts=COUNTS,
        samples=SAMPLES,
        sample_columns=COLUMNS,
        breakdown=BREAKDOWN,
        checks=[CHECK],
        notes=["2 prompts truncated"],
        evaluations=EVALUATIONS,
        extra={"signatures": {"chrf": "sig"}},
    )
    return summary, run, model_dir, recipe


def test_html_shows_three_columns_deltas_intervals_and_verdicts(chat_report):
    _, run, _, _ = chat_report
    page = (run.path / "report.html").read_text(encoding="utf-8")
    header = "<tr><th>metric</th><th>base few-shot</th><th>base zero-shot</th><th>fine-tuned</th>"
    assert header + "<th>delta vs headline base [95% CI]</th><th>verdict</th></tr>" in page
    row = "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class='{}'>{}</td><td>{}</td></tr>"
    # perplexity: lower is better, so a significant fall is good; the zero-shot base is the headline (*)
    assert (
        row.format(
            "test perplexity (assistant tokens)",
            "-",
            "<strong>20.00 *</strong>",
            "15.50",
            "good",
            "-4.50<br><small>[-6.00, -3.00]</small>",
            "significant at 95% (p = 0.001)",
        )
        in page
    )
    # a rise whose interval reaches 0 is not coloured: not significant
    assert (
        row.format(
            "mean token NLL (nats)",
            "-",
            "<strong>3.00 *</strong>",
            "3.25",
            "",
            "+0.25<br><small>[-0.10, 0.60]</small>",
            "not significant (p = 0.300)",
        )
        in page
    )
    assert (
        row.format(
            "MCQ accuracy, log-likelihood (%)",
            "<strong>40.00 *</strong><br><small>[30.00, 50.00]</small>",
            "38.00<br><small>[28.00, 48.00]</small>",
            "55.00<br><small>[45.00, 65.00]</small>",
            "good",
            "+15.00<br><small>[5.00, 25.00]</small>",
            "significant at 95% (p = 0.004)",
        )
        in page
    )
    assert row.format("MCQ accuracy, generated answer (%)", "-", "-", "30.00", "", "", "") in page  # no base score
    assert INTRO in page and "120 train, 8 dev, 36 test" in page
    assert (
        '<h2>Forgetting check</h2>\n<p class="verdict good">No forgetting: general-domain text got easier.</p>' in page
    )
    assert (
        "<li>Headline base of the mcq set: base few-shot (the better base on MCQ accuracy, log-likelihood (%)).</li>"
        in page
    )
    assert "<li>Evaluated on cpu (Intel Xeon), bfloat16.</li>" in page


def test_html_has_one_chart_per_scale_and_the_training_curve(chat_report):
    _, run, _, _ = chat_report
    page = (run.path / "report.html").read_text(encoding="utf-8")
    # perplexity, NLL, and both accuracies (%) on one shared axis, then the training curve
    assert page.count("<img") == 4
    assert page.count('src="data:image/png;base64,') == 4
    assert '<img alt="bar chart: accuracy (%): higher is better, base vs fine-tuned, deltas with 95% intervals"' in page
    assert '<img alt="bar chart: test perplexity (assistant tokens): lower is better' in page
    assert '<img alt="training curve: train loss per step and dev loss"' in page


def test_html_samples_are_escaped_and_breakdown_and_training_shown(chat_report):
    _, run, _, _ = chat_report
    page = (run.path / "report.html").read_text(encoding="utf-8")
    assert "<b>this</b>" not in page and "Is &lt;b&gt;this&lt;/b&gt; rash bad?" in page
    assert "<th>patient</th><th>reference reply</th><th>base</th><th>fine-tuned</th>" in page
    # per-subject fractions shown as percentages; anatomy fell 25 points
    assert "<tr><td>anatomy</td><td>4</td><td>50.00</td><td>25.00</td><td class='bad'>-25.00</td></tr>" in page
    assert "<tr><td>pharmacology</td><td>4</td><td>75.00</td><td>100.00</td><td class='good'>+25.00</td></tr>" in page
    for figure in ("<td>optimizer steps</td><td>3</td>", "<td>padding waste</td><td>12.5%</td>"):
        assert figure in page
    assert "<td>trained tokens per second</td><td>300.00</td>" in page
    assert "<td>trained (target) tokens</td><td>1,200</td>" in page
    assert "<td>trainable / total parameters</td><td>1,000 / 50,000</td>" in page
    assert "<li>2 prompts truncated</li>" in page
    assert f"<p><strong>{CHAT_CAUTION}</strong></p>" in page


def test_markdown_has_the_tables_and_no_images(chat_report):
    _, run, _, _ = chat_report
    text = (run.path / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# medtune report: demo-chat\n")
    assert "<img" not in text
    lines = text.splitlines()
    header = lines.index(
        "| metric | base few-shot | base zero-shot | fine-tuned | delta vs headline base [95% CI] | verdict |"
    )
    assert lines[header + 1 : header + 6] == [
        "|---|---:|---:|---:|---:|---|",
        "| test perplexity (assistant tokens) | - | 20.00 * | 15.50 | -4.50 [-6.00, -3.00] | "
        "significant at 95% (p = 0.001) |",
        "| mean token NLL (nats) | - | 3.00 * | 3.25 | +0.25 [-0.10, 0.60] | not significant (p = 0.300) |",
        "| MCQ accuracy, log-likelihood (%) | 40.00 [30.00, 50.00] * | 38.00 [28.00, 48.00] | 55.00 [45.00, 65.00] | "
        "+15.00 [5.00, 25.00] | significant at 95% (p = 0.004) |",
        "| MCQ accuracy, generated answer (%) | - | - | 30.00 |  |  |",
    ]
    assert lines[header + 7].startswith("A value marked * is the headline base of its test set")
    assert "## Forgetting check" in lines and "**No forgetting: general-domain text got easier.**" in lines
    assert "| anatomy | 4 | 50.00 | 25.00 | -25.00 |" in lines
    # pipes and newlines cannot break the table; HTML in a sample is shown, not rendered
    assert "| Is &lt;b&gt;this&lt;/b&gt; rash bad? | a \\| b<br>c | No idea. | See a GP. |" in lines
    assert "| padding waste | 12.5% |" in lines and "- 2 prompts truncated" in lines
    assert lines[-1] == f"**{CHAT_CAUTION}**"


def test_summary_json_round_trips(chat_report):
    summary, run, model_dir, _ = chat_report
    assert json.loads((run.path / "summary.json").read_text(encoding="utf-8")) == summary
    assert summary["task"] == "chat" and summary["recipe"] == "demo-chat"
    assert summary["output_dir"] == str(model_dir) and summary["data"] == COUNTS
    assert summary["metrics"][0] == {
        "label": "test perplexity (assistant tokens)",
        "metric": "perplexity",
        "test_set": "test",
        "base": None,
        "base_zero_shot": 20.0,
        "headline_base": "zero_shot",
        "tuned": 15.5,
        "delta": -4.5,
        "delta_ci_low": -6.0,
        "delta_ci_high": -3.0,
        "p_value": 0.001,
        "significant": True,
        "verdict": "significant at 95%",
        "higher_is_better": False,
        "base_ci": None,
        "base_zero_shot_ci": None,
        "tuned_ci": None,
        "bootstrap": {"n": 36, "resamples": 1000, "seed": 42},
    }
    loglik = summary["metrics"][2]
    assert loglik["base_ci"] == [30.0, 50.0] and loglik["tuned_ci"] == [45.0, 65.0]
    # the delta is the fine-tune minus the headline base, which is the better of the two bases
    assert loglik["headline_base"] == "few_shot" and loglik["base"] > loglik["base_zero_shot"]
    assert loglik["delta"] == loglik["tuned"] - loglik["base"] == 15.0
    assert loglik["delta_ci_low"] <= loglik["delta"] <= loglik["delta_ci_high"]
    assert loglik["significant"] is (loglik["delta_ci_low"] > 0 or loglik["delta_ci_high"] < 0)
    assert summary["metrics"][1]["significant"] is False and summary["metrics"][1]["verdict"] == "not significant"
    assert summary["metrics"][3]["delta"] is None and summary["metrics"][3]["p_value"] is None
    assert summary["checks"] == [{"title": "Forgetting check", "message": CHECK.message, "passed": True}]
    assert summary["signatures"] == {"chrf": "sig"}
    assert summary["evaluations"]["tuned"] == {"device": "cpu", "device_name": "Intel Xeon", "dtype": "bfloat16"}
    assert summary["train"]["steps"] == 3 and summary["train"]["padding_waste"] == 0.125
    assert summary["report_html"] == str(run.path / "report.html")


def test_model_card_names_base_model_data_metrics_and_caution(chat_report):
    _, _, model_dir, recipe = chat_report
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert card.split("---\n", 2)[2].startswith("# demo-chat: doctor-patient chat\n")  # after the hub metadata
    assert f"- Base model: `{recipe.model}`" in card
    assert "- Training conversations: `demo:dialogues.jsonl` (120 conversations after validation)" in card
    assert "- Dev / test conversations: 8 / 36 (cut from the training data)" in card
    assert INTRO in card
    assert (
        "| test perplexity (assistant tokens) | - | 20.00 * | 15.50 | -4.50 [-6.00, -3.00] | "
        "significant at 95% (p = 0.001) |" in card
    )
    assert f"**{CHAT_CAUTION}**" in card and PRETRAIN_CAUTION not in card


@pytest.mark.parametrize(
    ("task", "caution", "unit"),
    [("qa", CHAT_CAUTION, "questions"), ("pretrain", PRETRAIN_CAUTION, "documents")],
)
def test_caution_and_card_follow_the_task(tmp_path, task, caution, unit):
    rows = [MetricRow("held-out medical text perplexity", "perplexity", None, 25.0, False, base_zero_shot=30.0)]
    summary = write_before_after_report(
        _recipe(tmp_path, task), _run(tmp_path), tmp_path / "model", rows, intro="How.", counts={"train": 5, "test": 2}
    )
    assert summary["task"] == task
    for path in (tmp_path / "run" / "report.html", tmp_path / "run" / "report.md", tmp_path / "model" / "README.md"):
        assert caution in path.read_text(encoding="utf-8")
    card = (tmp_path / "model" / "README.md").read_text(encoding="utf-8")
    assert f"- Training {unit}: `demo:dialogues.jsonl` (5 {unit} after validation)" in card
    body = card.split("---\n", 2)[2]  # after the hub metadata
    assert body.splitlines()[2].startswith("Further pre-trained with" if task == "pretrain" else "Fine-tuned with")


def test_without_training_record_or_samples(tmp_path):
    rows = [MetricRow("held-out medical text perplexity", "perplexity", None, None, False)]
    summary = write_before_after_report(
        _recipe(tmp_path, "pretrain"), _run(tmp_path, record=None), tmp_path / "model", rows, intro="x", counts={}
    )
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page  # no measured value and no loss history: nothing to draw
    assert "<h2>Samples</h2>" not in page and "<h2>Accuracy per subject" not in page
    assert "<td>optimizer steps</td><td>-</td>" in page
    assert summary["train"]["steps"] is None and summary["metrics"][0]["delta"] is None
