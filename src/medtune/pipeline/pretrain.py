"""The pretrain task's stages: data -> eval_base -> train -> eval_tuned -> report.

Continued pre-training on raw medical text: held-out documents are scored by perplexity before
and after (and general-domain text, when given, as the forgetting check); sample continuations
of held-out openings show the change in style.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from medtune.data.digest import TextDigests, text_digest
from medtune.data.io import read_jsonl, write_jsonl
from medtune.data.sampling import sample_items
from medtune.data.spool import RecordSpool
from medtune.data.text import Document, DocumentChecks, documents_from_records, iter_text_rows
from medtune.data.validate import ValidationReport
from medtune.pipeline.common import Memo, before_after_stages, data_stage, holdout_split
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

SPLITS = ("train", "dev", "test", "general")
SCRATCH = "scratch"  # sub-folder of the data folder holding the spooled documents while the stage runs
TOKEN_CACHE = "token_cache"  # sub-folder of the run folder: the training splits' tokens (train/token_cache.py)
OPENING_WORDS = 24  # words of a held-out document given as the prompt of a sample continuation


@dataclass
class TextData:
    train: list[Document]
    dev: list[Document]
    test: list[Document]
    general: list[Document] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}


def read_text_data(folder: Path, splits: tuple[str, ...] = SPLITS) -> TextData:
    """The ``splits`` the data stage wrote to ``folder`` (``<run>/data``); the others are left empty."""
    read = {n: documents_from_records(read_jsonl(folder / f"{n}.jsonl")) if n in splits else [] for n in SPLITS}
    return TextData(**read)


def prepare_text_data(recipe: Recipe, folder: Path, log=print) -> dict[str, int]:
    """Load, validate, sample and split documents as a stream; write the splits to ``folder``.

    Kept documents are spooled to scratch files (``data/spool.py``) while memory keeps an offset and a
    16-byte digest each; sampling and splitting pick row indices (the same picks as on lists of
    documents), and the split files are written by reading the chosen documents back.

    Returns:
        The number of documents in each split.
    Raises:
        MedtuneError: unreadable data, ``data.on_bad_rows=fail`` with a bad row, or a split left empty.
    """
    d = recipe.data
    reports: list[ValidationReport] = []
    with ExitStack() as scratch:
        scratch.callback(shutil.rmtree, folder / SCRATCH, ignore_errors=True)  # runs last: after the spools close

        def load(spec: str, text_col: str, name: str) -> RecordSpool:
            spool = scratch.enter_context(RecordSpool(folder / SCRATCH / f"{name}.jsonl"))
            checks = DocumentChecks(name, text_col)
            for row in iter_text_rows(spec, text_col):
                doc = checks.check(row)
                if doc is not None:
                    spool.append(doc.to_record(), text_digest(doc.text))
            reports.append(checks.finish(d.on_bad_rows))
            log(reports[-1].summary())
            return spool

        pool = load(d.train, d.text_col, "train")
        rows = sample_items(range(len(pool)), d.sample, recipe.seed)
        if d.test:
            test = load(d.test, d.text_col, "test")
            test_rows = list(range(len(test)))
            held_out = TextDigests.of_digests(test.digest(i) for i in test_rows)
            rows = [i for i in rows if not held_out.has_digest(pool.digest(i))]
        else:
            test = pool
            rows, test_rows = holdout_split(rows, d.test_size, recipe.seed, "test_size", reports[0])
        train_rows, dev_rows = holdout_split(rows, d.dev_size, recipe.seed + 1, "dev_size", reports[0])
        general = load(d.general, d.general_text_col or d.text_col, "general") if d.general else None
        general_rows = list(range(len(general))) if general is not None else []
        splits = {
            "train": (pool, train_rows),
            "dev": (pool, dev_rows),
            "test": (test, test_rows),
            "general": (general, general_rows),
        }
        for name, (spool, chosen) in splits.items():
            write_jsonl(folder / f"{name}.jsonl", spool.records(chosen) if spool is not None else [])
    return {name: len(chosen) for name, (_, chosen) in splits.items()}


def _continuations(loaded, documents: list[Document], n: int, max_new_tokens: int) -> list[dict]:
    from medtune.generate.engine import SamplingSettings, sample_texts

    chosen = documents[:n]
    if not chosen:
        return []
    openings = [" ".join(doc.text.split()[:OPENING_WORDS]) for doc in chosen]
    settings = SamplingSettings(max_new_tokens=max_new_tokens, stop_token_ids=(loaded.tokenizer.eos_token_id,))
    texts = sample_texts(
        loaded.model, loaded.tokenizer, openings, settings, batch_size=len(openings), add_special_tokens=True
    )
    return [
        {
            "id": doc.id,
            "opening": opening,
            "reference": " ".join(doc.text.split()[OPENING_WORDS:])[:400],
            "output": text.strip(),
        }
        for doc, opening, text in zip(chosen, openings, texts, strict=True)
    ]


def _score(stage: str, loaded, data: TextData, recipe: Recipe, run: RunFolder, log) -> dict:
    from medtune.eval.perplexity import evaluate_perplexity

    e = recipe.eval
    result = {}
    for split in ("test", "general"):
        docs = getattr(data, split)
        docs = docs[: e.limit] if e.limit else docs
        if docs:
            out = run.sub("eval", stage, split)
            result[split] = evaluate_perplexity(loaded, docs, out, e.max_length, e.batch_size, f"{stage}:{split}")
            log(f"{stage} {split}: perplexity {result[split]['perplexity']:.3f} ({result[split]['n_tokens']} tokens)")
    if run.writes:  # a few continuations for the report: the main process alone makes and writes them
        samples = _continuations(loaded, data.test, min(e.report_samples, 6), min(e.max_new_tokens, 60))
        write_jsonl(run.sub("eval", stage, "samples.jsonl"), samples)
    return result


def _train(recipe: Recipe, run: RunFolder, log):
    def train():
        from medtune.train.pretrain import train_pretrain

        splits = run.sub("data")
        return train_pretrain(
            recipe, splits / "train.jsonl", splits / "dev.jsonl", run.sub(TOKEN_CACHE), run.resume_training, log
        )

    return train


def pretrain_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The pretrain recipe's stages: perplexity before, continued pre-training, perplexity after, report.

    Only the held-out splits are read into memory (for scoring); training streams the train split
    through the token cache in ``<run>/token_cache``.
    """
    from medtune.report.pretrain import write_pretrain_report

    held_out = Memo(lambda: read_text_data(run.sub("data"), ("test", "general")))

    def prepare() -> dict:  # the runner runs it on the main process only; the others read its files
        held_out.clear()
        return prepare_text_data(recipe, run.sub("data"), log)

    def counts() -> dict[str, int]:
        return {name: run.done("data")[name] for name in SPLITS}

    return before_after_stages(
        run,
        recipe,
        data_stage(prepare),
        lambda stage, loaded: _score(stage, loaded, held_out.get(), recipe, run, log),
        _train(recipe, run, log),
        lambda evaluations, model_dir: write_pretrain_report(recipe, run, counts(), evaluations, model_dir),
    )
