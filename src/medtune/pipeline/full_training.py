"""The full-training pipeline (recipe full-training): SFT -> queue -> a feedback round -> RLHF, scored after each step.

Stages, each a :class:`~medtune.pipeline.stages.Stage` that the runner skips while its inputs are unchanged:

* data: train/dev/test splits and the feedback set kept apart from them (:mod:`medtune.pipeline.full_training_data`).
* eval_base: the base model on the test split (a causal base few-shot).
* sft: supervised fine-tuning into ``<run>/sft_model`` (the ``sft.*`` keys, every other ``train.*``).
* eval_sft: the SFT model on the test split.
* queue: the SFT model translates the feedback set into the feedback store (``feedback.db``, default
  ``<run>/feedback.db``; project ``feedback.project``, default the recipe name), each item to be judged
  by ``feedback.reviewers_per_item`` reviewers. ``queue/items.jsonl`` lists the items queued.
* feedback: ``feedback.reviewers: simulated`` judges them now (sentence chrF++ against the reference,
  post-edit = the reference); ``human`` stops the run until reviewers have judged every item, then
  ``--resume`` continues. The judgments of the queued items are copied to ``feedback/judgments.jsonl``
  and aggregated per item; ``feedback.heldout`` of the items are kept out of RLHF.
* rlhf: training from the judged items (``feedback.objective``) from the SFT model into ``output_dir``.
* eval_rlhf: the RLHF model on the test split.
* eval_post_edits: SFT and RLHF on the held-out judged items: preference for the post-edits and
  chrF++ against them (:mod:`medtune.eval.post_edits`).
* report: ``report.html``, ``report.md``, ``summary.json`` (:mod:`medtune.report.full_training`).

The store is never a stage's output: a re-run never moves or deletes it, so no reviewer's work is lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path

from medtune.data.io import read_jsonl, write_jsonl
from medtune.errors import MedtuneError
from medtune.pipeline.common import DATA_FILES, DATA_READS, EVAL_READS, train_record
from medtune.pipeline.full_training_data import feedback_rows, prepare_full_training_data
from medtune.pipeline.rlaif import SFT_FOLDER, SFT_READS, RlaifStages
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder, remove_checkpoints

STORE_FILE = "feedback.db"  # in the run folder, unless feedback.db names another store
QUEUED = Path("queue", "items.jsonl")
JUDGMENTS = Path("feedback", "judgments.jsonl")
TRAIN_ITEMS = Path("feedback", "train_items.jsonl")
HELDOUT_ITEMS = Path("feedback", "heldout_items.jsonl")
POST_EDITS = Path("eval", "post_edits")
MODELS = ("base", "sft", "rlhf")  # eval/<name>/test holds each model's test translations


def judgment_record(judgment) -> dict:
    """A store judgment (``JudgmentView``) as a JSON-able row of ``feedback/judgments.jsonl``."""
    record = asdict(judgment)
    return {**record, "flags": list(judgment.flags), "created_at": judgment.created_at.isoformat()}


def judgment_from_record(record: dict):
    """The inverse of :func:`judgment_record`."""
    from datetime import datetime

    from medtune.feedback.store import JudgmentView

    return JudgmentView(
        **{**record, "flags": tuple(record["flags"]), "created_at": datetime.fromisoformat(record["created_at"])}
    )


def read_judgments(run: RunFolder) -> list:
    """The judgments the feedback stage copied from the store (``JudgmentView``s, ordered by id)."""
    return [judgment_from_record(r) for r in read_jsonl(run.sub(*JUDGMENTS.parts))]


def read_items(run: RunFolder, path: Path) -> list:
    """Aggregated judged items (``ItemFeedback``) the feedback stage wrote (train or held-out)."""
    from medtune.feedback.training_data import ItemFeedback

    return [ItemFeedback.from_record(r) for r in read_jsonl(run.sub(*path.parts))]


def simulated_reviewer_names(count: int) -> list[str]:
    """One simulated reviewer per judgment an item needs (``simulated-chrf``, ``simulated-chrf-2``, ...)."""
    from medtune.feedback.simulate import SIMULATED_REVIEWER

    return [SIMULATED_REVIEWER if k == 0 else f"{SIMULATED_REVIEWER}-{k + 1}" for k in range(count)]


def shown_url(url: str) -> str:
    """A database URL as run.json and messages show it: any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class FullTrainingStages(RlaifStages):
    """The stage functions of one full-training run (data, SFT and loading as the rlaif pipeline's)."""

    def store_url(self) -> str:
        from medtune.feedback.store import database_url

        db = self.recipe.feedback.db
        return database_url(db if db is not None else str(self.run.sub(STORE_FILE).resolve()))

    @property
    def project(self) -> str:
        return self.recipe.feedback.project or self.recipe.name

    def open_store(self):
        from medtune.feedback.store import FeedbackStore

        return FeedbackStore(self.store_url())

    def prepare(self) -> dict:
        return prepare_full_training_data(self.recipe, self.run.sub("data"), self.log)

    def score_test(self, name: str, model: str) -> dict:
        """One model on the test split (``eval/<name>/test``)."""
        from medtune.models.device import release_host_memory
        from medtune.pipeline.rlaif_eval import score_test_translations

        loaded = self.load(model)
        result = score_test_translations(self, loaded, name, self.data())
        del loaded
        release_host_memory()
        return {"model": model, **result}

    def rlhf_model(self) -> str:
        return self.run.done("rlhf")["rlhf_model"]

    # --- the stages of the feedback loop ---------------------------------------------------------

    def queue(self) -> dict:
        """The SFT model translates the feedback set into the store; ``queue/items.jsonl`` lists the items."""
        from medtune.feedback.queue import queue_translations
        from medtune.models.device import release_host_memory

        r, d = self.recipe, self.recipe.data
        rows = feedback_rows(self.run.sub("data"))
        model_id = self.sft_model()
        version = self.run.done("sft")["fingerprint"][:12]  # the SFT model exactly: a re-trained one queues anew
        loaded = self.load(model_id)
        with self.open_store() as store:
            queued = queue_translations(
                store,
                self.project,
                loaded,
                rows,
                src_col=d.src_col,
                ref_col=d.tgt_col,
                id_col="id",
                model_id=model_id,
                model_version=version,
                reviewers_per_item=r.feedback.reviewers_per_item,
                batch_size=r.eval.batch_size,
                max_new_tokens=r.eval.max_new_tokens,
                log=self.log,
            )
            # By id: an SFT model retrained to the same weights translates as before, and its translations are
            # the items already queued (under the earlier version), judgments included.
            wanted = set(queued.item_ids)
            items = [i for i in store.items(self.project) if i.id in wanted]
        added, present = queued.added, queued.present
        del loaded
        release_host_memory()
        write_jsonl(self.run.sub(*QUEUED.parts), [asdict(i) for i in items])
        self.log(f"queue: {len(items)} translations in project {self.project} ({added} new, {present} already there).")
        return {
            "db": shown_url(self.store_url()),
            "project": self.project,
            "queued": len(items),
            "added": added,
            "already_present": present,
            "model_id": model_id,
            "model_version": version,
            "reviewers_per_item": r.feedback.reviewers_per_item,
        }

    def _waiting_error(self, done: int, total: int) -> MedtuneError:
        f = self.recipe.feedback
        db, project = shown_url(self.store_url()), self.project
        return MedtuneError(
            f"The feedback round waits for reviewers: {done} of the {total} translations queued in project {project} "
            f"of {db} have {f.reviewers_per_item} judgment(s) (feedback.reviewers_per_item). Add reviewers with "
            f"'medtune feedback add-reviewer NAME --db {db}', let them judge in 'medtune feedback serve --db {db} "
            f"--project {project}', then continue this run with 'medtune run {self.recipe.name} --resume' (and the "
            "same --set options). The finished stages are kept; feedback.reviewers=simulated judges offline instead."
        )

    def feedback(self) -> dict:
        """Judge the queued items (simulated) or check that reviewers did (human); snapshot and split the judgments."""
        from medtune.feedback.simulate import simulate_reviews
        from medtune.feedback.training_data import item_feedback, split_heldout

        r, f = self.recipe, self.recipe.feedback
        queued = {row["id"] for row in read_jsonl(self.run.sub(*QUEUED.parts))}
        with self.open_store() as store:
            if f.reviewers == "simulated":
                for name in simulated_reviewer_names(f.reviewers_per_item):
                    simulate_reviews(store, self.project, reviewer=name, log=self.log)
            judgments = [j for j in store.judgments(self.project) if j.item_id in queued]
        counts = Counter(j.item_id for j in judgments)
        done = sum(counts[i] >= f.reviewers_per_item for i in queued)
        if done < len(queued):
            raise self._waiting_error(done, len(queued))
        items = item_feedback(judgments)
        train, heldout = split_heldout(items, f.heldout, r.seed)
        write_jsonl(self.run.sub(*JUDGMENTS.parts), [judgment_record(j) for j in judgments])
        write_jsonl(self.run.sub(*TRAIN_ITEMS.parts), [i.to_record() for i in train])
        write_jsonl(self.run.sub(*HELDOUT_ITEMS.parts), [i.to_record() for i in heldout])
        simulated = sum(j.simulated for j in judgments)
        self.log(
            f"feedback: {len(judgments)} judgments of {len(items)} items ({simulated} simulated); "
            f"{len(train)} items train RLHF, {len(heldout)} held out."
        )
        return {
            "reviewers": f.reviewers,
            "judgments": len(judgments),
            "items": len(items),
            "simulated_judgments": simulated,
            "reviewer_names": sorted({j.reviewer for j in judgments}),
            "train_items": len(train),
            "heldout_items": len(heldout),
        }

    def rlhf(self) -> dict:
        """Training from the judged items (``feedback.objective``), from the SFT model into ``output_dir``."""
        from medtune.feedback.train import train_from_feedback
        from medtune.models.device import release_host_memory

        items = read_items(self.run, TRAIN_ITEMS)
        self.run.start_training()  # stale checkpoints of another training are dropped
        trained = train_from_feedback(
            self.recipe, items, self.sft_model(), str(self.recipe.output_dir), self.resume, self.log
        )
        remove_checkpoints(trained.path)  # the saved model replaces them
        release_host_memory()  # the models are scored next, in this process
        history = getattr(trained.result, "metric_history", [])
        return {
            "rlhf_model": str(trained.path),
            "objective": self.recipe.feedback.objective,
            "items": len(items),
            **train_record(trained),
            "metric_history": [list(h) for h in history],
        }

    def eval_post_edits(self) -> dict:
        """SFT and RLHF on the held-out judged items: preference for the post-edits and closeness to them.

        Writes ``eval/post_edits/preference/<model>`` (log-probability margins, :mod:`medtune.feedback.heldout`)
        and ``eval/post_edits/translation/<model>`` (translations scored against the post-edits).
        """
        from medtune.eval.post_edits import evaluate_against_post_edits, post_edited
        from medtune.feedback.heldout import evaluate_post_edit_margin
        from medtune.models.device import release_host_memory

        r, e = self.recipe, self.recipe.eval
        heldout = read_items(self.run, HELDOUT_ITEMS)
        if not post_edited(heldout):
            return {
                "skipped": f"no held-out judged item with a post-edit ({len(heldout)} held out, "
                f"feedback.heldout={r.feedback.heldout})"
            }
        models = {"sft": self.sft_model(), "rlhf": self.rlhf_model()}
        record: dict = {"heldout_items": len(heldout)}
        record["preference"] = evaluate_post_edit_margin(
            {name: (lambda m=model: self.load(m)) for name, model in models.items()},
            heldout,
            self.run.sub(*POST_EDITS.parts, "preference"),
            seed=r.seed,
            batch_size=e.batch_size,
            max_length=r.train.max_length,
            src_lang=r.data.src_lang,
            tgt_lang=r.data.tgt_lang,
            log=self.log,
        )
        for name, model in models.items():
            loaded = self.load(model)
            record[name] = evaluate_against_post_edits(
                loaded,
                heldout,
                self.run.sub(*POST_EDITS.parts, "translation", name),
                batch_size=e.batch_size,
                max_new_tokens=e.max_new_tokens,
                src_lang=r.data.src_lang,
                tgt_lang=r.data.tgt_lang,
                label=f"{name}:post-edits",
            )
            self.log(f"{name} against the held-out post-edits: chrF {record[name]['chrf']:.2f} (n={record[name]['n']})")
            del loaded
            release_host_memory()
        return record

    def report(self) -> dict:
        from medtune.report.full_training import write_full_training_report

        summary = write_full_training_report(self.recipe, self.run)
        return {"report": summary["report_html"], "summary": str(self.run.sub("summary.json"))}


def full_training_stages(recipe: Recipe, run: RunFolder, log=print) -> list:
    """The stages of a full-training run, in order, with what each reads and writes (``medtune train`` stops after rlhf)."""
    from medtune.pipeline.stages import Stage
    from medtune.train.distributed import world

    processes = world()[1]
    if processes > 1:  # every process refuses, so none waits for the others
        # its rounds queue translations for people and wait on the feedback store: one process drives them
        raise MedtuneError(
            f"The full_training pipeline runs in one process, but {processes} were started (WORLD_SIZE is set by "
            "torchrun/accelerate launch): start 'medtune run' without the launcher."
        )
    s = FullTrainingStages(recipe, run, log)
    store = ("feedback.db", "feedback.project")
    return [
        Stage("data", s.prepare, (*DATA_READS, "feedback.items"), files=DATA_FILES, outputs=("data",)),
        Stage("eval_base", lambda: s.score_test("base", recipe.model), EVAL_READS, ("data",), outputs=("eval/base",)),
        Stage("sft", s.sft, SFT_READS, ("data",), outputs=(SFT_FOLDER,)),
        Stage(
            "eval_sft", lambda: s.score_test("sft", s.sft_model()), EVAL_READS, ("data", "sft"), outputs=("eval/sft",)
        ),
        Stage(
            "queue",
            s.queue,
            ("device", "eval.dtype", "eval.batch_size", "eval.max_new_tokens", *store, "feedback.reviewers_per_item"),
            ("data", "sft"),
            outputs=("queue",),
        ),
        Stage(
            "feedback",
            s.feedback,
            ("seed", *store, "feedback.reviewers", "feedback.reviewers_per_item", "feedback.heldout"),
            ("queue",),
            outputs=("feedback",),
        ),
        Stage(
            "rlhf",
            s.rlhf,
            ("model", "seed", "device", "output_dir", "train.*", "feedback.*"),
            ("sft", "feedback"),
            outputs=(str(Path(recipe.output_dir).resolve()),),  # a folder keeps its checkpoints/ when set aside
        ),
        Stage(
            "eval_rlhf",
            lambda: s.score_test("rlhf", s.rlhf_model()),
            EVAL_READS,
            ("data", "rlhf"),
            outputs=("eval/rlhf",),
        ),
        Stage(
            "eval_post_edits",
            s.eval_post_edits,
            (*EVAL_READS, "train.max_length", "data.src_lang", "data.tgt_lang"),
            ("feedback", "sft", "rlhf"),
            outputs=(str(POST_EDITS),),
        ),
        Stage(
            "report",
            s.report,
            ("*",),
            ("data", "eval_base", "sft", "eval_sft", "queue", "feedback", "rlhf", "eval_rlhf", "eval_post_edits"),
            outputs=("report.html", "report.md", "summary.json"),
        ),
    ]


TRAIN_STAGES = ("data", "sft", "queue", "feedback", "rlhf")  # what ``medtune train`` runs


def trained_model(run: RunFolder) -> Path:
    """The RLHF model folder the finished rlhf stage recorded."""
    return Path(run.done("rlhf")["rlhf_model"])
