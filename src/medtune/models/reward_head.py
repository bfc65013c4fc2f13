"""A scalar reward on top of a language model: one linear unit on the final hidden state of the last token.

Why our own small module rather than ``AutoModelForSequenceClassification(num_labels=1)``: transformers
5.24 has ``Gemma3TextForSequenceClassification``, but no sequence-classification class for Marian, and
that class would need its own loading path beside medtune's (device, dtype, adapters, the embedded
model). Wrapping the model medtune already loads and trains (:func:`medtune.models.loading.load_model`,
:func:`medtune.models.adapters.attach_lora`) works for any causal LM and for Marian alike.

Where the reward is read:

* causal LM: the body's final hidden state at the last non-padding position of
  ``prompt + translation`` (right padding: position ``attention_mask.sum() - 1``); the output layer
  over the vocabulary is never computed;
* encoder-decoder (Marian): the source goes through the encoder, the translation through the
  decoder (teacher forcing, starting from the decoder start token); the decoder's final hidden
  state at the last translation token, which has seen the whole source and translation.

The head is ``nn.Linear(hidden, 1)`` in float32 applied to the upcast hidden state divided by its
root mean square: ``reward = w · h / rms(h) + b``. Why normalise: final hidden states differ in scale
from model to model (gemma-3-270m's have an RMS near 4 and single entries above 50), and an Adam step
moves every head weight by about the learning rate, so on raw states one learning rate would be too
fast for one model and too slow for another.
"""

from __future__ import annotations

import torch
from torch import nn

from medtune.data.examples import IGNORE
from medtune.models.adapters import unwrap_model
from medtune.models.fused_head import decoder_hidden_states


def hidden_size(model) -> int:
    """Width of the model's final hidden states (its input embedding width)."""
    return unwrap_model(model).get_input_embeddings().embedding_dim


def pooled_hidden_states(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """The hidden state each row's reward is read from, ``[rows, hidden]`` (see the module docstring).

    ``batch`` is what :func:`medtune.train.batching.collate` makes: causal rows right-padded with an
    ``attention_mask``; seq2seq rows with the source as ``input_ids`` and the translation as ``labels``.
    """
    if not seq2seq:
        hidden = decoder_hidden_states(model, batch)
        last = batch["attention_mask"].to(hidden.device).sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    lm = unwrap_model(model)
    device = lm.get_input_embeddings().weight.device
    labels = batch["labels"].to(device)
    real = labels != IGNORE
    pad = lm.config.pad_token_id
    start = torch.full_like(labels[:, :1], lm.config.decoder_start_token_id)
    decoder_ids = torch.cat([start, labels.masked_fill(~real, pad)], dim=1)
    decoder_mask = torch.cat([torch.ones_like(start), real.long()], dim=1)
    out = lm.model(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        decoder_input_ids=decoder_ids,
        decoder_attention_mask=decoder_mask,
        use_cache=False,
    )
    hidden = out.last_hidden_state
    last = real.sum(dim=1)  # the start token shifts every label one place right
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class ScalarRewardModel(nn.Module):
    """A (LoRA-wrapped) language model plus a float32 linear head that maps a text to one number.

    Its trainable parameters are the model's (LoRA adapters, or every weight) and the head's, so
    medtune's training loop trains both. ``forward(batch)`` returns the rewards ``[rows]``.
    """

    def __init__(self, model, seq2seq: bool, head: nn.Linear | None = None):
        super().__init__()
        self.model = model
        self.seq2seq = seq2seq
        if head is None:
            head = nn.Linear(hidden_size(model), 1)
            # A zero weight starts every reward at the bias (set to the mean training score), so the
            # first steps fit the spread of the scores instead of undoing a random projection.
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        device = unwrap_model(model).get_input_embeddings().weight.device
        self.head = head.to(device=device, dtype=torch.float32)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(rms_normalized(pooled_hidden_states(self.model, batch, self.seq2seq))).squeeze(-1)


def rms_normalized(hidden: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``hidden`` in float32 divided by its root mean square over the last dimension (no learnt scale)."""
    hidden = hidden.float()
    return hidden * torch.rsqrt(hidden.pow(2).mean(dim=-1, keepdim=True) + eps)
