"""The pretrain task's stages: data -> eval_base -> train -> eval_tuned -> report.

Continued pre-training on raw medical text: held-out documents are scored by perplexity before
and after (and general-domain text, when given, as the forgetting check); sample continuations
of held-out openings show the change in style.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medtune.data.io import read_jsonl, write_jsonl
from medtune.data.sampling import sample_items
from medtune.data.text import Document, documents_from_records, load_documents
from medtune.pipeline.common import Memo, before_after_stages, data_stage, holdout_split
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

SPLITS = ("train", "dev", "test", "general")
OPENING_WORDS = 24  # words of a held-out document given as the prompt of a sample continuation


@dataclass
class TextData:
    train: list[Document]
    dev: list[Document]
    test: list[Document]
    general: list[Document] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}


def read_text_data(run: RunFolder) -> TextData:
    """The splits the data stage wrote to ``<run>/data``."""
    return TextData(*(documents_from_records(read_jsonl(run.sub("data", f"{n}.jsonl"))) for n in SPLITS))


def prepare_text_data(recipe: Recipe, run: RunFolder, log=print) -> TextData:
    """Load, validate, sample and split documents; write the splits to ``<run>/data``."""
    d = recipe.data
    pool, report = load_documents(d.train, d.text_col, d.on_bad_rows, name="train", log=log)
    reports = [report]
    pool = sample_items(pool, d.sample, recipe.seed)
    if d.test:
        test, report = load_documents(d.test, d.text_col, d.on_bad_rows, name="test", log=log)
        reports.append(report)
        held_out = {doc.text for doc in test}
        pool = [doc for doc in pool if doc.text not in held_out]
    else:
        pool, test = holdout_split(pool, d.test_size, recipe.seed, "test_size", reports[0])
    train, dev = holdout_split(pool, d.dev_size, recipe.seed + 1, "dev_size", reports[0])
    general: list[Document] = []
    if d.general:
        general, report = load_documents(d.general, d.general_text_col or d.text_col, d.on_bad_rows, "general", log)
        reports.append(report)
    data = TextData(train, dev, test, general)
    if run.writes:
        for name in SPLITS:
            write_jsonl(run.sub("data", f"{name}.jsonl"), [doc.to_record() for doc in getattr(data, name)])
    return data


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


def _train(recipe: Recipe, run: RunFolder, data: Memo[TextData], log):
    from medtune.train.pretrain import train_pretrain

    def train():
        d = data.get()
        return train_pretrain(
            recipe, [doc.text for doc in d.train], [doc.text for doc in d.dev], run.resume_training, log
        )

    return train


def pretrain_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The pretrain recipe's stages: perplexity before, continued pre-training, perplexity after, report."""
    from medtune.report.pretrain import write_pretrain_report

    data = Memo(lambda: read_text_data(run))

    def prepare() -> dict:
        return data.set(prepare_text_data(recipe, run, log)).counts()

    return before_after_stages(
        run,
        recipe,
        data_stage(prepare),
        lambda stage, loaded: _score(stage, loaded, data.get(), recipe, run, log),
        _train(recipe, run, data, log),
        lambda evaluations, model_dir: write_pretrain_report(recipe, run, data.get().counts(), evaluations, model_dir),
    )
