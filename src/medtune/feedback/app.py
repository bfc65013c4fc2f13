"""The reviewer web app: a JSON API over the feedback store and the reviewer page that uses it.

Every ``/api/`` call but ``GET /api/health`` needs ``Authorization: Bearer <reviewer token>`` (the
token ``medtune feedback add-reviewer`` printed). No cookies are set or read, so there is nothing
for another site to forge (no CSRF). The store's calls block, so the endpoints are plain ``def``
functions that FastAPI runs in its thread pool: concurrent reviewers are served concurrently.

API (errors are ``{"error": "..."}`` with the status named):
  GET  /api/health     200 {"status": "ok"}                         (no token)
  GET  /api/me         200 {"reviewer", "project", "flags", "progress"}
  GET  /api/next       200 {"item_id", "source", "translation", "terms", "progress"} or 204
  POST /api/judgments  {"item_id", "score", "post_edit"?, "flags"?, "comment"?, "seconds"?} -> 201 {"judgment_id"}
  POST /api/skip       {"item_id"} -> 200 {"skipped": item_id}
  POST /api/undo       200 {"judgment_id": the undone one}; 404 when there is nothing to undo
Statuses: 400 invalid body, 401 no or unknown token, 404 unknown item, 409 the item is not assigned
to the caller or already judged, 413 body over the limit, 429 over the rate limit (Retry-After), 500
the server failed (the database went away; logged, and the server keeps serving).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError, StarletteHTTPException
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from medtune.data.glossary import Term
from medtune.feedback.api_schemas import ItemRequest, JudgmentRequest
from medtune.feedback.glossary_terms import GlossaryHighlighter
from medtune.feedback.http_guards import DEFAULT_MAX_BODY_BYTES, BodySizeLimit, SecurityHeaders, ServerFailure
from medtune.feedback.rate_limit import DEFAULT_BURST, DEFAULT_RATE_LIMIT, TokenBuckets
from medtune.feedback.store import ERROR_FLAGS, FeedbackError, FeedbackStore, Progress, ReviewerView

STATIC_DIR = Path(__file__).parent / "static"
MAX_TOKEN_CHARS = 512  # tokens are 43 characters; anything far longer is refused before hashing


def create_feedback_app(
    store: FeedbackStore,
    *,
    project: str | None = None,
    glossary: Sequence[Term] = (),
    rate_limit: float = DEFAULT_RATE_LIMIT,
    burst: int = DEFAULT_BURST,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The reviewer app over ``store``.

    Args:
        store: the feedback store (the app does not close it).
        project: serve only this project's items; None serves every project's.
        glossary: terms to highlight in each source, with their expected Spanish term.
        rate_limit: requests per second each reviewer may sustain; ``burst`` more may come at once.
        max_body_bytes: the largest request body accepted (413 above it).
    Raises:
        ValueError: a rate limit, burst or body limit that is not positive.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    buckets = TokenBuckets(rate_limit, burst)
    highlighter = GlossaryHighlighter(glossary)
    # The docs pages load scripts from a CDN, which the Content-Security-Policy forbids: no docs.
    app = FastAPI(title="medtune reviewer", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(ServerFailure)  # innermost: answers for the app below it
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last = outermost: also on the body limit's 413
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(FeedbackError)
    async def store_refused(_request: Request, exc: FeedbackError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['msg']}" for e in exc.errors())
        return _error(400, f"Invalid request: {problems}.")

    @app.exception_handler(StarletteHTTPException)  # also the router's own 404/405
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    def signed_in(authorization: str | None = Header(default=None)) -> ReviewerView:
        """The reviewer whose token the request carries, after taking a token from their rate bucket."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            raise HTTPException(
                401,
                "Sign in: send 'Authorization: Bearer <token>' with the token 'medtune feedback add-reviewer' printed.",
                {"WWW-Authenticate": "Bearer"},
            )
        reviewer = store.reviewer_by_token(token)
        if reviewer is None:
            raise HTTPException(
                401,
                "Unknown reviewer token; ask for a new one ('medtune feedback add-reviewer').",
                {"WWW-Authenticate": "Bearer"},
            )
        wait = buckets.take(reviewer.id)
        if wait > 0:
            raise HTTPException(
                429,
                f"Too many requests from {reviewer.name}: at most {rate_limit:g} per second "
                f"(bursts of {burst}); retry in {wait:.2f} s.",
                {"Retry-After": str(math.ceil(wait))},
            )
        return reviewer

    def progress_of(reviewer: ReviewerView) -> dict:
        done: Progress = store.progress(reviewer, project)
        return {"done": done.done, "total": done.total}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/favicon.ico", include_in_schema=False)
    def no_icon() -> Response:
        return Response(status_code=204)

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/me")
    def me(reviewer: ReviewerView = Depends(signed_in)) -> dict:
        return {
            "reviewer": reviewer.name,
            "project": project,
            "flags": list(ERROR_FLAGS),
            "progress": progress_of(reviewer),
        }

    @app.get("/api/next", response_model=None)
    def next_item(reviewer: ReviewerView = Depends(signed_in)) -> dict | Response:
        item = store.next_item(reviewer, project)
        if item is None:
            return Response(status_code=204)
        return {
            "item_id": item.id,
            "source": item.source,
            "translation": item.translation,
            "terms": [span.as_json() for span in highlighter.terms_in(item.source)],
            "progress": progress_of(reviewer),
        }

    @app.post("/api/judgments", status_code=201)
    def submit(body: JudgmentRequest, reviewer: ReviewerView = Depends(signed_in)) -> dict:
        judgment_id = store.submit(
            reviewer,
            body.item_id,
            body.score,
            post_edit=body.post_edit,
            flags=tuple(body.flags),
            comment=body.comment or None,
            seconds=body.seconds,
        )
        return {"judgment_id": judgment_id}

    @app.post("/api/skip")
    def skip(body: ItemRequest, reviewer: ReviewerView = Depends(signed_in)) -> dict:
        store.skip(reviewer, body.item_id)
        return {"skipped": body.item_id}

    @app.post("/api/undo")
    def undo(reviewer: ReviewerView = Depends(signed_in)) -> dict:
        undone = store.undo_last(reviewer)
        if undone is None:
            raise HTTPException(404, f"{reviewer.name} has no judgment to undo.")
        return {"judgment_id": undone}

    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
