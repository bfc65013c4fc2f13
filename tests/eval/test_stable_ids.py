"""Stable ids in the per-item outputs of every task: the data's own ``id`` when present, else a hash of
the item's text that is the same across evaluations, folders, processes and machines."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medtune.data.chat import load_conversations
from medtune.data.ids import stable_ids, text_id
from medtune.data.mcq import load_mcq
from medtune.data.parallel import load_pairs, pairs_from_records
from medtune.data.text import load_documents
from medtune.data.validate import validate_pairs
from medtune.eval.mcq import evaluate_mcq
from medtune.eval.perplexity import evaluate_perplexity
from medtune.eval.translation import evaluate_translation
from medtune.models.loading import LoadedModel, load_model

QUESTIONS = [
    {"question": "Which organ makes insulin?", "options": ["Liver", "Pancreas", "Kidney"], "answer": "B"},
    {"question": "Normal adult heart rate?", "options": ["60-100", "20-40", "150-200"], "answer": "A"},
]
DOCUMENTS = [{"text": "Keep the wound clean and dry."}, {"text": "Drink plenty of water."}]
CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "I have a fever."}, {"role": "assistant", "content": "Rest."}]},
    {"messages": [{"role": "user", "content": "My knee hurts."}, {"role": "assistant", "content": "Ice it."}]},
]
PAIRS = [
    {"en": "Take the tablet with food.", "es": "Tome la tableta con comida."},
    {"en": "Drink plenty of water.", "es": "Beba mucha agua."},
    {"en": "Drink plenty of water.", "es": "Tome mucha agua."},  # same source, another reference
]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def output_ids(folder: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (folder / "outputs.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def loaded(tiny_gemma_dir) -> LoadedModel:
    return load_model(str(tiny_gemma_dir))


@pytest.fixture(scope="module")
def chat_loaded(tiny_chatml_dir) -> LoadedModel:
    return load_model(str(tiny_chatml_dir))


def quiet(message: str) -> None:
    pass


def test_text_id_is_a_short_sha256_the_same_in_another_process():
    assert text_id("a", "b") == hashlib.sha256(b"a\x1fb").hexdigest()[:16]
    assert text_id("a", "b") != text_id("ab") != text_id("b", "a")
    code = "from medtune.data.ids import text_id; print(text_id('Fiebre alta', 'ñ'))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}  # Python's own str hash changes; ours must not
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip() == text_id("Fiebre alta", "ñ")


def test_stable_ids_keep_own_ids_and_number_repeated_texts():
    ids = stable_ids(["x7", None, None, "", None], [("a",), ("b",), ("a",), ("b",), ("b",)])
    assert ids == ["x7", text_id("b"), text_id("a"), f"{text_id('b')}~2", f"{text_id('b')}~3"]


def test_translation_ids_equal_across_evaluations_and_folders(loaded, tmp_path):
    runs = []
    for folder in ("one", "two"):
        pairs, _ = validate_pairs(load_pairs(write_jsonl(tmp_path / folder / "data.jsonl", PAIRS)), "eval")
        evaluate_translation(loaded, pairs, tmp_path / folder / "out", max_new_tokens=4, label=None)
        runs.append(output_ids(tmp_path / folder / "out"))
    src = PAIRS[1]["en"]
    assert runs[0] == runs[1] == [text_id(PAIRS[0]["en"]), text_id(src), f"{text_id(src)}~2"]


def test_translation_ids_are_the_data_ids_and_survive_validation_and_saving(loaded, tmp_path):
    rows = [{**row, "id": f"seg-{i}"} for i, row in enumerate(PAIRS)]
    pairs, _ = validate_pairs(load_pairs(write_jsonl(tmp_path / "data.jsonl", rows)), "eval")
    assert pairs_from_records([p.to_record() for p in pairs]) == pairs  # a run's saved split keeps them
    evaluate_translation(loaded, pairs, tmp_path / "out", max_new_tokens=4, label=None)
    assert output_ids(tmp_path / "out") == ["seg-0", "seg-1", "seg-2"]


def test_mcq_ids_equal_across_evaluations_and_are_the_data_ids_when_present(loaded, tmp_path):
    runs = []
    for folder in ("one", "two"):
        items, _ = load_mcq(write_jsonl(tmp_path / folder / "q.jsonl", QUESTIONS), log=quiet)
        evaluate_mcq(loaded, items, tmp_path / folder / "out", n_bootstrap=10, label=None)
        runs.append(output_ids(tmp_path / folder / "out"))
    expected = [text_id("Which organ makes insulin?", "A. Liver", "B. Pancreas", "C. Kidney"),
                text_id("Normal adult heart rate?", "A. 60-100", "B. 20-40", "C. 150-200")]  # fmt: skip
    assert runs[0] == runs[1] == expected
    with_ids = [{**q, "id": f"q{i}"} for i, q in enumerate(QUESTIONS)]
    items, _ = load_mcq(write_jsonl(tmp_path / "ids" / "q.jsonl", with_ids), log=quiet)
    evaluate_mcq(loaded, items, tmp_path / "ids" / "out", n_bootstrap=10, label=None)
    assert output_ids(tmp_path / "ids" / "out") == ["q0", "q1"]


def test_perplexity_ids_equal_across_evaluations_and_rows_carry_nll_and_tokens(chat_loaded, tmp_path):
    runs = []
    for folder in ("one", "two"):
        docs, _ = load_documents(write_jsonl(tmp_path / folder / "d.jsonl", DOCUMENTS), log=quiet)
        chats, _ = load_conversations(write_jsonl(tmp_path / folder / "c.jsonl", CONVERSATIONS), log=quiet)
        evaluate_perplexity(chat_loaded, docs, tmp_path / folder / "docs", label=None)
        evaluate_perplexity(chat_loaded, chats, tmp_path / folder / "chats", label=None)
        runs.append((output_ids(tmp_path / folder / "docs"), output_ids(tmp_path / folder / "chats")))
    assert runs[0] == runs[1]
    assert runs[0][0] == [text_id(d["text"]) for d in DOCUMENTS]
    assert len(set(runs[0][1])) == 2 and all(len(i) == 16 for i in runs[0][1])
    rows = [json.loads(line) for line in (tmp_path / "one" / "docs" / "outputs.jsonl").read_text().splitlines()]
    metrics = json.loads((tmp_path / "one" / "docs" / "metrics.json").read_text())
    assert sum(r["tokens"] for r in rows) == metrics["n_tokens"]
    assert sum(r["nll"] for r in rows) / metrics["n_tokens"] == pytest.approx(metrics["mean_nll"], abs=1e-6)
    docs, _ = load_documents(write_jsonl(tmp_path / "ids" / "d.jsonl", [{**d, "id": "doc-a"} for d in DOCUMENTS[:1]]))
    evaluate_perplexity(chat_loaded, docs, tmp_path / "ids" / "out", label=None)
    assert output_ids(tmp_path / "ids" / "out") == ["doc-a"]
