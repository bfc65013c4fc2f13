"""What workloads measure: target tokens counted from the data, and the held-out completion loss."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from benchmarks.workloads.common import completion_loss, completion_tokens


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer (whitespace split, BOS added on request) whose counts are easy by hand."""
    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "hola": 3, "mundo": 4, "adiós": 5, "fiebre": 6, "alta": 7}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")


def test_completion_tokens_count_each_completion_plus_one_eos_and_no_bos():
    tokenizer = word_tokenizer()
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


CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }} <eot>"
    "{% endgeneration %}{% else %}{{ m['content'] }} <eot>{% endif %} {% endfor %}"
)


def test_assistant_tokens_count_the_marked_turns_with_their_end_of_turn():
    from benchmarks.workloads._training import assistant_token_mask, assistant_tokens

    tokenizer = word_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<eot>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    first = [{"role": "user", "content": "fiebre alta"}, {"role": "assistant", "content": "hola mundo"}]
    second = [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "adiós"}]
    ids, mask = assistant_token_mask(tokenizer, first)
    eot = tokenizer.convert_tokens_to_ids("<eot>")
    assert ids == [6, 7, eot, 3, 4, eot] and mask == [0, 0, 0, 1, 1, 1]
    assert assistant_tokens(tokenizer, [first, second]) == 3 + 2  # "hola mundo <eot>", "adiós <eot>"


def test_dpo_loss_equals_the_sigmoid_loss_from_transformers_log_likelihoods(tiny_gemma_dir):
    from peft import LoraConfig, get_peft_model

    from benchmarks.workloads.common import dpo_loss

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    # init_lora_weights=False: a random adapter, so policy and reference (adapter disabled) differ
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    pairs = [([1, 5, 9, 12], [20, 21, 2], [30, 2]), ([1, 7], [40, 2], [41, 42, 43, 2])]

    def logp(prompt, answer):  # oracle: transformers' mean loss over the answer's labels, times its length
        labels = torch.tensor([[-100] * len(prompt) + answer])
        with torch.no_grad():
            return -float(model(input_ids=torch.tensor([prompt + answer]), labels=labels).loss) * len(answer)

    expected = []
    for prompt, chosen, rejected in pairs:
        policy = logp(prompt, chosen) - logp(prompt, rejected)
        with model.disable_adapter():
            reference = logp(prompt, chosen) - logp(prompt, rejected)
        assert policy != pytest.approx(reference)
        expected.append(-float(torch.nn.functional.logsigmoid(torch.tensor(0.1 * (policy - reference)))))
    assert dpo_loss(model, pairs, beta=0.1) == pytest.approx(sum(expected) / 2, rel=1e-5)
