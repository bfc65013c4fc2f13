"""The reward model: the head reads the right hidden state, the loss is MSE (+ Bradley-Terry), training
learns a toy signal, a saved model scores exactly as trained, held-out figures match scipy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from reward_toys import toy_items, toy_recipe
from scipy import stats

from medtune.feedback.reward import (
    HELDOUT_SCORES,
    REWARD_MODEL_FILE,
    RewardModel,
    encode_reward_input,
    heldout_metrics,
    train_reward_model,
)
from medtune.models.loading import load_model
from medtune.models.reward_head import ScalarRewardModel
from medtune.train.batching import collate
from medtune.train.reward_objective import RewardExample, RewardObjective, reward_loss


def _examples(loaded, pairs: list[tuple[str, str]]) -> list:
    return [encode_reward_input(loaded.tokenizer, s, t, loaded.is_seq2seq, 256) for s, t in pairs]


PAIRS = [
    ("The patient has a fever.", "El paciente tiene fiebre."),
    ("Take two tablets every eight hours with food.", "Tome dos comprimidos cada ocho horas con comida."),
]


def _random_head(reward_model: ScalarRewardModel) -> None:
    torch.manual_seed(3)
    with torch.no_grad():
        reward_model.head.weight.normal_()
        reward_model.head.bias.fill_(0.25)


def test_causal_reward_is_the_head_on_the_last_tokens_normalized_final_hidden_state(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    reward_model = ScalarRewardModel(loaded.model, seq2seq=False)
    _random_head(reward_model)
    examples = _examples(loaded, PAIRS)
    assert examples[0].length != examples[1].length  # the shorter row is padded
    with torch.no_grad():
        rewards = reward_model(collate(examples, loaded.tokenizer.pad_token_id, False))
        expected = []
        for example in examples:
            out = loaded.model(input_ids=torch.tensor([example.input_ids]), output_hidden_states=True)
            hidden = out.hidden_states[-1][0, -1]  # the model's own final hidden state, unpadded
            normalized = hidden / torch.sqrt((hidden**2).mean() + 1e-6)  # divided by its root mean square
            expected.append(float(normalized @ reward_model.head.weight[0] + reward_model.head.bias[0]))
    assert rewards.tolist() == pytest.approx(expected, abs=1e-5)
    text = loaded.tokenizer.decode(examples[1].input_ids, skip_special_tokens=True)
    assert text == "English: " + PAIRS[1][0] + "\nSpanish: " + PAIRS[1][1] + "\n"  # the translation prompt


def test_marian_reward_is_the_head_on_the_decoders_normalized_last_translation_token(tiny_marian_dir):
    loaded = load_model(str(tiny_marian_dir), dtype="float32", device="cpu")
    reward_model = ScalarRewardModel(loaded.model, seq2seq=True)
    _random_head(reward_model)
    examples = _examples(loaded, PAIRS)
    with torch.no_grad():
        rewards = reward_model(collate(examples, loaded.tokenizer.pad_token_id, True))
        expected = []
        for example in examples:
            start = loaded.model.config.decoder_start_token_id
            out = loaded.model(
                input_ids=torch.tensor([example.input_ids]),
                decoder_input_ids=torch.tensor([[start, *example.labels]]),
                output_hidden_states=True,
            )
            hidden = out.decoder_hidden_states[-1][0, -1]
            normalized = hidden / torch.sqrt((hidden**2).mean() + 1e-6)  # divided by its root mean square
            expected.append(float(normalized @ reward_model.head.weight[0] + reward_model.head.bias[0]))
    assert rewards.tolist() == pytest.approx(expected, abs=1e-5)


def test_loss_is_squared_error_plus_weighted_bradley_terry_on_pairs_with_different_scores():
    rewards = torch.tensor([0.2, 0.5, 0.9])
    scores = torch.tensor([0.1, 0.8, 0.8])  # pairs: (1 over 0) and (2 over 0); 1 and 2 tie, no pair
    squared = 0.1**2 + 0.3**2 + 0.1**2
    bt = [-math.log(1 / (1 + math.exp(-(0.5 - 0.2)))), -math.log(1 / (1 + math.exp(-(0.9 - 0.2))))]
    loss, metrics = reward_loss(rewards, scores, pairwise_weight=0.5)
    assert float(loss) == pytest.approx(squared + 0.5 * 3 * sum(bt) / 2, rel=1e-6)
    assert metrics["mse"] == pytest.approx((squared, 3.0))
    assert metrics["pair_loss"] == pytest.approx((sum(bt), 2.0))
    assert metrics["pair_accuracy"] == (2.0, 2.0)
    plain, _ = reward_loss(rewards, scores, pairwise_weight=0.0)
    assert float(plain) == pytest.approx(squared, rel=1e-6)
    # one score level: no pair at all, regression only
    alone, figures = reward_loss(rewards, torch.tensor([0.5, 0.5, 0.5]), pairwise_weight=1.0)
    assert float(alone) == pytest.approx(0.3**2 + 0 + 0.4**2, rel=1e-6) and "pair_loss" not in figures


def test_objective_collates_scores_and_counts_items(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    items = [RewardExample(e, s) for e, s in zip(_examples(loaded, PAIRS), (0.3, 0.9), strict=True)]
    objective = RewardObjective(pairwise_weight=2.0)
    batch = objective.collate(items, loaded.tokenizer.pad_token_id, False)
    assert batch["scores"].tolist() == pytest.approx([0.3, 0.9]) and objective.units(items) == 2
    reward_model = ScalarRewardModel(loaded.model, seq2seq=False)
    _random_head(reward_model)
    with torch.no_grad():
        loss, _ = objective.loss(reward_model, batch, False)
        expected, _ = reward_loss(reward_model(batch), batch["scores"], 2.0)
    assert float(loss) == pytest.approx(float(expected))


def test_heldout_metrics_match_scipy_and_a_hand_count():
    items = toy_items(6)
    scores = [i.score for i in items]  # 0.1 0.4 0.7 1.0 0.1 0.4
    rewards = [0.2, 0.3, 0.9, 0.8, 0.1, 0.35]
    figures = heldout_metrics(rewards, items)
    assert figures["n"] == 6
    assert figures["spearman"] == pytest.approx(stats.spearmanr(rewards, scores).statistic)
    assert figures["spearman_ci_low"] <= figures["spearman"] <= figures["spearman_ci_high"]
    # 15 pairs, 2 tied in score (items 0/4, 1/5) -> 13; the only one ordered wrongly: 1.0 (0.8) vs 0.7 (0.9)
    ordered = [(i, j) for i in range(6) for j in range(6) if scores[i] > scores[j]]
    right = sum(rewards[i] > rewards[j] for i, j in ordered)
    assert figures["pairs"] == len(ordered) == 13
    assert figures["pairwise_accuracy"] == pytest.approx(right / 13) and right == 12
    from medtune.eval.metrics import sentence_chrf_scores

    chrf = sentence_chrf_scores([i.translation for i in items], [i.reference for i in items])
    assert figures["chrf_spearman"] == pytest.approx(stats.spearmanr(chrf, scores).statistic)


@pytest.fixture(scope="module")
def trained_reward_dir(tiny_gemma_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reward") / "model"
    train_reward_model(toy_recipe(tiny_gemma_dir), toy_items(96), toy_items(32, start=96), str(out), log=lambda m: None)
    return out


def test_training_learns_the_toy_signal(trained_reward_dir, tiny_gemma_dir):
    metrics = json.loads((trained_reward_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == 30 and metrics["train_items"] == 96 and metrics["heldout_items"] == 32
    # an untrained model (zero head) gives every item the same reward: no correlation at all
    assert metrics["spearman"] > 0.8 and metrics["pairwise_accuracy"] > 0.9
    rows = [json.loads(line) for line in (trained_reward_dir / HELDOUT_SCORES).read_text().splitlines()]
    assert [r["item_id"] for r in rows] == [i.item_id for i in toy_items(32, start=96)]
    rewards, scores = [r["reward"] for r in rows], [r["score"] for r in rows]
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(rewards, scores).statistic)
    described = json.loads((trained_reward_dir / REWARD_MODEL_FILE).read_text(encoding="utf-8"))
    assert described["base_model"] == str(Path(tiny_gemma_dir).resolve())
    assert described["score_prompt"] == "English: {source}\nSpanish: {translation}\n"
    assert not (trained_reward_dir / "checkpoints").exists()  # the saved model replaces them


def test_saved_model_scores_exactly_as_training_did(trained_reward_dir):
    rows = [json.loads(line) for line in (trained_reward_dir / HELDOUT_SCORES).read_text().splitlines()]
    held = toy_items(32, start=96)
    loaded = RewardModel.load(str(trained_reward_dir), device="cpu")
    pairs = [(i.source, i.translation) for i in held]
    assert loaded.score(pairs) == [r["reward"] for r in rows]  # same batches as training's scoring: bit for bit
    # other batches pad differently, which moves only the last bits
    assert loaded.score(pairs, batch_size=5) == pytest.approx([r["reward"] for r in rows], abs=1e-6)


def test_marian_reward_model_learns_the_toy_signal(tiny_marian_dir, tmp_path):
    metrics = train_reward_model(
        toy_recipe(tiny_marian_dir, max_steps=60),
        toy_items(96),
        toy_items(32, start=96),
        str(tmp_path / "marian-reward"),
        log=lambda m: None,
    )
    # the 32-wide tiny Marian learns the count more slowly than the tiny Gemma (0.58 after 60 steps)
    assert metrics["spearman"] > 0.45
    loaded = RewardModel.load(str(tmp_path / "marian-reward"), device="cpu")
    rows = [json.loads(line) for line in (tmp_path / "marian-reward" / HELDOUT_SCORES).read_text().splitlines()]
    held = toy_items(32, start=96)
    assert loaded.score([(i.source, i.translation) for i in held]) == [r["reward"] for r in rows]


def test_training_without_items_is_refused(tiny_gemma_dir, tmp_path):
    from medtune.errors import MedtuneError

    with pytest.raises(MedtuneError, match="No judged item"):
        train_reward_model(toy_recipe(tiny_gemma_dir), [], [], str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_loading_a_folder_that_is_not_a_reward_model_names_the_missing_file(tiny_gemma_dir):
    from medtune.errors import MedtuneError

    with pytest.raises(MedtuneError, match=REWARD_MODEL_FILE):
        RewardModel.load(str(tiny_gemma_dir))


def test_pairwise_loss_alone_learns_the_order_and_nothing_held_out_is_allowed(tiny_gemma_dir, tmp_path):
    """With the Bradley-Terry term weighted in and no held-out items, the saved model still orders new items."""
    out = tmp_path / "pairwise"
    recipe = toy_recipe(tiny_gemma_dir)
    recipe.feedback.pairwise_weight = 1.0
    metrics = train_reward_model(recipe, toy_items(96), [], str(out), log=lambda m: None)
    assert metrics["heldout_items"] == 0 and "spearman" not in metrics
    assert metrics["metric_history"][-1][1]["pair_accuracy"] > 0.5  # the in-batch pairs were counted
    held = toy_items(32, start=96)
    rewards = RewardModel.load(str(out), device="cpu").score([(i.source, i.translation) for i in held])
    assert stats.spearmanr(rewards, [i.score for i in held]).statistic > 0.8
