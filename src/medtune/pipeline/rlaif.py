"""The rlaif pipeline (recipes qa-rlaif, translate-rlaif): data -> sft -> generate -> judge -> pairs -> dpo -> eval -> report.

Each stage is a :class:`~medtune.pipeline.stages.Stage`: it reads the recipe keys it names and the
files earlier stages wrote, writes its own files under the run folder and returns the record kept
in ``run.json``. The stage runner skips a stage whose fingerprint is unchanged; generation and
judging also resume their own partial work (a killed run loses no finished candidate or judgment).

* data: SFT splits, the training prompts, the held-out sets (:mod:`medtune.pipeline.rlaif_data`).
* sft: supervised fine-tuning into ``<run>/sft_model`` (the ``sft.*`` keys, every other ``train.*``).
* generate: ``generate.n`` sampled candidates per training prompt, from the SFT model or ``generate.endpoint``.
* judge: the ``judge.kind`` judge scores every distinct candidate in [0, 1].
* pairs: best vs worst candidate of each prompt, kept when the gap reaches ``pairs.margin``;
  ``pairs.heldout`` of the prompts are kept out of training.
* dpo: preference training (``train.objective``) from the SFT model into ``output_dir``.
* eval: base, SFT and the preference-tuned model on held-out items (:mod:`medtune.pipeline.rlaif_eval`).
* report: ``report.html``, ``report.md``, ``summary.json`` (:mod:`medtune.report.rlaif`).

Under several processes (``accelerate launch``, ``torchrun``) data, pairs and report run on the main
process alone; sft, generate, judge, dpo and eval run on every process, which share the work
(data-parallel training, ``medtune.sharding`` shares of the prompts, candidates and held-out items)
while the main process alone writes each file, before the others read it.
"""

from __future__ import annotations

import os
from pathlib import Path

from medtune.data.io import read_jsonl, write_jsonl
from medtune.data.sampling import split_items
from medtune.errors import MedtuneError
from medtune.pipeline.common import train_record
from medtune.pipeline.rlaif_data import RlaifData, prepare_rlaif_data, prompt_items
from medtune.recipes.schema import Recipe, TrainSection
from medtune.runs import RunFolder, remove_checkpoints

SFT_FOLDER = "sft_model"
CANDIDATES = Path("candidates", "candidates.jsonl")
JUDGMENTS = Path("judge", "judgments.jsonl")
PAIRS_FOLDER = "pairs"
# train.* keys that only the preference/RLHF stage uses (the SFT stage takes sft.epochs/max_steps/lr and the
# objective sft): changing them retrains that stage, never the SFT model under it.
_PREFERENCE_ONLY = {"objective", "beta", "sft_weight", "kto_desirable_weight", "kto_undesirable_weight"}
_PREFERENCE_ONLY |= {"epochs", "max_steps", "lr"}
SFT_READS = (
    "model",
    "seed",
    "device",
    "sft.*",
    *(f"train.{key}" for key in TrainSection.model_fields if key not in _PREFERENCE_ONLY),
)


def _api_key(variable: str | None, option: str) -> str | None:
    """The API key held by the environment variable a recipe names (recipes never hold keys)."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise MedtuneError(
            f"{option}={variable} names an environment variable that is not set; export {variable}=<your key> "
            f"or unset {option}."
        )
    return key


def policy_endpoint(recipe: Recipe):
    """The OpenAI-compatible endpoint serving the policy (``generate.endpoint``), or None: generate locally."""
    g = recipe.generate
    if g.endpoint is None:
        return None
    if not g.endpoint_model:
        raise MedtuneError(
            f"generate.endpoint={g.endpoint} needs generate.endpoint_model: the model name to ask it for "
            "(GET <endpoint>/models lists them)."
        )
    from medtune.endpoint import Endpoint, EndpointSettings

    key = _api_key(g.api_key_env, "generate.api_key_env")
    return Endpoint(EndpointSettings(g.endpoint, g.endpoint_model, api_key=key, concurrency=g.concurrency))


def judge_task(recipe: Recipe) -> str:
    return "translation" if recipe.task == "translation" else "qa"


def build_recipe_judge(recipe: Recipe, log=print):
    """The judge the recipe's ``judge`` section describes (an llm judge's key comes from ``judge.api_key_env``)."""
    from medtune.judge import build_judge

    j = recipe.judge
    return build_judge(
        j.kind,
        endpoint=j.endpoint,
        model=j.model,
        api_key=_api_key(j.api_key_env, "judge.api_key_env"),
        glossary=j.glossary,
        weights=j.weights,
        task=judge_task(recipe),
        policy_model=recipe.generate.endpoint_model or recipe.model,
        log=log,
    )


def judge_items(rows: list[dict]):
    """Judge items for answer rows (candidates.jsonl rows: id, prompt, text, gold, reference, key_points)."""
    from medtune.judge import JudgeItem
    from medtune.judge.base import prompt_text

    return [
        JudgeItem(
            id=row["id"],
            prompt=prompt_text(row["prompt"]),
            answer=row["text"],
            gold=row.get("gold"),
            reference=row.get("reference"),
            key_points=tuple(row.get("key_points") or ()),
        )
        for row in rows
    ]


def read_scores(path: Path) -> dict[str, float]:
    """``{answer id: score}`` of the judgments in a judgments.jsonl (failed judgments have no score)."""
    return {str(r["id"]): float(r["score"]) for r in read_jsonl(path) if r.get("score") is not None}


class RlaifStages:
    """The stage functions of one rlaif run; each reads what earlier stages wrote in the run folder."""

    def __init__(self, recipe: Recipe, run: RunFolder, log=print):
        self.recipe, self.run, self.log = recipe, run, log

    @property
    def resume(self) -> bool:
        """Whether training continues from its checkpoint: the run folder decides when it is opened."""
        return self.run.resume_training

    def data(self) -> RlaifData:
        return RlaifData.read(self.run.sub("data"))

    def sft_model(self) -> str:
        return self.run.done("sft")["sft_model"]

    def load(self, name: str):
        from medtune.models.loading import load_model

        r = self.recipe
        return load_model(name, dtype=r.eval.dtype, device=r.device, dtype_option="eval.dtype", device_option="device")

    # --- the stages -------------------------------------------------------------------------

    def prepare(self) -> dict:
        return prepare_rlaif_data(self.recipe, self.run.sub("data"), self.log)

    def sft(self) -> dict:
        """Supervised fine-tuning with the ``sft.*`` keys (every other ``train.*`` key shared) into ``<run>/sft_model``."""
        r = self.recipe
        data = self.data()
        train = r.train.model_copy(update={"epochs": r.sft.epochs, "max_steps": r.sft.max_steps, "lr": r.sft.lr})
        if "objective" in type(r.train).model_fields:
            train = train.model_copy(update={"objective": "sft"})
        sft_recipe = r.model_copy(update={"train": train, "output_dir": str(self.run.sub(SFT_FOLDER))})
        if r.task == "translation":
            from medtune.train.translation import train_translation

            trained = train_translation(sft_recipe, data.pairs("train"), data.pairs("dev"), self.resume, self.log)
        else:
            from medtune.train.sft import train_chat

            trained = train_chat(
                sft_recipe, data.conversations("train"), data.conversations("dev"), self.resume, self.log
            )
        if self.run.writes:  # the main process saved the model; its checkpoints would only take space
            remove_checkpoints(trained.path)
        return {"sft_model": str(trained.path), **train_record(trained)}

    def generate(self) -> dict:
        """``generate.n`` candidates for (a seeded sample of ``generate.max_prompts``) training prompts."""
        from medtune.data.sampling import sample_items
        from medtune.generate.engine import DecodingOptions
        from medtune.rlaif.candidates import generate_candidates

        r, g = self.recipe, self.recipe.generate
        prompts = sample_items(self.data().prompts, g.max_prompts, r.seed)
        endpoint = policy_endpoint(r)
        loaded = None if endpoint is not None else self.load(self.sft_model())
        stats = generate_candidates(
            prompt_items(prompts),
            self.run.sub(*CANDIDATES.parts),
            n=g.n,
            temperature=g.temperature,
            top_p=g.top_p,
            max_new_tokens=g.max_new_tokens,
            seed=r.seed,
            task=judge_task(r),
            loaded=loaded,
            endpoint=endpoint,
            batch_size=g.batch_size,
            src_lang=r.data.src_lang,
            tgt_lang=r.data.tgt_lang,
            log=self.log,
            decoding=DecodingOptions(g.cache, g.compile),
        )
        policy = f"{g.endpoint} ({g.endpoint_model})" if endpoint is not None else self.sft_model()
        return {"candidates": str(self.run.sub(*CANDIDATES.parts)), "policy": policy, **stats.to_dict()}

    def judge(self) -> dict:
        """Score every candidate but exact duplicates; resumes a killed run's judgments."""
        import time

        from medtune.judge import judge_file
        from medtune.rlaif.candidates import read_candidates

        # exact duplicates repeat a judged text; near duplicates may be different answers and are judged
        candidates = [
            c
            for c in read_candidates(self.run.sub(*CANDIDATES.parts))
            if c.get("duplicate_of") is None or c.get("duplicate_kind") == "near"
        ]
        judge = build_recipe_judge(self.recipe, self.log)
        started = time.perf_counter()
        judgments = judge_file(judge, judge_items(candidates), self.run.sub(*JUDGMENTS.parts), "judge", self.log)
        seconds = time.perf_counter() - started
        scored = [j.score for j in judgments if j.score is not None]
        failed = [j.id for j in judgments if j.score is None]
        if failed:
            self.log(f"judge: {len(failed)} answer(s) got no parseable score and are left out (first: {failed[0]}).")
        return {
            "judge": judge.name,
            "judge_kind": self.recipe.judge.kind,
            "judge_fingerprint": judge.fingerprint(),  # "fingerprint" is the stage runner's
            "judged": len(judgments),
            "scored": len(scored),
            "failed": len(failed),
            "failed_ids": failed[:50],
            "mean_score": round(sum(scored) / len(scored), 4) if scored else None,
            "seconds": round(seconds, 2),  # this run's share: a resumed run judged only the rest
        }

    def pairs(self) -> dict:
        """Preference pairs from the judged candidates; ``pairs.heldout`` of them kept out of training.

        Writes ``pairs/pairs.jsonl`` (every pair, with its stats beside it), ``train.jsonl`` and ``heldout.jsonl``.
        """
        from medtune.rlaif.candidates import read_candidates
        from medtune.rlaif.pairs import build_pairs, pair_records, write_pairs

        r = self.recipe
        candidates = read_candidates(self.run.sub(*CANDIDATES.parts))
        built, stats = build_pairs(candidates, read_scores(self.run.sub(*JUDGMENTS.parts)), r.pairs.margin)
        figures = stats.to_dict()
        if not built:
            counts = ", ".join(f"{k} {figures[k]}" for k in ("prompts", "ties", "all_bad", "too_few", "unscored"))
            raise MedtuneError(
                f"No preference pair could be built from {len(candidates)} candidates ({counts}): no prompt's "
                f"answers were separated by the judge by pairs.margin={r.pairs.margin}. Lower pairs.margin, raise "
                "generate.n or generate.temperature, train the SFT model longer (sft.*), or use more prompts "
                "(generate.max_prompts, data.sample)."
            )
        train, heldout = split_items(built, r.pairs.heldout, r.seed) if len(built) > 1 else (built, [])
        folder = self.run.sub(PAIRS_FOLDER)
        write_pairs(folder / "pairs.jsonl", built, stats)
        write_jsonl(folder / "train.jsonl", pair_records(train))
        write_jsonl(folder / "heldout.jsonl", pair_records(heldout))
        self.log(
            f"pairs: {len(built)} from {figures['prompts']} prompts ({figures['ties']} ties, {figures['all_bad']} all "
            f"bad, {figures['too_few']} with fewer than 2 distinct answers); {len(train)} to train, {len(heldout)} held out."
        )
        return {**figures, "train": len(train), "heldout": len(heldout)}

    def dpo(self) -> dict:
        """Preference training (``train.objective``) from the SFT model into ``output_dir``."""
        from medtune.data.preference import pairs_from_records
        from medtune.models.device import release_host_memory
        from medtune.train.preference import train_preference

        folder = self.run.sub(PAIRS_FOLDER)
        train = pairs_from_records(read_jsonl(folder / "train.jsonl"))
        dev = pairs_from_records(read_jsonl(folder / "heldout.jsonl"))
        self.run.start_training()  # stale checkpoints of another preference training are dropped
        trained = train_preference(
            self.recipe, train, dev, self.sft_model(), str(self.recipe.output_dir), self.resume, self.log
        )
        if self.run.writes:
            remove_checkpoints(trained.path)  # the saved model replaces them
        release_host_memory()  # the models are scored next, in this process
        history = getattr(trained.result, "metric_history", [])
        return {"dpo_model": str(trained.path), **train_record(trained), "metric_history": [list(h) for h in history]}

    def evaluate(self) -> dict:
        from medtune.pipeline.rlaif_eval import evaluate_rlaif

        return evaluate_rlaif(self, self.data())

    def report(self) -> dict:
        from medtune.report.rlaif import write_rlaif_report

        summary = write_rlaif_report(self.recipe, self.run)
        return {"report": summary["report_html"], "summary": str(self.run.sub("summary.json"))}


def rlaif_stages(recipe: Recipe, run: RunFolder, log=print) -> list:
    """The eight stages of an rlaif run, in order, with what each reads and writes (``medtune train`` stops after dpo)."""
    from medtune.pipeline.common import data_stage
    from medtune.pipeline.stages import Stage

    # Under several processes (accelerate launch, torchrun) data, pairs and report run on the main process
    # alone; the others share the work of every other stage (data-parallel training, sharded sampling,
    # judging and scoring) while the main process writes the files.
    s = RlaifStages(recipe, run, log)
    device = ("device", "eval.dtype")
    return [
        data_stage(s.prepare),
        Stage("sft", s.sft, SFT_READS, ("data",), outputs=(SFT_FOLDER,), every_process=True),
        Stage(
            "generate",
            s.generate,
            ("seed", *device, "generate.*"),
            ("data", "sft"),
            outputs=("candidates",),
            every_process=True,
        ),
        Stage(
            "judge",
            s.judge,
            ("task", "generate.endpoint_model", "judge.*"),
            ("generate",),
            files=("judge.glossary",),
            outputs=("judge",),
            every_process=True,
        ),
        Stage("pairs", s.pairs, ("seed", "pairs.*"), ("generate", "judge"), outputs=(PAIRS_FOLDER,)),
        Stage(
            "dpo",
            s.dpo,
            ("model", "seed", "device", "output_dir", "train.*"),
            ("sft", "pairs"),
            outputs=(str(Path(recipe.output_dir).resolve()),),  # a folder keeps its checkpoints/ when set aside
            every_process=True,
        ),
        Stage(
            "eval",
            s.evaluate,
            ("model", "seed", *device, "eval.*", "generate.max_new_tokens", "generate.batch_size", "judge.*"),
            ("data", "sft", "dpo"),
            files=("eval.preference_data", "data.glossary", "judge.glossary"),
            outputs=("eval",),
            every_process=True,
        ),
        Stage(
            "report",
            s.report,
            ("*",),
            ("data", "sft", "generate", "judge", "pairs", "dpo", "eval"),
            outputs=("report.html", "report.md", "summary.json"),
        ),
    ]


TRAIN_STAGES = ("data", "sft", "generate", "judge", "pairs", "dpo")  # what ``medtune train`` runs


def trained_model(run: RunFolder) -> Path:
    """The preference-tuned model folder the finished dpo stage recorded."""
    return Path(run.done("dpo")["dpo_model"])
