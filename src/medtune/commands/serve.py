"""``medtune serve``: serve a model over an OpenAI-compatible HTTP API."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from medtune.errors import MedtuneError


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to listen on, bound before the model loads.

    Raises:
        MedtuneError: the port is in use or the address cannot be bound (one line, naming both).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say
    # so, and without it a response written in two parts waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed server's port is reusable at once
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MedtuneError(
                f"Port {port} on {host} is already in use; stop what listens there or choose another --port."
            ) from None
        raise MedtuneError(f"Cannot listen on {host}:{port} ({exc.strerror}); check --host and --port.") from None
    return sock


def serve(
    model: Annotated[
        str,
        typer.Option(
            help="The model to serve: gemma-3-270m, a Hugging Face id, a local folder, a medtune training output "
            "(adapter + base), a merged export, or a Marian translation model (/v1/completions: source in, "
            "translation out)."
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Address to listen on; the default accepts local connections only (0.0.0.0: all).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer KEY' on every request (else HTTP 401). Default: no key."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Where the model runs: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
    ] = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            help="Weight precision: auto (bfloat16 where the hardware runs it natively, else float32), "
            "float32, bfloat16 or float16."
        ),
    ] = "auto",
    served_name: Annotated[
        str | None,
        typer.Option(help="The model name /v1/models lists and requests must use (default: --model as given)."),
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option(min=1, help="Most sequences decoded together in one batch (a request with n=4 counts 4).")
    ] = 32,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            min=0,
            help="The longest a batch waits for more requests (ms), or a quarter of the last batch's decoding "
            "time when that is longer; only when more are expected: the clients of the last batch plus those "
            "that queued while it ran. A lone client never waits; 0 turns waiting off.",
        ),
    ] = 50.0,
) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models),
    batching concurrent requests. Stop with Ctrl-C."""
    from medtune.cli import _fail, _log

    try:
        import uvicorn

        from medtune.serve.app import ServeSettings, create_app

        settings = ServeSettings(model, served_name, api_key, device, dtype, max_batch_size, batch_wait_ms)
        sock = bind_port(host, port)  # a port in use fails before the model loads
        app = create_app(settings, log=_log)
    except MedtuneError as exc:
        _fail(exc)
    shown = f"[{host}]" if ":" in host else host
    info = app.state.served.loaded.runtime_info()
    _log(
        f"Serving {settings.name} on {info['device']} ({info['device_name']}, {info['dtype']}) at "
        f"http://{shown}:{port}/v1, batches of up to {max_batch_size} sequences"
        f"{', API key required' if api_key else ''}. Ctrl-C stops."
    )
    if api_key is None and not is_loopback(host):
        _log(
            f"Warning: {host} accepts connections from other machines and no --api-key is set: anyone who can reach port {port} can use the model."
        )
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) accepts connections from this machine only."""
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
