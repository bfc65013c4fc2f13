"""The reward model: reviewers' scores in, a model that scores new translations without a reference out.

A :class:`~medtune.models.reward_head.ScalarRewardModel` (the base model with fresh LoRA adapters,
or all weights with ``train.method=full``, plus a linear head) reads medtune's translation prompt
followed by the translation (causal LMs: ``English: <source>\\nSpanish: <translation>\\n``; Marian:
the source into the encoder, the translation into the decoder) and is trained by medtune's training
loop on each judged item's mean score (:mod:`medtune.train.reward_objective`: squared error, plus
``feedback.pairwise_weight`` times a Bradley-Terry loss on pairs of items whose scores differ).

The output folder holds the adapter (or weights) and tokenizer as any medtune training output,
``reward_head.safetensors`` (the head), ``reward_model.json`` (the base model, how inputs are
built, the head file) and ``metrics.json``, with the held-out figures: Spearman's correlation of
reward with the mean human score (95% bootstrap interval), pairwise accuracy on held-out item pairs
with different scores, and, when every held-out item has a reference, sentence chrF++'s Spearman on
the same items for comparison. ``heldout_scores.jsonl`` lists each held-out item's score and reward.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import torch

from medtune.data.examples import Example
from medtune.data.io import write_jsonl
from medtune.data.prompts import translation_prompt, translation_target
from medtune.errors import MedtuneError
from medtune.feedback.training_data import ItemFeedback
from medtune.models.reward_head import ScalarRewardModel
from medtune.recipes.schema import Recipe
from medtune.runs import remove_checkpoints
from medtune.train.batching import encode_causal, encode_seq2seq
from medtune.train.objectives import on_model_device
from medtune.train.reward_objective import RewardExample, RewardObjective

REWARD_MODEL_FILE = "reward_model.json"
HEAD_FILE = "reward_head.safetensors"
HELDOUT_SCORES = "heldout_scores.jsonl"
SCORE_BATCH = 16


def encode_reward_input(
    tokenizer, source: str, translation: str, seq2seq: bool, max_length: int, src_lang: str = "en", tgt_lang: str = "es"
) -> Example:
    """One (source, translation) as the reward model reads it: the translation prompt plus the
    translation (causal; an over-long translation is cut at the end), or source and translation as
    encoder and decoder sequences (seq2seq)."""
    if seq2seq:
        return encode_seq2seq(tokenizer, source, translation, max_length)
    return encode_causal(
        tokenizer, translation_prompt(source, src_lang, tgt_lang), translation_target(translation), max_length
    )


def score_examples(
    reward_model: ScalarRewardModel, examples: Sequence[Example], pad_id: int, batch_size: int = SCORE_BATCH
) -> list[float]:
    """The reward of each encoded example, in the order given (batched by length, no gradient, eval mode)."""
    from medtune.train.batching import collate
    from medtune.train.objectives import eval_mode

    order = sorted(range(len(examples)), key=lambda i: examples[i].length)  # similar lengths: little padding
    rewards = [0.0] * len(examples)
    with torch.no_grad(), eval_mode(reward_model):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = collate([examples[i] for i in rows], pad_id, reward_model.seq2seq)
            for i, value in zip(rows, reward_model(on_model_device(batch, reward_model)).tolist(), strict=True):
                rewards[i] = float(value)
    return rewards


def heldout_metrics(rewards: Sequence[float], items: Sequence[ItemFeedback], seed: int = 42) -> dict:
    """How well rewards agree with the held-out items' mean scores.

    Returns:
        ``n``; ``spearman`` with ``spearman_ci_low``/``spearman_ci_high`` (95% percentile bootstrap over
        items) and ``pearson`` likewise; ``pairwise_accuracy`` (with its interval): the share of held-out
        item pairs with different mean scores whose rewards are ordered the same way (a reward tie counts
        as wrong), over ``pairs`` pairs; ``chrf_spearman`` (and interval): sentence chrF++ against the
        reference, on the same items, when every held-out item has a reference (else None).
        Correlations are None with fewer than 3 items or a constant column.
    """
    from medtune.judge.agreement import correlation, pairwise_accuracy

    scores = [item.score for item in items]
    figures = {"n": len(items), **correlation(rewards, scores, seed=seed)}
    ordered = [(i, j) if scores[i] > scores[j] else (j, i) for i, j in combinations(range(len(items)), 2)]
    ordered = [(i, j) for i, j in ordered if scores[i] != scores[j]]
    pairs = pairwise_accuracy([rewards[i] for i, _ in ordered], [rewards[j] for _, j in ordered], seed=seed)
    figures |= {
        "pairwise_accuracy": pairs["pairwise_accuracy"],
        "pairwise_ci_low": pairs["ci_low"],
        "pairwise_ci_high": pairs["ci_high"],
        "pairs": pairs["pairs"],
    }
    chrf = {"chrf_spearman": None, "chrf_spearman_ci_low": None, "chrf_spearman_ci_high": None}
    if items and all(item.reference for item in items):
        from medtune.eval.metrics import sentence_chrf_scores

        chrf_scores = sentence_chrf_scores([i.translation for i in items], [i.reference for i in items])
        baseline = correlation(chrf_scores, scores, seed=seed)
        chrf = {f"chrf_{key}": baseline[key] for key in ("spearman", "spearman_ci_low", "spearman_ci_high")}
    return figures | chrf


def _check_items(train: Sequence[ItemFeedback]) -> None:
    if not train:
        raise MedtuneError(
            "No judged item to train the reward model on: the feedback project has no judgments (or "
            "feedback.heldout keeps them all). Judge items first (medtune feedback serve / simulate / import)."
        )


def train_reward_model(
    recipe: Recipe,
    train: Sequence[ItemFeedback],
    heldout: Sequence[ItemFeedback],
    output_dir: str,
    log=print,
    resume: bool = False,
) -> dict:
    """Train a reward model on judged items' mean scores; save it to ``output_dir``; score the held-out items.

    Args:
        recipe: ``model`` (the base), ``train.*`` (method, LoRA, lr, steps, batch size, lengths, dtype),
            ``feedback.pairwise_weight``, ``data.src_lang``/``data.tgt_lang`` (the prompt), ``seed``.
        train: items to train on (their mean scores are the targets).
        heldout: items kept out of training: the dev loss during training and the final figures.
        output_dir: the model folder (created; ``checkpoints/`` inside while training).
        resume: continue from the checkpoint in ``<output_dir>/checkpoints`` (the stage runner decides).
    Returns:
        The metrics written to ``<output_dir>/metrics.json``: the loop's figures plus
        :func:`heldout_metrics` (empty figures when nothing is held out).
    Raises:
        MedtuneError: no training item; what loading the model and the training loop raise.
    """
    from medtune.sharding import main_process_first
    from medtune.train.setup import fit, prepare_trainable_model, save_trained_model

    _check_items(train)
    recipe = recipe.model_copy(update={"output_dir": str(output_dir)})
    trainable = prepare_trainable_model(recipe, log)
    loaded = trainable.loaded
    seq2seq, d = loaded.is_seq2seq, recipe.data
    encode = dict(seq2seq=seq2seq, max_length=recipe.train.max_length, src_lang=d.src_lang, tgt_lang=d.tgt_lang)

    def examples(items: Sequence[ItemFeedback]) -> list[RewardExample]:
        return [
            RewardExample(encode_reward_input(loaded.tokenizer, i.source, i.translation, **encode), i.score)
            for i in items
        ]

    reward_model = ScalarRewardModel(trainable.model, seq2seq)
    with torch.no_grad():
        reward_model.head.bias.fill_(sum(i.score for i in train) / len(train))
    train_ex, heldout_ex = examples(train), examples(heldout)
    log(
        f"Reward model: {len(train_ex)} judged items to train on, {len(heldout_ex)} held out "
        f"(pairwise_weight {recipe.feedback.pairwise_weight})."
    )
    objective = RewardObjective(recipe.feedback.pairwise_weight)
    trainable.trainable_params += sum(p.numel() for p in reward_model.head.parameters())
    trainable.total_params += sum(p.numel() for p in reward_model.head.parameters())
    trainable.model = reward_model  # the loop trains the adapters (or weights) and the head together
    try:
        result = fit(recipe, trainable, train_ex, heldout_ex, resume=resume, log=log, objective=objective)
    finally:
        trainable.model = reward_model.model
    pad_id = loaded.tokenizer.pad_token_id
    rewards = score_examples(reward_model, [e.example for e in heldout_ex], pad_id)
    figures = heldout_metrics(rewards, heldout, recipe.seed) if heldout else {"n": 0}
    if figures.get("spearman") is not None:
        log(
            f"Held-out Spearman {figures['spearman']:.3f} [{figures['spearman_ci_low']:.3f}, "
            f"{figures['spearman_ci_high']:.3f}], pairwise accuracy {figures['pairwise_accuracy']:.3f} "
            f"over {figures['pairs']} pairs ({figures['n']} items)."
        )
    info = {"src_lang": d.src_lang, "tgt_lang": d.tgt_lang, "reward_model": True}
    metrics = {"train_items": len(train_ex), "heldout_items": len(heldout_ex), **figures}
    trained = save_trained_model(recipe, trainable, result, info, metrics)
    with main_process_first() as main:  # under several processes: one writes, the others then read
        if main:
            _save_head(reward_model, trained.path, recipe, seq2seq)
            remove_checkpoints(trained.path)  # the saved model replaces them
            write_jsonl(
                trained.path / HELDOUT_SCORES,
                [{"item_id": i.item_id, "score": i.score, "reward": r} for i, r in zip(heldout, rewards, strict=True)],
            )
    return json.loads((trained.path / "metrics.json").read_text(encoding="utf-8"))


def _save_head(reward_model: ScalarRewardModel, folder: Path, recipe: Recipe, seq2seq: bool) -> None:
    from safetensors.torch import save_file

    from medtune.models.loading import read_model_info

    head = {name: value.detach().float().cpu().contiguous() for name, value in reward_model.head.state_dict().items()}
    save_file(head, str(folder / HEAD_FILE))
    d = recipe.data
    description = {
        "base_model": read_model_info(folder)["base_model"],
        "method": recipe.train.method,
        "seq2seq": seq2seq,
        "head": HEAD_FILE,
        "src_lang": d.src_lang,
        "tgt_lang": d.tgt_lang,
        "max_length": recipe.train.max_length,
        # what the model reads; the reward is read at the last token (decoder side for seq2seq)
        "score_prompt": "<source> -> encoder, <translation> -> decoder"
        if seq2seq
        else translation_prompt("{source}", d.src_lang, d.tgt_lang) + translation_target("{translation}"),
    }
    (folder / REWARD_MODEL_FILE).write_text(json.dumps(description, indent=2), encoding="utf-8")


class RewardModel:
    """A trained reward model, loaded for scoring (source, translation) pairs: no reference needed."""

    def __init__(self, reward_model: ScalarRewardModel, tokenizer, description: dict):
        self.reward_model, self.tokenizer, self.description = reward_model, tokenizer, description

    @classmethod
    def load(cls, folder: str, device: str = "auto", dtype: str = "float32") -> RewardModel:
        """Load a folder written by :func:`train_reward_model` (``medtune train feedback-reward``).

        The adapter stays unmerged, so in float32 the rewards are exactly those training computed.

        Raises:
            MedtuneError: the folder is not a reward model (naming the missing file); what loading the
                base model raises.
        """
        from safetensors.torch import load_file

        from medtune.models.loading import load_model

        path = Path(folder)
        described = path / REWARD_MODEL_FILE
        if not described.is_file():
            raise MedtuneError(
                f"{path} is not a medtune reward model (no {REWARD_MODEL_FILE}); train one with "
                "'medtune train feedback-reward --set feedback.project=NAME --set output_dir=DIR'."
            )
        description = json.loads(described.read_text(encoding="utf-8"))
        loaded = load_model(str(path), dtype=dtype, device=device, trainable_adapter=True, device_option="--device")
        head = torch.nn.Linear(loaded.model.get_input_embeddings().embedding_dim, 1)
        head.load_state_dict(load_file(str(path / description["head"])))
        reward_model = ScalarRewardModel(loaded.model, loaded.is_seq2seq, head)
        reward_model.requires_grad_(False)
        return cls(reward_model.eval(), loaded.tokenizer, description)

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = SCORE_BATCH) -> list[float]:
        """The reward of each (source, translation), in the order given; higher = better translation."""
        d = self.description
        examples = [
            encode_reward_input(
                self.tokenizer, source, translation, d["seq2seq"], d["max_length"], d["src_lang"], d["tgt_lang"]
            )
            for source, translation in pairs
        ]
        return score_examples(self.reward_model, examples, self.tokenizer.pad_token_id, batch_size)
