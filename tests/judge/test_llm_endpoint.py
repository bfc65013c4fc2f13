"""The llm judge through ``medtune.endpoint`` against a real uvicorn server playing a judge model.

The server's replies depend on the answer being judged, as a real judge's would: clean JSON, JSON
that needs repair (code fence, trailing comma, prose), prose that only becomes JSON when re-asked,
and prose forever. Requests, re-asks and failures are checked end to end through ``medtune judge``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from cli_checks import assert_user_error, run_cli
from fastapi import FastAPI, Request
from live_server import free_port, uvicorn_in_thread

CLEAN = '{"scores": {"factual_accuracy": 9, "completeness": 8, "key_point_coverage": 7}, "rationale": "solid"}'
FENCED = (
    'Here you go:\n```json\n{"scores": {"factual_accuracy": "6/10", "completeness": 5, "key_point_coverage": 4,},}\n```'
)


class JudgeServer:
    """Counts requests; replies by the answer under judgment (pointwise) or by position (pairwise)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def reply(self, messages: list[dict]) -> str:
        text = messages[1]["content"]
        if "Answer A:" in text:
            return '{"winner": "A", "rationale": "the first one"}'  # always the first shown: position bias
        answer = text.split("Answer to grade:\n", 1)[1].split("\n\n", 1)[0]
        retried = len(messages) > 2
        if answer.startswith("good"):
            return CLEAN
        if answer.startswith("messy"):
            return FENCED
        if answer.startswith("late"):
            return CLEAN if retried else "Let me think about this answer carefully."
        return "I would rather not grade this."

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            with self.lock:
                self.requests.append(body)
            content = self.reply(body["messages"])
            choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            return {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice]}

        return app


def _data(path: Path, answers: list[str]) -> Path:
    rows = [{"id": f"a{i}", "prompt": "What lowers fever?", "answer": a} for i, a in enumerate(answers)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_pointwise_through_the_endpoint_counts_retries_and_failures(tmp_path):
    server = JudgeServer()
    data = _data(tmp_path / "a.jsonl", ["good: paracetamol", "messy: rest", "late: ibuprofen", "hopeless: magic"])
    with uvicorn_in_thread(server.app()) as url:
        args = ["judge", "--judge", "llm", "--endpoint", url, "--judge-model", "judge-m", "--data", data]
        result = run_cli([*args, "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "judgments.jsonl").read_text().splitlines())}
    assert rows["a0"]["score"] == 0.8 and rows["a0"]["rationale"] == "solid"
    assert rows["a1"]["criteria"] == {"factual_accuracy": 0.6, "completeness": 0.5, "key_point_coverage": 0.4}
    assert rows["a2"]["score"] == 0.8  # readable on the second try
    assert rows["a3"]["score"] is None and "after 3 replies" in rows["a3"]["failed"]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["parse_failures"] == 1 and metrics["failed"][0]["id"] == "a3"
    assert metrics["mean_score"] == (0.8 + 0.5 + 0.8) / 3
    # 4 first requests, 1 re-ask for "late", 2 for "hopeless"; every request greedy, to the named model
    assert len(server.requests) == 7
    assert {r["model"] for r in server.requests} == {"judge-m"} and {r["temperature"] for r in server.requests} == {0.0}


def test_pairwise_swaps_the_order_and_reports_consistency(tmp_path):
    server = JudgeServer()
    rows = [{"id": f"p{i}", "prompt": "q", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(3)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with uvicorn_in_thread(server.app()) as url:
        args = ["judge", "--judge", "llm", "--pairwise", "--endpoint", url, "--judge-model", "m", "--data", data]
        result = run_cli([*args, "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # the server always picks the answer shown first: every verdict flips with the order, so all are ties
    assert metrics["position_consistency"] == 0.0 and metrics["ties"] == 3 and metrics["pairwise_accuracy"] == 0.0
    judged = [json.loads(line) for line in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert [(j["winner"], j["chosen_score"]) for j in judged] == [("tie", 0.5)] * 3
    shown_first = [r["messages"][1]["content"].split("Answer A:\n")[1].split("\n")[0] for r in server.requests]
    assert sorted(shown_first) == sorted([f"good {i}" for i in range(3)] + [f"bad {i}" for i in range(3)])


def test_unreachable_endpoint_keeps_judgments_and_a_rerun_continues(tmp_path):
    server = JudgeServer()
    out = tmp_path / "out"
    with uvicorn_in_thread(server.app()) as url:
        first = _data(tmp_path / "first.jsonl", ["good 1", "good 2"])
        assert (
            run_cli(
                ["judge", "--judge", "llm", "--endpoint", url, "--judge-model", "m", "--data", first, "--out", out]
            ).exit_code
            == 0
        )
    more = _data(tmp_path / "more.jsonl", ["good 1", "good 2", "good 3"])
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result = run_cli(
        ["judge", "--judge", "llm", "--endpoint", dead, "--judge-model", "m", "--data", more, "--out", out]
    )
    assert_user_error(result, dead)
    assert len((out / "judge_cache.jsonl").read_text().splitlines()) == 2  # nothing lost
    with uvicorn_in_thread(server.app()) as url:
        before = len(server.requests)
        # the judge is identified by its model name, so on a new port the two finished judgments are reused
        result = run_cli(
            ["judge", "--judge", "llm", "--endpoint", url, "--judge-model", "m", "--data", more, "--out", out]
        )
    assert result.exit_code == 0, result.output
    assert len(server.requests) - before == 1
