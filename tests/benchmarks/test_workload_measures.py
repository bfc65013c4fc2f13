"""What workloads measure: target tokens counted from the data, and the held-out completion loss."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from benchmarks.workloads.common import completion_loss, completion_tokens


def _word_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "hola": 3, "mundo": 4, "adiós": 5, "fiebre": 6, "alta": 7}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")


def test_completion_tokens_count_each_completion_plus_one_eos_and_no_bos():
    tokenizer = _word_tokenizer()
    assert tokenizer(" hola mundo")["input_ids"] == [1, 3, 4]  # the tokenizer adds BOS when asked to
    # " hola mundo" 2 + EOS, " adiós" 1 + EOS, " fiebre alta hola" 3 + EOS
    assert completion_tokens(tokenizer, [" hola mundo", " adiós", " fiebre alta hola"]) == 3 + 2 + 4


def test_completion_loss_equals_transformers_own_loss(tiny_gemma_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    texts = [("English: fever\nSpanish:", " fiebre\n"), ("English: the patient has a cough\nSpanish:", " tos\n")]
    rows = [
        (tokenizer(p)["input_ids"], tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        for p, c in texts
    ]
    # oracle: transformers' mean cross-entropy over labelled positions, per row, weighted by completion length
    total = 0.0
    for prompt, completion in rows:
        ids = torch.tensor([prompt + completion])
        labels = torch.tensor([[-100] * len(prompt) + completion])
        with torch.no_grad():
            total += float(model(input_ids=ids, labels=labels).loss) * len(completion)
    expected = total / sum(len(c) for _, c in rows)
    model.train()
    assert completion_loss(model, rows) == pytest.approx(expected, rel=1e-5)
    assert model.training  # left as found
