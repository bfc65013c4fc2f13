"""An independent oracle for the tests of rlhf_update: a translation's log-probability from the model's
own Hugging Face loss, encoded by hand (not through medtune's encoding or scoring code)."""

from __future__ import annotations

import torch

SOURCE = "The patient needs urgent attention."
TRANSLATION = "El paciente necesita atención urgente."


def translation_logp(model, tokenizer, source: str = SOURCE, translation: str = TRANSLATION) -> tuple[float, int]:
    """(summed log-probability of the translation's tokens, how many) under ``model`` as it is now.

    Marian: the source encoded, the translation as labels (with its ``</s>``). Causal: the prompt
    ``English: <source>\\nSpanish:`` then `` <translation>\\n``, labels on the latter only.
    """
    with torch.no_grad():
        if getattr(model.config, "is_encoder_decoder", False):
            enc = tokenizer(source, text_target=translation, return_tensors="pt")
            n = enc["labels"].shape[1]
            loss = model(**enc).loss
        else:
            prompt = tokenizer(f"English: {source}\nSpanish:")["input_ids"]
            target = tokenizer(f" {translation}\n", add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + target])
            labels = torch.tensor([[-100] * len(prompt) + target])
            n = len(target)
            loss = model(input_ids=ids, labels=labels).loss
    return -float(loss) * n, n
