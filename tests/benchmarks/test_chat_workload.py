"""The chat workload's held-out split: everything before the reply, then the reply the template marks."""

from __future__ import annotations

from test_workload_measures import CHAT_TEMPLATE, word_tokenizer

from benchmarks.workloads.chat_sft import held_out_ids


def test_held_out_dialogues_split_at_the_assistant_reply():
    tokenizer = word_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<eot>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    eot = tokenizer.convert_tokens_to_ids("<eot>")
    dialogue = [
        {"role": "system", "content": "hola"},
        {"role": "user", "content": "fiebre alta"},
        {"role": "assistant", "content": "adiós mundo"},
    ]
    assert held_out_ids(tokenizer, [dialogue]) == [([3, eot, 6, 7, eot], [5, 4, eot])]
