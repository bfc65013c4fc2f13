"""The translation task's data stage: load, validate, deduplicate and split parallel text as a stream.

A corpus larger than memory goes through in two passes. The first reads each source row by row,
validates it and spools the kept pairs to scratch files (``data/pair_spool.py``: memory keeps about
40 bytes a pair). The split is then planned on row indices (``data/split.py``), and the second pass
writes the split files by reading the chosen pairs back. Outputs equal the in-memory way's.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from medtune.data.digest import TextDigests
from medtune.data.glossary import Term, load_glossary
from medtune.data.io import DEMO_PREFIX, read_jsonl, write_jsonl
from medtune.data.pair_spool import PairSpool, spool_valid_pairs
from medtune.data.parallel import Pair, iter_pairs, pair_columns, pairs_from_records
from medtune.data.split import check_split_settings, split_rows
from medtune.data.validate import PairChecks, ValidationReport
from medtune.recipes.schema import Recipe

SPLITS = ("train", "dev", "test", "general")
RECIPE_COLUMN_OPTIONS = "--set data.src_col=... --set data.tgt_col=..."  # run/train have no --src-col
SCRATCH = "scratch"  # sub-folder of the data folder holding the spooled pairs while the stage runs


@dataclass
class PreparedData:
    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]
    general: list[Pair]
    glossary: list[Term]


def read_translation_data(recipe: Recipe, folder: Path) -> PreparedData:
    """The splits the data stage wrote to ``folder`` (``<run>/data``), and the recipe's glossary."""
    glossary = load_glossary(recipe.data.glossary) if recipe.data.glossary else []
    splits = {s: pairs_from_records(read_jsonl(folder / f"{s}.jsonl")) for s in SPLITS}
    return PreparedData(**splits, glossary=glossary)


def prepare_translation_data(recipe: Recipe, folder: Path, log=print) -> dict[str, int]:
    """Load, validate and split the recipe's data; write the splits and ``validation.json`` to ``folder``.

    Memory grows with the number of pairs (tens of bytes each), never with the text.

    Returns:
        The number of pairs in each split.
    Raises:
        MedtuneError: bad split settings, unreadable data, ``data.on_bad_rows=fail`` with a bad row, or
            too few pairs to split.
    """
    d = recipe.data
    check_split_settings(0.0 if d.test else d.test_size, d.dev_size, d.split)
    if d.glossary:
        load_glossary(d.glossary)  # a bad glossary fails before the long pass over the corpus, not after
    reports: list[ValidationReport] = []
    with ExitStack() as scratch:
        scratch.callback(shutil.rmtree, folder / SCRATCH, ignore_errors=True)  # runs last: after the spools close

        def load(spec: str, name: str, exclude_sources: TextDigests | None = None) -> PairSpool:
            columns = pair_columns(spec, d.src_col, d.tgt_col, d.src_lang, d.tgt_lang)
            how = _demo_columns(name) if spec.startswith(DEMO_PREFIX) else RECIPE_COLUMN_OPTIONS
            pairs = iter_pairs(spec, *columns, doc_col=d.doc_col, column_options=how)
            spool = scratch.enter_context(PairSpool(folder / SCRATCH / f"{name}.jsonl", d.split))
            checks = PairChecks(name, d.max_length_ratio, exclude_sources=exclude_sources)
            reports.append(spool_valid_pairs(pairs, checks, spool, d.on_bad_rows))
            return spool

        if d.test:
            test_spool = load(d.test, "test")
            test_rows: Sequence[int] = range(len(test_spool))
            pool = load(d.train, "train", exclude_sources=_sources(test_spool, test_rows))
            train_rows, dev_rows, _ = split_rows(pool.groups, 0.0, d.dev_size, recipe.seed, reports[-1])
        else:
            pool = test_spool = load(d.train, "train")
            train_rows, dev_rows, test_array = split_rows(
                pool.groups, d.test_size, d.dev_size, recipe.seed, reports[-1]
            )
            test_rows = test_array.tolist()
        general = load(d.general, "general") if d.general else None
        held_out = _sources(test_spool, test_rows)
        if general is not None:
            held_out = held_out.union(_sources(general, range(len(general))))
        clean = [i for i in train_rows.tolist() if not held_out.has_digest(pool.source_digest(i))]
        leaked = len(train_rows) - len(clean)
        if leaked:  # same sentence in train and a held-out set: drop it from train, say so
            log(f"Dropped {leaked} training pair(s) whose source is also in the test/general sets.")
        train_records: Iterable[dict] = pool.records(clean)
        n_train = len(clean)
        if d.replay and d.replay_fraction > 0:
            replay = load(d.replay, "replay", exclude_sources=held_out)
            want = round(n_train * d.replay_fraction / (1 - d.replay_fraction))
            # sample() picks positions from the length alone, so sampling indices picks the pairs a list would.
            picked = random.Random(recipe.seed).sample(range(len(replay)), min(want, len(replay)))
            train_records, n_train = chain(train_records, replay.records(picked)), n_train + len(picked)
            log(f"Replay: mixed {len(picked)} general-domain pairs into training.")
        for report in reports:
            log(report.summary())
        splits: dict[str, tuple[Iterable[dict], int]] = {
            "train": (train_records, n_train),
            "dev": (pool.records(dev_rows.tolist()), len(dev_rows)),
            "test": (test_spool.records(test_rows), len(test_rows)),
            "general": (general.records(range(len(general))), len(general)) if general is not None else ([], 0),
        }
        for name, (records, _) in splits.items():
            write_jsonl(folder / f"{name}.jsonl", records)
    validation = {"reports": [r.to_dict() for r in reports], "leaked_from_train": leaked}
    (folder / "validation.json").write_text(json.dumps(validation, indent=2, ensure_ascii=False), encoding="utf-8")
    return {name: count for name, (_, count) in splits.items()}


def _sources(spool: PairSpool, rows: Iterable[int]) -> TextDigests:
    """The source sentences of ``rows`` of ``spool``, as digests."""
    return TextDigests.of_digests(spool.source_digest(i) for i in rows)


def _demo_columns(name: str) -> str:
    skip = " or set data.general=null (no forgetting check)" if name == "general" else ""
    return (
        "data.src_lang/data.tgt_lang: bundled demo files hold English/Spanish pairs in columns named by "
        f"language code; for another language pair give your own file as data.{name}{skip}"
    )
