"""Preference pairs (a prompt, a chosen and a rejected answer) in the one shape DPO and KTO train on.

Two file layouts are read, detected per row:

* standard: ``prompt`` (text, or chat messages ending with a user turn), ``chosen`` and ``rejected``
  (answer texts; a one-message assistant list is accepted too, TRL's conversational layout), plus
  optional ``id``, ``chosen_score`` and ``rejected_score``;
* messages-style: no ``prompt``; ``chosen`` and ``rejected`` are whole conversations that share their
  leading turns and differ in the final assistant turn. The shared turns become the prompt (messages),
  the final assistant turns the answers.

In CSV/TSV a list cell holds JSON text. Every problem is located (``file:line``) and counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from medtune.data.chat import ROLES
from medtune.data.digest import text_digest
from medtune.data.ids import stable_ids
from medtune.data.io import Row, columns_of, read_rows
from medtune.data.validate import Issue, ValidationReport, enforce_bad_row_policy
from medtune.errors import MedtuneError

ANSWER_FIELDS = ("chosen", "rejected")
SCORE_FIELDS = ("chosen_score", "rejected_score")
LAYOUT_HELP = (
    "'prompt' + 'chosen' + 'rejected' (prompt text or a list of {role, content} messages; answer texts), or "
    "'chosen' + 'rejected' as whole conversations (lists of {role, content}) sharing every turn but the final "
    "assistant one; JSON text in CSV/TSV cells"
)


@dataclass(frozen=True)
class PreferencePair:
    """One validated preference: the prompt, and the answer preferred to the other.

    ``prompt`` is text (a translation source or a plain prompt) or chat messages ending with a user
    turn; ``chosen``/``rejected`` are the answer texts (stripped, never equal).
    """

    id: str
    prompt: str | list[dict]
    chosen: str
    rejected: str
    chosen_score: float | None = None
    rejected_score: float | None = None
    origin: str = ""

    def to_record(self) -> dict:
        """A JSON-ready dict in the standard layout; :func:`pairs_from_records` (or loading the file) rebuilds it."""
        prompt = [dict(m) for m in self.prompt] if isinstance(self.prompt, list) else self.prompt
        return {
            "id": self.id,
            "prompt": prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "chosen_score": self.chosen_score,
            "rejected_score": self.rejected_score,
            "origin": self.origin,
        }


class _BadRow(Exception):
    """A row that breaks a rule: ``args = (check, detail)``, reported by the loader, never raised to the user."""


def load_preference_pairs(
    spec: str, on_bad_rows: str = "skip", name: str = "train", log: Callable[[str], Any] = print
) -> tuple[list[PreferencePair], ValidationReport]:
    """Read and validate preference pairs from a file, ``demo:<file>`` or ``hf:<dataset>[:split]``.

    Args:
        spec: the data source (JSONL, CSV or TSV; see :func:`medtune.data.io.read_rows`).
        on_bad_rows: ``skip`` drops bad rows and reports them; ``fail`` raises listing the first ones.
        name: label for messages and the report, e.g. ``train``.
        log: receives the validation summary.
    Returns:
        The kept pairs and the validation report. A row without an ``id`` gets a stable hash of its
        prompt and answers (:func:`medtune.data.ids.stable_ids`).
    Raises:
        MedtuneError: no rows or no ``chosen``/``rejected`` columns (listing the columns found), ``fail``
            with any bad row (missing or empty field, chosen identical to rejected, unreadable messages,
            a non-numeric score), or nothing left after validation.
    """
    rows = read_rows(spec)
    _check_columns(spec, rows)
    report = ValidationReport(name=name, total=len(rows), unit="pairs")
    parsed: list[tuple[Row, str | list[dict], str, str, float | None, float | None]] = []
    seen: set[bytes] = set()  # digests of the pairs: memory grows with the row count, not the text
    for row in rows:
        try:
            prompt, chosen, rejected = _read_pair(row.fields)
            scores = tuple(_score(row.fields, key) for key in SCORE_FIELDS)
        except _BadRow as bad:
            report.issues.append(Issue(row.origin, *bad.args))
            continue
        key = text_digest(json.dumps([prompt, chosen, rejected], ensure_ascii=False, sort_keys=True))
        if key in seen:
            report.issues.append(Issue(row.origin, "duplicate_row", repr(_prompt_text(prompt)[:40])))
            continue
        seen.add(key)
        parsed.append((row, prompt, chosen, rejected, *scores))
    enforce_bad_row_policy(report, len(parsed), on_bad_rows)
    log(report.summary())
    own = [_own_id(row) for row, *_ in parsed]
    texts = [(json.dumps(p, ensure_ascii=False, sort_keys=True), c, r) for _, p, c, r, *_ in parsed]
    ids = stable_ids(own, texts)
    pairs = [
        PreferencePair(pair_id, prompt, chosen, rejected, cs, rs, row.origin)
        for pair_id, (row, prompt, chosen, rejected, cs, rs) in zip(ids, parsed, strict=True)
    ]
    return pairs, report


def pairs_from_records(records: Iterable[dict]) -> list[PreferencePair]:
    """Rebuild pairs saved with :meth:`PreferencePair.to_record` (no validation: medtune wrote them)."""
    return [
        PreferencePair(
            str(r["id"]),
            r["prompt"],
            r["chosen"],
            r["rejected"],
            r.get("chosen_score"),
            r.get("rejected_score"),
            r.get("origin", ""),
        )
        for r in records
    ]


def _check_columns(spec: str, rows: list[Row]) -> None:
    if not rows:
        raise MedtuneError(f"{spec}: no rows found; expected preference pairs: {LAYOUT_HELP}.")
    found = columns_of(rows)
    missing = [c for c in ANSWER_FIELDS if c not in found]
    if missing:
        raise MedtuneError(
            f"{spec}: column(s) {', '.join(repr(c) for c in missing)} not found (columns found: "
            f"{', '.join(repr(c) for c in found)}). A preference file has {LAYOUT_HELP}. Rename the columns."
        )


def _read_pair(fields: dict[str, Any]) -> tuple[str | list[dict], str, str]:
    """(prompt, chosen, rejected) of a row in either layout, or :class:`_BadRow`."""
    raw_chosen, raw_rejected = (_maybe_json_list(fields.get(k), k) for k in ANSWER_FIELDS)
    prompt_cell = fields.get("prompt")
    if prompt_cell is None and isinstance(raw_chosen, list) and isinstance(raw_rejected, list):
        prompt, chosen, rejected = _split_conversations(raw_chosen, raw_rejected)
    else:
        prompt = _prompt(prompt_cell)
        chosen, rejected = _answer(raw_chosen, "chosen"), _answer(raw_rejected, "rejected")
    if chosen == rejected:
        raise _BadRow("same_answers", f"both are {chosen[:40]!r}")
    return prompt, chosen, rejected


def _maybe_json_list(value: Any, key: str) -> Any:
    """A CSV/TSV cell holding a JSON list becomes the list; anything else stays as it is."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise _BadRow("malformed", f"'{key}' is not valid JSON ({exc.msg} at column {exc.colno})") from None
    return value


def _prompt(value: Any) -> str | list[dict]:
    value = _maybe_json_list(value, "prompt")
    if isinstance(value, list):
        messages = _messages(value, "prompt")
        if not messages or messages[-1]["role"] != "user":
            last = messages[-1]["role"] if messages else "nothing"
            raise _BadRow("malformed", f"'prompt' messages end with {last}; expected a final user turn")
        return messages
    return _text(value, "prompt")


def _answer(value: Any, key: str) -> str:
    """An answer text; TRL's conversational layout gives a list whose last message is the assistant's."""
    if isinstance(value, list):
        messages = _messages(value, key)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            roles = ", ".join(m["role"] for m in messages) or "none"
            raise _BadRow("malformed", f"'{key}' with a 'prompt' column must be one assistant message (roles: {roles})")
        return messages[0]["content"]
    return _text(value, key)


def _text(value: Any, key: str) -> str:
    if value is None:
        raise _BadRow("empty_field", f"'{key}' is missing")
    if not isinstance(value, str) or not value.strip():
        raise _BadRow("empty_field", f"'{key}' is {value!r}; expected non-empty text")
    return value.strip()


def _messages(items: list, key: str) -> list[dict]:
    """``{role, content}`` dicts, stripped; roles known and contents non-empty."""
    messages = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            raise _BadRow("malformed", f"'{key}' message {number} is {str(item)[:40]}; expected {{'role', 'content'}}")
        role, content = item["role"], item["content"]
        if role not in ROLES:
            raise _BadRow("unknown_role", f"'{key}' message {number} has role {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise _BadRow("empty_field", f"'{key}' message {number} ({role}) content is {content!r}")
        messages.append({"role": role, "content": content.strip()})
    return messages


def _split_conversations(chosen: list, rejected: list) -> tuple[list[dict], str, str]:
    """Messages-style row: the shared leading turns are the prompt, the final assistant turns the answers."""
    a, b = _messages(chosen, "chosen"), _messages(rejected, "rejected")
    for key, messages in (("chosen", a), ("rejected", b)):
        if len(messages) < 2 or messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
            roles = ", ".join(m["role"] for m in messages) or "none"
            raise _BadRow("malformed", f"'{key}' must end with a user turn and the assistant's answer (roles: {roles})")
    if a[:-1] != b[:-1]:
        turn = next((i for i, (x, y) in enumerate(zip(a[:-1], b[:-1], strict=False), start=1) if x != y), None)
        where = f"message {turn}" if turn else f"the number of turns ({len(a)} vs {len(b)})"
        raise _BadRow("malformed", f"'chosen' and 'rejected' differ before their final answer, at {where}")
    return a[:-1], a[-1]["content"], b[-1]["content"]


def _score(fields: dict[str, Any], key: str) -> float | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise _BadRow("bad_score", f"'{key}' is {value!r}; expected a number")
    return number


def _own_id(row: Row) -> str | None:
    value = row.fields.get("id")
    return None if value is None or value == "" else str(value)


def _prompt_text(prompt: str | list[dict]) -> str:
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]
