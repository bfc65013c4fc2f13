"""The bodies the reviewer API accepts, validated by pydantic (a failure answers 400 naming the field)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medtune.feedback.store import ERROR_FLAGS

MAX_ITEM_ID_CHARS = 200
MAX_POST_EDIT_CHARS = 10_000  # a long paragraph; the body limit (64 KiB by default) bounds the total too
MAX_COMMENT_CHARS = 2_000
MAX_SECONDS = 24 * 3600.0  # time spent on one item; more is a clock or client error


class ItemRequest(BaseModel):
    """``POST /api/skip``: the item the reviewer passes on."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=MAX_ITEM_ID_CHARS)


class JudgmentRequest(ItemRequest):
    """``POST /api/judgments``: a reviewer's judgment of the item assigned to them."""

    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="0 = unusable, 1 = perfect")
    post_edit: str | None = Field(default=None, max_length=MAX_POST_EDIT_CHARS)
    flags: list[str] = Field(default_factory=list, max_length=len(ERROR_FLAGS))
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    seconds: float | None = Field(default=None, ge=0.0, le=MAX_SECONDS, allow_inf_nan=False)

    @field_validator("flags")
    @classmethod
    def known_flags(cls, flags: list[str]) -> list[str]:
        """Each flag one of ``ERROR_FLAGS``, each once."""
        unknown = [flag for flag in flags if flag not in ERROR_FLAGS]
        if unknown:
            raise ValueError(f"unknown error flag(s) {unknown}; the flags are {list(ERROR_FLAGS)}")
        if len(set(flags)) != len(flags):
            raise ValueError(f"a flag is listed twice in {flags}")
        return flags
