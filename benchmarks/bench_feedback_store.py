"""Benchmark the feedback store alone (no web server): reviewers asking for items and judging them from threads.

A fresh project of ``--items`` items (K = ``--k``) gets ``--threads`` reviewers, one per thread, each looping
next_item + submit (+ progress, as the reviewer page asks on every item) until the project runs dry or
``--seconds`` pass. Prints judgments/s, the latency percentiles of one loop, then counts in the database:
judgments stored against acknowledged (lost, duplicated) and items over K. The web app's load test
(bench_feedback_load.py) adds HTTP on top; this isolates the database part.

Usage: python benchmarks/bench_feedback_store.py [--db URL] [--postgres] [--threads 8] [--items 20000]
       [--k 1] [--seconds 20]
  --db URL     the store (a project named bench-<time> is added). Default: a new SQLite file in a temp folder.
  --postgres   also run against a throwaway PostgreSQL server (see bench_feedback_load.py).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_feedback_load import throwaway_postgres

from medtune.feedback.store import FeedbackStore, NewItem


def run(url: str, threads: int, items: int, k: int, seconds: float) -> dict:
    """Load the store at ``url`` and return the figures."""
    project = f"bench-{time.time_ns()}"
    with FeedbackStore(url) as store:
        store.create_project(project, reviewers_per_item=k)
        store.add_items(project, [NewItem(f"{project} source {i}", f"traducción {i}") for i in range(items)])
        reviewers = [store.reviewer_by_token(store.add_reviewer(f"{project}-r{i}")) for i in range(threads)]
        start, deadline = threading.Barrier(threads), time.perf_counter() + seconds
        latencies: list[float] = []

        def review(reviewer) -> list[int]:
            acknowledged = []
            start.wait()
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                item = store.next_item(reviewer, project)
                if item is None:
                    break
                acknowledged.append(store.submit(reviewer, item.id, 0.5, seconds=1.0))
                store.progress(reviewer, project)
                latencies.append(time.perf_counter() - began)
            return acknowledged

        began = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            acknowledged = [j for done in pool.map(review, reviewers) for j in done]
        wall = time.perf_counter() - began
        stored = store.judgments(project)
    per_item = Counter(j.item_id for j in stored)
    ids = {j.id for j in stored}
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "judgments_per_s": len(acknowledged) / wall,
        "acknowledged": len(acknowledged),
        "p50_ms": 1000 * cuts[49],
        "p95_ms": 1000 * cuts[94],
        "lost": len(set(acknowledged) - ids),
        "duplicated": len(ids - set(acknowledged)) + len(stored) - len(ids),
        "items_over_k": sum(1 for n in per_item.values() if n > k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="a SQLAlchemy URL; default: a new SQLite file")
    parser.add_argument("--postgres", action="store_true", help="also run against a throwaway PostgreSQL server")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        targets = [("given" if args.db else "sqlite", args.db or f"sqlite:///{Path(folder) / 'feedback.db'}")]
        for name, url in targets:
            report(name, run(url, args.threads, args.items, args.k, args.seconds), args)
    if args.postgres:
        with throwaway_postgres() as url:
            report("postgresql", run(url, args.threads, args.items, args.k, args.seconds), args)


def report(name: str, figures: dict, args) -> None:
    print(
        f"{name}: {args.threads} threads, {args.items} items, K={args.k}: "
        f"{figures['judgments_per_s']:.0f} judgments/s ({figures['acknowledged']} acknowledged), "
        f"next+submit+progress p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms; "
        f"lost {figures['lost']}, duplicated {figures['duplicated']}, items over K {figures['items_over_k']}"
    )


if __name__ == "__main__":
    main()
