"""Conversations (doctor–patient chat, instruction data) in the one shape medtune trains on.

Four file layouts are read, detected from the columns: ``messages`` (a list of ``{role, content}``),
ShareGPT ``conversations`` (``from``/``value``), instruction data (``instruction``/``input``/``output``,
the ChatDoctor/GenMedGPT layout) and ``question``/``answer``. All become :class:`Conversation`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medtune.data.digest import text_digest
from medtune.data.io import Row, columns_of, read_rows
from medtune.data.validate import Issue, ValidationReport, enforce_bad_row_policy
from medtune.errors import MedtuneError

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}
# Checked in this order; the first layout whose columns are all present wins.
LAYOUTS = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "instruction": ("instruction", "output"),
    "question_answer": ("question", "answer"),
}
LAYOUT_HELP = (
    "'messages' (a list of {role, content}; JSON text in CSV/TSV), "
    "'conversations' (ShareGPT, a list of {from, value}), "
    "'instruction' + 'output' (optional 'input'), or 'question' + 'answer'"
)


@dataclass(frozen=True)
class Conversation:
    """A validated conversation: an optional system message, then user/assistant turns in alternation."""

    messages: tuple[dict[str, str], ...]
    id: str | None = None
    origin: str = ""

    def to_record(self) -> dict:
        """A JSON-ready dict; :func:`conversations_from_records` rebuilds the conversation."""
        return {"id": self.id, "messages": [dict(m) for m in self.messages], "origin": self.origin}


class _Unreadable(Exception):
    """A row whose layout cannot be read (reported as ``malformed``, never raised to the user)."""


def load_conversations(
    spec: str,
    on_bad_rows: str = "skip",
    name: str = "conversations",
    log: Callable[[str], Any] = print,
    for_training: bool = True,
) -> tuple[list[Conversation], ValidationReport]:
    """Read and validate conversations from a file, ``demo:<file>`` or ``hf:<dataset>[:split]``.

    Args:
        spec: the data source (JSONL, CSV or TSV; see :func:`medtune.data.io.read_rows`).
        on_bad_rows: ``skip`` drops bad rows and reports them; ``fail`` raises listing the first ones.
        name: label for messages and the report, e.g. ``train``.
        log: receives the validation summary (and how many trailing user turns were dropped).
        for_training: drop a final user turn, which has no answer to learn from. Keep it (``False``)
            when the conversations are prompts to continue.
    Returns:
        The kept conversations (contents stripped) and the validation report.
    Raises:
        MedtuneError: no rows or no known layout (listing the columns found), ``fail`` with any bad
            row, or nothing left after validation.
    """
    rows = read_rows(spec)
    layout = _detect_layout(spec, rows)
    report = ValidationReport(name=name, total=len(rows), unit="conversations")
    kept: list[Conversation] = []
    seen: set[bytes] = set()  # digests of the conversations: memory grows with the row count, not the text
    for row in rows:
        try:
            raw = _raw_messages(row, layout)
        except _Unreadable as exc:
            report.issues.append(Issue(row.origin, "malformed", str(exc)))
            continue
        problem = conversation_problem(raw)
        if problem:
            report.issues.append(Issue(row.origin, *problem))
            continue
        messages = tuple({"role": role, "content": content.strip()} for role, content in raw)
        key = text_digest(*(part for m in messages for part in (m["role"], m["content"])))
        if key in seen:
            report.issues.append(Issue(row.origin, "duplicate_row", _preview(messages)))
            continue
        seen.add(key)
        kept.append(Conversation(messages, _row_id(row), row.origin))
    enforce_bad_row_policy(report, len(kept), on_bad_rows)
    log(report.summary())
    if for_training:
        kept, trimmed = _drop_trailing_user_turns(kept)
        if trimmed:
            log(f"{name}: dropped the unanswered final user turn of {trimmed} conversation(s) (nothing to learn).")
    return kept, report


def conversation_problem(messages: list[tuple[Any, Any]]) -> tuple[str, str] | None:
    """The first rule a conversation breaks, as ``(check, detail)``, or ``None`` when it is valid.

    Args:
        messages: ``(role, content)`` pairs as read (roles already mapped to system/user/assistant).
    Returns:
        A check name from :data:`medtune.data.validate.CHECKS` and a detail naming the message (1-based).
    """
    for number, (role, content) in enumerate(messages, start=1):
        if role not in ROLES:
            return "unknown_role", f"message {number} has role {role!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(content, str) or not content.strip():
            return "empty_message", f"message {number} ({role}) content is {content!r}"
    roles = [role for role, _ in messages]
    for number, role in enumerate(roles[1:], start=2):
        if role == "system":
            return "system_position", f"message {number} is a system message"
    turns = roles[1:] if roles[:1] == ["system"] else roles
    offset = len(roles) - len(turns)
    for index, role in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            return "turn_order", f"message {index + offset + 1} is {role!r}; expected {expected!r}"
    if "assistant" not in roles:
        return "no_assistant", f"{len(roles)} message(s), roles {', '.join(roles) or 'none'}"
    return None


def conversations_from_records(records: list[dict]) -> list[Conversation]:
    """Rebuild conversations saved with :meth:`Conversation.to_record`."""
    return [Conversation(tuple(dict(m) for m in r["messages"]), r.get("id"), r.get("origin", "")) for r in records]


def _detect_layout(spec: str, rows: list[Row]) -> str:
    if not rows:
        raise MedtuneError(f"{spec}: no rows found; expected conversations with columns {LAYOUT_HELP}.")
    found = columns_of(rows)
    for layout, needed in LAYOUTS.items():
        if all(column in found for column in needed):
            return layout
    raise MedtuneError(
        f"{spec}: cannot read conversations from columns {', '.join(repr(c) for c in found)}. "
        f"Accepted layouts: {LAYOUT_HELP}. Rename the columns to one of these."
    )


def _raw_messages(row: Row, layout: str) -> list[tuple[Any, Any]]:
    """``(role, content)`` pairs of a row, roles mapped to system/user/assistant where known."""
    fields = row.fields
    if layout == "instruction":
        user = fields.get("instruction")
        extra = fields.get("input")
        if isinstance(user, str) and isinstance(extra, str) and extra.strip():
            user = f"{user.strip()}\n\n{extra.strip()}"
        return [("user", user), ("assistant", fields.get("output"))]
    if layout == "question_answer":
        return [("user", fields.get("question")), ("assistant", fields.get("answer"))]
    column = LAYOUTS[layout][0]
    items = _json_list(fields.get(column), column)
    role_key, content_key = ("role", "content") if layout == "messages" else ("from", "value")
    pairs = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or role_key not in item or content_key not in item:
            raise _Unreadable(f"{column} item {number} is {_short(item)}; expected {{{role_key!r}, {content_key!r}}}")
        role = item[role_key]
        if layout == "sharegpt" and isinstance(role, str):
            role = SHAREGPT_ROLES.get(role.strip().lower(), role)
        pairs.append((role, item[content_key]))
    return pairs


def _json_list(value: Any, column: str) -> list:
    """A list cell; CSV/TSV cells hold it as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _Unreadable(f"'{column}' is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, list):
        raise _Unreadable(f"'{column}' is {_short(value)}; expected a list of messages")
    return value


def _drop_trailing_user_turns(conversations: list[Conversation]) -> tuple[list[Conversation], int]:
    out, trimmed = [], 0
    for conversation in conversations:
        if conversation.messages[-1]["role"] == "user":
            conversation = Conversation(conversation.messages[:-1], conversation.id, conversation.origin)
            trimmed += 1
        out.append(conversation)
    return out, trimmed


def _row_id(row: Row) -> str | None:
    value = row.fields.get("id")
    return None if value is None or value == "" else str(value)


def _preview(messages: tuple[dict[str, str], ...]) -> str:
    first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
    return repr(first_user[:40])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
