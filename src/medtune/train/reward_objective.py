"""The reward-model objective: regression on each item's mean score, plus an optional pairwise loss.

Loss of a micro-batch of ``n`` items with rewards ``r`` and mean scores ``s``::

    Σ_i (r_i - s_i)²  +  pairwise_weight · n · mean_{(i, j): s_i > s_j} -log σ(r_i - r_j)

"Pairs" are every two items of the same micro-batch whose mean scores differ (a Bradley-Terry /
RankNet term: the higher-scored item should get the higher reward); items of one source with
different translations are such pairs whenever they share a batch, and an item judged by several
reviewers takes part once, with its mean. The loop divides by the step's items (:meth:`units`), so
the reported loss is the mean squared error plus ``pairwise_weight`` times the mean pairwise loss.
Like KTO's reference point, the pairwise term depends on which items share a micro-batch, so
gradient accumulation matches one large batch only nearly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medtune.data.examples import Example
from medtune.train.batching import collate
from medtune.train.objectives import Metrics


@dataclass(frozen=True)
class RewardExample:
    """One encoded (source, translation) and the mean score the reviewers gave it."""

    example: Example
    score: float

    @property
    def length(self) -> int:
        return self.example.length

    @property
    def n_target(self) -> int:
        return self.example.length  # every token feeds the reward (the loop's throughput figure)


def ordered_pairs(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors ``(better, worse)`` of every two rows whose scores differ, the higher-scored first."""
    better, worse = torch.nonzero(scores[:, None] > scores[None, :], as_tuple=True)
    return better, worse


def reward_loss(
    rewards: torch.Tensor, scores: torch.Tensor, pairwise_weight: float = 0.0
) -> tuple[torch.Tensor, Metrics]:
    """The summed loss of a micro-batch (see the module docstring) and its figures.

    Args:
        rewards: the model's rewards ``[n]``.
        scores: the items' mean scores ``[n]``.
        pairwise_weight: weight of the Bradley-Terry term (0: regression only).
    Returns:
        ``(loss summed over items, {"mse", "pair_loss", "pair_accuracy"} as (sum, count))``; the pair
        figures are left out when the batch has no pair.
    """
    rewards = rewards.float()
    scores = scores.to(rewards)
    squared = (rewards - scores).pow(2).sum()
    metrics: Metrics = {"mse": (float(squared.detach()), float(len(scores)))}
    better, worse = ordered_pairs(scores)
    if len(better) == 0:
        return squared, metrics
    margins = rewards[better] - rewards[worse]
    pair_losses = -F.logsigmoid(margins)
    metrics["pair_loss"] = (float(pair_losses.detach().sum()), float(len(better)))
    metrics["pair_accuracy"] = (float((margins.detach() > 0).sum()), float(len(better)))
    if pairwise_weight == 0:
        return squared, metrics
    return squared + pairwise_weight * len(scores) * pair_losses.mean(), metrics


class RewardObjective:
    """What the training loop needs to train a :class:`~medtune.models.reward_head.ScalarRewardModel`."""

    name = "reward"
    needs_reference = False
    min_batch_size = 1

    def __init__(self, pairwise_weight: float = 0.0):
        self.pairwise_weight = pairwise_weight

    def units(self, items: Sequence[RewardExample]) -> int:
        return len(items)

    def collate(self, items: Sequence[RewardExample], pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
        batch = collate([item.example for item in items], pad_id, seq2seq)
        batch["scores"] = torch.tensor([item.score for item in items], dtype=torch.float32)
        return batch

    def loss(self, model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, Metrics]:
        return reward_loss(model(batch), batch["scores"], self.pairwise_weight)
