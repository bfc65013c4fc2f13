"""The streamed translation data stage writes what the in-memory one wrote: same split files, row for
row and in order, same validation.json and the same messages, for every way the recipe sets its data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from medtune.data.digest import TextDigests
from medtune.data.io import write_jsonl
from medtune.data.parallel import load_pairs
from medtune.data.split import split_pairs
from medtune.data.validate import validate_pairs
from medtune.errors import MedtuneError
from medtune.pipeline.translation_data import SPLITS, prepare_translation_data
from medtune.recipes.loader import load_recipe


def _in_memory_stage(recipe, folder: Path, log) -> None:
    """The data stage as medtune ran it before it streamed (lists of pairs throughout): the oracle."""
    d = recipe.data
    reports = []

    def load(spec, name, exclude_sources=None):
        pairs = load_pairs(spec, d.src_col, d.tgt_col, doc_col=d.doc_col)
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
    if leaked:
        log(f"Dropped {len(leaked)} training pair(s) whose source is also in the test/general sets.")
        train = [p for p in train if p.src not in held_out]
    if d.replay and d.replay_fraction > 0:
        replay = load(d.replay, "replay", exclude_sources=held_out)
        want = round(len(train) * d.replay_fraction / (1 - d.replay_fraction))
        train = train + random.Random(recipe.seed).sample(replay, min(want, len(replay)))
        log(f"Replay: mixed {min(want, len(replay))} general-domain pairs into training.")
    for rep in reports:
        log(rep.summary())
    for name, pairs in {"train": train, "dev": dev, "test": test, "general": general}.items():
        write_jsonl(folder / f"{name}.jsonl", [p.to_record() for p in pairs])
    validation = {"reports": [r.to_dict() for r in reports], "leaked_from_train": len(leaked)}
    (folder / "validation.json").write_text(json.dumps(validation, indent=2, ensure_ascii=False), encoding="utf-8")


def _corpus(path: Path, rows: int, seed: int, shared: list[str] = ()) -> str:
    """Pairs in uneven, interleaved documents, with duplicates, empty cells, identical sides, over-long
    targets and sources from ``shared`` (which other sets also hold)."""
    rng = random.Random(seed)
    records = []
    for i in range(rows):
        src, tgt = f"Take {i % 53} tablets, note {i}.", f"Tome {i % 53} comprimidos, nota {i}."
        roll = rng.random()
        if roll < 0.08 and records:
            src, tgt = records[-1]["en"], records[-1]["es"]  # an exact duplicate
        elif roll < 0.11:
            tgt = ""
        elif roll < 0.13:
            tgt = src
        elif roll < 0.15:
            tgt = tgt * 6
        elif roll < 0.2 and shared:
            src = rng.choice(shared)
        record = {"en": f"  {src} ", "es": tgt, "id": f"r{i}"}
        if rng.random() > 0.1:
            record["doc_id"] = f"leaflet-{rng.randrange(rows // 6 + 1)}"
        records.append(record)
    write_jsonl(path, records)
    return str(path)


SHARED = [f"Shared sentence {k} about dosage." for k in range(12)]


@pytest.mark.parametrize(
    "layout",
    ["split_from_train", "random_split", "test_file", "general_and_replay", "test_general_replay"],
)
def test_streamed_stage_writes_what_the_in_memory_stage_wrote(tmp_path, layout):
    train = _corpus(tmp_path / "train.jsonl", 900, seed=1, shared=SHARED)
    other = {
        "test": _corpus(tmp_path / "test.jsonl", 80, seed=2, shared=SHARED),
        "general": _corpus(tmp_path / "general.jsonl", 60, seed=3, shared=SHARED),
        "replay": _corpus(tmp_path / "replay.jsonl", 200, seed=4, shared=SHARED),
    }
    sets = [f"data.train={train}", "data.general=null", "data.glossary=null", "seed=11"]
    if layout == "random_split":
        sets.append("data.split=random")
    if layout in ("test_file", "test_general_replay"):
        sets.append(f"data.test={other['test']}")
    if layout in ("general_and_replay", "test_general_replay"):
        sets += [f"data.general={other['general']}", f"data.replay={other['replay']}", "data.replay_fraction=0.1"]
    recipe = load_recipe("translate-en-es", sets)
    streamed, listed = tmp_path / "streamed", tmp_path / "listed"
    streamed.mkdir(), listed.mkdir()
    streamed_log: list[str] = []
    listed_log: list[str] = []
    counts = prepare_translation_data(recipe, streamed, streamed_log.append)
    _in_memory_stage(recipe, listed, listed_log.append)

    assert streamed_log == listed_log
    for name in (*SPLITS, "validation"):
        suffix = ".json" if name == "validation" else ".jsonl"
        assert (streamed / f"{name}{suffix}").read_bytes() == (listed / f"{name}{suffix}").read_bytes(), name
    lines = {name: (streamed / f"{name}.jsonl").read_text(encoding="utf-8").count("\n") for name in SPLITS}
    assert counts == lines and counts["train"] > 500 and counts["test"] > 0
    assert sorted(p.name for p in streamed.iterdir()) == sorted(f"{n}.jsonl" for n in SPLITS) + ["validation.json"]


def test_a_refused_corpus_leaves_no_scratch_files(tmp_path):
    train = _corpus(tmp_path / "train.jsonl", 200, seed=5)
    recipe = load_recipe("translate-en-es", [f"data.train={train}", "data.general=null", "data.on_bad_rows=fail"])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(MedtuneError, match=r"Data set 'train' has \d+ bad row\(s\): .*train.jsonl:\d+"):
        prepare_translation_data(recipe, out, lambda _: None)
    assert list(out.iterdir()) == []
