"""Assistant-only label masks for three chat-template families, checked token by token.

Each family gets a tiny byte-level BPE tokenizer with its own special tokens, built here. The
expected labels are built independently: the rendered conversation is cut into pieces by hand
(prompt pieces unlabelled, assistant replies with their end-of-turn marker labelled) and each
piece is tokenised on its own.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from medtune.data.chat_template import (
    CHATML_CHAT_TEMPLATE,
    LLAMA3_CHAT_TEMPLATE,
    encode_conversation,
    ensure_chat_template,
    ensure_pad_token,
    render_chat_prompt,
    stop_token_ids,
    template_family,
)
from medtune.data.examples import IGNORE
from medtune.errors import MedtuneError

TEXTS = [
    "Doctor, my ankle is swollen after a fall. Should I get an X-ray?",
    "Rest, ice and elevation help; an X-ray is needed if you cannot bear weight.",
    "You are a careful clinician. Answer briefly.",
    "How often should I take paracetamol? Every six hours, at most four grams a day.",
]

FAMILIES = {
    "gemma": dict(
        special=["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        template=None,  # a Gemma base tokenizer ships none: medtune supplies it
    ),
    "chatml": dict(
        special=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        template=CHATML_CHAT_TEMPLATE,
    ),
    "llama3": dict(
        special=[
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|finetune_right_pad_id|>",
        ],
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad=None,  # Llama 3 has no pad token: medtune must pick one distinct from EOS
        template=LLAMA3_CHAT_TEMPLATE,
    ),
}

CONVERSATION = [
    {"role": "system", "content": "You are a careful clinician."},
    {"role": "user", "content": "My ankle is swollen."},
    {"role": "assistant", "content": "Rest and ice help."},
    {"role": "user", "content": "Do I need an X-ray?"},
    {"role": "assistant", "content": "Yes, if you cannot bear weight."},
]


def build_tokenizer(family: str) -> PreTrainedTokenizerFast:
    spec = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=spec["special"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=spec["bos"], eos_token=spec["eos"], pad_token=spec["pad"]
    )
    if spec["template"]:
        tokenizer.chat_template = spec["template"]
    return tokenizer


def expected_pieces(family: str) -> list[tuple[str, bool]]:
    """The rendered conversation cut by hand into (text, is_assistant) pieces."""
    if family == "gemma":
        return [
            ("<bos><start_of_turn>user\nYou are a careful clinician.\n\nMy ankle is swollen.<end_of_turn>\n", False),
            ("<start_of_turn>model\n", False),
            ("Rest and ice help.<end_of_turn>\n", True),
            ("<start_of_turn>user\nDo I need an X-ray?<end_of_turn>\n<start_of_turn>model\n", False),
            ("Yes, if you cannot bear weight.<end_of_turn>\n", True),
        ]
    if family == "chatml":
        return [
            ("<|im_start|>system\nYou are a careful clinician.<|im_end|>\n", False),
            ("<|im_start|>user\nMy ankle is swollen.<|im_end|>\n<|im_start|>assistant\n", False),
            ("Rest and ice help.<|im_end|>\n", True),
            ("<|im_start|>user\nDo I need an X-ray?<|im_end|>\n<|im_start|>assistant\n", False),
            ("Yes, if you cannot bear weight.<|im_end|>\n", True),
        ]
    head = "<|start_header_id|>{}<|end_header_id|>\n\n"
    return [
        ("<|begin_of_text|>" + head.format("system") + "You are a careful clinician.<|eot_id|>", False),
        (head.format("user") + "My ankle is swollen.<|eot_id|>" + head.format("assistant"), False),
        ("Rest and ice help.<|eot_id|>", True),
        (head.format("user") + "Do I need an X-ray?<|eot_id|>" + head.format("assistant"), False),
        ("Yes, if you cannot bear weight.<|eot_id|>", True),
    ]


@pytest.mark.parametrize("family", ["gemma", "chatml", "llama3"])
def test_assistant_masks_token_by_token(family):
    tok = build_tokenizer(family)
    ensure_chat_template(tok)
    ex = encode_conversation(tok, CONVERSATION, max_length=512)
    want_ids, want_labels = [], []
    for text, is_assistant in expected_pieces(family):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        want_ids += ids
        want_labels += ids if is_assistant else [IGNORE] * len(ids)
    assert ex.input_ids == want_ids
    assert ex.labels == want_labels
    # the model learns to stop: every assistant turn's end-of-turn token is a label
    eot = {"gemma": "<end_of_turn>", "chatml": "<|im_end|>", "llama3": "<|eot_id|>"}[family]
    eot_id = tok.convert_tokens_to_ids(eot)
    assert [t for t in ex.labels if t == eot_id] == [eot_id, eot_id]


@pytest.mark.parametrize("family", ["gemma", "llama3"])
def test_no_doubled_bos(family):
    tok = build_tokenizer(family)
    ensure_chat_template(tok)
    ex = encode_conversation(tok, CONVERSATION[1:3], max_length=512)
    assert ex.input_ids[0] == tok.bos_token_id
    assert ex.input_ids.count(tok.bos_token_id) == 1


def test_family_detection_and_supplied_template():
    assert {f: template_family(build_tokenizer(f)) for f in FAMILIES} == {f: f for f in FAMILIES}
    tok = build_tokenizer("gemma")
    assert not tok.chat_template
    ensure_chat_template(tok)
    assert "<start_of_turn>" in tok.chat_template


def test_unknown_family_without_template_is_refused(tiny_tokenizer):
    tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, bos_token="<bos>")
    with pytest.raises(MedtuneError, match="no chat\\s+template"):
        ensure_chat_template(tok)


def test_pad_is_distinct_from_eos():
    tok = build_tokenizer("llama3")
    assert tok.pad_token is None
    ensure_pad_token(tok)
    assert tok.pad_token == "<|finetune_right_pad_id|>" and tok.pad_token_id != tok.eos_token_id


def test_stop_ids_include_end_of_turn():
    tok = build_tokenizer("chatml")
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tok)
    gemma = build_tokenizer("gemma")
    assert set(stop_token_ids(gemma)) == {gemma.eos_token_id, gemma.convert_tokens_to_ids("<end_of_turn>")}


def test_generation_prompt_and_truncation():
    tok = build_tokenizer("chatml")
    prompt = render_chat_prompt(tok, CONVERSATION[:2])
    assert prompt.endswith("<|im_start|>assistant\n")
    ex = encode_conversation(tok, CONVERSATION, max_length=10)
    assert len(ex.input_ids) == len(ex.labels) == 10


def test_template_that_cannot_render_a_system_turn_is_named():
    tok = build_tokenizer("chatml")
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}"
    )
    with pytest.raises(MedtuneError, match="cannot render.*system"):
        encode_conversation(tok, CONVERSATION, max_length=64)
