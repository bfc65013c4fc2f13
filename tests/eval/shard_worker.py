"""Worker for tests/eval/test_sharded_eval.py: every evaluation of medtune.eval on a tiny (ChatML) Gemma.

Run as one process (``python shard_worker.py MODEL OUT``) or under ``accelerate launch``: each evaluation
writes its files into ``OUT/<name>`` (the main process only), and each rank writes the metrics every
evaluation returned, and how many rows its model's forward passes took in each, to ``OUT/rank<r>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from medtune.data.chat import load_conversations
from medtune.data.mcq import load_mcq
from medtune.data.parallel import load_pairs
from medtune.data.preference import PreferencePair
from medtune.data.text import load_documents
from medtune.eval.loglik import continuation_log_probs
from medtune.eval.mcq import evaluate_mcq
from medtune.eval.perplexity import evaluate_perplexity
from medtune.eval.preference import evaluate_preference
from medtune.eval.translation import evaluate_translation
from medtune.models.loading import load_model

QUIET = {"log": lambda *_: None}


def main(model_dir: str, out: str) -> None:
    torch.set_num_threads(1)  # two ranks on a two-core machine, and the same arithmetic in each
    folder = Path(out)
    loaded = load_model(model_dir, dtype="float32", device="cpu", **QUIET)
    pairs = load_pairs("demo:medical_en_es.jsonl")[:5]
    questions = load_mcq("demo:medical_mcq.jsonl", **QUIET)[0][:5]
    documents = load_documents("demo:medical_paragraphs.jsonl", **QUIET)[0][:5]
    dialogues = load_conversations("demo:doctor_patient_dialogues.jsonl", **QUIET)[0][:3]
    preferences = [
        PreferencePair(f"p{i}", pairs[i].src, pairs[i].tgt, pairs[(i + 1) % len(pairs)].tgt) for i in range(len(pairs))
    ]
    rows: dict[str, int] = {"warm-up": 0}  # forward-pass rows per evaluation: the work this process did
    current = ["warm-up"]

    def count_rows(_module, args, kwargs) -> None:
        ids = kwargs.get("input_ids")
        ids = kwargs.get("inputs_embeds") if ids is None else ids
        ids = args[0] if ids is None else ids
        rows[current[0]] += ids.shape[0]

    # the decoder body: every scoring path (generate, full logits, fused-head log-probs) runs it
    loaded.model.model.register_forward_pre_hook(count_rows, with_kwargs=True)

    # the fused head's one-time parity probe (models/scoring.py) runs here, outside the counted evaluations
    continuation_log_probs(loaded.model, loaded.tokenizer.pad_token_id, [([2, 3, 4], [[5]])], 1)

    def counted(name: str, evaluate):
        current[0] = name
        rows[name] = 0
        return evaluate()

    # batch size 1: each item is computed alone, so any process computes it bit for bit alike
    evaluations = {
        "translation": lambda: evaluate_translation(
            loaded, pairs, folder / "translation", examples=pairs[:1], batch_size=1, max_new_tokens=6, label=None
        ),
        "translation_one": lambda: evaluate_translation(  # fewer items than processes: one process has none
            loaded, pairs[:1], folder / "translation_one", batch_size=1, max_new_tokens=6, label=None
        ),
        "mcq_loglik": lambda: evaluate_mcq(
            loaded, questions, folder / "mcq_loglik", "loglik", batch_size=1, label=None
        ),
        "mcq_generate": lambda: evaluate_mcq(
            loaded, questions, folder / "mcq_generate", "generate", batch_size=1, max_new_tokens=4, label=None
        ),
        "perplexity_text": lambda: evaluate_perplexity(
            loaded, documents, folder / "perplexity_text", max_length=48, batch_size=1, label=None
        ),
        "perplexity_chat": lambda: evaluate_perplexity(
            loaded, dialogues, folder / "perplexity_chat", max_length=96, batch_size=1, label=None
        ),
        "preference": lambda: evaluate_preference(
            loaded, preferences, folder / "preference", "translation", batch_size=1, reference=loaded, **QUIET
        ),
    }
    metrics = {name: counted(name, evaluate) for name, evaluate in evaluations.items()}
    rank = int(os.environ.get("RANK", "0"))
    record = {"metrics": metrics, "forward_rows": rows}
    (folder / f"rank{rank}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
