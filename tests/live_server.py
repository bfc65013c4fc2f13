"""Real HTTP servers for tests: an ASGI app under uvicorn in a thread, or ``medtune serve`` in a subprocess.

Both listen on a free loopback port and are ready when these helpers return; the subprocess is killed
at the end (``stop_medtune_serve``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 180.0  # loading torch and a tiny model on a busy 2-core machine


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def uvicorn_in_thread(app) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn server on a free loopback port; yields its ``/v1`` base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class LiveServer:
    """A running ``medtune serve``: its API root, key and served model name."""

    base_url: str  # http://127.0.0.1:PORT/v1
    api_key: str | None
    model: str  # the name /v1/models lists (what requests pass as "model")
    model_dir: Path
    process: subprocess.Popen
    log_path: Path


def start_medtune_serve(model_dir: Path, log_path: Path, api_key: str | None = None, *extra: str) -> LiveServer:
    """Start ``python -m medtune.cli serve`` on a free port; returns once ``/v1/models`` answers.

    Raises:
        RuntimeError: the process exited or did not answer within ``READY_TIMEOUT_S`` (its log attached).
    """
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "medtune.cli",
        "serve",
        "--model",
        str(model_dir),
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    args += ["--api-key", api_key] if api_key else []
    args += list(extra)
    log = log_path.open("wb")
    env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LiveServer(f"http://127.0.0.1:{port}/v1", api_key, str(model_dir), model_dir, process, log_path)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"medtune serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{server.base_url}/models", headers=headers, timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_medtune_serve(server)
            raise RuntimeError(f"medtune serve did not answer within {READY_TIMEOUT_S} s:\n{log_path.read_text()}")
        time.sleep(0.2)


def stop_medtune_serve(server: LiveServer) -> None:
    """Stop the server process (SIGTERM, then SIGKILL after 20 s)."""
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
