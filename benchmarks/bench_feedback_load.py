"""Load-test the reviewer web app: concurrent reviewers submitting judgments as fast as they can.

Starts ``medtune feedback serve`` in a subprocess (so the server's CPU is its own) on a free loopback
port over a fresh project, then runs ``--clients`` reviewer clients (one httpx client and one reviewer
token each, in threads) for ``--seconds``: each loops GET /api/next + POST /api/judgments. Prints the
acknowledged submissions per second, the latency percentiles of each call, and, counted in the
database afterwards, lost judgments (acknowledged but absent) and duplicated ones (present but never
acknowledged, or an item judged twice); and the CPU per judgment of the server, of PostgreSQL (a local
server's) and of the clients themselves, which share the machine. Target: >= 200 submissions/s, p95 < 100 ms,
0 lost, 0 duplicated.

Usage: python benchmarks/bench_feedback_load.py [--db URL] [--postgres] [--clients 8] [--seconds 60] [--workers 1]
  --db URL     the store to load (a SQLAlchemy URL; a project named load-<time> is added to it).
               Default: a new SQLite file in a temporary folder.
  --postgres   also run against a throwaway PostgreSQL server started from the system binaries
               (initdb + pg_ctl on 127.0.0.1, as the postgres user when run as root; removed afterwards).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from medtune.feedback.store import FeedbackStore, NewItem

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL server on a free loopback port for the length of the block; yields a database URL."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    bin_dir = Path(shutil.which("pg_ctl") or (binaries[-1] if binaries else "")).parent
    if not (bin_dir / "initdb").exists():
        raise SystemExit("--postgres: PostgreSQL's initdb and pg_ctl are not installed (apt install postgresql).")
    as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    folder = Path(tempfile.mkdtemp(prefix="medtune-bench-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
    data, port = folder / "data", free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=100"
    subprocess.run([*as_server, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*as_server, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options,
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_server, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def prepare(url: str, project: str, clients: int, items: int) -> list[str]:
    """Add the project, its items and one reviewer per client; returns the reviewers' tokens."""
    with FeedbackStore(url) as store:
        store.create_project(project, reviewers_per_item=1)
        store.add_items(
            project, [NewItem(f"Load item {i}: keep the wound clean.", f"Elemento {i}.") for i in range(items)]
        )
        return [store.add_reviewer(f"{project}-client{c}") for c in range(clients)]


def start_server(url: str, project: str, log: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "medtune.cli", "feedback", "serve", "--db", url, "--port", str(port)]
    command += ["--workers", str(workers)]
    process = subprocess.Popen([*command, "--project", project], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{root}/api/health", timeout=5).status_code == 200:
                return process, root
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"medtune feedback serve did not start:\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` and its children (the --workers) have used so far.

    Read from Linux's /proc; NaN elsewhere.
    """
    total, found = 0.0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # the server, or a worker (by parent pid)
            found = found or stat.parent.name == str(pid)
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total if found else float("nan")


def database_cpu_seconds(url: str) -> float:
    """CPU seconds a local PostgreSQL server (postmaster and backends) has used so far; NaN for other databases,
    or when its data folder cannot be read."""
    if not url.startswith("postgresql"):
        return float("nan")
    try:
        with FeedbackStore(url) as store, store._read() as connection:
            data_directory = connection.exec_driver_sql("SHOW data_directory").scalar()
        postmaster = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError):
        return float("nan")
    return cpu_seconds(postmaster)


class Client(threading.Thread):
    """One reviewer: GET /api/next, POST /api/judgments, until the deadline; records what was acknowledged."""

    def __init__(self, root: str, token: str, index: int, start_at: float, stop_at: float):
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=root, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.index, self.start_at, self.stop_at = index, start_at, stop_at
        self.acknowledged: list[tuple[int, str]] = []
        self.latency: dict[str, list[float]] = {"next": [], "submit": []}
        self.refused: dict[int, int] = {}  # status -> count of answers other than 200/201/204

    def timed(self, kind: str, method: str, path: str, **body) -> httpx.Response:
        began = time.perf_counter()
        answer = self.http.request(method, path, **body)
        self.latency[kind].append(time.perf_counter() - began)
        return answer

    def run(self) -> None:
        while time.perf_counter() < self.start_at:
            time.sleep(0.001)
        step = 0
        while time.perf_counter() < self.stop_at:
            item = self.timed("next", "GET", "/api/next")
            if item.status_code != 200:
                self.refused[item.status_code] = self.refused.get(item.status_code, 0) + 1
                if item.status_code == 204:
                    return  # the project ran dry: more --items needed
                continue
            item_id = item.json()["item_id"]
            body = {"item_id": item_id, "score": (step % 11) / 10, "post_edit": f"client {self.index} step {step}"}
            answer = self.timed("submit", "POST", "/api/judgments", json=body)
            if answer.status_code == 201:
                self.acknowledged.append((answer.json()["judgment_id"], item_id))
            else:
                self.refused[answer.status_code] = self.refused.get(answer.status_code, 0) + 1
            step += 1
        self.http.close()


def percentiles(seconds: list[float]) -> dict:
    if len(seconds) < 2:
        return {}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {f"p{p}_ms": round(cuts[p - 1] * 1000, 2) for p in (50, 95, 99)} | {"requests": len(seconds)}


def load(url: str, label: str, args: argparse.Namespace, folder: Path) -> dict:
    project = f"load-{int(time.time())}"
    tokens = prepare(url, project, args.clients, args.items or int(800 * args.seconds) + 1000)
    process, root = start_server(url, project, folder / f"serve-{label}.log", args.workers)
    try:
        cpu_before = cpu_seconds(process.pid)
        database_cpu_before = database_cpu_seconds(url)
        clients_cpu_before = time.process_time()  # this process: the client threads (the server is a subprocess)
        start_at = time.perf_counter() + 0.5  # every client ready, then all start together
        clients = [Client(root, t, i, start_at, start_at + args.seconds) for i, t in enumerate(tokens)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = max(time.perf_counter(), start_at + args.seconds) - start_at
        server_cpu = cpu_seconds(process.pid) - cpu_before
        clients_cpu = time.process_time() - clients_cpu_before
        database_cpu = database_cpu_seconds(url) - database_cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    acknowledged = {(j, item) for c in clients for j, item in c.acknowledged}
    with FeedbackStore(url) as store:
        stored = {(j.id, j.item_id) for j in store.judgments(project)}
    items_judged = [item for _, item in stored]
    refused: dict[int, int] = {}
    for c in clients:
        for status, count in c.refused.items():
            refused[status] = refused.get(status, 0) + count
    return {
        "backend": label,
        "clients": args.clients,
        "workers": args.workers,
        "seconds": round(elapsed, 2),
        "acknowledged": len(acknowledged),
        "submissions_per_s": round(len(acknowledged) / elapsed, 1),
        "next": percentiles([s for c in clients for s in c.latency["next"]]),
        "submit": percentiles([s for c in clients for s in c.latency["submit"]]),
        "all_requests": percentiles([s for c in clients for kind in c.latency.values() for s in kind]),
        # CPU the server process used while loaded (PostgreSQL's own processes come on top); NaN off Linux.
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_ms_per_judgment": round(1000 * server_cpu / max(1, len(acknowledged)), 2),
        # The CPU the load itself took (the clients share the machine), and PostgreSQL's (NaN for SQLite).
        "clients_cpu_ms_per_judgment": round(1000 * clients_cpu / max(1, len(acknowledged)), 2),
        "database_cpu_ms_per_judgment": round(1000 * database_cpu / max(1, len(acknowledged)), 2),
        "lost": len(acknowledged - stored),
        "duplicated": len(stored - acknowledged) + len(items_judged) - len(set(items_judged)),
        "other_answers": refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="store URL (default: a new SQLite file in a temporary folder)")
    parser.add_argument("--postgres", action="store_true", help="also run against a throwaway PostgreSQL server")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="server processes (medtune feedback serve --workers)")
    parser.add_argument("--items", type=int, default=0, help="items to queue (default: 800 per second of run + 1000)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="medtune-bench-") as tmp:
        folder = Path(tmp)
        url = args.db or f"sqlite:///{folder / 'feedback.db'}"
        results.append(load(url, url.split(":", 1)[0].split("+")[0], args, folder))
        if args.postgres:
            with throwaway_postgres() as pg_url:
                results.append(load(pg_url, "postgresql", args, folder))
    for r in results:
        verdict = (r["submissions_per_s"] >= 200 and r["all_requests"].get("p95_ms", 1e9) < 100
                   and r["lost"] == 0 and r["duplicated"] == 0)  # fmt: skip
        print(
            f"{r['backend']}: {r['acknowledged']} judgments in {r['seconds']} s by {r['clients']} clients = "
            f"{r['submissions_per_s']}/s; latency all requests p50 {r['all_requests'].get('p50_ms')} ms, "
            f"p95 {r['all_requests'].get('p95_ms')} ms, p99 {r['all_requests'].get('p99_ms')} ms; lost {r['lost']}, "
            f"duplicated {r['duplicated']}; CPU per judgment: server {r['server_cpu_ms_per_judgment']} ms, database "
            f"{r['database_cpu_ms_per_judgment']} ms, clients {r['clients_cpu_ms_per_judgment']} ms; other answers "
            f"{r['other_answers'] or 'none'} "
            f"-> target (>= 200/s, p95 < 100 ms, none lost or duplicated) {'met' if verdict else 'NOT met'}"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
