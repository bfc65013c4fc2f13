"""The rlaif pipeline's data stage: SFT splits, the prompts that get candidates, and the held-out sets.

Three kinds of data, one shape of output (``<run>/data``):

* task qa, multiple-choice questions (the bundled demo set, MedMCQA, PubMedQA's letters): SFT on
  "question -> ``Answer: C. <option>`` + explanation" conversations; the training questions are the
  candidates' prompts (judged by their option letter against ``gold``); held-out questions give
  MCQ accuracy and the win-rate prompts.
* task qa with ``data.reference_col`` (e.g. PubMedQA's ``long_answer``): free-text answers, SFT on
  "question -> reference answer"; prompts carry the reference text (and a row's ``key_points``);
  held-out questions give the win-rate prompts only (there is no multiple-choice test).
* task translation: SFT on pairs; the training sources are the prompts (judged against their
  reference translation); the test split gives chrF++/BLEU/TER and the win-rate prompts.

Prompts are :class:`medtune.rlaif.prompt_items.PromptItem` records (``{id, prompt, gold, reference,
key_points}``): ``prompt`` is a source sentence (translation) or chat messages ending with the user turn (qa).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medtune.data.chat import Conversation
from medtune.data.digest import TextDigests
from medtune.data.io import DEMO_PREFIX, columns_of, read_jsonl, read_rows, write_jsonl
from medtune.data.mcq import MCQItem, load_mcq, mcq_from_records
from medtune.data.parallel import Pair, load_pairs, pair_columns, pairs_from_records
from medtune.data.prompts import mcq_to_messages
from medtune.data.sampling import sample_items
from medtune.data.split import split_pairs
from medtune.data.validate import ValidationReport, validate_pairs
from medtune.errors import MedtuneError
from medtune.pipeline.common import holdout_split
from medtune.recipes.schema import Recipe

# Files of <run>/data; each holds JSON records.
FILES = ("train", "dev", "prompts", "heldout_prompts", "mcq_pool", "mcq_test", "test")


@dataclass
class RlaifData:
    """The data stage's output: SFT splits (conversations or pairs), prompts, held-out sets."""

    train: list[dict] = field(default_factory=list)  # Conversation or Pair records
    dev: list[dict] = field(default_factory=list)
    prompts: list[dict] = field(default_factory=list)  # training prompts: candidates are generated for these
    heldout_prompts: list[dict] = field(default_factory=list)  # win-rate prompts (never trained on)
    mcq_pool: list[dict] = field(default_factory=list)  # qa: training questions (the base's few-shot examples)
    mcq_test: list[dict] = field(default_factory=list)  # qa: held-out multiple-choice questions
    test: list[dict] = field(default_factory=list)  # translation: held-out pairs

    def counts(self) -> dict[str, int]:
        """Sizes of the non-empty sets, by file name."""
        return {name: len(getattr(self, name)) for name in FILES if getattr(self, name)}

    def write(self, folder: Path) -> None:
        for name in FILES:
            write_jsonl(folder / f"{name}.jsonl", getattr(self, name))

    @classmethod
    def read(cls, folder: Path) -> RlaifData:
        return cls(**{name: read_jsonl(folder / f"{name}.jsonl") for name in FILES})

    def conversations(self, split: str) -> list[list[dict]]:
        """A qa split's conversations as message lists (what ``train_chat`` takes)."""
        return [record["messages"] for record in getattr(self, split)]

    def pairs(self, split: str) -> list[Pair]:
        """A translation split's pairs."""
        return pairs_from_records(getattr(self, split))

    def mcq(self, split: str) -> list[MCQItem]:
        return mcq_from_records(getattr(self, split))


def prepare_rlaif_data(recipe: Recipe, folder: Path, log=print) -> dict:
    """Load, validate, sample and split the recipe's data; write ``folder/*.jsonl`` and ``validation.json``.

    Returns:
        The stage record: the size of every set, and ``answers`` (``letter``, ``free_text`` or
        ``translation``: how candidates are judged).
    Raises:
        MedtuneError: unreadable data, a missing ``data.reference_col`` column, too few rows to split.
    """
    if recipe.task == "translation":
        data, reports, answers = *_translation_data(recipe, log), "translation"
    elif recipe.data.reference_col:
        data, reports, answers = *_free_text_data(recipe, log), "free_text"
    else:
        data, reports, answers = *_mcq_data(recipe, log), "letter"
    folder.mkdir(parents=True, exist_ok=True)
    data.write(folder)
    validation = [r.to_dict() for r in reports]
    (folder / "validation.json").write_text(json.dumps(validation, indent=2, ensure_ascii=False), encoding="utf-8")
    return {**data.counts(), "answers": answers}


def _prompt_records(items) -> list[dict]:
    return [asdict(item) for item in items]


def prompt_items(records: list[dict]):
    """Prompt records written by the data stage, as ``PromptItem``s again."""
    from medtune.rlaif.prompt_items import PromptItem

    return [PromptItem(**{**r, "key_points": tuple(r.get("key_points") or ())}) for r in records]


def _mcq_data(recipe: Recipe, log) -> tuple[RlaifData, list[ValidationReport]]:
    from medtune.rlaif.prompt_items import prompt_items_from_mcq

    d = recipe.data
    pool, report = load_mcq(d.train, d.on_bad_rows, name="train", log=log)
    reports = [report]
    pool = sample_items(pool, d.sample, recipe.seed)
    if d.test:
        test, test_report = load_mcq(d.test, d.on_bad_rows, name="test", log=log)
        reports.append(test_report)
        asked = {item.question for item in test}
        pool = [item for item in pool if item.question not in asked]
    else:
        pool, test = holdout_split(pool, d.test_size, recipe.seed, "test_size", report)
        if not test:
            raise MedtuneError("data.test_size gave no test questions; raise it or set data.test.")
    conversations = [Conversation(tuple(mcq_to_messages(i, d.system_prompt)), i.id, i.origin) for i in pool]
    train, dev = holdout_split(conversations, d.dev_size, recipe.seed + 1, "dev_size")
    trained = {c.id for c in train}
    data = RlaifData(
        train=[c.to_record() for c in train],
        dev=[c.to_record() for c in dev],
        prompts=_prompt_records(prompt_items_from_mcq([i for i in pool if i.id in trained], d.system_prompt)),
        heldout_prompts=_prompt_records(prompt_items_from_mcq(test, d.system_prompt)),
        mcq_pool=[i.to_record() for i in pool],
        mcq_test=[i.to_record() for i in test],
    )
    return data, reports


def _free_text_data(recipe: Recipe, log) -> tuple[RlaifData, list[ValidationReport]]:
    """Questions with a reference answer in ``data.reference_col`` (and ``context`` when the rows have one)."""
    from medtune.rlaif.prompt_items import prompt_items_from_qa

    d = recipe.data

    def load(spec: str, name: str):
        rows = read_rows(spec)
        context = "context" if "context" in columns_of(rows) else None
        items = prompt_items_from_qa(
            rows, "question", d.reference_col, context_col=context, system=d.system_prompt,
            on_bad_rows=d.on_bad_rows, name=name, log=log,
        )  # fmt: skip
        return items, ValidationReport(name=name, total=len(rows), kept=len(items), unit="questions")

    items, report = load(d.train, "train")
    pool = sample_items(items, d.sample, recipe.seed)
    if d.test:
        test, _ = load(d.test, "test")
        asked = {item.id for item in test}
        pool = [item for item in pool if item.id not in asked]
    else:
        pool, test = holdout_split(pool, d.test_size, recipe.seed, "test_size", report)
    if not test:
        raise MedtuneError("data.test_size gave no held-out questions for the win-rate; raise it.")
    conversations = [
        Conversation((*item.prompt, {"role": "assistant", "content": item.reference}), item.id) for item in pool
    ]
    train, dev = holdout_split(conversations, d.dev_size, recipe.seed + 1, "dev_size")
    trained = {c.id for c in train}
    data = RlaifData(
        train=[c.to_record() for c in train],
        dev=[c.to_record() for c in dev],
        prompts=_prompt_records(item for item in pool if item.id in trained),
        heldout_prompts=_prompt_records(test),
    )
    return data, [report]


def _translation_data(recipe: Recipe, log) -> tuple[RlaifData, list[ValidationReport]]:
    from medtune.rlaif.prompt_items import prompt_items_from_pairs

    d = recipe.data

    def load(spec: str, name: str, exclude: TextDigests | None = None) -> tuple[list[Pair], ValidationReport]:
        columns = pair_columns(spec, d.src_col, d.tgt_col, d.src_lang, d.tgt_lang)
        how = "bundled demo files hold en/es columns" if spec.startswith(DEMO_PREFIX) else "--set data.src_col=..."
        pairs = load_pairs(spec, *columns, doc_col=d.doc_col, column_options=how)
        kept, report = validate_pairs(pairs, name, d.on_bad_rows, d.max_length_ratio, exclude_sources=exclude)
        log(report.summary())
        return kept, report

    if d.test:
        test, _ = load(d.test, "test")
        pool, report = load(d.train, "train", exclude=TextDigests(p.src for p in test))
        train, dev, _ = split_pairs(
            sample_items(pool, d.sample, recipe.seed), 0.0, d.dev_size, recipe.seed, d.split, validation=report
        )
    else:
        pool, report = load(d.train, "train")
        pool = sample_items(pool, d.sample, recipe.seed)
        train, dev, test = split_pairs(pool, d.test_size, d.dev_size, recipe.seed, d.split, validation=report)
    held_out = TextDigests(p.src for p in test)
    train = [p for p in train if p.src not in held_out]
    data = RlaifData(
        train=[p.to_record() for p in train],
        dev=[p.to_record() for p in dev],
        prompts=_prompt_records(prompt_items_from_pairs(train)),
        heldout_prompts=_prompt_records(prompt_items_from_pairs(test)),
        test=[p.to_record() for p in test],
    )
    return data, [report]
