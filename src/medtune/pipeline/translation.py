"""The translation task's stages: data -> eval_base -> eval_base_zero_shot -> train -> eval_tuned -> report.

Every stage writes into the run folder and is recorded in ``run.json`` (``pipeline/stages.py``
skips those whose inputs are unchanged). Knows nothing of tensors: each stage calls a function elsewhere.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from medtune.data.digest import TextDigests
from medtune.data.glossary import Term, load_glossary
from medtune.data.io import DEMO_PREFIX, read_jsonl, write_jsonl
from medtune.data.parallel import Pair, load_pairs, pair_columns, pairs_from_records
from medtune.data.split import split_pairs
from medtune.data.validate import validate_pairs
from medtune.pipeline.common import Memo, before_after_stages, data_stage
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

SPLITS = ("train", "dev", "test", "general")
RECIPE_COLUMN_OPTIONS = "--set data.src_col=... --set data.tgt_col=..."  # run/train have no --src-col


@dataclass
class PreparedData:
    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]
    general: list[Pair]
    glossary: list[Term]


def read_translation_data(recipe: Recipe, run: RunFolder) -> PreparedData:
    """The splits the data stage wrote to ``<run>/data``, and the recipe's glossary."""
    glossary = load_glossary(recipe.data.glossary) if recipe.data.glossary else []
    splits = {s: pairs_from_records(read_jsonl(run.sub("data", f"{s}.jsonl"))) for s in SPLITS}
    return PreparedData(**splits, glossary=glossary)


def prepare_translation_data(recipe: Recipe, run: RunFolder, log=print) -> PreparedData:
    """Load, validate and split the recipe's data; write splits and the validation report."""
    d = recipe.data
    glossary = load_glossary(d.glossary) if d.glossary else []
    reports = []

    def load(spec: str, name: str, exclude_sources: TextDigests | None = None) -> list[Pair]:
        columns = pair_columns(spec, d.src_col, d.tgt_col, d.src_lang, d.tgt_lang)
        how = _demo_columns(name) if spec.startswith(DEMO_PREFIX) else RECIPE_COLUMN_OPTIONS
        pairs = load_pairs(spec, *columns, doc_col=d.doc_col, column_options=how)
        kept, report = validate_pairs(pairs, name, d.on_bad_rows, d.max_length_ratio, exclude_sources=exclude_sources)
        reports.append(report)
        return kept

    if d.test:
        test = load(d.test, "test")
        pool = load(d.train, "train", exclude_sources=TextDigests(p.src for p in test))
        train, dev, _ = split_pairs(pool, 0.0, d.dev_size, recipe.seed, d.split, validation=reports[-1])
    else:
        pool = load(d.train, "train")
        train, dev, test = split_pairs(pool, d.test_size, d.dev_size, recipe.seed, d.split, validation=reports[-1])
    general = load(d.general, "general") if d.general else []
    held_out = TextDigests(p.src for p in test).union(TextDigests(p.src for p in general))
    leaked = [p for p in train if p.src in held_out]
    if leaked:  # same sentence in train and a held-out set: drop it from train, say so
        log(f"Dropped {len(leaked)} training pair(s) whose source is also in the test/general sets.")
        train = [p for p in train if p.src not in held_out]
    if d.replay and d.replay_fraction > 0:
        replay = load(d.replay, "replay", exclude_sources=held_out)
        want = round(len(train) * d.replay_fraction / (1 - d.replay_fraction))
        train = train + random.Random(recipe.seed).sample(replay, min(want, len(replay)))
        log(f"Replay: mixed {min(want, len(replay))} general-domain pairs into training.")
    for rep in reports:
        log(rep.summary())
    splits = {"train": train, "dev": dev, "test": test, "general": general}
    if run.writes:
        for name, pairs in splits.items():
            write_jsonl(run.sub("data", f"{name}.jsonl"), [p.to_record() for p in pairs])
        validation = {"reports": [r.to_dict() for r in reports], "leaked_from_train": len(leaked)}
        run.sub("data", "validation.json").write_text(
            json.dumps(validation, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    return PreparedData(**splits, glossary=glossary)


def _demo_columns(name: str) -> str:
    skip = " or set data.general=null (no forgetting check)" if name == "general" else ""
    return (
        "data.src_lang/data.tgt_lang: bundled demo files hold English/Spanish pairs in columns named by "
        f"language code; for another language pair give your own file as data.{name}{skip}"
    )


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
    data = Memo(lambda: read_translation_data(recipe, run))

    def prepare() -> dict:
        prepared = data.set(prepare_translation_data(recipe, run, log))
        return {name: len(getattr(prepared, name)) for name in SPLITS}

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
