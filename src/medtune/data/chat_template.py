"""Chat templates: rendering conversations and finding the assistant tokens that carry the loss.

We always use the tokenizer's own template. Only a base model that ships none (the embedded
``gemma-3-270m``) gets its family's template here, and that template is saved with the model.

Assistant masks come from the rendered text itself: for every assistant turn we render the
conversation up to that turn with the generation prompt (the prefix) and up to the end of the
turn (the full text); the characters in between are what the model must produce, end-of-turn
marker included. Tokens whose offsets start inside those spans are labelled. This works for any
template whose rendering of a shorter conversation is a prefix of the longer one, which holds
for Gemma, ChatML (Qwen, SmolLM) and Llama 3; a template that breaks it is refused by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from medtune.data.examples import IGNORE, Example
from medtune.errors import MedtuneError

# Gemma's turn format ("model" is the assistant role; a system prompt opens the first user turn).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set messages = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if loop.first and system -%}{{ system + '\n\n' }}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{% generation %}"
    "{{ message['content'] | trim + '<end_of_turn>\n' }}{% endgeneration %}"
    "{%- else -%}{{ message['content'] | trim + '<end_of_turn>\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

# ChatML, as used by Qwen and SmolLM.
CHATML_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

# Llama 3 header format.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}"
)

FAMILY_TEMPLATES = {"gemma": GEMMA_CHAT_TEMPLATE, "chatml": CHATML_CHAT_TEMPLATE, "llama3": LLAMA3_CHAT_TEMPLATE}
# A special token that only one family has tells the family apart.
FAMILY_MARKERS = {"gemma": "<start_of_turn>", "chatml": "<|im_start|>", "llama3": "<|start_header_id|>"}
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")
PAD_CANDIDATES = ("<pad>", "<|finetune_right_pad_id|>", "<|pad|>", "<|reserved_special_token_0|>")


def template_family(tokenizer) -> str | None:
    """``gemma``, ``chatml`` or ``llama3`` from the tokenizer's special tokens; ``None`` if unknown."""
    vocab = tokenizer.get_vocab()
    for family, marker in FAMILY_MARKERS.items():
        if marker in vocab:
            return family
    return None


def ensure_chat_template(tokenizer, family: str | None = None) -> None:
    """Give a tokenizer without a chat template its family's template (in place).

    Raises:
        MedtuneError: when the tokenizer has no template and its family is unknown.
    """
    if getattr(tokenizer, "chat_template", None):
        return
    family = family or template_family(tokenizer)
    if family not in FAMILY_TEMPLATES:
        raise MedtuneError(
            f"The tokenizer ({type(tokenizer).__name__}, {getattr(tokenizer, 'name_or_path', '?')}) has no chat "
            f"template and medtune cannot tell its family. Known families: {', '.join(FAMILY_TEMPLATES)}. "
            "Use a model whose tokenizer_config.json carries a chat_template, or an instruct variant."
        )
    tokenizer.chat_template = FAMILY_TEMPLATES[family]


def ensure_pad_token(tokenizer) -> None:
    """Make padding distinct from end-of-sequence where the vocabulary allows it.

    The loss masks come from labels, not from pad ids, so EOS is learned either way; a distinct pad
    token just keeps generation and packing unambiguous.
    """
    if tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    vocab = tokenizer.get_vocab()
    for candidate in (*PAD_CANDIDATES, tokenizer.unk_token):
        if candidate and candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
            tokenizer.pad_token = candidate
            return
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus the template's end-of-turn token(s) present in the vocabulary."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids += [vocab[t] for t in END_OF_TURN_TOKENS if t in vocab]
    return sorted(set(ids))


def render_chat_prompt(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
    """Render messages with the tokenizer's chat template.

    The text already holds BOS when the template writes it: tokenise with ``add_special_tokens=False``.

    Raises:
        MedtuneError: the template refuses the conversation (e.g. it cannot render a system turn).
    """
    from jinja2 import TemplateError

    ensure_chat_template(tokenizer)
    try:
        return tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as exc:
        roles = ", ".join(m["role"] for m in messages)
        raise MedtuneError(f"The chat template cannot render a conversation with roles [{roles}]: {exc}") from None


def assistant_spans(tokenizer, messages: Sequence[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant replies.

    Raises:
        MedtuneError: the template is not prefix-stable, so assistant text cannot be located.
    """
    text = render_chat_prompt(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render_chat_prompt(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render_chat_prompt(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not (upto.startswith(prefix) and text.startswith(upto)):
            raise MedtuneError(
                "The chat template renders earlier turns differently once later turns exist, so medtune "
                "cannot tell which tokens are the assistant's. Use a template whose rendering of a "
                "conversation prefix is a prefix of the full rendering."
            )
        spans.append((len(prefix), len(upto)))
    return text, spans


def encode_conversation(tokenizer, messages: Sequence[dict], max_length: int) -> Example:
    """Tokenise a conversation with labels on the assistant turns only (end-of-turn token included).

    Tokenised as one string (so token boundaries match inference) without adding special tokens
    (the template writes BOS itself: no doubled BOS). Sequences longer than ``max_length`` are cut
    at the end.
    """
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    span_index = 0
    for position, (start, _end) in enumerate(enc["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1]:
            labels[position] = ids[position]
    return Example(ids[:max_length], labels[:max_length])
