"""``medtune feedback serve``: the reviewer web app over the feedback store."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.commands.options import FeedbackDbOpt
from medtune.commands.serve import bind_port, is_loopback
from medtune.errors import MedtuneError
from medtune.feedback.http_guards import DEFAULT_MAX_BODY_BYTES
from medtune.feedback.rate_limit import DEFAULT_BURST, DEFAULT_RATE_LIMIT

DEFAULT_GLOSSARY = "demo:glossary_en_es.tsv"  # the glossary the bundled translation recipes use
NO_GLOSSARY = "none"


def serve_reviewers(
    db: FeedbackDbOpt = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; the default accepts local connections only (0.0.0.0: all, with a warning)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8100,
    project: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Serve only this project's items (default: every project in the store)."),
    ] = None,
    glossary: Annotated[
        str,
        typer.Option(
            metavar="FILE",
            help="Glossary whose terms are highlighted in each source with their expected Spanish term "
            f"(JSONL/CSV/TSV with columns en, es; 'demo:<file>' for a bundled one; '{NO_GLOSSARY}': no highlighting).",
        ),
    ] = DEFAULT_GLOSSARY,
    rate_limit: Annotated[
        float, typer.Option(min=0.001, help="Requests per second each reviewer may sustain (HTTP 429 above it).")
    ] = DEFAULT_RATE_LIMIT,
    burst: Annotated[
        int, typer.Option(min=1, help="Requests a reviewer may send at once above --rate-limit.")
    ] = DEFAULT_BURST,
    max_body_kb: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted, in KiB (HTTP 413 above it).")
    ] = DEFAULT_MAX_BODY_BYTES // 1024,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (on a machine with cores to spare, more judgments per second; "
            "SQLite then arbitrates writers with its file lock). The rate limit applies per process: a reviewer's "
            "connection stays with one.",
        ),
    ] = 1,
    lease_minutes: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="With --project: minutes an assigned item stays reserved for its reviewer before it goes back to "
            "the pool (stored as the project's setting). Default: the project's setting (30 when it was created).",
        ),
    ] = None,
) -> None:
    """Serve the reviewer page and its JSON API: reviewers sign in with the token from 'medtune feedback
    add-reviewer', then score, post-edit, flag, skip and undo items one after another. Ctrl-C stops."""
    from medtune.cli import _fail, _log

    try:
        import uvicorn

        from medtune.data.glossary import load_glossary
        from medtune.feedback.app import create_feedback_app
        from medtune.feedback.projects import existing_store_url
        from medtune.feedback.store import FeedbackStore
        from medtune.feedback.worker_app import APP_FACTORY, WorkerSettings

        terms = [] if glossary == NO_GLOSSARY else load_glossary(glossary)
        sock = bind_port(host, port)  # a port in use fails before the store opens
        url = existing_store_url(db)  # a mistyped path must not serve a new, empty store
        store = FeedbackStore(url)  # opening migrates the schema, once, before any worker starts
        try:
            _check_project(store, project, lease_minutes)
            projects = store.project_names()
        except MedtuneError:
            store.close()
            raise
    except MedtuneError as exc:
        _fail(exc)
    shown = f"[{host}]" if ":" in host else host
    scope = f"project {project}" if project else f"all projects ({', '.join(projects) or 'none yet'})"
    _log(
        f"Reviewer page for {scope} at http://{shown}:{port}/ ({len(terms)} glossary terms"
        f"{f', {workers} worker processes' if workers > 1 else ''}). Ctrl-C stops."
    )
    if not is_loopback(host):
        _log(
            f"Warning: {host} accepts connections from other machines, and the page and tokens travel unencrypted "
            "over plain HTTP; put it behind an HTTPS proxy, or keep the default --host 127.0.0.1."
        )
    options = {"rate_limit": rate_limit, "burst": burst, "max_body_bytes": max_body_kb * 1024}
    if workers == 1:
        app = create_feedback_app(store, project=project, glossary=terms, **options)
        try:
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        finally:
            store.close()
        return
    from uvicorn.supervisors import Multiprocess

    store.close()  # each worker opens its own
    WorkerSettings(url, project, None if glossary == NO_GLOSSARY else glossary, **options).export()
    config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, log_level="warning")
    Multiprocess(config, sockets=[sock]).run()


def _check_project(store, project: str | None, lease_minutes: float | None) -> None:
    """Refuse an unknown --project (naming the known ones) and --lease-minutes without --project."""
    from medtune.feedback.projects import require_project

    if project is None:
        if lease_minutes is not None:
            raise MedtuneError("--lease-minutes is a project's setting: name the project with --project.")
        return
    require_project(store, project)
    if lease_minutes is not None:
        store.create_project(project, lease_minutes=lease_minutes)  # an existing project takes the new setting
