"""Helpers for the reviewer web app tests: a store with a project, items and reviewers, and the app
served by a real uvicorn on a free loopback port (or ``medtune feedback serve`` in a subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from live_server import READY_TIMEOUT_S, free_port, uvicorn_in_thread

from medtune.data.glossary import Term
from medtune.feedback.app import create_feedback_app
from medtune.feedback.store import FeedbackStore, NewItem

PROJECT = "demo"
GLOSSARY = (Term("wound", "herida"), Term("blood pressure", "presión arterial"))


def demo_items(count: int) -> list[NewItem]:
    """``count`` distinct items; each source holds the glossary term 'wound'."""
    return [
        NewItem(f"Sentence {i}: keep the wound clean.", f"Frase {i}: mantenga limpia la herida.") for i in range(count)
    ]


def seed_store(
    store: FeedbackStore, items: Sequence[NewItem], reviewers: Sequence[str] = ("ana", "ben"), k: int = 1
) -> dict[str, str]:
    """Create the project with ``items`` and ``reviewers``; returns each reviewer's token."""
    store.create_project(PROJECT, reviewers_per_item=k)
    store.add_items(PROJECT, items)
    return {name: store.add_reviewer(name) for name in reviewers}


@contextmanager
def serving(store: FeedbackStore, **options) -> Iterator[str]:
    """The reviewer app over ``store`` under a real uvicorn on 127.0.0.1; yields its root URL."""
    options.setdefault("glossary", GLOSSARY)
    with uvicorn_in_thread(create_feedback_app(store, **options)) as url:
        yield url.removesuffix("/v1")


def client(root: str, token: str | None) -> httpx.Client:
    """An httpx client for ``root`` carrying ``token`` as its bearer token (none when None)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(base_url=root, headers=headers, timeout=30)


def start_serve_process(db_url: str, log_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python -m medtune.cli feedback serve`` on a free port; returns (process, root URL) once healthy.

    Raises:
        RuntimeError: the process exited or did not answer in time (its log attached).
    """
    port = free_port()
    command = [sys.executable, "-m", "medtune.cli", "feedback", "serve", "--db", db_url, "--port", str(port), *extra]
    process = subprocess.Popen(command, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=os.environ.copy())
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"medtune feedback serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{root}/api/health", timeout=5).status_code == 200:
                return process, root
        except httpx.TransportError:
            time.sleep(0.1)
    kill_process(process)
    raise RuntimeError(f"medtune feedback serve did not answer in {READY_TIMEOUT_S} s:\n{log_path.read_text()}")


def kill_process(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the server process and reap it."""
    if process.poll() is None:
        process.send_signal(sig)
    process.wait(timeout=30)
