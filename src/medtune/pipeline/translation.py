"""The translation task's stages: data -> eval_base -> eval_base_zero_shot -> train -> eval_tuned -> report.

Every stage writes into the run folder and is recorded in ``run.json`` (``pipeline/stages.py``
skips those whose inputs are unchanged). Knows nothing of tensors: each stage calls a function elsewhere.
"""

from __future__ import annotations

from medtune.pipeline.common import Memo, before_after_stages, data_stage
from medtune.pipeline.stages import Stage
from medtune.pipeline.translation_data import (
    PreparedData,
    prepare_translation_data,
    read_translation_data,
)
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder


def _score(stage: str, loaded, data: PreparedData, recipe: Recipe, run: RunFolder, few_shot: int, log) -> dict:
    """Score one model on the test and general sets."""
    from medtune.eval.translation import evaluate_translation, pick_examples

    examples = [] if loaded.is_seq2seq else pick_examples(data.train, few_shot, recipe.seed)
    e = recipe.eval
    common = dict(
        examples=examples,
        src_lang=recipe.data.src_lang,
        tgt_lang=recipe.data.tgt_lang,
        batch_size=e.batch_size,
        num_beams=e.num_beams,
        max_new_tokens=e.max_new_tokens,
    )
    test = data.test[: e.limit] if e.limit else data.test
    result = {
        "test": evaluate_translation(
            loaded, test, run.sub("eval", stage, "test"), data.glossary, label=f"{stage}:test", **common
        )
    }
    if data.general:
        result["general"] = evaluate_translation(
            loaded, data.general, run.sub("eval", stage, "general"), label=f"{stage}:general", **common
        )
    for split, m in result.items():
        log(f"{stage} {split}: chrF {m['chrf']:.2f}, BLEU {m['bleu']:.2f}, TER {m['ter']:.2f}")
    return result


def _data(recipe: Recipe, run: RunFolder, log) -> tuple[Stage, Memo[PreparedData]]:
    """The data stage, and the prepared data (kept from the stage, or read back when it was skipped)."""
    data = Memo(lambda: read_translation_data(recipe, run.sub("data")))

    def prepare() -> dict:  # the runner runs it on the main process only; the others read its files
        data.clear()  # later stages read the splits back from the files, only if they need them
        return prepare_translation_data(recipe, run.sub("data"), log)

    return data_stage(prepare), data


def _train(recipe: Recipe, run: RunFolder, data: Memo[PreparedData], log):
    from medtune.train.translation import train_translation

    return lambda: train_translation(recipe, data.get().train, data.get().dev, resume=run.resume_training, log=log)


def _same_base_reason(recipe: Recipe, data: Memo[PreparedData]):
    def reason(loaded) -> str | None:
        if loaded.is_seq2seq:
            return "a sequence-to-sequence translation model takes the bare source sentence, no few-shot prompt"
        if recipe.eval.few_shot == 0 or not data.get().train:
            return "eval.few_shot is 0" if recipe.eval.few_shot == 0 else "there are no training pairs to show"
        return None

    return reason


def translation_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The translation recipe's stages: score the base few-shot and zero-shot, fine-tune, score again
    (zero-shot), report.

    Few-shot examples come from the training split, never from the scored sets. The report stage
    writes summary.json (the three columns, deltas with paired-bootstrap intervals, forgetting
    verdict, paths).
    """
    from medtune.report.translation import write_translation_report

    data_step, data = _data(recipe, run, log)

    def score(stage: str, loaded) -> dict:
        few_shot = recipe.eval.few_shot if stage == "eval_base" else 0
        return _score(stage, loaded, data.get(), recipe, run, few_shot, log)

    return before_after_stages(
        run,
        recipe,
        data_step,
        score,
        _train(recipe, run, data, log),
        lambda evaluations, model_dir: write_translation_report(recipe, run, data.get(), evaluations, model_dir),
        _same_base_reason(recipe, data),
    )
