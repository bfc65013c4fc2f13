"""Benchmark ``medtune serve``: requests/s and completion tokens/s, sequential vs concurrent clients.

Starts ``medtune serve`` on a free loopback port (the embedded model by default), then sends the same
chat requests (medical questions from the bundled dialogues, sampled with a fixed seed each) through
``medtune.endpoint.Endpoint.map``: first with one client thread, then with ``--concurrency`` threads.
The server batches concurrent requests, so the concurrent run should be several times faster
(target: at least 3x). Both runs must return the same texts (a request's output depends only on its
prompt and seed, not on its batch neighbours); the script says whether they did.

Usage: python benchmarks/bench_serve.py [--model gemma-3-270m] [--requests 64] [--concurrency 8]
       [--max-tokens 64] [--device auto] [--dtype auto]
On a CPU shared with other work, set OMP_NUM_THREADS=1 (the server inherits it): torch's thread pool
otherwise spins against the other processes and both runs measure the contention.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from medtune.data.demo import DEMO_DIR
from medtune.endpoint import Endpoint, EndpointSettings
from medtune.models.gguf import EMBEDDED_NAME


def questions(count: int) -> list[str]:
    """The first user turn of each bundled dialogue, repeated to ``count``."""
    rows = [json.loads(line) for line in (DEMO_DIR / "doctor_patient_dialogues.jsonl").read_text().splitlines() if line]
    firsts = [next(m["content"] for m in row["messages"] if m["role"] == "user") for row in rows]
    return [firsts[i % len(firsts)] for i in range(count)]


def start_server(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "medtune.cli", "serve", "--model", args.model, "--port", str(port)]
    command += ["--device", args.device, "--dtype", args.dtype, "--max-batch-size", str(args.max_batch_size)]
    command += ["--batch-wait-ms", str(args.batch_wait_ms)] if args.batch_wait_ms is not None else []
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"medtune serve did not start:\n{log.read_text()}")


def server_stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/medtune/stats").json()


def timed_run(url: str, model: str, prompts: list[str], concurrency: int, max_tokens: int) -> tuple[dict, list]:
    endpoint = Endpoint(EndpointSettings(url, model, concurrency=concurrency, timeout=600))

    def ask(item: tuple[int, str]) -> str:
        seed, question = item
        messages = [{"role": "user", "content": question}]
        return endpoint.chat(messages, temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=seed)[0]

    started = time.perf_counter()
    texts = endpoint.map(ask, list(enumerate(prompts)), progress=f"concurrency {concurrency}")
    seconds = time.perf_counter() - started
    tokens = endpoint.usage.completion_tokens
    figures = {
        "concurrency": concurrency,
        "requests": len(prompts),
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(prompts) / seconds, 3),
        "completion_tokens": tokens,
        "completion_tokens_per_s": round(tokens / seconds, 1),
    }
    return figures, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=EMBEDDED_NAME, help="Any model medtune can load.")
    parser.add_argument("--requests", type=int, default=64, help="Chat requests per run.")
    parser.add_argument("--concurrency", type=int, default=8, help="Client threads in the concurrent run.")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of each request.")
    parser.add_argument("--max-batch-size", type=int, default=32, help="The server's --max-batch-size.")
    parser.add_argument("--batch-wait-ms", type=float, default=None, help="The server's --batch-wait-ms (its default).")
    parser.add_argument("--device", default="auto", help="The server's --device.")
    parser.add_argument("--dtype", default="auto", help="The server's --dtype.")
    args = parser.parse_args()

    prompts = questions(args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        process, url = start_server(args, log)
        try:
            model = httpx.get(f"{url}/models").json()["data"][0]["id"]
            timed_run(url, model, prompts[:2], 1, 4)  # warm-up: first-call allocations are not timed
            sequential, sequential_texts = timed_run(url, model, prompts, 1, args.max_tokens)
            before = server_stats(url)
            concurrent, concurrent_texts = timed_run(url, model, prompts, args.concurrency, args.max_tokens)
            after = server_stats(url)
        finally:
            process.terminate()
            process.wait(timeout=60)
    result = {
        "model": args.model,
        "device": args.device,
        "dtype": args.dtype,
        "max_tokens": args.max_tokens,
        "sequential": sequential,
        "concurrent": concurrent,
        "speedup_requests_per_s": round(concurrent["requests_per_s"] / sequential["requests_per_s"], 2),
        "same_texts": sequential_texts == concurrent_texts,
        "concurrent_mean_batch": round(
            (after["sequences"] - before["sequences"]) / (after["engine_calls"] - before["engine_calls"]), 2
        ),
    }
    print(json.dumps(result, indent=2))
    print(
        f"sequential {sequential['requests_per_s']:.2f} req/s, {sequential['completion_tokens_per_s']:.1f} tok/s; "
        f"concurrency {args.concurrency}: {concurrent['requests_per_s']:.2f} req/s, "
        f"{concurrent['completion_tokens_per_s']:.1f} tok/s; speedup {result['speedup_requests_per_s']}x "
        f"(target >= 3x); same texts: {result['same_texts']}"
    )


if __name__ == "__main__":
    main()
