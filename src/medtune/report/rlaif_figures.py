"""The figures of an rlaif run, gathered from its run folder: what ``summary.json`` holds and the report shows.

Base, SFT and the preference-tuned model (DPO/KTO, called "DPO" below) are compared on the same
held-out items; each row carries two paired deltas (SFT minus base, DPO minus SFT) with 95%
paired-bootstrap intervals from :mod:`medtune.eval.significance`, computed from the per-item
outputs the eval stage wrote under ``eval/<model>/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from medtune.data.io import read_jsonl
from medtune.errors import MedtuneError
from medtune.eval.significance import PairedDelta
from medtune.report.comparison import mcq_delta, translation_deltas
from medtune.report.formatting import FEW_SHOT, NOT_SIGNIFICANT, SIGNIFICANT, ZERO_SHOT, MetricRow
from medtune.runs import RunFolder

MODEL_NAMES = {"base": "base", "sft": "SFT", "dpo": "DPO"}
MODE_LABELS = {"loglik": "log-likelihood of the option letter", "generate": "generated answer"}
# (key in the translation metrics, label, higher is better, shown in percent)
TRANSLATION_METRICS = [
    ("chrf", "held-out chrF++", True, False),
    ("bleu", "held-out BLEU", True, False),
    ("ter", "held-out TER", False, False),
    ("term_accuracy", "held-out term accuracy (%)", True, True),
]


@dataclass
class ModelRow:
    """One held-out metric of base, SFT and DPO, with the two paired deltas that matter."""

    label: str
    key: str
    higher_is_better: bool
    values: dict[str, float | None]  # by model: base, sft, dpo
    intervals: dict[str, tuple[float, float] | None]  # 95% interval of each value (None: not computed)
    sft_vs_base: PairedDelta | None = None
    dpo_vs_sft: PairedDelta | None = None
    dpo_vs_base: PairedDelta | None = None  # the whole gain: what the model card shows
    base_few_shot: int = 0  # solved examples the base model was shown (the fine-tunes see none)

    def to_summary(self) -> dict:
        """The row as one entry of ``summary.json``'s ``metrics``."""
        return {
            "label": self.label,
            "metric": self.key,
            "higher_is_better": self.higher_is_better,
            **{name: self.values.get(name) for name in MODEL_NAMES},
            **{f"{name}_ci": _listed(self.intervals.get(name)) for name in MODEL_NAMES},
            "sft_vs_base": _delta_summary(self.sft_vs_base),
            "dpo_vs_sft": _delta_summary(self.dpo_vs_sft),
            "dpo_vs_base": _delta_summary(self.dpo_vs_base),
            "base_few_shot": self.base_few_shot,
        }

    def card_row(self) -> MetricRow:
        """The row as the model card shows it: the base (few-shot or zero-shot, as it was scored) against DPO."""
        few = self.base_few_shot > 0
        base, ci = self.values["base"], self.intervals["base"]
        return MetricRow(
            label=self.label,
            key=self.key,
            base=base if few else None,
            tuned=self.values["dpo"],
            higher_is_better=self.higher_is_better,
            base_ci=ci if few else None,
            tuned_ci=self.intervals["dpo"],
            base_zero_shot=None if few else base,
            base_zero_shot_ci=None if few else ci,
            headline_base=FEW_SHOT if few else ZERO_SHOT,
            paired=self.dpo_vs_base,
        )


def verdict(delta: PairedDelta | None) -> str:
    """``significant at 95%`` / ``not significant``, empty without a paired test."""
    return "" if delta is None else SIGNIFICANT if delta.significant else NOT_SIGNIFICANT


def _delta_summary(delta: PairedDelta | None) -> dict | None:
    if delta is None:
        return None
    return {
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in delta.to_dict().items()},
        "verdict": verdict(delta),
    }


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def joined_model_outputs(run: RunFolder, a: str, b: str, *parts: str) -> list[tuple[dict, dict]]:
    """Rows of ``eval/<a>/<parts>`` and ``eval/<b>/<parts>`` joined by ``id`` (empty when either file is missing).

    Raises:
        MedtuneError: the two files do not hold the same items.
    """
    path_a, path_b = run.sub("eval", a, *parts), run.sub("eval", b, *parts)
    if not path_a.is_file() or not path_b.is_file():
        return []
    rows_a, rows_b = read_jsonl(path_a), {str(r["id"]): r for r in read_jsonl(path_b)}
    if len(rows_b) != len(rows_a) or any(str(r["id"]) not in rows_b for r in rows_a):
        raise MedtuneError(
            f"{path_a} and {path_b} do not hold the same items, so they cannot be compared item by item; "
            "re-run the eval stage (medtune run RECIPE --resume --from eval)."
        )
    return [(r, rows_b[str(r["id"])]) for r in rows_a]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def mcq_rows(run: RunFolder, evaluation: dict, modes: list[str]) -> list[ModelRow]:
    """One accuracy row (%) per MCQ mode, each value with its bootstrap interval."""
    rows = []
    for mode in modes:
        key = f"mcq_{mode}"
        metrics = {name: evaluation[name][key] for name in MODEL_NAMES}
        rows.append(
            ModelRow(
                label=f"MCQ accuracy, {MODE_LABELS[mode]} (%)",
                key=f"accuracy_{mode}",
                higher_is_better=True,
                values={name: _pct(m["accuracy"]) for name, m in metrics.items()},
                intervals={name: (_pct(m["ci_low"]), _pct(m["ci_high"])) for name, m in metrics.items()},
                sft_vs_base=mcq_delta(joined_model_outputs(run, "base", "sft", key, "outputs.jsonl")),
                dpo_vs_sft=mcq_delta(joined_model_outputs(run, "sft", "dpo", key, "outputs.jsonl")),
                dpo_vs_base=mcq_delta(joined_model_outputs(run, "base", "dpo", key, "outputs.jsonl")),
                base_few_shot=metrics["base"].get("few_shot", 0),
            )
        )
    return rows


def _translation_intervals(run: RunFolder, name: str) -> dict[str, tuple[float, float]]:
    """One model's BLEU/chrF++/TER 95% bootstrap intervals on the test split (none without its outputs)."""
    from medtune.eval.significance import translation_score_intervals

    path = run.sub("eval", name, "test", "outputs.jsonl")
    rows = read_jsonl(path) if path.is_file() else []
    if not rows:
        return {}
    return translation_score_intervals([r["output"] for r in rows], [r["reference"] for r in rows])


def translation_rows(run: RunFolder, evaluation: dict) -> list[ModelRow]:
    """chrF++, BLEU, TER (and term accuracy with a glossary) of the test split."""
    deltas = {
        name: translation_deltas(joined_model_outputs(run, a, b, "test", "outputs.jsonl"))
        for name, a, b in (("sft_vs_base", "base", "sft"), ("dpo_vs_sft", "sft", "dpo"), ("dpo_vs_base", "base", "dpo"))
    }
    intervals = {name: _translation_intervals(run, name) for name in MODEL_NAMES}
    rows = []
    for key, label, higher, percent in TRANSLATION_METRICS:
        values = {name: evaluation[name]["test"].get(key) for name in MODEL_NAMES}
        if all(v is None for v in values.values()):
            continue
        if percent:
            values = {name: _pct(v) for name, v in values.items()}
        rows.append(
            ModelRow(
                label=label,
                key=key,
                higher_is_better=higher,
                values=values,
                intervals={name: intervals[name].get(key) for name in MODEL_NAMES},
                sft_vs_base=deltas["sft_vs_base"].get(key),
                dpo_vs_sft=deltas["dpo_vs_sft"].get(key),
                dpo_vs_base=deltas["dpo_vs_base"].get(key),
                base_few_shot=evaluation["base"]["test"].get("few_shot", 0),
            )
        )
    return rows


def preference_figures(evaluation: dict) -> dict:
    """Preference accuracy of each model on the held-out pairs (DPO also by implicit reward), or why there is none."""
    if "preference_skipped" in evaluation:
        return {"skipped": evaluation["preference_skipped"]}
    keep = ("accuracy", "ci_low", "ci_high", "n", "mean_margin", "reward_accuracy", "reward_ci_low", "reward_ci_high")
    figures = {
        name: {k: evaluation[name]["preference"][k] for k in keep if k in evaluation[name]["preference"]}
        for name in MODEL_NAMES
    }
    return {"source": evaluation.get("preference_source"), **figures}


def dpo_training(record: dict) -> dict:
    """The preference stage's figures: steps, losses, and the reward margin / accuracy per logged step."""
    history = record.get("metric_history") or []
    last = history[-1][1] if history else {}
    keys = ("steps", "train_loss", "dev_loss", "train_seconds", "trainable_params", "total_params")
    return {
        **{k: record.get(k) for k in keys},
        "final_reward_margin": last.get("reward_margin"),
        "final_reward_accuracy": last.get("reward_accuracy"),
        "metric_history": history,
        "loss_history": record.get("loss_history") or [],
        "dev_history": record.get("dev_history") or [],
    }


def stage_fingerprints(run: RunFolder) -> dict[str, dict]:
    """Each recorded stage's fingerprint and finishing time, from ``run.json``."""
    stages = json.loads(run.manifest_path.read_text(encoding="utf-8")).get("stages", {})
    return {name: {"fingerprint": r.get("fingerprint"), "finished": r.get("finished")} for name, r in stages.items()}


def _question(prompt: str | list[dict], limit: int = 300) -> str:
    """A prompt as the report shows it: the source sentence, or the last user turn (cut to ``limit`` characters)."""
    text = prompt if isinstance(prompt, str) else next(m["content"] for m in reversed(prompt) if m["role"] == "user")
    return text if len(text) <= limit else text[:limit] + "..."


def sample_pairs(run: RunFolder, n: int) -> list[dict]:
    """The first ``n`` preference pairs: prompt, chosen and rejected answer with their judge scores."""
    path = run.sub("pairs", "pairs.jsonl")
    rows = read_jsonl(path)[:n] if path.is_file() else []
    return [
        {
            "prompt": _question(r["prompt"]),
            "chosen": f"{r['chosen']} ({r['chosen_score']:.2f})",
            "rejected": f"{r['rejected']} ({r['rejected_score']:.2f})",
        }
        for r in rows
    ]


def sample_answers(run: RunFolder, n: int) -> list[dict]:
    """SFT's and DPO's greedy answers to the first ``n`` held-out prompts, with the judge's scores when it scored them."""
    paths = {name: run.sub("eval", name, "answers.jsonl") for name in ("sft", "dpo")}
    if not all(p.is_file() for p in paths.values()):
        return []
    answers = {name: {r["prompt_id"]: r for r in read_jsonl(p)} for name, p in paths.items()}
    scores = {}
    for name in answers:
        judged = run.sub("eval", "win_rate", f"{name}_judgments.jsonl")
        scores[name] = {r["id"]: r.get("score") for r in read_jsonl(judged)} if judged.is_file() else {}

    def shown(name: str, row: dict) -> str:
        score = scores[name].get(row["id"])
        return row["text"] if score is None else f"{row['text']} ({score:.2f})"

    shared = [pid for pid in answers["sft"] if pid in answers["dpo"]][:n]
    return [
        {
            "prompt": _question(answers["sft"][pid]["prompt"]),
            "sft": shown("sft", answers["sft"][pid]),
            "dpo": shown("dpo", answers["dpo"][pid]),
        }
        for pid in shared
    ]
