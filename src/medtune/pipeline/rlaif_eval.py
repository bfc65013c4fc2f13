"""The rlaif pipeline's eval stage: base, SFT and the preference-tuned model on held-out items.

Every model is loaded once, in turn, and writes under ``<run>/eval/<model>/``:

* task qa with multiple-choice questions: MCQ accuracy per ``eval.mcq_modes`` (the base with
  ``eval.few_shot`` solved questions, the fine-tunes zero-shot), as qa-sft scores it;
* task translation: BLEU, chrF++, TER (and terminology with a glossary) of the test split (the
  causal base few-shot);
* preference accuracy on held-out pairs (``eval.preference_data``, else the pairs held out by
  ``pairs.heldout``); the preference-tuned model also against its reference, the SFT model;
* SFT and DPO answer the held-out prompts greedily (translation: their test translations), the
  recipe's judge scores both, and the win-rate of DPO over SFT is computed (a pairwise llm judge is
  asked in both orders instead).

Paired comparisons between the models are computed by the report from these per-item files.

Under several processes every one runs this stage: each scores, answers and judges its share of the
items (``medtune.sharding``), the shares are gathered in item order, and the main process alone writes
the files, which the others read only once they are written.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from medtune.data.io import read_jsonl, write_jsonl
from medtune.pipeline.rlaif_data import RlaifData, prompt_items
from medtune.runs import is_main_process
from medtune.sharding import barrier, gather_in_order, item_shard

if TYPE_CHECKING:
    from medtune.pipeline.rlaif import RlaifStages

MODELS = ("base", "sft", "dpo")


def preference_pairs(s: RlaifStages) -> tuple[list, str]:
    """Held-out preference pairs and where they came from (empty when there are none)."""
    from medtune.data.preference import load_preference_pairs, pairs_from_records

    spec = s.recipe.eval.preference_data
    if spec:
        pairs, _ = load_preference_pairs(spec, s.recipe.data.on_bad_rows, name="eval.preference_data", log=s.log)
        return pairs, spec
    heldout = pairs_from_records(read_jsonl(s.run.sub("pairs", "heldout.jsonl")))
    return heldout, "pairs held out from preference training (pairs.heldout)"


def _score_mcq(s: RlaifStages, loaded, name: str, data: RlaifData) -> dict:
    from medtune.eval.mcq import evaluate_mcq

    e, seed = s.recipe.eval, s.recipe.seed
    test = data.mcq("mcq_test")[: e.limit] if e.limit else data.mcq("mcq_test")
    pool = data.mcq("mcq_pool")
    few = random.Random(seed).sample(pool, min(e.few_shot, len(pool))) if name == "base" else []
    result = {}
    for mode in e.mcq_modes:
        out = s.run.sub("eval", name, f"mcq_{mode}")
        m = evaluate_mcq(loaded, test, out, mode, few, e.batch_size, e.max_length, seed=seed, label=f"{name}:{mode}")
        result[f"mcq_{mode}"] = m
        s.log(f"{name} MCQ {mode}: accuracy {m['accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}] (n={m['n']})")
    return result


def score_test_translations(s: RlaifStages, loaded, name: str, data: RlaifData) -> dict:
    """Translate the test split with one model (the causal base few-shot) into ``eval/<name>/test``; ``{"test": metrics}``."""
    from medtune.data.glossary import load_glossary
    from medtune.eval.translation import evaluate_translation, pick_examples

    r, e = s.recipe, s.recipe.eval
    few = e.few_shot if name == "base" and not loaded.is_seq2seq else 0
    test = data.pairs("test")[: e.limit] if e.limit else data.pairs("test")
    m = evaluate_translation(
        loaded,
        test,
        s.run.sub("eval", name, "test"),
        load_glossary(r.data.glossary) if r.data.glossary else [],
        examples=pick_examples(data.pairs("train"), few, r.seed),
        src_lang=r.data.src_lang,
        tgt_lang=r.data.tgt_lang,
        batch_size=e.batch_size,
        num_beams=e.num_beams,
        max_new_tokens=e.max_new_tokens,
        label=f"{name}:test",
    )
    s.log(f"{name} test: chrF {m['chrf']:.2f}, BLEU {m['bleu']:.2f}, TER {m['ter']:.2f}")
    return {"test": m}


def _greedy_answers(s: RlaifStages, loaded, name: str, data: RlaifData) -> Path:
    """The model's greedy answer to every held-out prompt, as candidate rows (``eval/<name>/answers.jsonl``).

    Translation re-uses the test translations just scored (the same greedy decoding).
    """
    from medtune.rlaif.candidates import generate_candidates

    r, e = s.recipe, s.recipe.eval
    out = s.run.sub("eval", name, "answers.jsonl")
    prompts = data.heldout_prompts[: e.limit] if e.limit else data.heldout_prompts
    if r.task == "translation":
        by_id = {p["id"]: p for p in prompts}
        rows = [
            {
                **by_id[o["id"]],
                "prompt_id": o["id"],
                "prompt": o["source"],
                "text": o["output"],
                "id": f"{name}:{o['id']}",
            }
            for o in read_jsonl(s.run.sub("eval", name, "test", "outputs.jsonl"))
        ]
        if is_main_process():
            write_jsonl(out, rows)
        barrier()  # the win-rate reads the file on every process
        return out
    if is_main_process():
        out.unlink(missing_ok=True)  # a stage re-run starts its answers afresh
    barrier()  # before any process looks for answers to resume
    generate_candidates(
        prompt_items(prompts),
        out,
        n=1,
        temperature=0.0,
        max_new_tokens=r.generate.max_new_tokens,
        seed=r.seed,
        task="qa",
        loaded=loaded,
        batch_size=r.generate.batch_size,
        log=s.log,
    )
    return out


def _preference_accuracy(s: RlaifStages, loaded, name: str, pairs: list, reference=None) -> dict:
    from medtune.eval.preference import evaluate_preference

    r = s.recipe
    m = evaluate_preference(
        loaded,
        pairs,
        s.run.sub("eval", name, "preference"),
        "translation" if r.task == "translation" else "qa",
        batch_size=r.eval.batch_size,
        reference=reference,
        seed=r.seed,
        max_length=r.eval.max_length,
        src_lang=r.data.src_lang,
        tgt_lang=r.data.tgt_lang,
        log=s.log,
    )
    s.log(f"{name} preference accuracy: {m['accuracy']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}] (n={m['n']})")
    return m


def win_rate(s: RlaifStages, sft_answers: Path, dpo_answers: Path) -> dict:
    """DPO against SFT on the held-out prompts, judged by the recipe's judge.

    A judge that compares two answers (the llm judge) is asked in both orders per prompt; any other
    scores each answer (``eval/win_rate/<model>_judgments.jsonl``, resumable) and the scores decide.
    """
    from medtune.eval.win_rate import pairwise_win_rate, pointwise_win_rate
    from medtune.judge import judge_file
    from medtune.pipeline.rlaif import build_recipe_judge, judge_items, read_scores

    sft = {r["prompt_id"]: r for r in read_jsonl(sft_answers)}
    dpo = {r["prompt_id"]: r for r in read_jsonl(dpo_answers)}
    shared = [pid for pid in sft if pid in dpo]
    judge = build_recipe_judge(s.recipe, s.log)
    folder = s.run.sub("eval", "win_rate")
    record = {"judge": judge.name, "judge_kind": s.recipe.judge.kind, "prompts": len(shared)}
    if hasattr(judge, "compare_many"):
        from medtune.judge.base import prompt_text

        asked = [
            (prompt_text(sft[p]["prompt"]), sft[p]["text"], dpo[p]["text"], sft[p].get("reference")) for p in shared
        ]
        mine = item_shard(len(shared))  # each process asks about its share of the prompts
        verdicts = gather_in_order(
            judge.compare_many(asked[mine.start : mine.stop], labels=shared[mine.start : mine.stop])
        )
        kept = [(p, v) for p, v in zip(shared, verdicts, strict=True) if v.failed is None]
        if is_main_process():
            write_jsonl(
                folder / "verdicts.jsonl",
                [
                    {"prompt_id": p, "winner": v.winner, "consistent": v.consistent, "failed": v.failed}
                    for p, v in zip(shared, verdicts, strict=True)
                ],
            )
        figures = pairwise_win_rate([v.winner for _, v in kept], [v.consistent for _, v in kept], seed=s.recipe.seed)
        return {**record, "mode": "pairwise, both orders", "failed": len(shared) - len(kept), **figures}
    for name, answers in (("sft", sft), ("dpo", dpo)):
        judge_file(
            judge, judge_items([answers[p] for p in shared]), folder / f"{name}_judgments.jsonl", f"judge {name}", s.log
        )
    sft_scores, dpo_scores = (read_scores(folder / f"{name}_judgments.jsonl") for name in ("sft", "dpo"))
    scored = [p for p in shared if sft[p]["id"] in sft_scores and dpo[p]["id"] in dpo_scores]
    if is_main_process():
        write_jsonl(
            folder / "scores.jsonl",
            [{"prompt_id": p, "sft": sft_scores[sft[p]["id"]], "dpo": dpo_scores[dpo[p]["id"]]} for p in scored],
        )
    figures = pointwise_win_rate(
        [sft_scores[sft[p]["id"]] for p in scored], [dpo_scores[dpo[p]["id"]] for p in scored], seed=s.recipe.seed
    )
    return {**record, "mode": "pointwise scores", "failed": len(shared) - len(scored), **figures}


def evaluate_rlaif(s: RlaifStages, data: RlaifData) -> dict:
    """The eval stage: every model's held-out figures, preference accuracy and the DPO-vs-SFT win-rate.

    Returns:
        The stage record: ``models`` (name -> folder), per model its MCQ (``mcq_<mode>``) or
        translation (``test``) metrics and ``preference`` metrics, ``preference_source`` (or
        ``preference_skipped`` with the reason), ``win_rate`` and ``mcq_absent`` (free-text qa).
    """
    from medtune.models.device import release_host_memory

    r = s.recipe
    models = {"base": r.model, "sft": s.sft_model(), "dpo": s.run.done("dpo")["dpo_model"]}
    pairs, source = preference_pairs(s)
    record: dict = {"models": models}
    if pairs:
        record["preference_source"] = source
    else:
        record["preference_skipped"] = "no held-out pairs: set eval.preference_data or raise pairs.heldout"
    free_text = r.task == "qa" and not data.mcq_test
    answers: dict[str, Path] = {}
    sft_loaded = None
    for name in MODELS:
        loaded = s.load(models[name])
        result: dict = {}
        if r.task == "translation":
            result.update(score_test_translations(s, loaded, name, data))
        elif not free_text:
            result.update(_score_mcq(s, loaded, name, data))
        if pairs:
            result["preference"] = _preference_accuracy(s, loaded, name, pairs, sft_loaded if name == "dpo" else None)
        if name != "base":
            answers[name] = _greedy_answers(s, loaded, name, data)
        record[name] = result
        sft_loaded = loaded if name == "sft" else None
        del loaded
        release_host_memory()
    del sft_loaded
    record["win_rate"] = win_rate(s, answers["sft"], answers["dpo"])
    w = record["win_rate"]
    s.log(
        f"win-rate DPO vs SFT: {w['win_rate']:.3f} [{w['ci_low']:.3f}, {w['ci_high']:.3f}], {w['ties']} ties (n={w['n']})"
    )
    if free_text:
        record["mcq_absent"] = (
            "the data holds free-text reference answers (data.reference_col), no multiple-choice test"
        )
    return record
